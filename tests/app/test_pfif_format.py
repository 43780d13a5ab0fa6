"""app.formats.pfif: Person Finder's own files read as Person Finder reads them, PFIF 1.4 written so
that it reads back identically, and hostile or broken input refused with file, line and field."""

from __future__ import annotations

import codecs
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.formats.errors import FileFormatError
from app.formats.pfif import (NOTE_STATUSES, PfifDocument, PfifError, PfifNote, PfifPerson, csv_domain, parse_pfif,
                              parse_pfif_csv, parse_pfif_xml, write_pfif)

DATA = Path(__file__).resolve().parents[1] / "data" / "pfif"
UTC = timezone.utc
SAMPLES = ["test.pfif-1.2.xml", "test.pfif-1.4.xml", "test.pfif-1.2-note.xml", "test.pfif-1.2-believed-dead.xml",
           "sample-import.csv"]


def read(name: str) -> PfifDocument:
    return parse_pfif((DATA / name).read_bytes(), name)


def test_the_samples_are_person_finders_own_files() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in readme and "Person Finder" in readme
    assert sorted(p.name for p in DATA.iterdir() if p.name != "README.md") == sorted(SAMPLES)


def test_pfif_1_2_person_with_nested_notes() -> None:
    doc = read("test.pfif-1.2.xml")
    assert doc.version == "1.2" and doc.notes == [] and len(doc.persons) == 1
    p = doc.persons[0]
    assert p.person_record_id == "test.google.com/person.21009"
    # PFIF 1.2 names mapped onto 1.4, full_name composed as Person Finder does for a latin name
    assert (p.given_name, p.family_name, p.full_name) == ("_test_first_name", "_test_last_name",
                                                          "_test_first_name _test_last_name")
    assert p.home_city == "_test_home_city"  # the sample's whitespace-stripping case
    assert p.description == "description:\n    _test_description"  # 1.2 `other`
    assert (p.sex, p.date_of_birth, p.age, p.home_country) == ("female", "1970-01", "35-45", "US")
    assert p.source_date == datetime(2000, 1, 1, tzinfo=UTC)
    assert p.entry_date == datetime(2000, 1, 16, 2, 7, 57, tzinfo=UTC)
    assert p.raw["other"].startswith("description:")  # the record as it was in the file
    notes = p.notes
    assert [n.note_record_id for n in notes] == ["test.google.com/note.27009", "test.google.com/note.31095",
                                                 "test.google.com/note.40121", "test.google.com/note.50121"]
    assert {n.person_record_id for n in notes} == {p.person_record_id}  # nested notes inherit the person
    assert notes[0].linked_person_record_id == "test.google.com/person.999"
    assert [n.status for n in notes] == ["believed_missing", "", "is_note_author", "believed_missing"]
    assert [n.author_made_contact for n in notes] == [False, True, None, False]  # 1.2 `found`
    assert notes[1].last_known_location == "19.16592425362802 -71.9384765625"
    assert notes[3].source_date == datetime(2000, 1, 18, 20, 0, tzinfo=UTC)
    assert notes[0].line == 31 and p.line == 3


def test_pfif_1_4_person() -> None:
    doc = read("test.pfif-1.4.xml")
    assert doc.version == "1.4"
    p = doc.persons[0]
    assert p.full_name == "_test_full_name1\n_test_full_name2"
    assert (p.given_name, p.family_name, p.description) == ("_test_given_name", "_test_family_name", "_test_description")
    assert p.alternate_names == "_test_alternate_name1\n_test_alternate_name2"
    assert p.profile_urls == "_test_profile_url1\n_test_profile_url2"
    assert [n.photo_url for n in p.notes] == ["_test_note_photo_url", "", "", ""]
    assert [n.author_made_contact for n in p.notes] == [False, True, None, False]


