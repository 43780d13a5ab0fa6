"""Fixtures for the municipal-cloud hub suite: real PostgreSQL, as a role that row-level security binds.

Each test gets its own schema.  The hub connects as ``anpi_hub_test`` — a plain role (LOGIN,
NOSUPERUSER, NOBYPASSRLS, NOINHERIT) that creates and therefore *owns* the hub tables: with
``FORCE ROW LEVEL SECURITY`` the policies bind even their owner, so every test here runs with
the second wall up exactly as a production hub would.  The superuser URL is only used to set up,
to look behind the wall in assertions, and to drop the schema.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from tests.sync.conftest import PG_BASE, drop_pg_schema, new_pg_schema, require_pg

HUB_ROLE = "anpi_hub_test"


def ensure_role() -> None:
    eng = create_engine(PG_BASE)
    try:
        with eng.begin() as c:
            if c.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": HUB_ROLE}).first() is None:
                c.execute(text(f"CREATE ROLE {HUB_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT "
                               "NOCREATEDB NOCREATEROLE"))
    except DBAPIError as exc:  # created meanwhile by a parallel worker
        if "already exists" not in str(exc):
            raise
    finally:
        eng.dispose()


class PgHub:
    """One test's schema: ``url`` connects as the confined hub role, ``admin_url`` as the superuser."""

    def __init__(self) -> None:
        ensure_role()
        self.schema, self.admin_url = new_pg_schema()
        eng = create_engine(PG_BASE)
        with eng.begin() as c:
            c.execute(text(f"GRANT USAGE, CREATE ON SCHEMA {self.schema} TO {HUB_ROLE}"))
        eng.dispose()
        base = make_url(PG_BASE).set(username=HUB_ROLE)
        self.url = base.render_as_string(hide_password=False) + f"?options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        drop_pg_schema(self.schema)


@pytest.fixture
def pg_hub() -> Iterator[PgHub]:
    require_pg()
    h = PgHub()
    try:
        yield h
    finally:
        h.drop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "pg_hub" in getattr(item, "fixturenames", ()) and str(Path(__file__).parent) in str(item.fspath):
            item.add_marker(pytest.mark.postgres)
