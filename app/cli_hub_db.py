"""`anpi hub db …`: the hub database's schema (Alembic, `sync/hub/migrations`).

    anpi hub db upgrade [--database-url URL]   bring the schema to this version's head
    anpi hub db current [--database-url URL] [--json]

Every hub command upgrades the schema when it opens the database; `upgrade` does it on purpose
(before starting several hub processes, after installing a new version) and says what it did.
A database written by a newer version is refused, never changed.
"""
from __future__ import annotations

import json
from typing import Optional

import typer

from app.cli_sync import DB_OPT, _fail, _one_line_errors

db_app = typer.Typer(no_args_is_help=True, help="The hub database's schema: upgrade it, show its revision.")


def _engine(database_url: Optional[str], *, upgrade: bool):  # type: ignore[no-untyped-def]
    if not database_url:
        raise _fail("no hub database: pass --database-url or set ANPI_HUB_DATABASE_URL")
    from sync.hub import store

    return store.open_hub_engine(database_url, upgrade=upgrade, pool_size=1)


@db_app.command("upgrade")
def hub_db_upgrade_cmd(database_url: Optional[str] = DB_OPT) -> None:
    """Bring the hub schema to head (adopting a database made before migrations existed)."""
    from sync.hub import schema

    with _one_line_errors():
        engine = _engine(database_url, upgrade=False)
        try:
            before, after = schema.migrate(engine)
            if engine.dialect.name == "postgresql":
                from sync.hub.store import install_row_level_security

                install_row_level_security(engine)
        finally:
            engine.dispose()
    if before == after:
        typer.echo(f"hub schema already at {after}")
    else:
        typer.echo(f"hub schema upgraded from {before or 'none (adopted)'} to {after}")


@db_app.command("current")
def hub_db_current_cmd(database_url: Optional[str] = DB_OPT, as_json: bool = typer.Option(False, "--json")) -> None:
    """The database's schema revision and this version's head (changes nothing)."""
    from sync.hub import schema

    with _one_line_errors():
        engine = _engine(database_url, upgrade=False)
        try:
            info = schema.describe(engine)
        finally:
            engine.dispose()
    if as_json:
        typer.echo(json.dumps(info))
        return
    state = ("up to date" if info["current"] == info["head"] else "needs `anpi hub db upgrade`"
             if info["known"] else "written by a newer version of anpi: this version will not use it")
    typer.echo(f"current {info['current'] or 'none'} · head {info['head']} · {state}")


def register(hub_app: typer.Typer) -> None:
    hub_app.add_typer(db_app, name="db")
