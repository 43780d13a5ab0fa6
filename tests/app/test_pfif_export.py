"""`export_pfif`: only evacuees who consented to publication (⑭), never anyone linked to a 閲覧制限
resident or travelling with one, a file Person Finder accepts, entry dates strictly increasing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.audit_models import AuditEntry
from app.db import open_shelter_db, session as db_session
from app.formats.pfif import NOTE_STATUSES, parse_pfif, write_pfif
from app.models import Evacuee, SoughtPerson
from app.services import evacuees
from app.services.pfif import build_export, decide_link, export_pfif, import_pfif, record_domain_for
from app.services.reconcile import reconcile_all, staff_decide
from app.services.roster import EvacueeInput, register, register_household
from app.services.shelters import current_shelter
from tests.conftest import Cli
from tests.web.helpers import build_shelter
from app.db_crypto import connect as db_connect

UTC = timezone.utc


def _people(db: Path) -> dict[str, str]:
    """A registry with a 閲覧制限 resident (1004 山﨑 花) and evacuees with every consent."""
    engine = open_shelter_db(db)
    with db_session(engine) as s:
        current_shelter(s).municipality_code = "032107"
        ids = {
            "public": register(s, EvacueeInput(name="岩手 花子", name_kana="いわて はなこ", birth_date="H2.4.5", sex="女",
                                               consent_public=True), by="受付").id,
            "takahashi": register(s, EvacueeInput(name="高橋 一郎", name_kana="たかはし いちろう", birth_date="S45.3.1",
                                                  sex="男", address="高田町字館の沖12-3", consent_public=True), by="受付").id,
            "refused": register(s, EvacueeInput(name="拒否 太郎", consent_public=False), by="受付").id,
            "not_asked": register(s, EvacueeInput(name="未確認 次郎"), by="受付").id,
            "left": register(s, EvacueeInput(name="退所 三郎", birth_date="1950", consent_public=True), by="受付").id,
        }
        # 山崎 花 is the registry's 閲覧制限 resident; her child came with her and also said yes to ⑭
        mother, child = register_household(s, [
            EvacueeInput(name="山崎 花", name_kana="やまざき はな", birth_date="1999-12-31", sex="女", consent_public=True),
            EvacueeInput(name="山崎 空", name_kana="やまざき そら", birth_date="2024-01-01", sex="男", consent_public=True)],
            by="受付")
        ids["restricted"], ids["restricted_child"] = mother.id, child.id
        # someone whose registry household holds a 閲覧制限 member (by a staff link, not by name)
        ids["same_household"] = register(s, EvacueeInput(name="別名 記入", consent_public=True), by="受付").id
        s.commit()
        evacuees.check_out(s, ids["left"], by="受付", destination="親族宅（花巻市）")
        s.commit()
    reconcile_all(engine)
    with db_session(engine) as s:
        staff_decide(s, ids["restricted"], "confirmed", "1004", by="受付")
        s.commit()
    engine.dispose()
    return ids


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path)
    sh.evacuee_ids.update(_people(sh.db_path))
    return sh


def export(db: Path, out: Path, **kw) -> int:  # type: ignore[no-untyped-def]
    engine = open_shelter_db(db)
    try:
        with db_session(engine) as s:
            return export_pfif(s, out, by_user="本部", **kw)
    finally:
        engine.dispose()


def test_only_consent_14_and_never_restricted(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.xml"
    ids = shelter.evacuee_ids
    assert export(shelter.db_path, out) == 4
    raw = out.read_bytes()
    doc = parse_pfif(raw, out.name)
    names = [p.full_name for p in doc.persons]
    assert names == ["岩手 花子", "高橋 一郎", "退所 三郎", "別名 記入"]
    text = raw.decode("utf-8")
    for absent in ("拒否", "未確認", "山崎", "山﨑", "1004", ids["restricted"], ids["restricted_child"], "親族宅",
                   "花巻", "渡辺", "ささき"):
        assert absent not in text, absent
    domain = record_domain_for(None).replace("local", "032107")
    assert [p.person_record_id for p in doc.persons] == [f"{domain}/{ids[k]}" for k in ("public", "takahashi", "left", "same_household")]
    assert doc.persons[0].alternate_names == "イワテ ハナコ" and doc.persons[0].sex == "female"
    assert doc.persons[2].age.count("-") == 1  # only a birth year: an age range, never an invented date
    assert all(p.date_of_birth == "" for p in doc.persons)


def test_household_of_a_restricted_resident_is_left_out(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    ids = shelter.evacuee_ids
    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        # staff link someone to 1004's registry household: the whole household stays hidden
        from app.models import Resident

        s.add(Resident(snapshot_id=1, line_no=99, resident_id="1099", household_id="H2", family_name="山﨑",
                       given_name="実", family_name_kana="ヤマザキ", given_name_kana="ミノル"))
        s.commit()
        staff_decide(s, ids["same_household"], "confirmed", "1099", by="受付")
        s.commit()
        doc, disclosed = build_export(s)
    engine.dispose()
    assert ids["same_household"] not in disclosed and ids["public"] in disclosed
    # a review candidate that is 閲覧制限 is enough to keep someone out
    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        from app.models import MatchDecision

        s.add(MatchDecision(evacuee_id=ids["public"], resident_id="1004", decision="review", reasons="test"))
        s.commit()
        _doc, disclosed = build_export(s)
    engine.dispose()
    assert ids["public"] not in disclosed


def test_person_finder_would_accept_it(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.xml"
    before = datetime.now(UTC).replace(microsecond=0)
    export(shelter.db_path, out)
    raw = out.read_text(encoding="utf-8")
    assert raw.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4">')
    doc = parse_pfif(out.read_bytes(), out.name)
    for p in doc.persons:
        assert p.person_record_id.startswith("anpi.032107.jp/") and p.source_date and p.full_name
        assert p.expiry_date is not None and timedelta(days=364) < p.expiry_date - before < timedelta(days=366)
        assert p.notes, p.full_name
        for n in p.notes:
            assert n.note_record_id.startswith("anpi.032107.jp/") and n.person_record_id == p.person_record_id
            assert n.author_name and n.source_date and n.text and n.status == "believed_alive" in NOTE_STATUSES
            assert n.author_made_contact is True
    left = doc.persons[2]
    assert [n.text for n in left.notes][0].startswith("避難所に避難しています") and "退所しました" in left.notes[1].text
    assert left.notes[1].last_known_location == ""  # where someone went is not published
    # entry_date strictly increases across every record in document order; no source is newer than its entry
    records = [r for p in doc.persons for r in (p, *p.notes)] + doc.notes
    dates = [r.entry_date for r in records]
    assert all(a < b for a, b in zip(dates, dates[1:])), dates
    assert all(r.source_date <= r.entry_date for r in records)
    assert dates[-1] <= datetime.now(UTC) + timedelta(seconds=1)


def test_round_trip_and_expiry_setting(tmp_path: Path, shelter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = open_shelter_db(shelter.db_path)
    now = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)
    with Session(engine) as s:
        doc, _ = build_export(s, now=now, expiry_days=30)
        assert parse_pfif(write_pfif(doc), "x.xml") == doc
        assert {p.expiry_date for p in doc.persons} == {now + timedelta(days=30)}
        records = [r for p in doc.persons for r in (p, *p.notes)] + doc.notes
        assert records[-1].entry_date == now and records[0].entry_date == now - timedelta(seconds=len(records) - 1)
        monkeypatch.setenv("ANPI_PFIF_EXPIRY_DAYS", "90")
        doc, _ = build_export(s, now=now)
        assert {p.expiry_date for p in doc.persons} == {now + timedelta(days=90)}
    engine.dispose()


def test_confirmed_sought_persons_get_a_note(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    from app.formats.pfif import PfifPerson

    ids = shelter.evacuee_ids
    t = datetime(2026, 11, 1, tzinfo=UTC)
    f = tmp_path / "pf.xml"
    f.write_bytes(write_pfif([
        PfifPerson("pf.example.org/t", source_date=t, full_name="高橋 一郎", alternate_names="タカハシ イチロウ",
                   sex="male", date_of_birth="1970-03-01"),
        PfifPerson("pf.example.org/y", source_date=t, full_name="山崎 花", sex="female", date_of_birth="1999-12-31")]))
    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        import_pfif(s, f, by_user="本部")
    with db_session(engine) as s:
        rows = dict(s.exec(select(Evacuee.id, Evacuee.name_raw)).all())
        assert rows[ids["takahashi"]] == "高橋 一郎"
        sid = {r: i for i, r in s.exec(select(SoughtPerson.id, SoughtPerson.pfif_record_id)).all()}
        decide_link(s, sid["pf.example.org/t"], "resident", "1001", "confirmed", by_user="本部", reveal_restricted=True)
        decide_link(s, sid["pf.example.org/y"], "resident", "1004", "confirmed", by_user="本部", reveal_restricted=True)
        s.commit()
    engine.dispose()
    out = tmp_path / "out.xml"
    export(shelter.db_path, out)
    doc = parse_pfif(out.read_bytes(), out.name)
    assert [(n.person_record_id, n.linked_person_record_id, n.status) for n in doc.notes] == [
        ("pf.example.org/t", f"anpi.032107.jp/{ids['takahashi']}", "believed_alive")]
    assert "pf.example.org/y" not in out.read_text(encoding="utf-8")


def test_export_is_audited_and_the_cli_writes_it(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(shelter.db_path)
    code, out, err = cli("pfif", "export", "--out", tmp_path / "pf.xml", "--expiry-days", "10")
    assert code == 0 and out.strip() == f"4 persons written to {tmp_path / 'pf.xml'}", err
    assert not (tmp_path / "pf.xml.tmp").exists()
    engine = open_shelter_db(shelter.db_path)
    with Session(engine) as s:
        e = s.exec(select(AuditEntry).where(AuditEntry.action == "export")).one()
        detail = json.loads(e.detail)
        assert (detail["format"], detail["persons"], detail["file"], detail["expiry_days"]) == ("pfif", 4, "pf.xml", 10)
        assert f"evacuee:{shelter.evacuee_ids['public']}" in json.loads(e.subjects)
        assert f"evacuee:{shelter.evacuee_ids['restricted']}" not in json.loads(e.subjects)
    engine.dispose()
    # the exact call `anpi export anpi-list --format pfif` makes
    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        assert export_pfif(s, tmp_path / "hq.xml", by_user="本部") == 4
    engine.dispose()
    assert db_connect(shelter.db_path).execute(
        "SELECT COUNT(*) FROM audit_entry WHERE action = 'export'").fetchone()[0] == 2