def test_top_level_notes() -> None:
    doc = read("test.pfif-1.2-note.xml")
    assert doc.persons == [] and len(doc.notes) == 2
    assert [(n.note_record_id, n.person_record_id, n.status) for n in doc.notes] == [
        ("test.google.com/note.27009", "test.google.com/person.21009", "believed_missing"),
        ("test.google.com/note.31095", "test.google.com/person.21010", "is_note_author")]
    dead = read("test.pfif-1.2-believed-dead.xml")
    assert [(n.note_record_id, n.status, n.text) for n in dead.notes] == [("test.google.com/note.218", "believed_dead", "test")]


def test_person_finder_csv_sample() -> None:
    doc = read("sample-import.csv")
    assert doc.version == "csv" and len(doc.persons) == 1 and doc.all_notes() == []
    p = doc.persons[0]
    # a bare id gets a domain, as Person Finder prefixes its importer's domain
    assert p.person_record_id == "csv.test-source/1" == f"{csv_domain('Test source', 'x.csv')}/1"
    assert (p.full_name, p.author_name, p.source_name, p.description, p.sex) == (
        "Test Person", "Test Author", "Test source", "This is a test entry", "male")
    assert p.source_date == datetime(2013, 2, 14, tzinfo=UTC)
    # the sample's data row has one cell more than its header (no home_street column): Person Finder
    # reads it by position; so do we, keeping the surplus cell and saying so
    assert p.raw["_extra_cells"] == "He is missing"
    assert len(doc.warnings) == 1 and doc.warnings[0].line == 2 and "30 cells" in str(doc.warnings[0])


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_round_trip_through_pfif_1_4(name: str) -> None:
    doc = read(name)
    xml = write_pfif(doc)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4">')
    again = parse_pfif(xml, "again.xml")
    assert again.version == "1.4"
    assert again.persons == doc.persons and again.notes == doc.notes


def test_written_pfif_has_person_finders_mandatory_fields() -> None:
    t = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
    doc = PfifDocument("1.4", [PfifPerson("anpi.032107.jp/01J0", source_date=t, full_name="岩手 花子", notes=[
        PfifNote("anpi.032107.jp/01J1", "anpi.032107.jp/01J0", author_name="第一小学校", source_date=t,
                 status="believed_alive")])],
        [PfifNote("anpi.032107.jp/01J2", "example.org/p9", linked_person_record_id="anpi.032107.jp/01J0",
                  author_name="第一小学校", source_date=t, text="無事", status="believed_alive")])
    xml = write_pfif(doc).decode("utf-8")
    assert "<pfif:source_date>2026-11-03T04:05:06Z</pfif:source_date>" in xml
    assert "<pfif:text></pfif:text>" in xml  # mandatory even when empty
    assert "<pfif:linked_person_record_id>anpi.032107.jp/01J0</pfif:linked_person_record_id>" in xml
    assert xml.index("<pfif:person_record_id>") < xml.index("<pfif:source_date>") < xml.index("<pfif:full_name>")
    assert parse_pfif(xml.encode(), "x.xml") == doc


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"),
                max_size=30).map(str.strip).filter(lambda s: all(c in "\t\n\r" or ord(c) >= 0x20 for c in s))
_times = st.one_of(st.none(), st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))
                   .map(lambda d: d.replace(microsecond=0, tzinfo=UTC)))
_rid = st.from_regex(r"\A[a-z0-9.]{1,12}/[A-Za-z0-9._-]{1,12}\Z")


@st.composite
def _person(draw: st.DrawFn) -> PfifPerson:
    rid = draw(_rid)
    notes = [PfifNote(draw(_rid), rid, draw(st.one_of(st.just(""), _rid)), draw(_times), draw(_text), draw(_text),
                      draw(_text), draw(_times), draw(st.sampled_from([None, True, False])),
                      draw(st.sampled_from(("",) + NOTE_STATUSES)), text=draw(_text))
             for _ in range(draw(st.integers(0, 2)))]
    return PfifPerson(rid, draw(_times), draw(_times), draw(_text), source_date=draw(_times),
                      full_name=draw(_text.filter(bool)), given_name=draw(_text), family_name=draw(_text),
                      alternate_names=draw(_text), description=draw(_text),
                      sex=draw(st.sampled_from(["", "female", "male", "other"])),
                      date_of_birth=draw(st.sampled_from(["", "1970", "1970-01", "1970-01-31"])),
                      age=draw(st.sampled_from(["", "42", "35-45"])), home_city=draw(_text), notes=notes)


