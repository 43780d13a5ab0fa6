"""`anpi hub fork list|apply`: events two laptops wrote under one device id (a database restored
onto two laptops, or copied), kept apart by the hub until HQ applies them (sync.hub.forks)."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from app.cli_sync import DB_OPT, MUNI_OPT, _actor, hub_database

fork_app = typer.Typer(no_args_is_help=True, help="Forked events (one database on two laptops): review and apply.")


@fork_app.command("list")
def fork_list_cmd(as_json: bool = typer.Option(False, "--json"),
                  show_all: bool = typer.Option(False, "--all", help="Also those already applied"),
                  municipality: Optional[str] = MUNI_OPT, database_url: Optional[str] = DB_OPT) -> None:
    """Kept forks, oldest first: which laptop, where in its stream, what kind of event."""
    from sync.hub import forks

    with hub_database(database_url) as engine:
        rows = forks.list_forks(engine, municipality, open_only=not show_all)
    if as_json:
        keep = ("fork_id", "device_id", "epoch", "seq", "incoming_event_id", "incoming_type", "existing_event_id",
                "received_at", "via", "action", "resolved_at", "resolved_by")
        typer.echo(json.dumps([{k: r[k] for k in keep} for r in rows], default=str, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['fork_id']}  {r['device_id']}  epoch {r['epoch']} seq {r['seq']}  {r['incoming_type']:20} "
                   f"{r['action'] or 'open'}")
    typer.echo(f"{sum(1 for r in rows if r['action'] is None)} open fork(s)", err=True)


@fork_app.command("apply")
def fork_apply_cmd(fork_ids: Optional[List[str]] = typer.Argument(None, help="Fork ids (default: every open one)"),
                   municipality: Optional[str] = MUNI_OPT, database_url: Optional[str] = DB_OPT) -> None:
    """Store and apply reviewed forks like any pushed event; the laptop marks them delivered at its next sync."""
    from sync.hub import forks

    with hub_database(database_url) as engine:
        done = forks.apply_forks(engine, fork_ids or None, by=_actor(), municipality=municipality)
    typer.echo(f"applied {len(done)} forked event(s); the laptops holding them will mark them delivered at their "
               "next `anpi sync`")


def register(hub_app: typer.Typer) -> None:
    hub_app.add_typer(fork_app, name="fork")
