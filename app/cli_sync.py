"""CLI face of sync: ``anpi enroll``, ``anpi sync``, ``anpi bundle …`` and ``anpi hub …``.

Thin wrappers over plain functions in :mod:`sync`; every failure becomes one line on stderr
and a non-zero exit.  Mounting into the main CLI (``app/cli.py``)::

    from app.cli_sync import hub_app, register_shelter_commands
    register_shelter_commands(app)        # enroll, sync, bundle export|import, registry pull
    app.add_typer(hub_app, name="hub")    # hub serve|enroll|status|devices|revoke|bundle import|municipality|
                                          # user|share|unshare|registry|export|crossmatch|data-key

The shelter database path is read from ``ctx.obj["db_path"]`` (set by the root callback's
``--db``), falling back to env ``ANPI_DB`` and ``./anpi.db``.  ``python -m app.cli_sync`` runs
a stand-alone root with the same ``--db`` option, used by the process tests until the main
CLI mounts these commands.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.cli_common import db_path, engine_for
from sync.errors import BundleAlreadyImported, SyncError

HUB_DB_ENV = "ANPI_HUB_DATABASE_URL"

hub_app = typer.Typer(help="Data-center hub (自治体クラウド): serve, municipalities, devices, registry backups, "
                           "agreements, HQ users, exports.", no_args_is_help=True)
hub_bundle_app = typer.Typer(help="USB bundles arriving at the hub.", no_args_is_help=True)
hub_app.add_typer(hub_bundle_app, name="bundle")
hub_muni_app = typer.Typer(help="Municipalities (tenants) on this hub.", no_args_is_help=True)
hub_app.add_typer(hub_muni_app, name="municipality")
hub_user_app = typer.Typer(help="HQ staff accounts of one municipality (for the /v1/hq routes).", no_args_is_help=True)
hub_app.add_typer(hub_user_app, name="user")
hub_registry_app = typer.Typer(help="Registry backups held at the hub (encrypted at rest).", no_args_is_help=True)
hub_app.add_typer(hub_registry_app, name="registry")
hub_export_app = typer.Typer(help="Exports of one municipality's data.", no_args_is_help=True)
hub_app.add_typer(hub_export_app, name="export")
hub_key_app = typer.Typer(help="The hub data key that seals registry backups.", no_args_is_help=True)
hub_app.add_typer(hub_key_app, name="data-key")
hub_cross_app = typer.Typer(help="Cross-town matching (evacuees at other municipalities' shelters).",
                            no_args_is_help=True)
hub_app.add_typer(hub_cross_app, name="crossmatch")
bundle_app = typer.Typer(help="USB bundles for shelters without a network.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn our exceptions (and file errors) into one line on stderr + exit status 1.

    A registry file refused by the shelter's checks names file, line and field on the first
    line and lists a few more problems below it (as ``anpi registry import`` does)."""
    from app.db_crypto import DatabaseKeyError
    from app.formats.errors import FileFormatError
    from app.services.errors import AnpiError

    try:
        yield
    except DatabaseKeyError as exc:
        raise _fail(str(exc))
    except SyncError as exc:
        raise _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except FileFormatError as exc:
        typer.echo(f"error: {exc}", err=True)
        for p in exc.problems[1:10]:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(1)
    except AnpiError as exc:
        raise _fail(str(exc).splitlines()[0])
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


# ---- shelter database --------------------------------------------------------------------------------
def shelter_session_factory(ctx: typer.Context) -> Callable[[], Session]:
    from sync import models  # here, not at the top: every `anpi` command would pay for sync's imports

    engine = engine_for(ctx)
    models.create_all(engine)  # no-op once the lead's migration created them
    return lambda: Session(engine)


# ---- shelter commands ------------------------------------------------------------------------------------
def enroll_cmd(
    ctx: typer.Context,
    hub: str = typer.Option(..., "--hub", help="Hub URL, e.g. https://hub.example.lg.jp"),
    code: str = typer.Option(..., "--code", help="One-time enrolment code from `anpi hub enroll`"),
    shelter_name: Optional[str] = typer.Option(None, "--shelter-name", help="Shown to other shelters"),
) -> None:
    """Join a hub: send this laptop's public key with the code, pin the hub's keys."""
    from sync import client

    with _one_line_errors():
        r = client.enroll(shelter_session_factory(ctx), hub, code, shelter_name)
    typer.echo(f"enrolled device {r.device_id} as {r.device_name!r} at hub {r.hub_id} ({r.hub_url})")


