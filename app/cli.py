"""The `anpi` command line (ARCHITECTURE.md §2): a thin face over `app.services`.

Every command exits non-zero with a one-line reason on bad input, shows a progress bar on a
terminal and stays quiet when piped.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from app.config import Settings
from app import __version__
from app.cli_common import cli_audit, cli_errors, db_path, engine_for, fail, progress_bar
from app.db import session as db_session

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Anpi: shelter registration and safety confirmation.")
registry_app = typer.Typer(no_args_is_help=True, help="Resident registry snapshots (住民基本台帳).")
roster_app = typer.Typer(no_args_is_help=True, help="Evacuee rosters typed in Excel/CSV (避難者名簿).")
app.add_typer(registry_app, name="registry")
app.add_typer(roster_app, name="roster")


def _mount_sub_apps() -> None:
    """Commands that live in their own face modules (sync, audit)."""
    from app.cli_admin import audit_app
    from app.cli_sync import hub_app, register_shelter_commands

    app.add_typer(audit_app, name="audit")
    app.add_typer(hub_app, name="hub")
    register_shelter_commands(app)
    from app import cli_backup, cli_card, cli_certificate, cli_export, cli_pfif, cli_shelter

    for module in (cli_export, cli_certificate, cli_pfif, cli_backup, cli_shelter, cli_card):
        module.register(app)
    from app import (
        cli_hub_audit, cli_hub_certificate, cli_hub_db, cli_hub_fork, cli_hub_hq, cli_hub_inquiry, cli_hub_pfif,
    )

    for hub_module in (cli_hub_hq, cli_hub_inquiry, cli_hub_certificate, cli_hub_pfif, cli_hub_audit, cli_hub_fork,
                       cli_hub_db):
        hub_module.register(hub_app)


_mount_sub_apps()


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"anpi {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Path = typer.Option(Path("anpi.db"), "--db", envvar="ANPI_DB", help="Shelter SQLite file."),
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="Show the version."),
) -> None:
    ctx.obj = {"db_path": db}


# --- registry -------------------------------------------------------------------------------

@registry_app.command("import")
@cli_errors
def registry_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Registry CSV exported by the vendor."),
    profile: str = typer.Option("auto", help="anpi, kihon, auto or the path of a TOML profile."),
    encoding: str = typer.Option("auto", help="auto, utf-8, cp932 or euc-jp."),
    gaiji_map: Optional[Path] = typer.Option(None, "--gaiji-map", help="CSV code,char for municipal gaiji."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Snapshot date YYYY-MM-DD (default: today)."),
    quarantine: bool = typer.Option(False, "--quarantine-bad-rows",
                                    help="Load the good rows and leave the bad ones out (listed in a report); "
                                         "the snapshot is marked incomplete. Default: any bad row refuses the file."),
    quarantine_report: Optional[Path] = typer.Option(None, "--quarantine-report",
                                                     help="Where to write the report (default FILE.quarantine.csv)."),
) -> None:
    """Load a registry snapshot as a new snapshot version (all rows or none, unless --quarantine-bad-rows)."""
    from app.services.registry import import_registry, parse_as_of

    engine = engine_for(ctx)
    detail: dict[str, object] = {"file": file.name, "profile": profile, "encoding": encoding, "result": "not imported"}
    try:
        with progress_bar(f"importing {file.name}") as progress:
            result = import_registry(engine, file, profile=profile, encoding=encoding, gaiji_map=gaiji_map,
                                     as_of=parse_as_of(as_of), imported_by=os.environ.get("USER", ""),
                                     progress=progress, quarantine_bad_rows=quarantine,
                                     quarantine_report=quarantine_report)
        snap = result.snapshot
        detail.update(result="done", snapshot_id=snap.id, rows=snap.row_count, sha256=snap.sha256)
    finally:  # a refused or failed import is audited too (who tried to load which file)
        cli_audit(engine, "registry_import", "cli: anpi registry import", detail=detail)
    typer.echo(f"snapshot {snap.id}: {snap.row_count} residents as of {snap.as_of} from {snap.source_file} "
               f"({snap.encoding}, profile {snap.profile}) in {result.elapsed_s:.1f}s")
    if snap.quarantined:
        typer.echo(f"{snap.quarantined} bad rows quarantined: snapshot {snap.id} is INCOMPLETE; "
                   f"report: {snap.quarantine_report}", err=True)


@registry_app.command("list")
@cli_errors
def registry_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Snapshots: id, as-of date, source file and its SHA-256, row count, import time."""
    from app.services.registry import list_snapshots

    with db_session(engine_for(ctx)) as s:
        snaps = list_snapshots(s)
    rows = [{"id": x.id, "as_of": x.as_of.isoformat(), "source_file": x.source_file, "sha256": x.sha256,
             "rows": x.row_count, "encoding": x.encoding, "profile": x.profile,
             "imported_at": x.imported_at.isoformat(timespec="seconds"), "imported_by": x.imported_by,
             "complete": not x.quarantined, "quarantined": x.quarantined, "quarantine_report": x.quarantine_report}
            for x in snaps]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['id']:>4}  {r['as_of']}  {r['rows']:>9,}  {r['imported_at']}  {r['source_file']}  {r['sha256'][:16]}…"
                   + (f"  INCOMPLETE: {r['quarantined']:,} rows quarantined ({r['quarantine_report']})" if r["quarantined"] else ""))


