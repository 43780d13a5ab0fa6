"""`import_pfif` and the links: Person Finder's own files import with the counts Person Finder
itself would give, re-imports change nothing, a broken or hostile file stores nothing, and links
are proposed by the engine, decided by staff, undone, and hidden under 閲覧制限."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, func, select

from app.audit_models import AuditEntry
from app.db import open_shelter_db, session as db_session
from app.formats.pfif import PfifError, PfifNote, PfifPerson, write_pfif
from app.models import SoughtLink, SoughtNote, SoughtPerson
from app.services.errors import AlreadyDone, Conflict, NotFound
from app.services.pfif import current_links, decide_link, import_pfif, relink_all, sought_overview
from app.services.reconcile import reconcile_all
from tests.conftest import Cli
from tests.web.helpers import build_shelter
from app import db_crypto
from app.db_crypto import connect as db_connect

DATA = Path(__file__).resolve().parents[1] / "data" / "pfif"
UTC = timezone.utc
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def counts(db: Path) -> dict[str, int]:
    con = db_connect(db)
    try:
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("soughtperson", "soughtnote", "soughtlink")}
    finally:
        con.close()


def run_import(db: Path, path: Path, **kw: Any):  # type: ignore[no-untyped-def]
    engine = open_shelter_db(db)
    try:
        with db_session(engine) as s:
            return import_pfif(s, path, by_user="tester", **kw)
    finally:
        engine.dispose()


def write_persons(path: Path, persons: list[PfifPerson]) -> Path:
    path.write_bytes(write_pfif(persons))
    return path


# people looking for residents of the tiny registry in tests/web/helpers.py
SOUGHT = [
    PfifPerson("pf.example.org/takahashi", source_date=T0, full_name="高橋 一郎", alternate_names="タカハシ イチロウ",
               sex="male", date_of_birth="1970-03-01", home_state="岩手県", home_city="陸前高田市", home_neighborhood="高田町",
               author_name="高橋 京子"),
    PfifPerson("pf.example.org/sasaki", source_date=T0, full_name="Ken Sasaki", sex="male", author_name="職場"),
    PfifPerson("pf.example.org/yamazaki", source_date=T0, full_name="山崎 花", sex="female", date_of_birth="1999-12-31",
               author_name="元配偶者"),  # 1004 is under 閲覧制限 (DV等支援措置)
    PfifPerson("pf.example.org/nobody", source_date=T0, full_name="存在 しない", date_of_birth="1990-01-01"),
]


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path)
    engine = open_shelter_db(sh.db_path)
    reconcile_all(engine)
    engine.dispose()
    return sh


# --- Person Finder's samples --------------------------------------------------------------------

@pytest.mark.parametrize("name, persons, notes, orphans, status", [
    ("test.pfif-1.2.xml", 1, 4, 0, "is_note_author"),  # the backdated believed_missing does not win
    ("test.pfif-1.4.xml", 1, 4, 0, "is_note_author"),
    ("test.pfif-1.2-note.xml", 0, 2, 2, None),
    ("test.pfif-1.2-believed-dead.xml", 0, 1, 1, None),
    ("sample-import.csv", 1, 0, 0, ""),
])
def test_each_shared_sample_imports(tmp_path: Path, name: str, persons: int, notes: int, orphans: int,
                                    status: str | None) -> None:
    db = tmp_path / "s.db"
    r = run_import(db, DATA / name)
    assert (r.persons, r.persons_new, r.notes, r.notes_new, r.notes_orphan) == (persons, persons, notes, notes, orphans)
    assert counts(db) == {"soughtperson": persons, "soughtnote": notes, "soughtlink": 0}  # no registry: no links
    if status is not None:
        engine = open_shelter_db(db)
        with Session(engine) as s:
            p = s.exec(select(SoughtPerson)).one()
            assert p.latest_status == status
            assert p.raw["fields"]["person_record_id"] in ("test.google.com/person.21009", "1")  # verbatim
            if name == "sample-import.csv":
                assert (p.pfif_record_id, p.source, p.full_name, p.sex) == ("csv.test-source/1", "csv.test-source",
                                                                           "Test Person", "male")
                assert p.raw["fields"]["_extra_cells"] == "He is missing"
            else:
                assert (p.source, p.sex, p.date_of_birth, p.age, p.home_city) == (
                    "test.google.com", "female", "1970-01", "35-45", "_test_home_city")
        engine.dispose()
    if name == "sample-import.csv":
        assert len(r.warnings) == 1 and "30 cells" in r.warnings[0]


def test_all_samples_together_follow_person_finders_rules(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = run_import(db, DATA / "test.pfif-1.2.xml")
    assert (first.persons_new, first.notes_new) == (1, 4)
    # the 1.4 file holds the same records with the same source dates: nothing changes
    again = run_import(db, DATA / "test.pfif-1.4.xml")
    assert (again.persons_unchanged, again.notes_unchanged, again.persons_new, again.notes_new) == (1, 4, 0, 0)
    # the top-level notes file has newer versions of two notes; one of them now names person 21010
    notes = run_import(db, DATA / "test.pfif-1.2-note.xml")
    assert (notes.notes_updated, notes.notes_new, notes.notes_orphan) == (2, 0, 1)
    dead = run_import(db, DATA / "test.pfif-1.2-believed-dead.xml")
    assert (dead.notes_new, dead.notes_orphan) == (1, 0)
    csv = run_import(db, DATA / "sample-import.csv")
    assert csv.persons_new == 1
    assert counts(db) == {"soughtperson": 2, "soughtnote": 5, "soughtlink": 0}
    engine = open_shelter_db(db)
    with Session(engine) as s:
        p = s.exec(select(SoughtPerson).where(SoughtPerson.source == "test.google.com")).one()
        assert p.latest_status == "believed_dead" and p.latest_status_at == datetime(2011, 9, 20, 17, 8, 9, tzinfo=UTC)
        moved = s.exec(select(SoughtNote).where(SoughtNote.note_record_id == "test.google.com/note.31095")).one()
        assert moved.person_record_id == "test.google.com/person.21010" and moved.source_file == "test.pfif-1.2-note.xml"
        entries = s.exec(select(AuditEntry).where(AuditEntry.action == "pfif_import")).all()
        assert [json.loads(e.detail)["file"] for e in entries] == [
            "test.pfif-1.2.xml", "test.pfif-1.4.xml", "test.pfif-1.2-note.xml", "test.pfif-1.2-believed-dead.xml",
            "sample-import.csv"]
        assert json.loads(entries[0].subjects) == [f"sought:{p.id}"] and entries[0].user_name == "tester"
    engine.dispose()


def test_reimport_is_idempotent_and_a_newer_source_date_updates(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    f = write_persons(tmp_path / "a.xml", [PfifPerson("a.org/1", source_date=T0, full_name="岩手 一郎", notes=[
        PfifNote("a.org/n1", "a.org/1", author_name="家族", source_date=T0, status="information_sought", text="探しています")])])
    run_import(db, f)
    before = counts(db)
    r = run_import(db, f)
    assert (r.persons_unchanged, r.notes_unchanged) == (1, 1) and counts(db) == before
    older = write_persons(tmp_path / "b.xml", [PfifPerson("a.org/1", source_date=datetime(2026, 10, 1, tzinfo=UTC),
                                                          full_name="古い 名前")])
    assert run_import(db, older).persons_unchanged == 1
    newer = write_persons(tmp_path / "c.xml", [PfifPerson("a.org/1", source_date=datetime(2026, 11, 2, tzinfo=UTC),
                                                          full_name="岩手 一朗", notes=[PfifNote(
                                                              "a.org/n2", "a.org/1", author_name="市", text="無事",
                                                              source_date=datetime(2026, 11, 2, tzinfo=UTC),
                                                              status="believed_alive")])])
    r = run_import(db, newer)
    assert (r.persons_updated, r.notes_new) == (1, 1)
    engine = open_shelter_db(db)
    with Session(engine) as s:
        p = s.exec(select(SoughtPerson)).one()
        assert (p.full_name, p.latest_status, p.source_file) == ("岩手 一朗", "believed_alive", "c.xml")
    engine.dispose()
    # the source withdrew the record: a PFIF placeholder (no name, an expiry date) hides it
    gone = write_persons(tmp_path / "d.xml", [PfifPerson("a.org/1", source_date=datetime(2026, 11, 3, tzinfo=UTC),
                                                         expiry_date=datetime(2026, 11, 3, tzinfo=UTC))])
    assert run_import(db, gone).persons_expired == 1
    engine = open_shelter_db(db)
    with Session(engine) as s:
        assert sought_overview(s, reveal_restricted=True) == []
        assert len(sought_overview(s, reveal_restricted=True, include_expired=True)) == 1
    engine.dispose()


BAD_SECOND_PERSON = b"""<?xml version="1.0" encoding="UTF-8"?>
<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4">
  <pfif:person><pfif:person_record_id>a.org/1</pfif:person_record_id><pfif:full_name>ok</pfif:full_name></pfif:person>
  <pfif:person><pfif:person_record_id>a.org/2</pfif:person_record_id><pfif:full_name>bad</pfif:full_name>
    <pfif:source_date>2011-03-11</pfif:source_date></pfif:person>
