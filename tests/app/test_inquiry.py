"""安否照会: the consent rule over its whole matrix, finding the person without guessing,
閲覧制限 never disclosed, and each inquiry recorded with its audit entry in one transaction."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.audit_models import AuditEntry
from app.models import Inquiry
from app.services import audit
from app.services.errors import InvalidInput
from app.services.inquiry import (Consents, InquiryRequest, answer_inquiry, check_request, disclosable_items,
                                  find_person)
from tests.web.helpers import build_shelter
from app import db_crypto
from app.db_crypto import connect as db_connect

# --- the rule, as a table written from issue 6 §2 (not from the code) ---------------------------

ALL = frozenset(range(1, 12))  # ① … ⑪
BASIC = frozenset({1, 7, 8})  # ① 氏名, ⑦ other identifying information, ⑧ whether injured
NONE: frozenset[int] = frozenset()

#: relationship → (the consent that decides, {value of that consent: items told})
TABLE = {
    "同居の親族": ("relatives", {None: ALL, True: ALL, False: NONE}),  # ⑫, refusal only
    "その他の親族・職場": ("relatives", {None: ALL, True: ALL, False: NONE}),  # ⑫, refusal only
    "知人": ("acquaintances", {None: BASIC, True: BASIC, False: NONE}),  # ⑬, refusal only
    "その他": ("public", {None: NONE, True: BASIC, False: NONE}),  # ⑭, explicit consent only
}
TRI = (None, True, False)


@pytest.mark.parametrize("relationship, c12, c13, c14, restricted",
                         list(itertools.product(TABLE, TRI, TRI, TRI, (False, True))))
def test_consent_matrix(relationship: str, c12: bool | None, c13: bool | None, c14: bool | None,
                        restricted: bool) -> None:
    consent, told = TABLE[relationship]
    value = {"relatives": c12, "acquaintances": c13, "public": c14}[consent]
    expected = NONE if restricted else told[value]
    expected_outcome = "restricted" if restricted else ("answered" if expected else "refused")
    ans = disclosable_items(relationship, Consents(c12, c13, c14), restricted)
    assert set(ans.items) == expected
    assert ans.outcome == expected_outcome
    assert list(ans.items) == sorted(ans.items)  # read out in form order


def test_matrix_covers_every_case() -> None:
    assert len(list(itertools.product(TABLE, TRI, TRI, TRI, (False, True)))) == 4 * 3 * 3 * 3 * 2


def test_unknown_relationship_is_refused_with_a_field() -> None:
    with pytest.raises(InvalidInput) as e:
        disclosable_items("友人", Consents(True, True, True), False)
    assert e.value.field == "relationship"


# --- a shelter with people to ask about ----------------------------------------------------------

ADDR = "岩手県陸前高田市高田町字館の沖12-3"


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    from app.db import open_shelter_db
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    sh = build_shelter(tmp_path)
    engine = open_shelter_db(sh.db_path)
    ids = {}
    with Session(engine, expire_on_commit=False) as s:
        ids["takahashi"] = register(s, EvacueeInput(
            name="髙橋 一郎", name_kana="タカハシ イチロウ", birth_date="S45.3.1", sex="男", address=ADDR,
            phone="090-1111-2222", injury="足の骨折", injury_state="軽傷", current_location="体育館A",
            consent_relatives=None, consent_acquaintances=True, consent_public=False), by="佐藤").id
        ids["kyoko"] = register(s, EvacueeInput(
            name="髙橋 京子", name_kana="タカハシ キヨウコ", birth_date="昭和47年11月3日", sex="女", address=ADDR,
            consent_relatives=False), by="佐藤").id
        hana = register(s, EvacueeInput(name="山﨑 花", birth_date="1999-12-31", sex="女", address="米崎町2-1",
                                        consent_relatives=True, consent_acquaintances=True, consent_public=True), by="佐藤")
        staff_decide(s, hana.id, "confirmed", "1004", by="佐藤")  # 1004 is 閲覧制限 in the registry
        ids["hana"] = hana.id
        s.commit()
    sh.evacuee_ids.update(ids)
    yield sh, engine
    engine.dispose()


def req(**kw: object) -> InquiryRequest:
    base: dict[str, object] = {"inquirer_name": "岩手 太郎", "inquirer_address": "盛岡市内丸1", "id_proof": "運転免許証",
                               "relationship": "同居の親族"}
    return InquiryRequest(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("name, kana, birth, address", [
    ("高橋 一郎", "", "S45.3.1", ""),  # variant kanji 高/髙
    ("高橋一郎", "", "1970年", ""),  # no space, only the year
    ("たかはし いちろう", "", "", "陸前高田市高田町館ノ沖"),  # hiragana and a partial address
    ("", "ﾀｶﾊｼ ｲﾁﾛｳ", "昭和45年3月1日", ""),  # half-width kana and an era date
])
def test_finds_the_person_however_the_name_is_heard(shelter, name, kana, birth, address) -> None:  # type: ignore[no-untyped-def]
    sh, engine = shelter
    with Session(engine) as s:
        f = find_person(s, name, kana, birth, address)
    assert f.kind == "one" and f.evacuee is not None and f.evacuee.id == sh.evacuee_ids["takahashi"]


def test_small_kana_and_contradictions(shelter) -> None:  # type: ignore[no-untyped-def]
    sh, engine = shelter
    with Session(engine) as s:
        # the legacy spelling キヨウコ and the modern キョウコ are the same reading
        assert find_person(s, "", "タカハシ キョウコ", "S47.11.3").evacuee.id == sh.evacuee_ids["kyoko"]  # type: ignore[union-attr]
        assert find_person(s, "髙橋 一郎", "", "S45.3.2").kind == "none"  # another birthday: another person
        assert find_person(s, "髙橋 一郎", "", "", "大船渡市盛町").kind == "none"  # another town
        assert find_person(s, "髙橋 一郎", "サトウ イチロウ", "S45.3.1").kind == "none"  # the reading disagrees
        assert find_person(s, "鈴木 一郎", "", "S45.3.1").kind == "none"


def test_two_people_who_fit_make_the_desk_ask_for_more(shelter) -> None:  # type: ignore[no-untyped-def]
    from app.services.roster import EvacueeInput, register

    sh, engine = shelter
    with Session(engine) as s:
        other = register(s, EvacueeInput(name="髙橋 一郎", birth_date="S45.3.1", address="大船渡市盛町1"), by="佐藤")
        s.commit()
        assert find_person(s, "髙橋 一郎", "", "S45.3.1").kind == "ambiguous"
        f = find_person(s, "髙橋 一郎", "", "S45.3.1", "大船渡市盛町")
        assert f.kind == "one" and f.evacuee.id == other.id  # type: ignore[union-attr]
        # a record without birth or address cannot confirm anything: ask, never guess
        assert find_person(s, "ささき けん", "", "S55.2.2").kind == "ambiguous"


def test_a_protected_namesake_silences_the_answer_without_revealing_itself(shelter) -> None:  # type: ignore[no-untyped-def]
    from app.services.roster import EvacueeInput, register

    sh, engine = shelter
    with Session(engine) as s:
        f = find_person(s, "山崎 花", "", "H11.12.31")
        assert f.kind == "restricted" and f.restricted == [sh.evacuee_ids["hana"]]
        # an unprotected 山﨑 花 with the same birthday: answering about her could answer about the
        # protected one, so the answer is "no information", never a prompt that shows two exist
        register(s, EvacueeInput(name="山崎 花", birth_date="1999-12-31", address="高田町5"), by="佐藤")
        s.commit()
        f = find_person(s, "山崎 花", "", "1999-12-31")
        assert f.kind == "restricted"
        # with only unprotected people in play the prompt is the usual one
        assert find_person(s, "山崎 花", "", "1999-12-31", "高田町").kind == "one"


def test_review_pending_with_a_protected_candidate_is_protected(shelter) -> None:  # type: ignore[no-untyped-def]
    from app.models import MatchDecision
    from app.services.roster import EvacueeInput, register

    sh, engine = shelter
    with Session(engine) as s:
        ev = register(s, EvacueeInput(name="山﨑 はな", birth_date="1999-12-31", address="米崎町"), by="佐藤")
        s.add(MatchDecision(evacuee_id=ev.id, resident_id=None, decision="review",
                            candidates=[{"resident_id": "1004", "score": 0.9}]))
        s.commit()
        assert find_person(s, "山﨑 はな", "", "1999-12-31").kind == "restricted"


def test_each_outcome_is_recorded_with_one_audit_entry_of_one_shape(shelter) -> None:  # type: ignore[no-untyped-def]
    sh, engine = shelter
    cases = [
        (req(relationship="知人", sought_name="髙橋 一郎", sought_birth="S45.3.1"), "answered", [1, 7, 8]),
        (req(relationship="その他", sought_name="髙橋 一郎", sought_birth="S45.3.1"), "refused", []),
        (req(sought_name="髙橋 京子", sought_birth="S47.11.3"), "refused", []),
        (req(sought_name="山﨑 花", sought_birth="1999-12-31"), "restricted", []),
        (req(sought_name="岩手 三郎", sought_birth="S50.1.1"), "not_found", []),
        (req(sought_name="髙橋 一郎", sought_birth="S45.3.1"), "answered", list(range(1, 12))),
    ]
    texts = {}
    with Session(engine) as s:
        for r, outcome, items in cases:
            res = answer_inquiry(s, r, user="窓口", screen="test")
            s.commit()
            inq = res.inquiry
            assert inq is not None and inq.outcome == outcome, (r, inq)
            assert [i["no"] for i in inq.items_disclosed] == items
            texts.setdefault(bool(items), set()).add(inq.answer_text)
        entries = [audit.as_dict(e) for e in s.exec(select(AuditEntry).where(AuditEntry.action == "inquiry"))]
        assert [e["detail"]["outcome"] for e in entries] == [c[1] for c in cases]
        assert len({tuple(sorted(e["detail"])) for e in entries}) == 1  # one shape for every outcome
        assert audit.verify(s).ok
    # every negative answer is the same text
    assert len(texts[False]) == 1
    full = next(t for t in texts[True] if "090-1111-2222" in t)
    assert ADDR in full and "足の骨折、軽傷" in full and "体育館A" in full and "1970年3月1日" in full


def test_ambiguity_records_nothing_until_the_desk_gives_up(shelter) -> None:  # type: ignore[no-untyped-def]
    sh, engine = shelter
    with Session(engine) as s:
        res = answer_inquiry(s, req(sought_name="ささき けん", sought_birth="S55.2.2"), user="窓口", screen="t")
        s.commit()
        assert res.needs_detail and res.inquiry is None
        assert s.exec(select(Inquiry)).all() == []
        last = s.exec(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert last is not None and last.action == "inquiry_search"
        res = answer_inquiry(s, req(sought_name="ささき けん", sought_birth="S55.2.2", give_up=True), user="窓口",
                             screen="t")
        s.commit()
        assert res.inquiry is not None and res.inquiry.outcome == "ambiguous" and res.inquiry.items_disclosed == []


def test_bad_requests_name_the_field(shelter) -> None:  # type: ignore[no-untyped-def]
    sh, engine = shelter
    errs = check_request(InquiryRequest(id_proof="その他", relationship="親友", sought_name="髙橋 一郎", sought_birth="不明"))
    assert set(errs) == {"inquirer_name", "inquirer_address", "id_proof_note", "relationship", "sought_birth"}
    assert "生年月日か住所" in errs["sought_birth"]
    assert "読み取れません" in check_request(req(sought_name="髙橋", sought_birth="S45.13.1"))["sought_birth"]
    with Session(engine) as s, pytest.raises(InvalidInput) as e:
        answer_inquiry(s, req(sought_name="", sought_kana="", sought_birth="S45.3.1"), user="窓口", screen="t")
    assert e.value.field == "sought_name"


def test_inquiries_are_append_only(shelter) -> None:  # type: ignore[no-untyped-def]
    sh, engine = shelter
    with Session(engine) as s:
        inq = answer_inquiry(s, req(sought_name="髙橋 一郎", sought_birth="S45.3.1"), user="窓口", screen="t").inquiry
        s.commit()
        assert inq is not None
    con = db_connect(sh.db_path)
    try:
        with pytest.raises(db_crypto.DatabaseError, match="append-only"):
            con.execute("UPDATE inquiry SET outcome = 'not_found'")
        with pytest.raises(db_crypto.DatabaseError, match="append-only"):
            con.execute("DELETE FROM inquiry")
    finally:
        con.close()


def test_item_7_identifying_information_reaches_an_acquaintance(shelter) -> None:  # type: ignore[no-untyped-def]
    """⑦ (通称・旧姓・特徴) is typed at intake and is one of the three items an acquaintance may hear."""
    from app.services.inquiry import disclosed, item_values
    from app.services.roster import EvacueeInput, register

    _sh, engine = shelter
    with Session(engine) as s:
        ev = register(s, EvacueeInput(name="千葉 恵", birth_date="1980-04-01", identifying_info="旧姓 佐々木、眼鏡",
                                      consent_acquaintances=True), by="佐藤")
        s.commit()
        assert item_values(s, ev)[7] == "旧姓 佐々木、眼鏡"
        told = {d["no"] if "no" in d else d.get("number"): d for d in disclosed(s, ev, [1, 7, 8])}
        assert any("旧姓 佐々木、眼鏡" in str(v) for v in told.values())


# --- the linked resident's registry record as further evidence -------------------------------------

def test_a_linked_evacuee_is_found_by_the_registry_name_and_birth(shelter) -> None:  # type: ignore[no-untyped-def]
    """Typed in katakana without a date of birth, linked by staff to 1008 佐々木 健二 (S55.2.20): the
    inquirer's kanji name and date of birth are the registry's, and find him; unlinked, nothing does."""
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    _sh, engine = shelter
    with Session(engine, expire_on_commit=False) as s:
        ev = register(s, EvacueeInput(name="", name_kana="ササキ ケンジ", sex="男"), by="佐藤")
        s.commit()
        assert find_person(s, "佐々木 健二", "", "S55.2.20").kind == "none"  # not linked: the typed kana alone
        staff_decide(s, ev.id, "confirmed", "1008", by="佐藤")
        s.commit()
        f = find_person(s, "佐々木 健二", "", "S55.2.20")
        assert f.kind == "one" and f.evacuee is not None and f.evacuee.id == ev.id
        assert find_person(s, "佐々木 健二", "", "", "気仙町").evacuee.id == ev.id  # type: ignore[union-attr]
        assert find_person(s, "", "ささき けんじ", "1980-02-20").evacuee.id == ev.id  # type: ignore[union-attr]
        # a detail that contradicts the record still rules him out, and so does another reading
        assert find_person(s, "佐々木 健二", "", "S55.2.21").kind == "none"
        assert find_person(s, "佐々木 健二", "", "", "大船渡市盛町").kind == "none"
        assert find_person(s, "佐々木 健二", "ササキ ケンゾウ", "S55.2.20").kind == "none"
        res = answer_inquiry(s, req(sought_name="佐々木 健二", sought_birth="1980/2/20"), user="窓口", screen="t")
        s.commit()
        assert res.inquiry is not None and res.inquiry.outcome == "answered" and res.inquiry.evacuee_id == ev.id
        # the link withdrawn (staff rejected the candidate): the typed kana alone again
        staff_decide(s, ev.id, "rejected", "1008", by="佐藤")
        s.commit()
        assert find_person(s, "佐々木 健二", "", "S55.2.20").kind == "none"


def test_only_auto_or_confirmed_links_count_and_either_source_may_agree(shelter) -> None:  # type: ignore[no-untyped-def]
    from app.models import MatchDecision
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    _sh, engine = shelter
    with Session(engine, expire_on_commit=False) as s:
        sho = register(s, EvacueeInput(name_kana="タカハシ ショウ", name="", address=""), by="佐藤")
        s.add(MatchDecision(evacuee_id=sho.id, resident_id=None, decision="review",
                            candidates=[{"resident_id": "1003", "score": 0.7}]))
        s.commit()
        assert find_person(s, "髙橋 翔", "", "2005-04-05").kind == "none"  # a pending review is no link
        s.add(MatchDecision(evacuee_id=sho.id, resident_id="1003", decision="auto"))
        s.commit()
        assert find_person(s, "髙橋 翔", "", "2005-04-05").evacuee.id == sho.id  # type: ignore[union-attr]

        # typed with a wrong day (S55.2.3) and linked to 1007 (S55.2.2): either date is his
        ken = register(s, EvacueeInput(name="佐々木 健", birth_date="S55.2.3", address="気仙町3"), by="佐藤")
        staff_decide(s, ken.id, "confirmed", "1007", by="佐藤")
        s.commit()
        for day in ("S55.2.2", "S55.2.3"):
            assert find_person(s, "佐々木 健", "", day).evacuee.id == ken.id  # type: ignore[union-attr]
        assert find_person(s, "佐々木 健", "", "S55.2.4").kind == "none"  # contradicts both: not him


def test_a_linked_protected_resident_stays_protected(shelter) -> None:  # type: ignore[no-untyped-def]
    """Typed in romaji, linked to 1004 山﨑 花 (閲覧制限): now found by the registry name, and never disclosed.

    The first 山﨑 花 left before she came back and was typed in romaji (one resident is never
    linked to two people in the shelter at once)."""
    from app.services.evacuees import check_out
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    sh, engine = shelter
    with Session(engine, expire_on_commit=False) as s:
        check_out(s, sh.evacuee_ids["hana"], by="佐藤")
        ev = register(s, EvacueeInput(name="YAMAZAKI HANA", consent_relatives=True), by="佐藤")
        staff_decide(s, ev.id, "confirmed", "1004", by="佐藤")
        s.commit()
        f = find_person(s, "山崎 花", "", "H11.12.31")
        assert f.kind == "restricted" and set(f.restricted) == {sh.evacuee_ids["hana"], ev.id}
        res = answer_inquiry(s, req(sought_name="山崎 花", sought_birth="1999-12-31"), user="窓口", screen="t")
        s.commit()
        assert res.inquiry is not None and res.inquiry.outcome == "restricted" and res.inquiry.items_disclosed == []


def test_an_age_is_read_against_the_day_of_registration(shelter) -> None:  # type: ignore[no-untyped-def]
    """"36歳" typed two years ago means born two years earlier than "36歳" typed today. The shelter
    keeps the year range worked out at registration; a row without one reads the age against created_at."""
    from datetime import date, datetime, timezone

    from app.services.inquiry import evacuee_facts
    from app.services.roster import EvacueeInput, parse_evacuee, register

    _sh, engine = shelter
    then = datetime(date.today().year - 2, 1, 10, 9, 0, tzinfo=timezone.utc)
    born = then.year - 37  # 36 on 10 January: born in the year 37 years before, after 10 January
    with Session(engine, expire_on_commit=False) as s:
        kept = register(s, EvacueeInput(name="岩手 次郎", birth_date="36歳", address="大船渡市盛町7"), by="佐藤")
        parsed, _ = parse_evacuee(EvacueeInput(name="岩手 次郎", birth_date="36歳"), today=then)
        kept.birth_year_min, kept.birth_year_max, kept.created_at = parsed["birth_year_min"], parsed["birth_year_max"], then
        bare = register(s, EvacueeInput(name="岩手 三郎", birth_date="36歳", address="大船渡市盛町8"), by="佐藤")
        bare.birth_year_min = bare.birth_year_max = None  # as a row written without the range
        bare.created_at = then
        s.add_all([kept, bare])
        s.commit()
        assert evacuee_facts(bare).year_range == (born, born + 1)
        for ev in (kept, bare):
            name = f"{ev.family_name} {ev.given_name}"
            assert find_person(s, name, "", f"{born}-06-01").evacuee.id == ev.id  # type: ignore[union-attr]
            assert find_person(s, name, "", f"{born + 2}-06-01").kind == "none"  # today's reading of 36歳