# --- roster ---------------------------------------------------------------------------------

@roster_app.command("import")
@cli_errors
def roster_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Roster .csv or .xlsx."),
    shelter: Optional[str] = typer.Option(None, "--shelter", help="Shelter code (default: this laptop's shelter)."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Where to write the report of rejected, duplicate and flagged rows."),
    source: Optional[str] = typer.Option(None, "--source", help="Which desk's roster this is (default: the file name); "
                                         "受付番号 are keys within one source."),
) -> None:
    """Load an evacuee roster: every named row is registered (unreadable cells kept as typed and flagged)."""
    from app.services.roster import import_roster

    engine = engine_for(ctx)
    with progress_bar(f"importing {file.name}") as progress:
        result = import_roster(engine, file, shelter_code=shelter, by=os.environ.get("USER", ""),
                               rejects_out=rejects, source=source, progress=progress)
    cli_audit(engine, "roster_import", "cli: anpi roster import",
              detail={"file": file.name, "rows": result.rows, "accepted": result.accepted})
    resumed = f"; continued after row {result.resumed_at}" if result.resumed_at else ""
    typer.echo(f"{result.accepted} evacuees registered from {file.name} ({result.rows} rows{resumed})")
    lines = {"flagged": len({r.line for r in result.flags}), "already registered": len(result.duplicates),
             "rejected (no name)": len(result.rejects)}
    for what, n in lines.items():
        if n:
            typer.echo(f"{n} rows {what}" + ("; unreadable cells kept as typed for staff to check" if what == "flagged" else ""),
                       err=True)
    if result.rejects_file:
        typer.echo(f"report: {result.rejects_file}", err=True)
        for r in (result.rejects + result.flags)[:5]:
            typer.echo(f"  {r}", err=True)


# --- status ---------------------------------------------------------------------------------

