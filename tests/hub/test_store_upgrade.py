"""The hub schema under Alembic (`sync/hub/migrations`, version table `anpi_hub_alembic_version`).

A hub database made by the release before migrations (tables, no version table) is adopted and
brought to head with every row kept; a database written by a newer version is refused; the
migrations and the table definitions in `sync/hub/store.py` agree (autogenerate finds no diff),
on PostgreSQL (with row-level security) and on SQLite (the one-laptop HQ).
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    BigInteger, Boolean, DateTime, Float, Integer, LargeBinary, MetaData, String, create_engine, inspect, select, text,
)
from sqlalchemy.engine import Engine

from sync.hub import schema, store
from tests.hub.conftest import PgHub

BASELINE = "h0001"


def _indexes(url: str, table: str) -> set[str]:
    eng = create_engine(url)
    try:
        return {ix["name"] for ix in inspect(eng).get_indexes(table)}
    finally:
        eng.dispose()


def _release_database(url: str) -> None:
    """A hub database as the release before migrations left it: the baseline schema (which is
    what that release's ``create_all`` made, see test_migrations_match_tables) and no version table."""
    eng = store.hub_engine(url, pool_size=1)
    try:
        with eng.begin() as conn:
            cfg = schema.alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, BASELINE)
            conn.exec_driver_sql(f"DROP TABLE {schema.VERSION_TABLE}")
    finally:
        eng.dispose()


def _value(table: str, col: Any) -> Any:
    if col.name == "municipality_code":
        return "" if table == "hub_meta" else "032026"
    t = col.type
    if isinstance(t, DateTime):
        return datetime(2026, 3, 11, 14, 46, tzinfo=timezone.utc)
    if isinstance(t, Boolean):
        return True
    if isinstance(t, (Integer, BigInteger)):
        return 7
    if isinstance(t, Float):
        return 0.5
    if isinstance(t, LargeBinary):
        return b"\x00sealed\xff"
    length = getattr(t, "length", None) or 40
    return f"{table}.{col.name}"[:length]


def _fill_every_table(url: str) -> dict[str, list[dict[str, Any]]]:
    """One row in every table the database has (reflected: independent of today's store.py).
    Written as the given URL's role with every tenant setting stated, so RLS admits it."""
    eng = create_engine(url)
    md = MetaData()
    md.reflect(eng)
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        with eng.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT set_config('anpi.municipality', '032026', true)")
            for t in md.sorted_tables:
                conn.execute(t.insert().values({c.name: _value(t.name, c) for c in t.columns}))
        rows = _dump(url)
    finally:
        eng.dispose()
    return rows


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    eng = create_engine(url)
    md = MetaData()
    md.reflect(eng)
    try:
        with eng.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT set_config('anpi.municipality', '032026', true)")
            return {t.name: [dict(r) for r in conn.execute(select(t)).mappings().all()]
                    for t in md.sorted_tables if t.name != schema.VERSION_TABLE}
    finally:
        eng.dispose()


def _same_rows(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> None:
    """Every row kept with every value it had (columns added by later revisions may sit beside them)."""
    for table, rows in before.items():
        assert [{k: r[k] for k in rows[0]} for r in after[table]] == rows, table


def _diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"version_table": schema.VERSION_TABLE}),
                                store.metadata)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


def test_release_database_upgraded_to_head_without_loss_postgres(pg_hub: PgHub) -> None:
    _release_database(pg_hub.url)
    before = _fill_every_table(pg_hub.url)
    assert len(before) >= 30  # the release's tables (later revisions add more)
    assert all(len(r) == 1 for r in before.values())
    store.open_hub_engine(pg_hub.url).dispose()
    _same_rows(before, _dump(pg_hub.url))
    assert set(_dump(pg_hub.url)) >= {t.name for t in store.metadata.sorted_tables}
    eng = create_engine(pg_hub.url)
    with eng.connect() as conn:
        assert schema.current_revision(conn) == schema.head_revision()
        # row-level security still binds the hub's role: another tenant sees nothing
        conn.exec_driver_sql("SELECT set_config('anpi.municipality', '011002', false)")
        assert conn.execute(text("SELECT count(*) FROM hub_event")).scalar() == 0
    eng.dispose()


def test_release_database_upgraded_to_head_without_loss_sqlite(sqlite_url: str) -> None:
    _release_database(sqlite_url)
    before = _fill_every_table(sqlite_url)
    store.open_hub_engine(sqlite_url).dispose()
    _same_rows(before, _dump(sqlite_url))
    assert set(_dump(sqlite_url)) >= {t.name for t in store.metadata.sorted_tables}


def test_release_database_gets_indexes_it_lacked(pg_hub: PgHub) -> None:
    """A hub created before an index existed gets it on adoption (release hubs were upgraded in
    place by `create_all`, so some lack indexes added later)."""
    _release_database(pg_hub.url)
    eng = create_engine(pg_hub.url)
    with eng.begin() as c:
        c.execute(text("DROP INDEX ix_hub_evacuee_updated"))
        c.execute(text("DROP INDEX ix_hub_person_link_resident"))
    eng.dispose()
    assert "ix_hub_evacuee_updated" not in _indexes(pg_hub.url, "hub_evacuee")
    store.open_hub_engine(pg_hub.url).dispose()
    assert "ix_hub_evacuee_updated" in _indexes(pg_hub.url, "hub_evacuee")
    assert "ix_hub_person_link_resident" in _indexes(pg_hub.url, "hub_person_link")


def test_migrations_match_tables_postgres(pg_hub: PgHub) -> None:
    eng = store.open_hub_engine(pg_hub.url, pool_size=1)
    try:
        assert _diff(eng) == []
        with eng.connect() as conn:
            policies = {r[0] for r in conn.execute(text(
                "SELECT tablename FROM pg_policies WHERE schemaname = current_schema() "
                "AND policyname = 'anpi_tenant'"))}
        assert policies == {t.name for t in store.TENANT_TABLES}
    finally:
        eng.dispose()


def test_migrations_match_tables_sqlite(sqlite_url: str) -> None:
    eng = store.open_hub_engine(sqlite_url)
    try:
        assert _diff(eng) == []
    finally:
        eng.dispose()


def test_database_newer_than_the_code_is_refused(sqlite_url: str) -> None:
    store.open_hub_engine(sqlite_url).dispose()
    eng = create_engine(sqlite_url)
    with eng.begin() as c:
        c.exec_driver_sql(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'h9999'")
    eng.dispose()
    with pytest.raises(schema.HubSchemaError, match="newer than this version"):
        store.open_hub_engine(sqlite_url)
    env = {"PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "app.cli", "hub", "db", "upgrade", "--database-url", sqlite_url],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1 and "h9999" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    eng = create_engine(sqlite_url)
    with eng.connect() as c:
        assert c.exec_driver_sql(f"SELECT version_num FROM {schema.VERSION_TABLE}").scalar() == "h9999"
    eng.dispose()


def test_cli_db_upgrade_and_current(sqlite_url: str) -> None:
    def anpi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", "hub", "db", *args, "--database-url", sqlite_url],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120)

    _release_database(sqlite_url)
    cur = anpi("current", "--json")
    assert cur.returncode == 0, cur.stderr
    assert json.loads(cur.stdout) == {"current": None, "head": schema.head_revision(), "known": True}
    up = anpi("upgrade")
    assert up.returncode == 0, up.stderr
    assert f"to {schema.head_revision()}" in up.stdout
    assert "already at" in anpi("upgrade").stdout
    assert json.loads(anpi("current", "--json").stdout)["current"] == schema.head_revision()
