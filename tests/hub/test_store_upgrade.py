"""A hub upgraded in place gets the indexes a later version added to its existing tables
(`create_all` only makes missing tables)."""
from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from sync.hub import store
from tests.hub.conftest import PgHub


def _indexes(url: str, table: str) -> set[str]:
    eng = create_engine(url)
    try:
        return {ix["name"] for ix in inspect(eng).get_indexes(table)}
    finally:
        eng.dispose()


def test_reopening_adds_indexes_missing_from_existing_tables(pg_hub: PgHub) -> None:
    store.open_hub_engine(pg_hub.url).dispose()
    assert "ix_hub_evacuee_updated" in _indexes(pg_hub.url, "hub_evacuee")
    eng = create_engine(pg_hub.url)
    with eng.begin() as c:  # as on a hub created before this index existed
        c.execute(text("DROP INDEX ix_hub_evacuee_updated"))
        c.execute(text("DROP INDEX ix_hub_person_link_resident"))
    eng.dispose()
    assert "ix_hub_evacuee_updated" not in _indexes(pg_hub.url, "hub_evacuee")
    store.open_hub_engine(pg_hub.url).dispose()
    assert "ix_hub_evacuee_updated" in _indexes(pg_hub.url, "hub_evacuee")
    assert "ix_hub_person_link_resident" in _indexes(pg_hub.url, "hub_person_link")