@settings(max_examples=60, deadline=None)
@given(st.lists(_person(), max_size=3, unique_by=lambda p: p.person_record_id))
def test_round_trip_property(persons: list[PfifPerson]) -> None:
    note_ids = [n.note_record_id for p in persons for n in p.notes]
    if len(set(note_ids)) != len(note_ids):
        return  # one id naming two different notes is refused on reading (tested below)
    doc = PfifDocument("1.4", persons)
    assert parse_pfif(write_pfif(doc), "prop.xml") == doc


# --- hostile and broken XML -------------------------------------------------------------------

NS = 'xmlns:pfif="http://zesty.ca/pfif/1.4"'
BILLION_LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                  + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">\n'
                            for i in range(1, 10))
                  + f']>\n<pfif:pfif {NS}><pfif:person><pfif:person_record_id>a.b/1</pfif:person_record_id>'
                    '<pfif:full_name>&lol9;</pfif:full_name></pfif:person></pfif:pfif>\n').encode()
HOSTILE = {
    "billion-laughs": BILLION_LAUGHS,
    "external-entity": (f'<?xml version="1.0"?>\n<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
                        f'<pfif:pfif {NS}><pfif:person><pfif:full_name>&xxe;</pfif:full_name></pfif:person>'
                        '</pfif:pfif>').encode(),
    "external-dtd": (f'<?xml version="1.0"?>\n<!DOCTYPE pfif SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
                     f'<pfif:pfif {NS}/>').encode(),
    "parameter-entity": (f'<?xml version="1.0"?>\n<!DOCTYPE p [<!ENTITY % pe SYSTEM "file:///etc/hostname"> %pe;]>\n'
                         f'<pfif:pfif {NS}/>').encode(),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_entity_tricks_are_refused_before_expansion(case: str) -> None:
    with pytest.raises(PfifError) as err:
        parse_pfif(HOSTILE[case], f"{case}.xml")
    p = err.value.problems[0]
    assert p.file == f"{case}.xml" and p.line == 2 and p.field == "DOCTYPE"
    assert "DTD" in p.message_ja
    assert isinstance(err.value, FileFormatError)  # the CLI and web faces already know how to show it


BROKEN = {
    # name: (content, line, field, words in the message)
    "truncated": ((DATA / "test.pfif-1.4.xml").read_bytes()[:1500], 31, "", "not well-formed"),
    "not-pfif": (b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>', 2, "rss", "not a PFIF document"),
    "wrong-namespace": (b'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/9.9"/>', 1, "pfif", "not a PFIF document"),
    "element-in-field": (f'<pfif:pfif {NS}>\n<pfif:person>\n<pfif:full_name>a<b>c</b></pfif:full_name>'
                         '</pfif:person></pfif:pfif>'.encode(), 3, "b", "inside a field"),
    "person-in-note": (f'<pfif:pfif {NS}>\n<pfif:note>\n<pfif:person/></pfif:note></pfif:pfif>'.encode(), 3, "person",
                       "unexpected element"),
    "undefined-entity": (f'<pfif:pfif {NS}>\n<pfif:person><pfif:full_name>&foo;</pfif:full_name>'
                         '</pfif:person></pfif:pfif>'.encode(), 2, "", "undefined entity"),
    "no-record-id": (f'<pfif:pfif {NS}>\n<pfif:person>\n<pfif:full_name>x</pfif:full_name></pfif:person>'
                     '</pfif:pfif>'.encode(), 2, "person/person_record_id", "without person_record_id"),
    "id-without-domain": (f'<pfif:pfif {NS}>\n<pfif:person><pfif:person_record_id>12</pfif:person_record_id>'
                          '<pfif:full_name>x</pfif:full_name></pfif:person></pfif:pfif>'.encode(), 2,
                          "person/person_record_id", "has no domain"),
    "no-name": (f'<pfif:pfif {NS}>\n<pfif:person><pfif:person_record_id>a.b/1</pfif:person_record_id>'
                '</pfif:person></pfif:pfif>'.encode(), 2, "person/full_name", "has no name"),
    "empty": (b"   \n", 0, "", "empty file"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_xml_names_file_line_and_field(case: str) -> None:
    content, line, fld, words = BROKEN[case]
    with pytest.raises(PfifError) as err:
        parse_pfif(content, f"{case}.xml")
    p = err.value.problems[0]
    assert (p.file, p.line, p.field) == (f"{case}.xml", line, fld), str(err.value)
    assert words in p.message
    assert p.ja().startswith(f"{case}.xml")


def test_every_field_problem_is_listed() -> None:
    xml = f"""<pfif:pfif {NS}>
<pfif:person>
  <pfif:person_record_id>a.org/1</pfif:person_record_id>
  <pfif:full_name>x</pfif:full_name>
  <pfif:source_date>yesterday</pfif:source_date>
  <pfif:sex>F</pfif:sex>
  <pfif:age>about 40</pfif:age>
  <pfif:note><pfif:note_record_id>a.org/n1</pfif:note_record_id><pfif:status>dead</pfif:status></pfif:note>
</pfif:person>
<pfif:note><pfif:note_record_id>a.org/n2</pfif:note_record_id><pfif:author_made_contact>maybe</pfif:author_made_contact></pfif:note>
</pfif:pfif>""".encode()
    with pytest.raises(PfifError) as err:
        parse_pfif_xml(xml, "many.xml")
    got = {(p.line, p.field) for p in err.value.problems}
    assert got == {(2, "person/source_date"), (2, "person/sex"), (2, "person/age"), (8, "note/status"),
                   (10, "note/person_record_id"), (10, "note/author_made_contact")}


def test_one_id_for_two_different_records_is_refused() -> None:
    person = '<pfif:person><pfif:person_record_id>a.org/1</pfif:person_record_id><pfif:full_name>{}</pfif:full_name></pfif:person>\n'
    xml = f'<pfif:pfif {NS}>\n{person.format("甲")}{person.format("乙")}</pfif:pfif>'.encode()
    with pytest.raises(PfifError, match="appears twice"):
        parse_pfif(xml, "dup.xml")
    same = f'<pfif:pfif {NS}>\n{person.format("甲")}{person.format("甲")}</pfif:pfif>'.encode()
    assert len(parse_pfif(same, "same.xml").persons) == 2  # an exact repeat is harmless


def test_other_vocabularies_and_old_versions_are_read() -> None:
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<p:pfif xmlns:p="http://zesty.ca/pfif/1.1" xmlns:x="urn:example">
  <x:generator><x:name>tool</x:name></x:generator>
  <p:person>
    <p:person_record_id>old.example.org/7</p:person_record_id>
    <p:first_name>Taro</p:first_name><p:last_name>Yamada</p:last_name>
    <x:extra>ignored</x:extra>
    <p:home_zip>029-2205</p:home_zip>
    <p:source_date>2011-03-12T01:02:03+09:00</p:source_date>
  </p:person>
</p:pfif>"""
    doc = parse_pfif(xml, "old.xml")
    p = doc.persons[0]
    assert doc.version == "1.1" and p.full_name == "Taro Yamada" and p.home_postal_code == "029-2205"
    assert p.source_date == datetime(2011, 3, 11, 16, 2, 3, tzinfo=UTC)
    jp = parse_pfif(f'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.2"><pfif:person><pfif:person_record_id>a.jp/1'
                    '</pfif:person_record_id><pfif:first_name>太郎</pfif:first_name><pfif:last_name>山田</pfif:last_name>'
                    '</pfif:person></pfif:pfif>'.encode(), "jp.xml")
    assert jp.persons[0].full_name == "山田 太郎"  # family first for a Japanese name


# --- Person Finder CSV --------------------------------------------------------------------------

HEADER = "person_record_id,full_name,source_name,source_date,sex,note_record_id,status,text,author_name"


def test_csv_with_bom_cp932_and_a_time_zone_preamble() -> None:
    body = ("time_zone_offset\r\n9\r\n" + HEADER + "\r\n"
            "p1,岩手 太郎,陸前高田市,2011/3/12 9:30,male,n1,believed_alive,避難所で確認,市職員\r\n"
            "p1,,陸前高田市,2011-03-12 10:00,,,information_sought,探しています,家族\r\n")
    for data in (codecs.BOM_UTF8 + body.encode("utf-8"), body.encode("cp932")):
        doc = parse_pfif(data, "jp.csv")
        p = doc.persons[0]
        assert p.person_record_id == f"{csv_domain('陸前高田市', 'jp.csv')}/p1" and p.full_name == "岩手 太郎"
        assert p.source_date == datetime(2011, 3, 12, 0, 30, tzinfo=UTC)  # 9:30 JST
        assert [(n.note_record_id.split("/")[1], n.status, n.text) for n in p.notes] == [("n1", "believed_alive", "避難所で確認")]
        assert len(doc.notes) == 1 and doc.notes[0].status == "information_sought"
    # a note row without an id gets one from its content: the same file gives the same id again
    a = parse_pfif(body.encode("utf-8"), "jp.csv").notes[0].note_record_id
    assert a == parse_pfif(body.encode("utf-8"), "renamed.csv").notes[0].note_record_id


def test_csv_domain_can_be_given_and_ids_with_a_domain_stay() -> None:
    data = (HEADER + "\n1,A B,src,2013-02-14T00:00:00Z,,,,,\nother.org/2,C D,src,2013-02-14T00:00:00Z,,,,,\n").encode()
    doc = parse_pfif_csv(data, "x.csv", domain="pf.example.jp")
    assert [p.person_record_id for p in doc.persons] == ["pf.example.jp/1", "other.org/2"]


@pytest.mark.parametrize("rows, line, fld, words", [
    ("1,A,s,2013-02-14T00:00:00Z,female,n,missing,t,a", 2, "note/status", "is not one of"),
    ("1,A,s,14 Feb 2013,,,,,", 2, "person/source_date", "is not a time"),
    ("1,A,s,,,,,,\n1,B,s,,,,,,", 3, "person_record_id", "repeats line 2"),
    (",,s,,,,,,", 2, "full_name", "neither a name"),
    ('1,"A,s,,,,,,', 2, "", "malformed"),
])
def test_csv_problems_name_line_and_column(rows: str, line: int, fld: str, words: str) -> None:
    data = (HEADER + "\n" + rows + "\n").encode()
    with pytest.raises(PfifError) as err:
        parse_pfif(data, "bad.csv")
    p = err.value.problems[0]
    assert (p.file, p.line, p.field) == ("bad.csv", line, fld), str(err.value)
    assert words in p.message


def test_csv_without_a_person_finder_header_is_refused() -> None:
    with pytest.raises(PfifError, match="no header row with person_record_id"):
        parse_pfif("受付番号,氏名\n1,岩手 太郎\n".encode(), "meibo.csv")
    with pytest.raises(PfifError, match="neither UTF-8 nor CP932"):
        parse_pfif(HEADER.encode() + b"\n1,\x82\xff,x,,,,,,\n", "broken.csv")


def test_times_are_written_to_the_second_in_utc() -> None:
    jst = timezone(timedelta(hours=9))
    p = PfifPerson("a.org/1", source_date=datetime(2026, 11, 3, 9, 0, 0, tzinfo=jst), full_name="x")
    assert b"<pfif:source_date>2026-11-03T00:00:00Z</pfif:source_date>" in write_pfif([p])
