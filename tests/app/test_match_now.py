"""Every registration is matched at once (issue 14 item 1), on a real shelter SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from app.db import open_shelter_db
from app.services import evacuees
from app.services.errors import Conflict
from app.services.reconcile import match_now, staff_decide
from app.services.roster import EvacueeInput, import_roster, register, register_household
from tests.conftest import write_csv
from tests.web.helpers import build_shelter


@pytest.fixture()
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path, evacuees=False)
    eng = open_shelter_db(sh.db_path)
    yield eng
    eng.dispose()


def _decision(s: Session, ev_id: str) -> tuple[str, str | None]:
    d = evacuees.latest_decisions(s, [ev_id])[ev_id]
    return d.decision, d.resident_id


def test_household_registered_without_a_pick_is_linked_at_once(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as s:
        regs = register_household(s, [EvacueeInput(name="高橋 一郎", name_kana="たかはし いちろう", birth_date="S45.3.1",
                                                    sex="男", address="高田町字館の沖12-3"),
                                       EvacueeInput(name="髙橋 京子", birth_date="52歳", sex="女")], by="佐藤")
        match_now(s, [e.id for e in regs])
        s.commit()
        assert _decision(s, regs[0].id) == ("auto", "1001")
        assert _decision(s, regs[1].id)[1] == "1002"


def test_reject_keeps_the_other_candidate_in_review(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as s:
        ev = register(s, EvacueeInput(name="ささき けん", birth_date="S55", sex="男"), by="佐藤")
        match_now(s, [ev.id])
        s.commit()
        first = evacuees.latest_decisions(s, [ev.id])[ev.id]
        assert first.decision == "review"
        ids = [c["resident_id"] for c in first.candidates]
        assert {"1007", "1008"} <= set(ids)
        staff_decide(s, ev.id, "rejected", ids[0], by="佐藤")
        s.commit()
        assert [e.id for e in evacuees.review_queue(s)] == [ev.id]
        after = evacuees.latest_decisions(s, [ev.id])[ev.id]
        assert ids[0] not in [c["resident_id"] for c in after.candidates]
        assert ids[1] in [c["resident_id"] for c in after.candidates]


def test_staff_decision_stays_final_and_edit_rematches(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as s:
        ev = register(s, EvacueeInput(name="渡辺 みのる", birth_date="S31.5.5"), by="佐藤")
        match_now(s, [ev.id])
        s.commit()
        evacuees.update_evacuee(s, ev.id, {"birth_date": "S30.5.5", "name": "渡邉 稔"}, by="佐藤")
        s.commit()
        assert _decision(s, ev.id) == ("auto", "1006")
        staff_decide(s, ev.id, "not_resident", None, by="佐藤")
        s.commit()
        assert match_now(s, [ev.id]) == {ev.id: "not_resident"}
        assert _decision(s, ev.id) == ("not_resident", None)


def test_second_in_shelter_link_to_one_resident_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as s:
        a = register(s, EvacueeInput(name="渡邉 稔", birth_date="S30.5.5", sex="男"), by="佐藤")
        b = register(s, EvacueeInput(name="わたなべ みのる", birth_date="70歳"), by="佐藤")
        match_now(s, [a.id])
        match_now(s, [b.id])
        s.commit()
        assert _decision(s, a.id) == ("auto", "1006")
        assert _decision(s, b.id)[0] == "review"  # the same resident: flagged, never a second auto link
        with pytest.raises(Conflict) as exc:
            staff_decide(s, b.id, "confirmed", "1006", by="佐藤")
        assert "統合" in exc.value.message_ja


def test_roster_import_matches_every_row(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv_path = write_csv(tmp_path / "meibo.csv", [["氏名", "ふりがな", "生年月日", "性別", "住所"],
                                                  ["高橋 一郎", "タカハシ イチロウ", "S45.3.1", "男", "高田町字館の沖12-3"],
                                                  ["山田 太郎", "", "S60.1.1", "男", ""]])
    res = import_roster(engine, csv_path, by="佐藤")
    with Session(engine) as s:
        dec = evacuees.latest_decisions(s)
        assert len(dec) == res.accepted == 2
        assert sorted(d.decision for d in dec.values())[0] == "auto"