@app.command("status")
@cli_errors
def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Shelter, newest snapshot, evacuees, match decisions, last sync."""
    from app.services.status import shelter_status

    with db_session(engine_for(ctx)) as s:
        st = shelter_status(s)
    if as_json:
        typer.echo(json.dumps(st, ensure_ascii=False))
        return
    snap = st["snapshot"]
    typer.echo(f"registry: snapshot {snap['id']} as of {snap['as_of']}, {snap['residents']:,} residents" if snap
               else "registry: none imported yet (anpi registry import FILE)")
    ev = st["evacuees"]
    typer.echo(f"evacuees: {ev['total']} ({ev['in_shelter']} in shelter, {ev['left']} left)")
    d = st["decisions"]
    typer.echo(f"matches: {d['auto']} auto, {d['review']} to review, {d['none']} none, {d['confirmed']} confirmed by staff")
    typer.echo(f"last sync: {st['last_sync'] or 'never'} ({st['pending_events']} events pending)")
    if snap and snap.get("quarantined"):
        typer.echo(f"registry snapshot {snap['id']} is INCOMPLETE: {snap['quarantined']:,} rows quarantined")
    fl = st["flags"]
    if fl["open"]:
        typer.echo(f"roster flags: {fl['open']} unreadable cells of {fl['evacuees']} evacuees to check")
    if st["roster_imports_unfinished"]:
        typer.echo(f"roster imports unfinished: {st['roster_imports_unfinished']} (import the same file again to continue)")


# --- reconciliation -------------------------------------------------------------------------

@app.command("reconcile")
@cli_errors
def reconcile(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, "--out", help="Write the ARCHITECTURE.md §5 CSV here."),
) -> None:
    """Match every evacuee against the newest snapshot."""
    from collections import Counter

    from app.services.reconcile import reconcile_all, write_reconcile_csv

    engine = engine_for(ctx)
    rows = reconcile_all(engine)
    if out:  # every evacuee with the resident it matched: an export of personal data
        write_reconcile_csv(rows, out)
        cli_audit(engine, "export", "cli: anpi reconcile --out",
                  [f"evacuee:{r.evacuee.id}" for r in rows], {"file": out.name, "format": "reconcile-csv",
                                                               "rows": len(rows)})
    counts = Counter(r.decision for r in rows)
    typer.echo(f"{len(rows)} evacuees: {counts['auto']} auto, {counts['review']} to review, {counts['none']} none, "
               f"{counts['confirmed']} confirmed by staff" + (f"; written to {out}" if out else ""))


@app.command("match")
@cli_errors
def match(
    ctx: typer.Context,
    name: str = typer.Option("", "--name"),
    kana: str = typer.Option("", "--kana"),
    birth: str = typer.Option("", "--birth"),
    sex: str = typer.Option("", "--sex"),
    address: str = typer.Option("", "--address"),
    limit: int = typer.Option(5, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Candidates for one person, with the decision the engine would take."""
    from app.services.search import match_one

    if not (name or kana or birth):
        fail("give at least --name, --kana or --birth")
    engine = engine_for(ctx)
    result = match_one(engine, name=name, kana=kana, birth=birth, sex=sex, address=address, limit=limit)
    typed = {"name": name, "kana": kana, "birth": birth, "sex": sex, "address": address}
    cli_audit(engine, "search", "cli: anpi match", [f"resident:{c['resident_id']}" for c in result["candidates"]],
              {"query": {k: v for k, v in typed.items() if v}})
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    typer.echo(f"decision: {result['decision']} {result['resident_id'] or ''} (p={result['probability']:.4f})")
    for c in result["candidates"]:
        typer.echo(f"  {c['resident_id']}  {c['name']}  {c['name_kana']}  {c['birth_date'] or '----------'}  "
                   f"p={c['probability']:.4f}  {c['reasons']}")


# --- users ----------------------------------------------------------------------------------

user_app = typer.Typer(no_args_is_help=True, help="Staff accounts (one per person).")
app.add_typer(user_app, name="user")


@user_app.command("add")
@cli_errors
def user_add(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name"),
    role: str = typer.Option(..., "--role", help="staff, desk, hq or admin."),
    pin: Optional[str] = typer.Option(None, "--pin", help="4-6 digits; if omitted a one-time setup code is printed."),
) -> None:
    """Add a staff account. Without --pin, prints a one-time setup code the person types with the PIN they choose."""
    from app.services.accounts import add_user_with_code

    from app.cli_common import cli_user
    from app.services import audit

    with db_session(engine_for(ctx)) as s:
        user, code = add_user_with_code(s, name, role, pin)
        audit.record(s, cli_user(), "user_add", "cli: anpi user add", [f"staff:{user.id}"],
                     {"name": user.name, "role": user.role, "pin_set": bool(pin)})
        s.commit()
    typer.echo(f"user {user.name} ({user.role}) added")
    if code:
        _print_setup_code(user.name, code)


