"""What the desk screens read (issue 14 items 6, 8, 9, 11), below the browser: the one translator of
engine reasons, the roster search's folding, 町字 spelling and order, and the shelter list."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlmodel import Session

from app.services.anpi_towns import sorted_towns, town_spelling
from app.services.reasons_ja import reason_parts, reasons_text

ENGINE_REASONS = [
    "family=exact variant 髙→高; given=exact; birth=exact era-converted; sex=agree; town=same-address; p=0.9999; "
    "runner-up p=0.0001",
    "family=reading; given=devoiced; birth=variant(day±1); sex=different; town=agree; p=0.6; contradicts: sex",
    "best candidate too weak (family=romaji; given=romaji-fuzzy; birth=year-agrees; town=different)",
    "family=exact/kanji-different; given=kanji-exact/kana-fuzzy; birth=age-different; household=same-household(3 together)",
    "no candidate shares a name or birth date key",
    "born after the registry snapshot (2026-10-31)",
    "picked at intake by 佐藤",
    "merged into 01ABC by 鈴木",
    "confirmed by staff 本部",
    "family=exact; given=exact; birth=exact; p=0.99; not certain enough; "
    "resident already confirmed for evacuee 01XYZ: possible duplicate registration",
    "name=kana; birth=exact; sex=agree; both linked to resident 1001 by the engine",
    "alpha=exact; birth=missing",
    "some=new-engine-thing",
]


@pytest.mark.parametrize("reasons", ENGINE_REASONS)
def test_every_engine_reason_reads_as_japanese(reasons: str) -> None:
    text = reasons_text(reasons)
    assert not re.search(r"[A-Za-z=;{}]", text), text
    for part in reason_parts(reasons):
        assert part["text"] and not re.search(r"[A-Za-z=]", part["text"] + part["level_ja"] + part["field_ja"])


def test_the_phrases_staff_read() -> None:
    text = reasons_text(ENGINE_REASONS[0])
    assert text == "氏が一致（異体字 髙→高）、名が一致、生年月日が一致（和暦から換算）、性別が一致、住所の番地まで一致"
    bad = {p["text"]: p["bad"] for p in reason_parts(ENGINE_REASONS[1])}
    assert bad["性別が違う"] and not bad["住所の町字が一致"] and "生年月日の入力違いの可能性（日が1日違い）" in bad
    assert reasons_text(ENGINE_REASONS[2]).startswith("一致する点が少ない、氏がローマ字で一致")
    assert reasons_text("picked at intake by 佐藤") == "受付で職員が選択（佐藤）"


def test_town_spelling_and_natural_order() -> None:
    assert town_spelling("岩手県大槌町緑が丘四丁目3-2") == "緑が丘四丁目"
    assert town_spelling("岩手県陸前高田市高田町字館の沖12-3") == "高田町字館の沖"
    assert town_spelling("岩手県上閉伊郡大槌町小鎚第32地割126") == "小鎚第32地割"
    assert town_spelling("大槌浜町1-2-3") == "大槌浜町1"
    towns = ["大槌浜町1", "大槌浜町10", "大槌浜町11", "大槌浜町2", "緑ケ丘4", "安渡1", "（町字なし）"]
    assert sorted_towns(towns) == ["安渡1", "大槌浜町1", "大槌浜町2", "大槌浜町10", "大槌浜町11", "緑ケ丘4", "（町字なし）"]


@pytest.fixture()
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    from app.db import open_shelter_db

    e = open_shelter_db(tmp_path / "s.db")
    yield e
    e.dispose()


def test_roster_search_folds_kana_kanji_variants_and_romaji(engine) -> None:  # type: ignore[no-untyped-def]
    from app.services.evacuees import RosterFilter, list_evacuees
    from app.services.roster import EvacueeInput, register

    with Session(engine) as s:
        register(s, EvacueeInput(name="しみず みちお", birth_date="S28.3.10"), by="t")
        register(s, EvacueeInput(name="渡邉 稔", birth_date="S30.5.5", phone="090-1234-5678"), by="t")
        register(s, EvacueeInput(name="Nguyen Van An", birth_date="1990-01-02"), by="t")
        s.commit()
        found = lambda q: [e.name_raw for e in list_evacuees(s, RosterFilter(q=q))]  # noqa: E731
        assert found("シミズ") == found("ｼﾐｽﾞ") == found("shimizu") == found("みちお") == ["しみず みちお"]
        assert found("渡辺") == found("渡邊") == found("わたなべ") == ["渡邉 稔"]  # (reading guessed from the kanji)
        assert found("1234") == ["渡邉 稔"] and found("nguyen") == ["Nguyen Van An"]
        assert found("やまだ") == []


def test_shelter_list_own_admin_and_hub(engine) -> None:  # type: ignore[no-untyped-def]
    from app.services import shelter_list
    from app.services.errors import InvalidInput

    with Session(engine) as s:
        shelter_list.save(s, code="S2", name="第二中学校", capacity="300", population="120")
        with pytest.raises(InvalidInput) as exc:
            shelter_list.save(s, code="S3", name="x", capacity="三百")
        assert exc.value.field == "capacity" and "数字" in exc.value.message_ja
        with pytest.raises(InvalidInput):
            shelter_list.save(s, code="S2", name="別", replace=False)
        now = datetime.now(timezone.utc)
        for seq, (etype, payload) in enumerate([
                ("evacuee.registered", {"evacuee_id": "E1"}), ("evacuee.registered", {"evacuee_id": "E2"}),
                ("stay.recorded", {"evacuee_id": "E2", "kind": "check_out"})], start=1):
            s.exec(  # type: ignore[call-overload]
                __import__("sqlalchemy").text(
                    "INSERT INTO remote_event (hub_seq, event_id, device_id, epoch, seq, type, recorded_at, payload, "
                    "payload_sha256, shelter_code, shelter_name, evacuee_id, received_at) VALUES "
                    "(:n, :id, 'd', 1, :n, :t, '', :p, '', 'HUB-7', '高田第一中学校', :ev, :at)"
                ).bindparams(n=seq, id=f"ev{seq}", t=etype, p=json.dumps(payload), ev=payload["evacuee_id"], at=now))
        views = {v.code: v for v in shelter_list.list_shelters(s)}
        assert views["HUB-7"].name == "高田第一中学校" and views["HUB-7"].population == 1
        assert views["HUB-7"].source_ja == "本部から"
        assert views["S2"].room == "空き 180人" and next(iter(views.values())).own
        assert shelter_list.destination_for(s, "S2", "") == "第二中学校"
        assert shelter_list.destination_for(s, shelter_list.OTHER, " 親族宅 ") == "親族宅"
        with pytest.raises(InvalidInput) as exc:
            shelter_list.destination_for(s, shelter_list.OTHER, "")
        assert exc.value.field == "destination_other"
        own = next(v for v in views.values() if v.own)
        with pytest.raises(InvalidInput):
            shelter_list.destination_for(s, own.code, "")
