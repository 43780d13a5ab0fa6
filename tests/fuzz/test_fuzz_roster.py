"""Fuzzing roster files (app/formats/roster_file.py, app/services/roster.py): CSV and .xlsx.

Volunteers' rosters are never refused whole for bad rows, but an unreadable *file* must end in our
FileFormatError (never a traceback from csv, openpyxl, zipfile or XML), and then nothing is stored.
.xlsx files are damaged three ways: bytes of the zip, the XML inside a still-valid zip, and valid
workbooks with random cell values.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from app.db import open_shelter_db
from app.formats.errors import FileFormatError
from app.formats.roster_file import read_roster
from app.services.errors import AlreadyDone
from app.services.roster import RosterResult, import_roster
from tests.fuzz.strategies import TEXT, db_fingerprint, fuzz_settings, integrity, mutated

TABLES = ("evacuee", "rosterimport", "stayevent")
HEADER = ["受付番号", "氏名", "ふりがな", "生年月日", "性別", "住所", "電話番号"]
ROWS = [["1", "髙橋 一郎", "たかはし いちろう", "S45.3.1", "男", "岩手県陸前高田市高田町字館の沖12-3", "090-1111-2222"],
        ["2", "髙橋 京子", "タカハシ キヨウコ", "昭和47年11月3日", "女", "同上", ""],
        ["3", "Nguyen Van An", "", "1990/1/2", "M", "高田町1", ""],
        ["4", "", "ﾔﾏｻﾞｷ ﾊﾅ", "78歳", "", "", ""]]
_names = itertools.count()


def csv_bytes(rows: list[list[str]], encoding: str) -> bytes:
    return ("\r\n".join(",".join(r) for r in rows) + "\r\n").encode(encoding, errors="replace")


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


VALID_CSV = [csv_bytes([HEADER, *ROWS], "utf-8"), csv_bytes([HEADER, *ROWS], "cp932"),
             b"\xef\xbb\xbf" + csv_bytes([HEADER, *ROWS], "utf-8")]
VALID_XLSX = xlsx_bytes([HEADER, *ROWS, [5, "山田 太郎", None, dt.datetime(1970, 3, 1), 1, 3.0, 9012345678]])
XLSX_MEMBERS = sorted(zipfile.ZipFile(io.BytesIO(VALID_XLSX)).namelist())


def consume(path: Path) -> int:
    _header, rows = read_roster(path)
    return sum(1 for _ in rows)


def check_read(path: Path) -> None:
    try:
        consume(path)
    except FileFormatError as exc:
        assert exc.problems and str(exc)


@pytest.fixture(scope="module")
def shelter_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("roster-fuzz")
    engine = open_shelter_db(d / "shelter.db")
    first = d / "first.csv"
    first.write_bytes(VALID_CSV[0])
    import_roster(engine, first, shelter_code="FUZZ-01", rejects_out=d / "first.rejects.csv")
    yield d, engine
    engine.dispose()


def check_import(shelter_db: tuple[Path, object], data: bytes, suffix: str) -> None:
    d, engine = shelter_db
    p = d / f"meibo-{next(_names)}{suffix}"
    p.write_bytes(data)
    before = db_fingerprint(d / "shelter.db", TABLES)
    try:
        res = import_roster(engine, p, shelter_code="FUZZ-01", rejects_out=d / "rejects.csv")
    except (FileFormatError, AlreadyDone) as exc:
        if isinstance(exc, FileFormatError):
            assert exc.problems and exc.problems[0].file == p.name
        assert db_fingerprint(d / "shelter.db", TABLES) == before
    else:
        assert isinstance(res, RosterResult)
        after = db_fingerprint(d / "shelter.db", TABLES)
        assert after[0][1] == before[0][1] + res.accepted  # every accepted row stored once
        assert after[1][1] == before[1][1] + 1


# --- CSV ------------------------------------------------------------------------------------------

@fuzz_settings(150)
@given(data=st.binary(max_size=2000))
def test_csv_random_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("c") / "meibo.csv"
    p.write_bytes(data)
    check_read(p)


@fuzz_settings(120)
@given(header=st.lists(st.one_of(st.sampled_from(HEADER), TEXT), max_size=10),
       rows=st.lists(st.lists(TEXT, max_size=10), max_size=6), encoding=st.sampled_from(["cp932", "utf-8"]))
def test_csv_random_text_import(shelter_db: tuple[Path, object], header: list[str], rows: list[list[str]],
                                encoding: str) -> None:
    check_import(shelter_db, csv_bytes([header, *rows], encoding), ".csv")


@fuzz_settings(120)
@given(data=st.sampled_from(VALID_CSV).flatmap(mutated))
def test_csv_damaged_import(shelter_db: tuple[Path, object], data: bytes) -> None:
    check_import(shelter_db, data, ".csv")


# --- xlsx -----------------------------------------------------------------------------------------

@fuzz_settings(120)
@given(data=mutated(VALID_XLSX, 4))
def test_xlsx_damaged_zip_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("x") / "meibo.xlsx"
    p.write_bytes(data)
    check_read(p)


@st.composite
def xlsx_with_damaged_member(draw: st.DrawFn) -> bytes:
    """A well-formed zip whose workbook XML (one member) is damaged: reaches openpyxl's parsers."""
    member = draw(st.sampled_from(XLSX_MEMBERS))
    src = zipfile.ZipFile(io.BytesIO(VALID_XLSX))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            content = src.read(name)
            if name == member:
                content = draw(st.one_of(mutated(content, 8), st.binary(max_size=300)))
            z.writestr(name, content)
        if draw(st.booleans()):  # sometimes a member goes missing instead
            pass
    data = out.getvalue()
    if draw(st.integers(0, 9)) == 0:
        missing = draw(st.sampled_from(XLSX_MEMBERS))
        out2 = io.BytesIO()
        with zipfile.ZipFile(out2, "w") as z:
            for name in src.namelist():
                if name != missing:
                    z.writestr(name, src.read(name))
        data = out2.getvalue()
    return data


@fuzz_settings(200)
@given(data=xlsx_with_damaged_member())
def test_xlsx_damaged_xml(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("x") / "meibo.xlsx"
    p.write_bytes(data)
    check_read(p)


CELL = st.one_of(
    st.none(), TEXT.map(lambda t: ILLEGAL_CHARACTERS_RE.sub("", t)),
    st.integers(-10**15, 10**15), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
    st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(2100, 1, 1)),
    st.dates(min_value=dt.date(1900, 3, 1), max_value=dt.date(2100, 1, 1)),
    st.sampled_from(["=1/0", "=A1", "#N/A", "同上", "〃"]),
)


@fuzz_settings(80)
@given(header=st.lists(st.one_of(st.sampled_from(HEADER), CELL), min_size=1, max_size=9),
       rows=st.lists(st.lists(CELL, max_size=9), max_size=6))
def test_xlsx_random_cells_import(shelter_db: tuple[Path, object], header: list[object], rows: list[list[object]]) -> None:
    check_import(shelter_db, xlsx_bytes([header, *rows]), ".xlsx")


def test_database_intact_after_the_fuzzing(shelter_db: tuple[Path, object]) -> None:
    assert integrity(shelter_db[0] / "shelter.db") == "ok"


@pytest.mark.slow
@fuzz_settings(1000)
@given(data=st.one_of(xlsx_with_damaged_member(), mutated(VALID_XLSX, 12)))
def test_xlsx_damaged_long(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("x") / "meibo.xlsx"
    p.write_bytes(data)
    check_read(p)