def sync_cmd(
    ctx: typer.Context,
    hub: Optional[str] = typer.Option(None, "--hub", help="Override the enrolled hub URL"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, max=2000,
                                             help="Events per batch (default: adaptive to the link, 500 per pull page)"),
    retries: int = typer.Option(5, "--retries", min=0, help="Retries per request (exponential back-off)"),
    status: bool = typer.Option(False, "--status", help="Only show what is pending: events, bytes, estimated time"),
    max_kbps: Optional[float] = typer.Option(None, "--max-kbps", min=0.1,
                                             help="Stay under this many kbit/s on average (a shared link)"),
) -> None:
    """Push then pull until up to date; exit 0 only when everything local is acknowledged."""
    from sync import client

    if status:
        _sync_status(ctx, as_json)
        return

    tty = sys.stderr.isatty() and not as_json

    def progress(p: client.SyncProgress) -> None:
        total = f"/{p.total}" if p.total else ""
        typer.echo(f"\r{p.phase}: {p.done}{total}   ", err=True, nl=False)

    from app.services import audit

    factory = shelter_session_factory(ctx)
    with _one_line_errors():
        from app.services.remote_match import on_pulled

        res = client.sync_once(factory, hub, batch_size=batch_size or 500, link_batch=batch_size, max_retries=retries,
                               on_progress=progress if tty else None, audit_reporter=audit.reporter(factory),
                               on_pulled=on_pulled(engine_for(ctx)), max_kbps=max_kbps)
    if tty:
        typer.echo("", err=True)
    if as_json:
        typer.echo(json.dumps(res.as_dict(), ensure_ascii=False))
    if not res.ok:
        why = res.error or "hub did not acknowledge everything"
        raise _fail(f"{res.pending} events still pending: {why}")
    if not as_json:
        forks = f"; {len(res.forks)} forks reported by the hub" if res.forks else ""
        typer.echo(f"synced with {res.hub_url}: pushed {res.pushed}, acknowledged {res.acknowledged}, "
                   f"pulled {res.pulled}, 0 pending{forks}")
    if res.audit in ("cut", "restored"):
        typer.echo(f"warning: the hub reports this laptop's audit log as {res.audit} "
                   "(see `anpi hub audit verify --device …` at the hub)", err=True)


def _sync_status(ctx: typer.Context, as_json: bool) -> None:
    """`anpi sync --status`: no network; what waits for the hub, its size on the wire (compressed as it
    would be sent) and the time it takes at the link speed measured at the last sync."""
    from sync import link

    with shelter_session_factory(ctx)() as s:
        summary = link.pending_summary(s).as_dict()
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    speed = f"{summary['link_kbps']} kbit/s measured at the last sync" if summary["link_kbps"] else "not measured yet"
    eta = f"about {_duration(summary['eta_seconds'])}" if summary["eta_seconds"] is not None else "unknown"
    typer.echo(f"pending: {summary['events']} events ({summary['urgent']} urgent), {summary['bytes']:,} bytes on the wire; "
               f"link: {speed}; estimated time: {eta}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@bundle_app.command("export")
def bundle_export_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Bundle file to write (e.g. on the USB stick)"),
) -> None:
    """Write every not-yet-acknowledged event into a signed bundle encrypted for the hub."""
    from sync import bundles

    from app.cli_common import cli_audit

    from app.services import audit

    factory = shelter_session_factory(ctx)
    with _one_line_errors():
        info = bundles.export_bundle(factory, out, audit_reporter=audit.reporter(factory))
    # a bundle carries registrations (names, addresses) out of the laptop: audited like an export
    cli_audit(engine_for(ctx), "export", "cli: anpi bundle export",
              detail={"file": str(info.path), "format": "bundle", "events": info.events, "bundle_id": info.bundle_id})
    typer.echo(f"wrote bundle {info.bundle_id}: {info.events} events, {info.size} bytes, verified -> {info.path} "
               f"(events stay pending until the hub's receipt is imported)")


