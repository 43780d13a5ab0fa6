"""`anpi backup --out FILE`, `anpi restore FILE [--yes]` (ARCHITECTURE.md §2). Owner: backup work.

Thin face over `app.services.backup`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from app.cli_common import cli_errors, cli_user, db_path, engine_for, fail


def _backup(ctx: typer.Context, out: Path) -> None:
    from app.db import session as db_session
    from app.services import audit
    from app.services.backup import backup, record_attempt
    from app.services.errors import AnpiError

    db = db_path(ctx)
    if not db.is_file():
        fail(f"no database at {db} (use --db or ANPI_DB)")
    engine = engine_for(ctx)
    try:
        try:
            info = backup(engine, out)
        except AnpiError as exc:
            with db_session(engine) as s:  # the dashboard shows failed attempts too
                record_attempt(s, kind="manual", path=Path(out).absolute(), error=exc)
                s.commit()
            raise
        with db_session(engine) as s:
            record_attempt(s, kind="manual", path=info.path, info=info)
            # a backup holds every person's data: it is an export and is audited like one
            audit.record(s, cli_user(), "backup", "cli: anpi backup",
                         detail={"file": str(info.path), "sha256": info.sha256, "size": info.size, "counts": info.counts})
            s.commit()
    finally:
        engine.dispose()
    typer.echo(f"backup written: {info.path} ({info.summary()}) in {info.elapsed_s:.1f}s")
    typer.echo(f"sha256 {info.sha256}  (also in {info.path.name}.sha256)")


def _restore(ctx: typer.Context, file: Path, yes: bool) -> None:
    from app.db import open_shelter_db
    from app.db import session as db_session
    from app.services import audit
    from app.services.backup import restore

    db = db_path(ctx)
    if not Path(file).is_file():
        fail(f"backup file {file} does not exist")
    if not yes:
        if not sys.stdin.isatty():
            fail(f"restoring replaces {db}; add --yes to confirm")
        typer.confirm(f"Replace {db} by {file}? The current database is kept beside it", abort=True)
    replaced_head = audit.file_head(db) if db.is_file() else None  # the hub compares it with what it saw
    info = restore(db, file)
    engine = open_shelter_db(db)
    try:
        with db_session(engine) as s:
            audit.record(s, cli_user(), "restore", "cli: anpi restore",
                         detail={"file": str(info.backup_file), "sha256": info.sha256,
                                 "kept_as": str(info.kept_as.absolute()) if info.kept_as else None,
                                 "epoch": info.epoch, "counts": info.counts, "replaced_head": replaced_head})
            s.commit()
    finally:
        engine.dispose()
    c = info.counts
    typer.echo(f"restored {info.backup_file} into {info.db_path} ({c.get('evacuee', 0)} evacuees, "
               f"{c.get('resident', 0)} residents; integrity ok"
               + ("; checksum ok" if info.checksum_verified else "; no .sha256 file beside it to compare") + ")")
    if info.kept_as:
        typer.echo(f"previous database kept as {info.kept_as}")
    typer.echo(f"provisional sync epoch {info.epoch}; the next `anpi sync` takes a fresh epoch from the hub, so a "
               "second laptop restored from the same backup cannot collide with this one")


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""

    @app.command("backup")
    def backup_cmd(
        ctx: typer.Context,
        out: Path = typer.Option(..., "--out", help="Backup file to write (its folder must exist, e.g. a USB stick)."),
    ) -> None:
        """Write a verified copy of the shelter database (integrity-checked, then renamed into place)."""
        cli_errors(_backup)(ctx, out)

    @app.command("restore")
    def restore_cmd(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="A file written by `anpi backup` or the automatic backups."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    ) -> None:
        """Replace the shelter database by a backup (refuses damaged files; keeps the old database aside)."""
        cli_errors(_restore)(ctx, file, yes)
