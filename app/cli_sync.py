"""CLI face of sync: ``anpi enroll``, ``anpi sync``, ``anpi bundle …`` and ``anpi hub …``.

Thin wrappers over plain functions in :mod:`sync`; every failure becomes one line on stderr
and a non-zero exit.  Mounting into the main CLI (``app/cli.py``)::

    from app.cli_sync import hub_app, register_shelter_commands
    register_shelter_commands(app)        # enroll, sync, bundle export|import
    app.add_typer(hub_app, name="hub")    # hub serve|enroll|status|devices|revoke|bundle import

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
from typing import Any, Callable, Iterator, Optional

import typer
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from sync import bundles, client, models
from sync.errors import BundleAlreadyImported, SyncError

HUB_DB_ENV = "ANPI_HUB_DATABASE_URL"

hub_app = typer.Typer(help="Data-center hub: serve, enrol devices, import USB bundles, status.",
                      no_args_is_help=True)
hub_bundle_app = typer.Typer(help="USB bundles arriving at the hub.", no_args_is_help=True)
hub_app.add_typer(hub_bundle_app, name="bundle")
bundle_app = typer.Typer(help="USB bundles for shelters without a network.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn our exceptions (and file errors) into one line on stderr + exit status 1."""
    try:
        yield
    except SyncError as exc:
        raise _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


# ---- shelter database --------------------------------------------------------------------------------
def _db_path(ctx: typer.Context) -> Path:
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    return Path(obj.get("db_path") or os.environ.get("ANPI_DB") or "./anpi.db")


def _fallback_engine(path: Path) -> Engine:
    """Used only while ``app.db.open_shelter_db`` does not exist yet (same pragmas)."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def shelter_session_factory(ctx: typer.Context) -> Callable[[], Session]:
    path = _db_path(ctx)
    try:
        from app.db import open_shelter_db  # type: ignore[import-not-found]
    except ImportError:
        engine = _fallback_engine(path)
    else:
        engine = open_shelter_db(path)
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
    with _one_line_errors():
        r = client.enroll(shelter_session_factory(ctx), hub, code, shelter_name)
    typer.echo(f"enrolled device {r.device_id} as {r.device_name!r} at hub {r.hub_id} ({r.hub_url})")


def sync_cmd(
    ctx: typer.Context,
    hub: Optional[str] = typer.Option(None, "--hub", help="Override the enrolled hub URL"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
    batch_size: int = typer.Option(500, "--batch-size", min=1, max=2000),
    retries: int = typer.Option(5, "--retries", min=0, help="Retries per request (exponential back-off)"),
) -> None:
    """Push then pull until up to date; exit 0 only when everything local is acknowledged."""
    tty = sys.stderr.isatty() and not as_json

    def progress(p: client.SyncProgress) -> None:
        total = f"/{p.total}" if p.total else ""
        typer.echo(f"\r{p.phase}: {p.done}{total}   ", err=True, nl=False)

    with _one_line_errors():
        res = client.sync_once(shelter_session_factory(ctx), hub, batch_size=batch_size, max_retries=retries,
                               on_progress=progress if tty else None)
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


@bundle_app.command("export")
def bundle_export_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Bundle file to write (e.g. on the USB stick)"),
) -> None:
    """Write every not-yet-acknowledged event into a signed bundle encrypted for the hub."""
    with _one_line_errors():
        info = bundles.export_bundle(shelter_session_factory(ctx), out)
    typer.echo(f"wrote bundle {info.bundle_id}: {info.events} events, {info.size} bytes, verified -> {info.path} "
               f"(events stay pending until the hub's receipt is imported)")


@bundle_app.command("import")
def bundle_import_cmd(
    ctx: typer.Context,
    receipt: Path = typer.Argument(..., help="Receipt file written by `anpi hub bundle import`"),
) -> None:
    """Read the hub's signed receipt and mark the events it covers acknowledged."""
    with _one_line_errors():
        info = bundles.import_receipt(shelter_session_factory(ctx), receipt)
    typer.echo(f"receipt for bundle {info.bundle_id}: {info.acknowledged} events newly acknowledged, "
               f"{info.pending} still pending")
    if info.mismatched_epochs:
        typer.echo(f"warning: this laptop's events differ from the bundle in epoch(s) {info.mismatched_epochs} "
                   f"(restored from a backup?); those were not marked delivered — run `anpi sync`", err=True)