@bundle_app.command("import")
def bundle_import_cmd(
    ctx: typer.Context,
    receipt: Path = typer.Argument(..., help="Receipt file written by `anpi hub bundle import`"),
) -> None:
    """Read the hub's signed receipt and mark the events it covers acknowledged."""
    from sync import bundles

    with _one_line_errors():
        info = bundles.import_receipt(shelter_session_factory(ctx), receipt)
    typer.echo(f"receipt for bundle {info.bundle_id}: {info.acknowledged} events newly acknowledged, "
               f"{info.pending} still pending")
    if info.forked:
        raise _fail(f"{info.forked} events of this bundle were NOT stored by the hub: another laptop runs a copy of "
                    "this database (restored from the same backup, or copied) and wrote other events under the same "
                    "numbers. They stay pending; ask HQ to review and apply them (`anpi hub fork apply`), then "
                    "export a new bundle or run `anpi sync`")
    if info.mismatched_epochs:
        typer.echo(f"warning: this laptop's events differ from the bundle in epoch(s) {info.mismatched_epochs} "
                   f"(restored from a backup?); those were not marked delivered — run `anpi sync`", err=True)


def registry_pull_cmd(
    ctx: typer.Context,
    hub: Optional[str] = typer.Option(None, "--hub", help="Override the enrolled hub URL"),
) -> None:
    """Fetch the newest registry backup of this laptop's municipality from the hub (verified by
    the hub's signature and SHA-256) and import it; matching then works offline."""
    from app.hub_registry import pull_into_shelter
    from sync import models

    path = db_path(ctx)
    with _one_line_errors():
        from app.db import open_shelter_db

        engine = open_shelter_db(path)
        models.create_all(engine)
        out = pull_into_shelter(engine, lambda: Session(engine), hub)
    m = out.manifest
    from app.cli_common import cli_audit

    cli_audit(engine, "registry_import", "cli: anpi registry pull",
              detail={"file": m.get("source_file"), "sha256": m.get("sha256"), "as_of": m.get("as_of"),
                      "result": "done" if out.result is not None else "already up to date"})
    who = f"{m.get('municipality_name') or ''} ({m.get('municipality_code')})".strip()
    if out.result is None:
        typer.echo(f"already up to date: {m.get('source_file')} (as of {m.get('as_of')}) of {who}; {out.already}")
        return
    snap = out.result.snapshot
    typer.echo(f"snapshot {snap.id}: {snap.row_count} residents of {who} as of {snap.as_of} from the hub "
               f"(sha256 {m['sha256'][:16]}… verified) in {out.result.elapsed_s:.1f}s"
               + ("; only the difference to the previous snapshot was sent" if out.via == "diff" else ""))


def register_shelter_commands(app: typer.Typer) -> None:
    """Mount ``enroll``, ``sync``, ``bundle`` and ``registry pull`` on the root ``anpi`` app."""
    app.command("enroll")(enroll_cmd)
    app.command("sync")(sync_cmd)
    app.add_typer(bundle_app, name="bundle")
    registry_group = next((g.typer_instance for g in app.registered_groups if g.name == "registry"), None)
    if registry_group is None:
        registry_group = typer.Typer(help="Resident registry snapshots (住民基本台帳).", no_args_is_help=True)
        app.add_typer(registry_group, name="registry")
    registry_group.command("pull")(registry_pull_cmd)


# ---- hub commands -----------------------------------------------------------------------------------------
def _hub_engine(database_url: Optional[str]) -> Engine:
    if not database_url:
        raise _fail(f"no hub database: pass --database-url or set {HUB_DB_ENV}")
    from sync.hub import store

    with _one_line_errors():
        try:
            return store.open_hub_engine(database_url)
        except Exception as exc:  # noqa: BLE001 - driver errors vary; one line is the contract
            if isinstance(exc, (SyncError, OSError)):
                raise
            raise _fail(f"cannot open hub database: {str(exc).splitlines()[0]}")


DB_OPT = typer.Option(None, "--database-url", envvar=HUB_DB_ENV,
                       help="sqlite:///path or postgresql://… (env ANPI_HUB_DATABASE_URL)")


