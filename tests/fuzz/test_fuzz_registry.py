"""Fuzzing the registry reader and import (app/formats/registry_file.py, app/services/registry.py).

Whatever the bytes — random, random Japanese text in CP932/UTF-8/EUC-JP, or a valid snapshot
file with a few bytes damaged — the only failure allowed is our FileFormatError (file, line,
field), and a refused import leaves the database exactly as it was.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.db import open_shelter_db
from app.formats.errors import FileFormatError
from app.formats.gaiji import read_gaiji_map
from app.formats.registry_file import RegistryReader
from app.services.errors import AlreadyDone
from app.services.registry import import_registry
from tests.fuzz.strategies import TEXT, db_fingerprint, fuzz_settings, integrity, mutated
from tests.web.helpers import HEADER, REGISTRY

TABLES = ("registrysnapshot", "resident")
KIHON_HEADER = ["宛名番号", "世帯番号", "氏名", "氏名_フリガナ", "性別", "生年月日", "続柄表記", "住所_町字"]
KIHON_ROWS = [["2001", "H9", "佐藤　一郎", "サトウ　イチロウ", "1", "19700301", "世帯主", "高田町"],
              ["2002", "H9", "佐藤　花子", "サトウ　ハナコ", "2", "S47.11.3", "妻", "高田町"]]


def csv_bytes(rows: list[list[str]], encoding: str, *, quoted: bool = False) -> bytes:
    """Rows as a vendor would write them: naively joined, or quoted by the csv module."""
    if quoted:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        text = buf.getvalue()
    else:
        text = "\r\n".join(",".join(r) for r in rows) + "\r\n"
    return text.encode(encoding, errors="replace")


VALID = [csv_bytes([HEADER, *REGISTRY], "utf-8"), csv_bytes([HEADER, *REGISTRY], "cp932"),
         b"\xef\xbb\xbf" + csv_bytes([HEADER, *REGISTRY], "utf-8"), csv_bytes([KIHON_HEADER, *KIHON_ROWS], "cp932")]
_names = itertools.count()


def read_all(path: Path, profile: str, encoding: str) -> int:
    """Every row and every field, as the import reads them."""
    n = 0
    for row in RegistryReader(path, profile=profile, encoding=encoding).rows():
        assert isinstance(row.fields, dict)
        n += 1
    return n


@pytest.fixture(scope="module")
def shelter_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A shelter database that already holds one good snapshot."""
    d = tmp_path_factory.mktemp("registry-fuzz")
    engine = open_shelter_db(d / "shelter.db")
    good = d / "good.csv"
    good.write_bytes(VALID[0])
    import_registry(engine, good, as_of=date(2026, 10, 31))
    yield d, engine
    engine.dispose()


@fuzz_settings(150)
@given(data=st.binary(max_size=2000), profile=st.sampled_from(["auto", "anpi", "kihon"]),
       encoding=st.sampled_from(["auto", "utf-8", "cp932", "euc-jp"]))
def test_reader_random_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes, profile: str, encoding: str) -> None:
    p = tmp_path_factory.mktemp("r") / "juki.csv"
    p.write_bytes(data)
    try:
        read_all(p, profile, encoding)
    except FileFormatError as exc:
        assert exc.problems and str(exc)


@fuzz_settings(150)
@given(header=st.lists(st.one_of(st.sampled_from(HEADER + KIHON_HEADER), TEXT), max_size=14),
       rows=st.lists(st.lists(TEXT, max_size=14), max_size=6),
       encoding=st.sampled_from(["cp932", "utf-8", "euc-jp"]), quoted=st.booleans())
def test_reader_random_text(tmp_path_factory: pytest.TempPathFactory, header: list[str], rows: list[list[str]],
                            encoding: str, quoted: bool) -> None:
    p = tmp_path_factory.mktemp("r") / "juki.csv"
    p.write_bytes(csv_bytes([header, *rows], encoding, quoted=quoted) if header else b"")
    try:
        read_all(p, "auto", "auto")
    except FileFormatError as exc:
        assert exc.problems


@fuzz_settings(120)
@given(data=st.sampled_from(VALID).flatmap(mutated))
def test_import_of_damaged_file_is_all_or_nothing(shelter_db: tuple[Path, object], data: bytes) -> None:
    d, engine = shelter_db
    p = d / f"juki-{next(_names)}.csv"
    p.write_bytes(data)
    before = db_fingerprint(d / "shelter.db", TABLES)
    try:
        res = import_registry(engine, p, as_of=date(2026, 11, 1))
    except FileFormatError as exc:
        assert exc.problems and all(pr.file == p.name for pr in exc.problems), exc.problems
        assert db_fingerprint(d / "shelter.db", TABLES) == before
    except AlreadyDone:
        assert db_fingerprint(d / "shelter.db", TABLES) == before
    else:
        after = db_fingerprint(d / "shelter.db", TABLES)
        assert after[0][1] == before[0][1] + 1 and after[1][1] == before[1][1] + res.snapshot.row_count


def test_database_intact_after_the_fuzzing(shelter_db: tuple[Path, object]) -> None:
    assert integrity(shelter_db[0] / "shelter.db") == "ok"


@fuzz_settings(100)
@given(data=st.one_of(st.binary(max_size=500),
                      mutated(b"code,char\r\nU+E000,\xf0\xa0\xae\xb7\r\nU+E001,\xe9\xab\x99\r\n")))
def test_gaiji_map_random(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("g") / "gaiji.csv"
    p.write_bytes(data)
    try:
        mapping = read_gaiji_map(p)
    except FileFormatError as exc:
        assert exc.problems
    else:
        assert all(0xE000 <= ord(k) <= 0xF8FF or 0xF0000 <= ord(k) for k in mapping)


@pytest.mark.slow
@fuzz_settings(1500)
@given(data=st.sampled_from(VALID).flatmap(lambda b: mutated(b, 20)))
def test_import_of_damaged_file_long(shelter_db: tuple[Path, object], data: bytes) -> None:
    test_import_of_damaged_file_is_all_or_nothing.hypothesis.inner_test(shelter_db, data)  # type: ignore[attr-defined]
