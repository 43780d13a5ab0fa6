"""Done-when of issue 12: every route of the shelter and the hub and every CLI command is registered
in `app.disclosure_outputs` — an output that can show a person names the function that asks the
one 閲覧制限 rule — and this fails when a new one is added without saying how it is covered."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import disclosure_outputs as outs
from tests.hub.conftest import PgHub, pg_hub  # noqa: F401 - the fixture

TABLES = {"RULED": outs.RULED, "INTERNAL": outs.INTERNAL, "OWN_RECORDS": outs.OWN_RECORDS, "NO_PERSON": outs.NO_PERSON}


def routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through included routers."""
    for r in app.routes:
        if hasattr(r, "effective_candidates"):
            for c in r.effective_candidates():
                for m in sorted(c.methods or ()):
                    yield m, c.path
        elif hasattr(r, "endpoint") and getattr(r, "methods", None):
            for m in sorted(r.methods):
                yield m, r.path


def keys_of(app: Any, prefix: str = "") -> set[str]:
    return {f"{prefix}{m} {p}" for m, p in routes(app) if m != "HEAD" and not p.startswith("/static/")}


def cli_keys() -> set[str]:
    import typer

    from app.cli import app as cli_app

    def walk(c: Any, name: str) -> Iterator[str]:
        if hasattr(c, "commands"):
            for n, sub in c.commands.items():
                yield from walk(sub, f"{name} {n}")
        else:
            yield f"cli: {name}"
    return set(walk(typer.main.get_command(cli_app), "anpi"))


def check(found: set[str], scope: str) -> None:
    listed: dict[str, list[str]] = {}
    for table, entries in TABLES.items():
        for k in entries:
            listed.setdefault(k, []).append(table)
    missing = sorted(k for k in found if k not in listed)
    assert not missing, f"{scope}: outputs not registered in app/disclosure_outputs.py: {missing}"
    twice = sorted(k for k in found if len(listed[k]) > 1)
    assert not twice, f"{scope}: registered in more than one group: {twice}"


def stale(found: set[str], startswith: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
    return sorted(k for t in TABLES.values() for k in t
                  if k.startswith(startswith) and not k.startswith(exclude) and k not in found)


def test_every_shelter_route_and_cli_command_is_registered(tmp_path: Path) -> None:
    from app.main import create_app

    app = create_app(tmp_path / "x.db")
    try:
        found = keys_of(app)
    finally:
        app.state.engine.dispose()
    check(found, "shelter")
    assert not stale(found, ("GET", "POST", "PUT", "PATCH", "DELETE")), "entries for routes that no longer exist"
    commands = cli_keys()
    check(commands, "cli")
    assert not stale(commands, ("cli: ",))


def test_every_hub_route_is_registered(pg_hub: PgHub) -> None:  # noqa: F811
    from app.hub_app import create_app

    app = create_app(pg_hub.url)
    try:
        found = keys_of(app, "hub ")
    finally:
        app.state.engine.dispose()
    check(found, "hub")
    assert not stale(found, ("hub ",))


@pytest.mark.parametrize("key", sorted(outs.RULED))
def test_each_ruled_output_names_a_function_that_asks_the_rule(key: str) -> None:
    target, how = outs.RULED[key]
    assert how
    module, _, name = target.rpartition(".")
    fn = getattr(importlib.import_module(module), name)
    src = inspect.getsource(fn)
    assert any(m in src for m in outs.RULE_MARKERS), f"{key}: {target} does not ask the 閲覧制限 rule"


def test_the_rule_is_one_pure_module_both_sides_import() -> None:
    """The hub's facts module and the shelter's facts module both decide with matching.disclosure."""
    import app.services.disclosure as shelter
    import sync.hub.restricted as hub

    for mod in (shelter, hub):
        assert "from matching.disclosure import" in inspect.getsource(mod)
    src = inspect.getsource(importlib.import_module("matching.disclosure"))
    assert "import sqlalchemy" not in src and "from sqlalchemy" not in src and "from app" not in src
