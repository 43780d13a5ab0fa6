"""The registry index that reconciliation builds reads exactly the newest snapshot's residents,
however the snapshots' rows lie in the table (it reads them by id range, not through an index)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlmodel import Session, select

from app.db import open_shelter_db
from app.models import Resident
from app.services import reconcile
from app.services.registry import import_registry
from fixtures.generate import make_dataset


def test_index_holds_the_newest_snapshot_only(tmp_path: Path) -> None:
    old = make_dataset(tmp_path / "old", residents=300, evacuees=10, seed=4, encoding="utf-8",
                       snapshot_date=date(2026, 9, 30))
    new = make_dataset(tmp_path / "new", residents=450, evacuees=10, seed=5, encoding="utf-8",
                       snapshot_date=date(2026, 10, 31))
    engine = open_shelter_db(tmp_path / "s.db")
    import_registry(engine, old.registry_path, as_of=date(2026, 9, 30))
    import_registry(engine, new.registry_path, as_of=date(2026, 10, 31))
    matcher, snap = reconcile.current_matcher(engine)
    with Session(engine) as s:
        expected = sorted(r.resident_id for r in s.exec(select(Resident).where(Resident.snapshot_id == snap.id)))
        assert s.exec(select(Resident).where(Resident.snapshot_id != snap.id)).first() is not None
    assert sorted(matcher.ix.resident_id) == expected and matcher.ix.size == 450


def test_resident_rows_of_a_snapshot_without_rows_is_empty(tmp_path: Path) -> None:
    engine = open_shelter_db(tmp_path / "s.db")
    raw = engine.raw_connection()
    try:
        assert list(reconcile._resident_rows(raw.cursor(), 99)) == []
    finally:
        raw.close()