def _print_setup_code(name: str, code: str) -> None:
    typer.echo(f"setup code for {name}: {code}")
    typer.echo("  shown only now: give it to them in person; on the 交代 screen they choose")
    typer.echo("  「初めて使う方」, type this code and their new PIN")


@user_app.command("setup-code")
@cli_errors
def user_setup_code(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Issue a new one-time setup code (first use, an account without a PIN, or a forgotten PIN: the old PIN stops working)."""
    from app.services.accounts import get_user, issue_setup_code

    with db_session(engine_for(ctx)) as s:
        user = get_user(s, name)
        code = issue_setup_code(s, user)
        s.commit()
    _print_setup_code(user.name, code)


@user_app.command("list")
@cli_errors
def user_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List staff accounts."""
    from app.services.accounts import list_users

    with db_session(engine_for(ctx)) as s:
        users = list_users(s)
    rows = [{"name": u.name, "role": u.role, "disabled": u.disabled, "pin_set": bool(u.pin_hash),
             "setup_code_open": bool(u.setup_hash)} for u in users]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['name']}\t{r['role']}\t{'disabled' if r['disabled'] else 'active'}\t{_pin_state(r)}")


def _pin_state(r: dict[str, Any]) -> str:
    if r["pin_set"]:
        return "PIN set"
    return "setup code issued" if r["setup_code_open"] else "needs a setup code (anpi user setup-code)"


@user_app.command("disable")
@cli_errors
def user_disable(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Disable an account (it stays in the audit trail)."""
    from app.services.accounts import disable_user

    from app.cli_common import cli_user
    from app.services import audit

    with db_session(engine_for(ctx)) as s:
        target = disable_user(s, name)
        audit.record(s, cli_user(), "user_disable", "cli: anpi user disable", [f"staff:{target.id}"], {"name": name})
        s.commit()
    typer.echo(f"user {name} disabled")


# --- serving --------------------------------------------------------------------------------

def _warm_matcher(path: Path) -> None:
    """Build the registry index in the background at start-up instead of at the first search.

    It gets its own engine (same URL, so the same process-wide cache entry): the service's one
    pooled connection stays free, and the staff UI answers while the index is being built.
    Measured with bench/shelter_bench.py (60,000 residents).
    """
    import threading

    def warm() -> None:
        from app.db import sqlite_engine
        from app.services.reconcile import current_matcher

        engine = sqlite_engine(path)
        try:
            current_matcher(engine)
        except Exception:  # noqa: BLE001 - no snapshot yet, or a broken one: the first search will say so
            pass
        finally:
            engine.dispose()

    threading.Thread(target=warm, name="anpi-warm-matcher", daemon=True).start()


@app.command("serve")
@cli_errors
def serve(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(
        "--host", help="Address to listen on (default 127.0.0.1; with --lan every address).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port (default 8080; with --lan 8443).")] = None,
    lan: Annotated[bool, typer.Option(
        "--lan", help="Serve tablets on the shelter's own network: HTTPS only, with the laptop's own certificate; "
                      "a device joins with a one-time code shown on 管理 > 端末.")] = False,
    backup_dir: Annotated[Optional[Path], typer.Option(
        "--backup-dir", help="Back up every N minutes to this folder, e.g. a USB stick (env ANPI_BACKUP_DIR).")] = None,
    backup_interval: Annotated[Optional[float], typer.Option(
        "--backup-interval", help="Minutes between automatic backups (env ANPI_BACKUP_INTERVAL_MINUTES, default 10).")] = None,
    backup_keep: Annotated[Optional[int], typer.Option(
        "--backup-keep", help="Automatic backups kept in the folder (env ANPI_BACKUP_KEEP, default 24).")] = None,
) -> None:
    """Run the shelter service and staff UI (on this laptop only, or with --lan for the shelter's network)."""
    import dataclasses

    import uvicorn

    from app import cli_lan
    from app.main import create_app
    from app.services.backup import BackupScheduler
    from sync.client import BackgroundSyncer

    host = host or (cli_lan.LAN_DEFAULT_HOST if lan else "127.0.0.1")
    port = port or (cli_lan.LAN_DEFAULT_PORT if lan else 8080)
    cli_lan.check_host(host, lan)
    tls = info = None
    if lan:
        info, tls = cli_lan.prepare(engine_for(ctx), host, port)
    api = create_app(db_path(ctx), lan=info)
    _warm_matcher(api.state.db_path)
    # Pushes to the hub whenever one is enrolled and reachable; idle otherwise.
    from app.services import audit
    from app.services.remote_match import on_pulled

    def factory():  # type: ignore[no-untyped-def]
        return db_session(api.state.engine)

    # other shelters' registrations are matched against this registry as they are pulled
    syncer = BackgroundSyncer(factory, interval=Settings.from_env().sync_interval_seconds,
                              audit_reporter=audit.reporter(factory), on_pulled=on_pulled(api.state.engine))
    api.state.syncer = syncer
    syncer.start()
    # Verified copies to a folder (USB stick) while serving; an unplugged stick is reported, not fatal.
    st = api.state.settings
    st = api.state.settings = dataclasses.replace(
        st, backup_dir=backup_dir or st.backup_dir,
        backup_interval_minutes=backup_interval if backup_interval is not None else st.backup_interval_minutes,
        backup_keep=backup_keep if backup_keep is not None else st.backup_keep)
    backups = None
    if st.backup_dir:
        backups = BackupScheduler(api.state.db_path, lambda: db_session(api.state.engine), st.backup_dir,
                                  interval_minutes=st.backup_interval_minutes, keep=st.backup_keep)
        api.state.backup_scheduler = backups
        typer.echo(f"automatic backups every {st.backup_interval_minutes:g} min to {st.backup_dir} "
                   f"(keeping {st.backup_keep})", err=True)
        backups.start()
    tls_options = {}
    if tls is not None and info is not None:
        cli_lan.banner(info, port)
        tls_options = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file),
                       "ssl_keyfile_password": tls.key_password}
    # proxy headers off: the LAN gate believes the socket's peer address only
    config = uvicorn.Config(api, host=host, port=port, log_level="warning", proxy_headers=False, **tls_options)
    try:
        config.load()  # the certificate and key are read now: their files go at once
    finally:
        if tls is not None:
            cli_lan.cleanup(tls)
    try:
        uvicorn.Server(config).run()
    finally:
        syncer.stop()
        if backups is not None:
            backups.stop()


