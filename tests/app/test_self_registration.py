"""本人記入 services: the rate-limit window, ticket numbers, the queue, and that a finished or
discarded entry keeps no personal data (the registration holds it from then on)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from app.db import open_shelter_db
from app.services import self_registration as sr
from app.services.errors import NotFound
from app.services.rate_limit import SlidingWindow


def test_a_window_refuses_beyond_its_count_and_allows_again_when_the_oldest_leaves() -> None:
    w = SlidingWindow(3, 60)
    assert [w.hit("tablet", now=t) for t in (0, 1, 2)] == [0, 0, 0]
    assert w.hit("tablet", now=30) == 30  # seconds until the first one leaves the window
    assert w.hit("phone", now=30) == 0  # another address is not affected
    assert w.hit("tablet", now=60) == 0 and w.hit("tablet", now=60.5) == 1


@pytest.fixture
def session(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_shelter_db(tmp_path / "s.db")
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


def test_tickets_count_up_and_the_queue_keeps_the_order(session: Session) -> None:
    a = sr.submit(session, {"m-0-name": "高橋 一郎", "m-1-name": "高橋 京子", "m-1-birth_date": "78", "csrf_token": "x"}, "vi")
    b = sr.submit(session, {"m-0-name_kana": "ササキ ケン"}, "klingon")
    session.commit()
    assert (a.ticket, b.ticket) == (1, 2) and b.lang == "ja" and "csrf_token" not in a.data
    assert [e.id for e in sr.waiting(session)] == [a.id, b.id]
    s = sr.summary(a)
    assert (s["name"], s["people"], s["lang"]) == ("高橋 一郎", 2, "ベトナム語")
    assert sr.summary(b)["name_kana"] == "ササキ ケン"


def test_finished_and_discarded_entries_keep_no_personal_data(session: Session) -> None:
    a = sr.submit(session, {"m-0-name": "高橋 一郎", "address": "高田町1"}, "ja")
    b = sr.submit(session, {"m-0-name": "渡邉 稔"}, "ja")
    sr.finish(session, a.id, "HH-1", by="佐藤")
    sr.discard(session, b.id, by="鈴木")
    session.commit()
    assert (a.status, a.data, a.household_key, a.closed_by) == ("done", {}, "HH-1", "佐藤")
    assert (b.status, b.data, b.closed_by) == ("discarded", {}, "鈴木")
    assert sr.waiting(session) == []
    with pytest.raises(NotFound):
        sr.finish(session, a.id, "HH-2", by="鈴木")  # registered once only


def test_a_typed_field_is_kept_within_its_limit(session: Session) -> None:
    e = sr.submit(session, {"m-0-name": "あ" * 1000, **{f"k{i}": "v" for i in range(1000)}}, "ja")
    assert len(e.data["m-0-name"]) == sr.MAX_FIELD and len(e.data) <= sr.MAX_KEYS
