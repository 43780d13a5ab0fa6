"""`anpi shelter add|list`: the municipality's shelter list (避難所一覧) from the command line."""

from __future__ import annotations

import json
from typing import Optional

import typer

from app.cli_common import cli_errors, engine_for
from app.db import session as db_session

shelter_app = typer.Typer(no_args_is_help=True, help="The shelter list (避難所一覧) transfers pick from.")


def register(app: typer.Typer) -> None:
    app.add_typer(shelter_app, name="shelter")


@shelter_app.command("add")
@cli_errors
def shelter_add(
    ctx: typer.Context,
    code: str = typer.Option(..., "--code", help="The shelter's code (e.g. the hub's enrolment code)."),
    name: str = typer.Option(..., "--name"),
    capacity: Optional[int] = typer.Option(None, "--capacity", help="People it can hold."),
    population: Optional[int] = typer.Option(None, "--population", help="People there now, if known."),
    address: str = typer.Option("", "--address"),
) -> None:
    """Add a shelter, or update the one with this code."""
    from app.services import shelter_list

    with db_session(engine_for(ctx)) as s:
        row = shelter_list.save(s, code=code, name=name, capacity=capacity, population=population, address=address)
        s.commit()
    typer.echo(f"shelter {row.code} ({row.name}) saved")


@shelter_app.command("list")
@cli_errors
def shelter_list_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every listed shelter: this one first, with capacity and current population."""
    from app.services import shelter_list

    with db_session(engine_for(ctx)) as s:
        views = shelter_list.list_shelters(s, include_inactive=True)
        s.commit()
    rows = [{"code": v.code, "name": v.name, "capacity": v.capacity, "population": v.population, "source": v.source,
             "own": v.own, "active": v.active} for v in views]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        cap = "" if r["capacity"] is None else str(r["capacity"])
        pop = "" if r["population"] is None else str(r["population"])
        typer.echo(f"{r['code']}\t{r['name']}\t{pop}/{cap}\t{r['source']}" + ("\t(this shelter)" if r["own"] else ""))