@app.command("demo")
@cli_errors
def demo(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    residents: int = typer.Option(3000, "--residents", help="Size of the synthetic registry."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Only build the demo database."),
) -> None:
    """Create a demo database (synthetic registry, a shelter, staff accounts) and serve it."""
    from app.db_crypto import PASSPHRASE_ENV
    from app.services.demo import DEMO_PASSPHRASE, build_demo

    if not Settings.from_env().passphrase:  # the demo starts without a prompt: its data is synthetic
        os.environ[PASSPHRASE_ENV] = DEMO_PASSPHRASE
        typer.echo(f"demo passphrase: {DEMO_PASSPHRASE}  (other commands on this database: "
                   f"{PASSPHRASE_ENV}={DEMO_PASSPHRASE} anpi --db {db_path(ctx)} …)")
    engine = engine_for(ctx)
    accounts = build_demo(engine, residents=residents)
    if accounts:
        typer.echo(f"demo database: {db_path(ctx)}")
        typer.echo("staff accounts (name / role / PIN):")
        for name, role, pin in accounts:
            typer.echo(f"  {name}  {role}  {pin}")
    else:
        typer.echo(f"demo database {db_path(ctx)} already set up (accounts were printed when it was created)")
    if not no_serve:
        typer.echo(f"serving on http://{host}:{port}/  (Ctrl+C to stop)")
        serve(ctx, host=host, port=port)


def main() -> None:
    from app.db_crypto import DatabaseKeyError

    try:
        app()
    except DatabaseKeyError as exc:  # a command group that opens the database its own way
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