</pfif:pfif>"""


@pytest.mark.parametrize("content", [
    pytest.param(lambda: (DATA / "test.pfif-1.4.xml").read_bytes()[:2000], id="truncated"),
    pytest.param(lambda: b'<?xml version="1.0"?>\n<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
                 b'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4"><pfif:person><pfif:full_name>&b;</pfif:full_name>'
                 b'</pfif:person></pfif:pfif>', id="entity-bomb"),
    pytest.param(lambda: b'<?xml version="1.0"?>\n<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                 b'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4"><pfif:person><pfif:full_name>&x;</pfif:full_name>'
                 b'</pfif:person></pfif:pfif>', id="external-entity"),
    pytest.param(lambda: BAD_SECOND_PERSON, id="second-record-broken"),
])
def test_a_bad_file_stores_nothing(tmp_path: Path, shelter, content) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.xml"
    f.write_bytes(content())
    run_import(shelter.db_path, DATA / "test.pfif-1.2.xml")
    before = counts(shelter.db_path)
    audit_before = db_connect(shelter.db_path).execute("SELECT COUNT(*) FROM audit_entry").fetchone()[0]
    with pytest.raises(PfifError) as err:
        run_import(shelter.db_path, f)
    assert err.value.problems[0].file == "bad.xml" and err.value.problems[0].line > 0
    assert counts(shelter.db_path) == before
    assert db_connect(shelter.db_path).execute("SELECT COUNT(*) FROM audit_entry").fetchone()[0] == audit_before


# --- links --------------------------------------------------------------------------------------

def _links(db: Path, *, reveal: bool) -> dict[str, list[tuple[str, str, str]]]:
    engine = open_shelter_db(db)
    try:
        with Session(engine) as s:
            return {v.person.pfif_record_id.split("/")[1]: [(lv.link.target_kind, lv.link.target_id, lv.link.decision)
                                                           for lv in v.links]
                    for v in sought_overview(s, reveal_restricted=reveal)}
    finally:
        engine.dispose()


def _ids(db: Path) -> dict[str, str]:
    con = db_connect(db)
    return {rid.split("/")[1]: sid for sid, rid in con.execute("SELECT id, pfif_record_id FROM soughtperson")}


def test_links_are_proposed_by_the_engine(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    r = run_import(shelter.db_path, write_persons(tmp_path / "s.xml", SOUGHT))
    # the answer counts only links the caller may see: the auto link to the 閲覧制限 resident is left out
    assert (r.linked_auto, r.linked_review) == (1, 2)
    again = run_import(shelter.db_path, write_persons(tmp_path / "s.xml", SOUGHT), reveal_restricted=True)
    assert (again.persons_unchanged, again.linked_auto, again.linked_review) == (4, 2, 2)
    hq = _links(shelter.db_path, reveal=True)
    sasaki_ev = shelter.evacuee_ids["sasaki"]
    assert hq["takahashi"] == [("resident", "1001", "auto")]  # name, reading, birth and town agree
    # a romaji name without a birth date: never automatic; the evacuee typed in kana is proposed too
    assert sorted(hq["sasaki"]) == [("evacuee", sasaki_ev, "review"), ("resident", "1007", "review")]
    assert hq["yamazaki"] == [("resident", "1004", "auto")]
    assert hq["nobody"] == []
    desk = _links(shelter.db_path, reveal=False)
    assert desk["yamazaki"] == []  # 閲覧制限: not even a placeholder for the desk
    assert desk["takahashi"] == hq["takahashi"]
    # importing or relinking again writes nothing new
    before = counts(shelter.db_path)["soughtlink"]
    again = run_import(shelter.db_path, tmp_path / "s.xml")
    assert (again.link_rows, again.persons_unchanged, again.linked_auto, again.linked_review) == (0, 4, 1, 2)
    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        assert relink_all(s, by_user="tester") == 0
    engine.dispose()
    assert counts(shelter.db_path)["soughtlink"] == before


def test_an_evacuee_link_is_auto_only_through_the_engine(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    from app.services.roster import EvacueeInput, register

    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        ev = register(s, EvacueeInput(name="高橋 一郎", name_kana="たかはし いちろう", birth_date="S45.3.1", sex="男",
                                      address="高田町字館の沖12-3"), by="受付")
        s.commit()
    reconcile_all(engine)  # the engine links the evacuee to 1001 automatically
    engine.dispose()
    run_import(shelter.db_path, write_persons(tmp_path / "s.xml", SOUGHT[:1]))
    assert sorted(_links(shelter.db_path, reveal=False)["takahashi"]) == [("evacuee", ev.id, "auto"),
                                                                          ("resident", "1001", "auto")]


def test_confirm_reject_and_undo(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    run_import(shelter.db_path, write_persons(tmp_path / "s.xml", SOUGHT))
    sid = _ids(shelter.db_path)
    sasaki_ev = shelter.evacuee_ids["sasaki"]
    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        decide_link(s, sid["sasaki"], "evacuee", sasaki_ev, "confirmed", by_user="窓口")
        decide_link(s, sid["sasaki"], "resident", "1007", "rejected", by_user="窓口")
        with pytest.raises(AlreadyDone):
            decide_link(s, sid["sasaki"], "resident", "1007", "rejected", by_user="窓口")
        with pytest.raises(Conflict):  # nothing staff decided on this one
            decide_link(s, sid["takahashi"], "resident", "1001", "undo", by_user="窓口")
        with pytest.raises(NotFound):  # never proposed
            decide_link(s, sid["takahashi"], "resident", "1002", "confirmed", by_user="窓口")
        # the desk may not decide (or learn of) a link to a 閲覧制限 resident
        with pytest.raises(NotFound):
            decide_link(s, sid["yamazaki"], "resident", "1004", "rejected", by_user="窓口")
        s.commit()
    links = _links(shelter.db_path, reveal=False)["sasaki"]
    assert links == [("evacuee", sasaki_ev, "confirmed")]  # the rejected resident is gone from the list
    # re-importing and relinking leave staff decisions alone, and never propose 1007 again
    run_import(shelter.db_path, tmp_path / "s.xml")
    with db_session(engine) as s:
        relink_all(s, by_user="tester")
    assert _links(shelter.db_path, reveal=False)["sasaki"] == links
    # undo brings back what the engine had proposed
    with db_session(engine) as s:
        decide_link(s, sid["sasaki"], "resident", "1007", "undo", by_user="窓口")
        decide_link(s, sid["sasaki"], "evacuee", sasaki_ev, "undo", by_user="窓口")
        s.commit()
    assert sorted(_links(shelter.db_path, reveal=False)["sasaki"]) == [("evacuee", sasaki_ev, "review"),
                                                                       ("resident", "1007", "review")]
    with Session(engine) as s:
        rows = s.exec(select(SoughtLink).where(SoughtLink.sought_id == sid["sasaki"]).order_by(SoughtLink.at)).all()
        assert [(r.decision, r.by_user) for r in rows if r.target_kind == "resident"] == [
            ("review", ""), ("rejected", "窓口"), ("review", "窓口")]
        assert s.exec(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "decide")).one() == 4
        assert set(current_links(s, [sid["sasaki"]])) == {sid["sasaki"]}
    # links are history: the database refuses to rewrite or delete them
    con = db_connect(shelter.db_path)
    with pytest.raises(db_crypto.DatabaseError, match="append-only"):
        con.execute("UPDATE soughtlink SET decision = 'confirmed'")
    with pytest.raises(db_crypto.DatabaseError, match="append-only"):
        con.execute("DELETE FROM soughtlink")
    engine.dispose()


def test_a_link_the_engine_no_longer_proposes_is_withdrawn(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    run_import(shelter.db_path, write_persons(tmp_path / "s.xml", SOUGHT[:1]))
    assert _links(shelter.db_path, reveal=True)["takahashi"] == [("resident", "1001", "auto")]
    fixed = PfifPerson("pf.example.org/takahashi", source_date=datetime(2026, 11, 2, tzinfo=UTC), full_name="高橋 翔",
                       sex="male", date_of_birth="2005-04-05")
    r = run_import(shelter.db_path, write_persons(tmp_path / "t.xml", [fixed]))
    assert r.persons_updated == 1
    assert _links(shelter.db_path, reveal=True)["takahashi"] == [("resident", "1003", "auto")]


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_import_links_and_errors(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(shelter.db_path)
    code, out, err = cli("pfif", "import", write_persons(tmp_path / "s.xml", SOUGHT), "--json")
    assert code == 0, err
    got = json.loads(out)
    # counts as the CLI lists links: without 閲覧制限 targets (`anpi pfif links --include-restricted` shows them)
    assert (got["persons"], got["persons_new"], got["linked_auto"], got["linked_review"]) == (4, 4, 1, 2)
    code, out, err = cli("pfif", "import", DATA / "sample-import.csv")
    assert code == 0 and "1 persons (1 new" in out and "linked: 0 auto, 0 to review" in out
    assert "warning: sample-import.csv:2" in err
    links = cli.json("pfif", "links", "--json")
    by_id = {r["pfif_record_id"]: r for r in links}  # type: ignore[union-attr]
    assert by_id["pf.example.org/yamazaki"]["links"] == []  # 閲覧制限 hidden unless asked for
    assert [lk["target_id"] for lk in by_id["pf.example.org/takahashi"]["links"]] == ["1001"]
    hq = cli.json("pfif", "links", "--json", "--include-restricted")
    yam = next(r for r in hq if r["pfif_record_id"] == "pf.example.org/yamazaki")  # type: ignore[union-attr]
    assert yam["links"][0]["restricted"] is True
    sid = by_id["pf.example.org/sasaki"]["sought_id"]
    code, out, err = cli("pfif", "decide", sid, "resident", "1007", "confirmed")
    assert code == 0 and "confirmed" in out, err
    bomb = tmp_path / "bomb.xml"
    bomb.write_bytes(b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "a">]><x/>')
    code, out, err = cli("pfif", "import", bomb)
    assert code == 1 and err.startswith("error: bomb.xml:2:") and "Traceback" not in err
    code, out, err = cli("pfif", "import", tmp_path / "missing.xml")
    assert code == 1 and "cannot read" in err


def test_linking_inside_an_open_transaction(tmp_path: Path, shelter) -> None:  # type: ignore[no-untyped-def]
    """The shelter's SQLite engine has one connection: a caller already holding it still gets the
    same proposals (the index is then built from that connection) instead of waiting for itself."""
    from app.services.pfif import link_sought

    run_import(shelter.db_path, write_persons(tmp_path / "s.xml", SOUGHT), link=False)
    assert counts(shelter.db_path)["soughtlink"] == 0
    engine = open_shelter_db(shelter.db_path)
    with db_session(engine) as s:
        persons = list(s.exec(select(SoughtPerson)))  # the session now holds the connection
        rows = link_sought(s, persons)
        s.commit()
    engine.dispose()
    assert len(rows) == 4
    assert _links(shelter.db_path, reveal=True)["takahashi"] == [("resident", "1001", "auto")]
