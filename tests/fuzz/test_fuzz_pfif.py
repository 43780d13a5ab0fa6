"""Fuzzing PFIF input (app/formats/pfif.py, app/services/pfif.py): Person Finder XML and CSV.

PFIF files come from outside the municipality. Random bytes, damaged copies of Person Finder's own
sample files, generated PFIF XML with random fields and values, and hostile XML (entities, DTDs)
must all end in our PfifError (a FileFormatError naming file, line and field); a refused import
stores nothing.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.db import open_shelter_db
from app.formats.errors import FileFormatError
from app.formats.pfif import NOTE_FIELDS, NOTE_STATUSES, PERSON_FIELDS, parse_pfif, write_pfif
from app.services.errors import AnpiError
from tests.fuzz.strategies import TEXT, db_fingerprint, fuzz_settings, mutated

SAMPLES_DIR = Path(__file__).resolve().parents[3] / "shared" / "pfif"
SAMPLES = sorted(SAMPLES_DIR.glob("*.xml")) + sorted(SAMPLES_DIR.glob("*.csv")) if SAMPLES_DIR.is_dir() else []
SAMPLE_BYTES = [p.read_bytes() for p in SAMPLES] or [
    b'<?xml version="1.0" encoding="UTF-8"?>\n<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4"><pfif:person>'
    b"<pfif:person_record_id>example.org/p1</pfif:person_record_id><pfif:source_date>2011-03-12T00:00:00Z"
    b"</pfif:source_date><pfif:full_name>Taro</pfif:full_name></pfif:person></pfif:pfif>\n"]
TABLES = ("soughtperson", "soughtnote", "soughtlink")
NS = ["http://zesty.ca/pfif/1.4", "http://zesty.ca/pfif/1.3", "http://zesty.ca/pfif/1.2", "http://zesty.ca/pfif/1.1",
      "http://example.org/other"]
HOSTILE = [
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4">&b;</pfif:pfif>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4"><pfif:person><pfif:full_name>&x;</pfif:full_name></pfif:person></pfif:pfif>',
    b'<?xml version="1.0" encoding="UTF-16"?><pfif/>',
    b"\xff\xfe<\x00p\x00f\x00i\x00f\x00/\x00>\x00",
    b'<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4">' + b"<pfif:person>" * 5000,
]
_names = itertools.count()




def check_parse(data: bytes) -> None:
    try:
        doc = parse_pfif(data, "peer.xml", csv_domain="csv.example.org")
    except FileFormatError as exc:
        assert exc.problems and str(exc)
    else:  # what we accepted we can write back out
        assert write_pfif(doc).startswith(b"<?xml")


@st.composite
def pfif_xml(draw: st.DrawFn) -> bytes:
    ns = draw(st.sampled_from(NS))
    value = st.one_of(TEXT, st.sampled_from(["example.org/p1", "2011-03-11T14:46:00Z", "2011-03-11", "female", "male",
                                             "true", "false", *NOTE_STATUSES, "", "1970-01", "35-45", "not a date"]))

    def fields(names: tuple[str, ...]) -> str:
        chosen = draw(st.lists(st.sampled_from(names + ("unknown_field",)), max_size=8))
        return "".join(f"<pfif:{f}>{escape(draw(value))}</pfif:{f}>" for f in chosen)

    body = []
    for _ in range(draw(st.integers(0, 3))):
        notes = "".join(f"<pfif:note>{fields(NOTE_FIELDS)}</pfif:note>" for _ in range(draw(st.integers(0, 2))))
        body.append(f"<pfif:person>{fields(PERSON_FIELDS)}{notes}</pfif:person>")
    for _ in range(draw(st.integers(0, 2))):
        body.append(f"<pfif:note>{fields(NOTE_FIELDS)}</pfif:note>")
    doc = f'<?xml version="1.0" encoding="UTF-8"?>\n<pfif:pfif xmlns:pfif="{ns}">{"".join(body)}</pfif:pfif>\n'
    return doc.encode("utf-8", errors="replace")


@fuzz_settings(150)
@given(data=st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    check_parse(data)


@fuzz_settings(150)
@given(data=st.sampled_from(SAMPLE_BYTES).flatmap(mutated))
def test_damaged_person_finder_files(data: bytes) -> None:
    check_parse(data)


@fuzz_settings(150)
@given(data=pfif_xml())
def test_generated_pfif_xml(data: bytes) -> None:
    check_parse(data)


@pytest.mark.parametrize("data", HOSTILE, ids=["entity-expansion", "external-entity", "utf16-decl",
                                               "utf16-bom", "unclosed-5000"])
def test_hostile_xml_is_refused(data: bytes) -> None:
    with pytest.raises(FileFormatError):
        parse_pfif(data, "hostile.xml")


def test_unknown_xml_encoding_is_a_clean_error() -> None:
    with pytest.raises(FileFormatError):
        parse_pfif(b'<?xml version="1.0" encoding="klingon"?><pfif/>', "hostile.xml")


@pytest.fixture(scope="module")
def shelter_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("pfif-fuzz")
    engine = open_shelter_db(d / "shelter.db")
    yield d, engine
    engine.dispose()


@fuzz_settings(60)
@given(data=st.one_of(st.sampled_from(SAMPLE_BYTES).flatmap(lambda b: mutated(b, 3)), pfif_xml()))
def test_import_is_all_or_nothing(shelter_db: tuple[Path, object], data: bytes) -> None:
    from sqlmodel import Session

    from app.services.pfif import import_pfif

    d, engine = shelter_db
    p = d / f"peer-{next(_names)}.xml"
    p.write_bytes(data)
    before = db_fingerprint(d / "shelter.db", TABLES)
    with Session(engine) as s:
        try:
            import_pfif(s, p, by_user="fuzz", link=False)
        except (FileFormatError, AnpiError):
            assert db_fingerprint(d / "shelter.db", TABLES) == before


@pytest.mark.slow
@fuzz_settings(1500)
@given(data=st.one_of(st.sampled_from(SAMPLE_BYTES).flatmap(lambda b: mutated(b, 12)), pfif_xml(), st.binary(max_size=4000)))
def test_pfif_long(data: bytes) -> None:
    check_parse(data)