def register_shelter_commands(app: typer.Typer) -> None:
    """Mount ``enroll``, ``sync`` and ``bundle`` on the root ``anpi`` app."""
    app.command("enroll")(enroll_cmd)
    app.command("sync")(sync_cmd)
    app.add_typer(bundle_app, name="bundle")


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


_DB_OPT = typer.Option(None, "--database-url", envvar=HUB_DB_ENV,
                       help="sqlite:///path or postgresql://… (env ANPI_HUB_DATABASE_URL)")


@hub_app.command("serve")
def hub_serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8090, "--port"),
    database_url: Optional[str] = _DB_OPT,
    workers: int = typer.Option(1, "--workers", min=1),
) -> None:
    """Run the data-center hub (HTTP)."""
    from sync.hub.server import serve

    _hub_engine(database_url).dispose()
    serve(database_url or "", host=host, port=port, workers=workers)


@hub_app.command("enroll")
def hub_enroll_cmd(
    name: str = typer.Argument(..., help="Device / shelter name, e.g. 第二中学校"),
    municipality: Optional[str] = typer.Option(None, "--municipality", help="全国地方公共団体コード"),
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = _DB_OPT,
) -> None:
    """Register a device slot and print its one-time enrolment code."""
    from sync.hub import store

    with _one_line_errors():
        slot = store.create_enrolment(_hub_engine(database_url), name, municipality)
    if as_json:
        typer.echo(json.dumps({"code": slot.code, "slot_id": slot.slot_id, "name": slot.name,
                               "expires_at": slot.expires_at.isoformat()}, ensure_ascii=False))
    else:
        typer.echo(f"enrolment code for {slot.name!r}: {slot.code} (one use, expires {slot.expires_at:%Y-%m-%d})")


@hub_app.command("status")
def hub_status_cmd(as_json: bool = typer.Option(False, "--json"), database_url: Optional[str] = _DB_OPT) -> None:
    """Devices, events, evacuees, people (after cross-shelter linking), forks, open review items."""
    from sync.hub import store

    counts = store.status(_hub_engine(database_url))
    if as_json:
        typer.echo(json.dumps(counts))
    else:
        for k, v in counts.items():
            typer.echo(f"{k:13} {v}")


@hub_app.command("devices")
def hub_devices_cmd(as_json: bool = typer.Option(False, "--json"), database_url: Optional[str] = _DB_OPT) -> None:
    """List device slots (pending, active, revoked)."""
    from sync.hub import store

    rows = store.list_devices(_hub_engine(database_url))
    if as_json:
        typer.echo(json.dumps(rows, default=str, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['slot_id']}  {r['status']:8} {r['device_id'] or '-':26}  {r['name']}")


@hub_app.command("revoke")
def hub_revoke_cmd(device: str = typer.Argument(..., help="Device id, slot id or name"),
                   database_url: Optional[str] = _DB_OPT) -> None:
    """Refuse a lost or stolen laptop from now on (its stored events stay)."""
    from sync.hub import store

    n = store.revoke_device(_hub_engine(database_url), device)
    if not n:
        raise _fail(f"no device matches {device!r}")
    typer.echo(f"revoked {n} device slot(s) matching {device!r}")


@hub_bundle_app.command("import")
def hub_bundle_import_cmd(
    file: Path = typer.Argument(..., help="Bundle written by `anpi bundle export`"),
    receipt_out: Optional[Path] = typer.Option(None, "--receipt-out", help="Where to write the signed receipt"),
    database_url: Optional[str] = _DB_OPT,
) -> None:
    """Ingest a USB bundle (idempotent) and write a receipt signed by the hub."""
    from sync.hub.bundles import import_bundle_file

    engine = _hub_engine(database_url)
    where = f"; receipt written to {receipt_out}" if receipt_out else ""
    with _one_line_errors():
        try:
            out = import_bundle_file(engine, file, receipt_out)
        except BundleAlreadyImported as exc:  # harmless replay: say so, exit 0, re-issue the receipt
            typer.echo(f"{exc}{where}")
            return
    if out.all_known:
        typer.echo(f"already imported: all {out.events} events of bundle {out.bundle_id} were already on the hub{where}")
        return
    forks = f", {out.forks} FORKS (see hub review)" if out.forks else ""
    typer.echo(f"imported bundle {out.bundle_id} from {out.device_name!r}: {out.events} events "
               f"({out.new} new, {out.duplicates} already on the hub{forks}){where}")


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
