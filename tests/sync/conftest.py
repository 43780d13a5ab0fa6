"""Fixtures for the sync suite: real PostgreSQL schemas, real SQLite files, an in-process hub.

PostgreSQL is used for real (127.0.0.1:5432, db ``test``; override with ``ANPI_TEST_PG``).
Each test gets its own schema, dropped afterwards.  When the server is truly unreachable the
postgres tests are skipped with a loud reason, never silently passed.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_BASE = os.environ.get("ANPI_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, object] = {}


def pg_unreachable_reason() -> str | None:
    if "reason" not in _pg_state:
        try:
            eng = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.execute(text("select 1"))
            eng.dispose()
            _pg_state["reason"] = None
        except Exception as exc:  # noqa: BLE001
            _pg_state["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return _pg_state["reason"]  # type: ignore[return-value]


def require_pg() -> None:
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(f"!!! PostgreSQL UNREACHABLE at {PG_BASE} — postgres sync tests SKIPPED: {reason}")


def new_pg_schema() -> tuple[str, str]:
    """Create a fresh schema; return (schema, database URL whose search_path is that schema)."""
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = create_engine(PG_BASE)
    with eng.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    eng.dispose()
    return schema, f"{PG_BASE}?options=-csearch_path%3D{schema}"


def drop_pg_schema(schema: str) -> None:
    eng = create_engine(PG_BASE)
    with eng.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    eng.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_pg()
    schema, url = new_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture(params=["postgres", "sqlite"])
def hub_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Run hub-store tests on both backends the hub supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    require_pg()
    schema, url = new_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "hub_db_url" in getattr(item, "fixturenames", ()) and "[postgres]" in item.nodeid:
            item.add_marker(pytest.mark.postgres)
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