@hub_app.command("serve")
def hub_serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8090, "--port"),
    database_url: Optional[str] = DB_OPT,
    workers: int = typer.Option(1, "--workers", min=1),
) -> None:
    """Run the data-center hub (HTTP)."""
    from app.hub_app import serve

    _hub_engine(database_url).dispose()
    serve(database_url or "", host=host, port=port, workers=workers)


MUNI_OPT = typer.Option(None, "--municipality", help="全国地方公共団体コード (default: the only one on the hub)")


@contextmanager
def hub_database(database_url: Optional[str]) -> Iterator[Engine]:
    """The hub engine for one command: our errors become one line on stderr, the engine is
    disposed afterwards (every `anpi hub …` desk command runs inside one)."""
    engine = _hub_engine(database_url)
    try:
        with _one_line_errors():
            yield engine
    finally:
        engine.dispose()


@hub_app.command("enroll")
def hub_enroll_cmd(
    name: str = typer.Argument(..., help="Device / shelter name, e.g. 第二中学校"),
    municipality: Optional[str] = MUNI_OPT,
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Register a device slot of one municipality and print its one-time enrolment code."""
    from sync.hub import store

    with _one_line_errors():
        slot = store.create_enrolment(_hub_engine(database_url), name, municipality)
    if as_json:
        typer.echo(json.dumps({"code": slot.code, "slot_id": slot.slot_id, "name": slot.name,
                               "municipality": slot.municipality_code,
                               "expires_at": slot.expires_at.isoformat()}, ensure_ascii=False))
    else:
        where = "" if slot.municipality_code == store.IMPLICIT_TENANT else f" of {slot.municipality_code}"
        typer.echo(f"enrolment code for {slot.name!r}{where}: {slot.code} "
                   f"(one use, expires {slot.expires_at:%Y-%m-%d})")


@hub_app.command("status")
def hub_status_cmd(as_json: bool = typer.Option(False, "--json"),
                   municipality: Optional[str] = typer.Option(None, "--municipality",
                                                              help="Counts of one municipality only"),
                   database_url: Optional[str] = DB_OPT) -> None:
    """Devices, events, evacuees, people (after cross-shelter linking), forks, open review items;
    and the database's replication: role (primary/standby), lag, last archived WAL, whether an
    acknowledgement to a laptop waits for the synchronous standby."""
    from sync.hub import replication, store

    with hub_database(database_url) as engine:
        counts = store.status(engine, municipality)
        repl = replication.replication_status(engine)
    if as_json:
        typer.echo(json.dumps({**counts, "replication": repl}, ensure_ascii=False))
    else:
        for k, v in counts.items():
            typer.echo(f"{k:13} {v}")
        for line in replication_lines(repl):
            typer.echo(line)


def replication_lines(repl: dict) -> list[str]:
    """``anpi hub status`` lines about the database's role, acknowledgements, lag and WAL archive."""
    acks = ("synchronous (primary + standby)" if repl.get("acks_synchronous")
            else "primary alone (no synchronous standby)" if repl.get("role") == "primary" else "none (standby)")
    lag = repl.get("replication_lag_seconds")
    return [f"{'role':13} {repl.get('role')}", f"{'acks':13} {acks}",
            f"{'lag':13} {'-' if lag is None else f'{lag:.3f} s'}",
            f"{'archived wal':13} {repl.get('last_archived_wal') or '-'}"]


@hub_app.command("backup")
def hub_backup_cmd(out: Path = typer.Option(..., "--out", help="New directory for the base backup"),
                   database_url: Optional[str] = DB_OPT) -> None:
    """Base backup of the hub's PostgreSQL (pg_basebackup; a role with REPLICATION). With the WAL
    archive it restores to any point in time after it (README: restore drill)."""
    from sync.hub import backup

    if not database_url or not database_url.startswith(("postgres", "postgresql")):
        raise _fail("anpi hub backup needs a PostgreSQL hub (--database-url postgresql://…)")
    with _one_line_errors():
        info = backup.run_backup(database_url, out)
    typer.echo(f"base backup written to {out} (started {info['started_at']})")


@hub_app.command("restore")
def hub_restore_cmd(backup_dir: Path = typer.Option(..., "--backup", help="Directory written by anpi hub backup"),
                    wal_archive: Path = typer.Option(..., "--wal-archive", help="The primary's WAL archive"),
                    data_dir: Path = typer.Option(..., "--data-dir", help="New, empty PostgreSQL data directory"),
                    target_time: Optional[str] = typer.Option(None, "--target-time",
                                                              help="ISO time with zone: replay up to just before"),
                    target_name: Optional[str] = typer.Option(None, "--target-name", help="A named restore point"),
                    port: Optional[int] = typer.Option(None, "--port")) -> None:
    """Prepare a fresh data directory that recovers to a point in time and promotes when started
    (`pg_ctl -D DIR start`); then point `anpi hub serve` at it."""
    from sync.hub import backup

    with _one_line_errors():
        backup.prepare_restore(backup_dir, wal_archive, data_dir, target_time=target_time,
                               target_name=target_name, port=port)
    typer.echo(f"restore prepared in {data_dir}: start it with `pg_ctl -D {data_dir} start` "
               f"(owned by the postgres user); it replays the archive and promotes itself")


@hub_app.command("devices")
def hub_devices_cmd(as_json: bool = typer.Option(False, "--json"),
                    municipality: Optional[str] = typer.Option(None, "--municipality", help="Only this municipality"),
                    database_url: Optional[str] = DB_OPT) -> None:
    """List device slots (pending, active, revoked)."""
    from sync.hub import store

    with _one_line_errors():
        rows = store.list_devices(_hub_engine(database_url), municipality)
    if as_json:
        typer.echo(json.dumps(rows, default=str, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['slot_id']}  {r['municipality_code']}  {r['status']:8} {r['device_id'] or '-':26}  {r['name']}")


@hub_app.command("revoke")
def hub_revoke_cmd(device: str = typer.Argument(..., help="Device id, slot id or name"),
                   municipality: Optional[str] = MUNI_OPT,
                   database_url: Optional[str] = DB_OPT) -> None:
    """Refuse a lost or stolen laptop from now on (its stored events stay)."""
    from sync.hub import store

    with _one_line_errors():
        n = store.revoke_device(_hub_engine(database_url), device, municipality)
    if not n:
        raise _fail(f"no device matches {device!r}")
    typer.echo(f"revoked {n} device slot(s) matching {device!r}")


def _check_bundle_size(file: Path) -> None:
    """A bundle is read whole to check its signature: refuse one over the limit before reading it."""
    from app.config import Settings

    limit = Settings.from_env().hub_bundle_max_bytes
    try:
        size = file.stat().st_size
    except OSError:
        return  # the import names the missing file
    if size > limit:
        raise _fail(f"{file}: bundle is {size / 2**20:.0f} MB, over the limit of {limit / 2**20:.0f} MB "
                    "(ANPI_HUB_BUNDLE_MAX_MB)")


@hub_bundle_app.command("import")
def hub_bundle_import_cmd(
    file: Path = typer.Argument(..., help="Bundle written by `anpi bundle export`"),
    receipt_out: Optional[Path] = typer.Option(None, "--receipt-out", help="Where to write the signed receipt"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Ingest a USB bundle (idempotent) and write a receipt signed by the hub."""
    from sync.hub.bundles import import_bundle_file

    _check_bundle_size(file)
    engine = _hub_engine(database_url)
    where = f"; receipt written to {receipt_out}" if receipt_out else ""
    with _one_line_errors():
        try:
            out = import_bundle_file(engine, file, receipt_out)
        except BundleAlreadyImported as exc:  # harmless replay: say so, exit 0, re-issue the receipt
            typer.echo(f"{exc}{where}")
            return
    if out.crossmatch_jobs:
        _run_crossmatch(engine)
    if out.all_known:
        typer.echo(f"already imported: all {out.events} events of bundle {out.bundle_id} were already on the hub{where}")
        return
    forks = f", {out.forks} FORKS (see hub review)" if out.forks else ""
    typer.echo(f"imported bundle {out.bundle_id} from {out.device_name!r}: {out.events} events "
               f"({out.new} new, {out.duplicates} already on the hub{forks}){where}")
    if out.audit in ("cut", "restored"):
        typer.echo(f"warning: this laptop's audit log is reported as {out.audit} "
                   f"(see `anpi hub audit verify --device {out.device_name}`)", err=True)


def _run_crossmatch(engine: Engine) -> None:
    """Cross-town work queued by an import: done now when the data key is configured."""
    from sync.hub import crossmatch, registry

    with _one_line_errors():
        key = registry.load_data_key()
    if key is None:
        typer.echo("note: cross-town matching is queued; it runs where the hub data key is configured", err=True)
        return
    res = crossmatch.run_pending(engine, key)
    typer.echo(f"cross-town matching: {res.processed} evacuees looked at, {res.linked} linked, "
               f"{res.review} to review by their home municipality")


# ---- municipalities, agreements, HQ users ------------------------------------------------------------
def _actor() -> str:
    return f"operator:{os.environ.get('USER') or 'unknown'}"


@hub_muni_app.command("add")
def hub_muni_add_cmd(code: str = typer.Argument(..., help="全国地方公共団体コード, 6 digits (e.g. 032026)"),
                     name: str = typer.Argument(..., help="Name, e.g. 大船渡市"),
                     database_url: Optional[str] = DB_OPT) -> None:
    """Add a municipality (tenant) to the hub."""
    from sync.hub import tenants

    with _one_line_errors():
        m = tenants.add_municipality(_hub_engine(database_url), code, name, actor=_actor())
    typer.echo(f"municipality {m['municipality_code']} {m['name']} added")


@hub_muni_app.command("list")
def hub_muni_list_cmd(as_json: bool = typer.Option(False, "--json"), database_url: Optional[str] = DB_OPT) -> None:
    """Municipalities on this hub."""
    from sync.hub import tenants

    rows = tenants.list_municipalities(_hub_engine(database_url))
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['municipality_code']}  {r['name']}")


@hub_app.command("share")
def hub_share_cmd(home: str = typer.Option(..., "--home", help="Municipality whose registry is shared"),
                  host: str = typer.Option(..., "--host", help="Municipality whose shelters' evacuees are matched"),
                  database_url: Optional[str] = DB_OPT) -> None:
    """Let the hub match evacuees at HOST's shelters against HOME's registry (audited)."""
    from sync.hub import tenants

    engine = _hub_engine(database_url)
    with _one_line_errors():
        done = tenants.share(engine, home, host, actor=_actor())
    typer.echo(f"agreement {home} → {host} {'recorded' if done else 'was already active'}")
    if done:
        _run_crossmatch(engine)


@hub_app.command("unshare")
def hub_unshare_cmd(home: str = typer.Option(..., "--home"), host: str = typer.Option(..., "--host"),
                    database_url: Optional[str] = DB_OPT) -> None:
    """Revoke an agreement (kept on record as revoked; audited)."""
    from sync.hub import tenants

    with _one_line_errors():
        done = tenants.unshare(_hub_engine(database_url), home, host, actor=_actor())
    if not done:
        raise _fail(f"no active agreement {home} → {host}")
    typer.echo(f"agreement {home} → {host} revoked")


@hub_user_app.command("add")
def hub_user_add_cmd(name: str = typer.Option(..., "--name"),
                     role: str = typer.Option(..., "--role", help="hq, desk (安否照会・証明書 only) or admin"),
                     municipality: Optional[str] = MUNI_OPT,
                     as_json: bool = typer.Option(False, "--json"),
                     database_url: Optional[str] = DB_OPT) -> None:
    """Add an HQ account; prints its bearer token once (only a hash is stored)."""
    from sync.hub import tenants

    with _one_line_errors():
        user, token = tenants.add_user(_hub_engine(database_url), municipality, name, role, actor=_actor())
    if as_json:
        typer.echo(json.dumps({"name": user.name, "role": user.role, "municipality": user.municipality_code,
                               "token": token}, ensure_ascii=False))
        return
    typer.echo(f"user {user.name} ({user.role}) of {user.municipality_code} added; token (shown once): {token}")


@hub_user_app.command("list")
def hub_user_list_cmd(municipality: Optional[str] = MUNI_OPT, as_json: bool = typer.Option(False, "--json"),
                      database_url: Optional[str] = DB_OPT) -> None:
    """HQ accounts of one municipality."""
    from sync.hub import tenants

    with _one_line_errors():
        rows = tenants.list_users(_hub_engine(database_url), municipality)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['name']}\t{r['role']}\t{'disabled' if r['disabled'] else 'active'}")


@hub_user_app.command("disable")
def hub_user_disable_cmd(name: str = typer.Argument(...), municipality: Optional[str] = MUNI_OPT,
                         database_url: Optional[str] = DB_OPT) -> None:
    """Disable an HQ account (its token stops working at once)."""
    from sync.hub import tenants

    with _one_line_errors():
        tenants.disable_user(_hub_engine(database_url), municipality, name, actor=_actor())
    typer.echo(f"user {name} disabled")


# ---- registry backups, exports ---------------------------------------------------------------------------
@hub_key_app.command("create")
def hub_key_create_cmd(out: Path = typer.Option(..., "--out", help="Key file to create (mode 0600)")) -> None:
    """Create a new hub data key file; set ANPI_HUB_DATA_KEY_FILE to it.  Keep a copy offline."""
    from sync.hub import registry

    with _one_line_errors():
        try:
            key = registry.create_key_file(out)
        except FileExistsError:
            raise _fail(f"{out} exists; a data key is never overwritten") from None
    typer.echo(f"hub data key {key.key_id} written to {out}; export {registry.DATA_KEY_FILE_ENV}={out}")


@hub_registry_app.command("import")
def hub_registry_import_cmd(
    file: Path = typer.Argument(..., help="Registry CSV exported by the vendor"),
    municipality: Optional[str] = MUNI_OPT,
    profile: str = typer.Option("auto", help="anpi, kihon, auto or the path of a TOML profile."),
    encoding: str = typer.Option("auto", help="auto, utf-8, cp932 or euc-jp."),
    gaiji_map: Optional[Path] = typer.Option(None, "--gaiji-map", help="CSV code,char for municipal gaiji."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Snapshot date YYYY-MM-DD (default: today)."),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Check a registry backup exactly as a shelter would and store it, encrypted, for one municipality."""
    from app.hub_registry import store_at_hub
    from app.services.registry import parse_as_of
    from sync.hub import registry

    engine = _hub_engine(database_url)
    with _one_line_errors():
        key = registry.load_data_key(required=True)
        assert key is not None
        info = store_at_hub(engine, key, municipality, file, profile=profile, encoding=encoding,
                            gaiji_map=gaiji_map, as_of=parse_as_of(as_of), imported_by=_actor())
    typer.echo(f"snapshot {info.snapshot_id} of {info.municipality_code}: {info.row_count} residents as of "
               f"{info.as_of} from {info.source_file} ({info.encoding}, profile {info.profile}), "
               f"sha256 {info.sha256[:16]}…, sealed with data key {info.key_id}")


@hub_registry_app.command("list")
def hub_registry_list_cmd(municipality: Optional[str] = MUNI_OPT, as_json: bool = typer.Option(False, "--json"),
                          database_url: Optional[str] = DB_OPT) -> None:
    """Registry backups held for one municipality (no personal data shown)."""
    from sync.hub import registry, store

    engine = _hub_engine(database_url)
    with _one_line_errors(), engine.connect() as conn:
        rows = [s.as_dict() for s in registry.list_snapshots(conn, store.resolve_municipality(conn, municipality))]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['snapshot_id']}  {r['as_of']}  {r['row_count']:>9,}  {r['source_file']}  {r['sha256'][:16]}…")


@hub_export_app.command("anpi-list")
def hub_export_anpi_list_cmd(
    municipality: Optional[str] = MUNI_OPT,
    fmt: str = typer.Option(..., "--format", help="csv, xlsx, pdf or pfif (PFIF 1.4 of consenting evacuees)"),
    encoding: str = typer.Option("utf-8-sig", "--encoding", help="csv: utf-8-sig or cp932"),
    out: Path = typer.Option(..., "--out"),
    town: Optional[list[str]] = typer.Option(None, "--town", help="町字 (repeatable), e.g. 高田町館の沖"),
    household: str = typer.Option("", "--household", help="世帯番号"),
    age_band: str = typer.Option("", "--age-band", help="0-5, 6-14, 15-64, 65-74 or 75+"),
    care_only: bool = typer.Option(False, "--care-only", help="Only people with 要配慮 flags"),
    status: str = typer.Option("", "--status",
                               help="in_shelter, left, confirmed_other, dead, missing, unconfirmed or safe"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """HQ list of one municipality's residents across every shelter on the hub (audited; 閲覧制限 left out)."""
    from app.hub_export import FORMATS, export_anpi_list
    from app.services.anpi_list import AnpiFilter
    from sync.hub import registry

    fmt = fmt.strip().lower()
    if fmt == "pfif":  # Person Finder publishes people, not the resident list: the PFIF desk's export
        _hub_pfif_export(municipality, out, database_url)
        return
    if fmt not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}, pfif")
    if fmt == "csv" and encoding not in ("utf-8-sig", "cp932"):
        raise _fail("--encoding must be utf-8-sig or cp932")
    if fmt != "csv" and encoding != "utf-8-sig":
        raise _fail("--encoding applies to csv only")
    filters = AnpiFilter(towns=tuple(town or ()), household=household.strip(), age_band=age_band.strip(),
                         care_only=care_only, status=status.strip())
    engine = _hub_engine(database_url)
    with _one_line_errors():
        from app.formats.fonts import FontMissing

        key = registry.load_data_key(required=True)
        assert key is not None
        try:
            res = export_anpi_list(engine, key, municipality, out, fmt=fmt, encoding=encoding, by=_actor(),
                                   filters=filters)
        except FontMissing as exc:
            raise _fail(str(exc)) from None
    extra = f"; {res.restricted_excluded} 閲覧制限 people left out" if res.restricted_excluded else ""
    typer.echo(f"wrote {res.rows} residents of {res.municipality_code} ({res.safe} confirmed safe) to {out}{extra}")
    if res.result.replacements:
        typer.echo(f"{len(res.result.replacements)} characters could not be written as they are and were replaced; "
                   f"report: {res.result.report_path}", err=True)
        for r in res.result.replacements[:5]:
            typer.echo(f"  row {r.row} ({r.key}) {r.field}: {r.original} ({r.code}) -> {r.replacement}", err=True)
    if res.summary_path:
        typer.echo(f"summary: {res.summary_path}")


def _hub_pfif_export(municipality: Optional[str], out: Path, database_url: Optional[str]) -> None:
    from app.hub_pfif import export_pfif
    from sync.hub import registry

    engine = _hub_engine(database_url)
    with _one_line_errors():
        res = export_pfif(engine, registry.load_data_key(), municipality, out, by=_actor())
    typer.echo(f"wrote {res.persons} people ({res.notes} notes) of {res.municipality_code} to {out} as PFIF 1.4; "
               f"left out: {res.no_consent} without consent ⑭, {res.protected} 閲覧制限")


@hub_cross_app.command("run")
def hub_cross_run_cmd(
    watch: bool = typer.Option(False, "--watch", help="Keep running: a matching worker beside `anpi hub serve` "
                                                      "(start the server with ANPI_HUB_CROSSMATCH=off)"),
    interval: float = typer.Option(0.2, "--interval", min=0.01, help="Seconds between looks at the queue"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Do the queued cross-town matching now (the server does it after each push by default)."""
    import time

    from sync.hub import crossmatch, registry

    engine = _hub_engine(database_url)
    if not watch:
        _run_crossmatch(engine)
        return
    with _one_line_errors():
        key = registry.load_data_key(required=True)
    registry.attach_data_key(engine, key)
    typer.echo("cross-town matching worker: watching the queue (Ctrl+C to stop)", err=True)
    try:
        while True:
            res = crossmatch.run_pending(engine, key)
            if res.errors:
                typer.echo(f"cross-town matching: {'; '.join(res.errors)}", err=True)
            if not res.processed:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


# ---- stand-alone root (tests, and until app/cli.py mounts these) -----------------------------------------
standalone = typer.Typer(help="Anpi sync commands (stand-alone).", no_args_is_help=True)


@standalone.callback()
def _root(ctx: typer.Context,
          db: Path = typer.Option(Path("./anpi.db"), "--db", envvar="ANPI_DB", help="Shelter SQLite file")) -> None:
    ctx.obj = {"db_path": db}


register_shelter_commands(standalone)
standalone.add_typer(hub_app, name="hub")


def main() -> None:
    standalone()


if __name__ == "__main__":
    main()
