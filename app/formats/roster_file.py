"""Reading evacuee rosters that volunteers typed in Excel or saved as CSV (ARCHITECTURE.md §4).

Unlike the registry, a roster is hand-made: rows are kept even when short or long, and cells
come back exactly as typed. Judging the values is `app.services.roster`'s job.
"""

from __future__ import annotations

import csv
import datetime as dt
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.formats.encodings import decoded_lines, resolve_encoding
from app.formats.errors import FileFormatError, RowProblem

# field -> accepted header names (Japanese, aliases, English). Extra optional columns extend §4.
ROSTER_COLUMNS: dict[str, tuple[str, ...]] = {
    "evacuee_id": ("受付番号", "番号", "evacuee_id"),
    "name": ("氏名", "名前", "name"),
    "name_kana": ("ふりがな", "フリガナ", "カナ", "よみがな", "ヨミガナ", "name_kana"),
    "birth_date": ("生年月日", "birth_date"),
    "sex": ("性別", "sex"),
    "address": ("住所", "address"),
    "phone": ("電話番号", "連絡先", "phone"),
    "household": ("世帯", "世帯番号", "household"),
    "relationship": ("続柄", "relationship"),
    "nationality": ("国籍", "nationality"),
    "identifying_info": ("識別情報", "その他識別情報", "特徴", "identifying_info"),
    # 様式第1号 ⑫ ⑬ ⑭ (ARCHITECTURE.md §4): 同意 / 不同意 / はい / いいえ / 1 / 0 / ○ / ×
    "consent_relatives": ("同意_親族", "同意（親族）", "consent_relatives"),
    "consent_acquaintances": ("同意_知人", "同意（知人）", "consent_acquaintances"),
    "consent_public": ("同意_公表", "同意（公表）", "consent_public"),
}


@dataclass(slots=True)
class RosterRow:
    line: int
    fields: dict[str, str]
    raw: dict[str, str]


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", str(name)).strip().lower()


_ALIASES = {_key(alias): fld for fld, aliases in ROSTER_COLUMNS.items() for alias in aliases}


def _cell_text(value: object) -> str:
    """Excel cells come back typed; show them as a person would have typed them."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_roster(path: Path) -> tuple[list[str], Iterator[RosterRow]]:
    """Header as found, and the rows. Raises FileFormatError only when the file is unreadable."""
    name = path.name
    if not path.is_file():
        raise FileFormatError([RowProblem(name, 0, "", "file not found", "ファイルが見つかりません")])
    rows = _xlsx_rows(path) if path.suffix.lower() in (".xlsx", ".xlsm") else _csv_rows(path)
    try:
        line, header = next(rows)
    except StopIteration:
        raise FileFormatError([RowProblem(name, 1, "", "file is empty (no header row)", "ファイルが空です")]) from None
    header = [h.strip() for h in header]
    mapping: dict[int, str] = {}
    for i, h in enumerate(header):
        fld = _ALIASES.get(_key(h))
        if fld and fld not in mapping.values():
            mapping[i] = fld
    if not {"name", "name_kana"} & set(mapping.values()):
        raise FileFormatError([RowProblem(name, line, "氏名", "no name column (氏名 / 名前 / ふりがな / name)",
                                          "見出しに氏名またはふりがなの列がありません")])

    def gen() -> Iterator[RosterRow]:
        for line_no, cells in rows:
            if not any(c.strip() for c in cells):
                continue
            fields = {fld: (cells[i].strip() if i < len(cells) else "") for i, fld in mapping.items()}
            raw = {header[i] if i < len(header) and header[i] else f"列{i + 1}": c for i, c in enumerate(cells)}
            yield RosterRow(line_no, fields, raw)

    return header, gen()


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    enc = resolve_encoding(path, "auto")

    def lines() -> Iterator[str]:
        with path.open("rb") as stream:
            for _n, text in decoded_lines(stream, enc, path.name):
                yield text

    src = lines()
    counter = {"n": 0}

    def counted() -> Iterator[str]:
        for text in src:
            counter["n"] += 1
            yield text

    reader = csv.reader(counted())
    start = 1
    try:
        for cells in reader:
            yield start, cells
            start = counter["n"] + 1
    except csv.Error as exc:
        raise FileFormatError([RowProblem(path.name, start, "", f"CSV error: {exc}", "CSVの形式が正しくありません")]) from None


def _xlsx_errors() -> tuple[type[BaseException], ...]:
    """What openpyxl lets through on a damaged .xlsx (found by tests/fuzz/test_fuzz_roster.py):
    the zip layer (bad zip, bad deflate stream, cut file), the XML layer (ParseError is a
    SyntaxError) and its own assumptions about the XML it finds (KeyError, TypeError, ...)."""
    import zipfile
    import zlib

    from openpyxl.utils.exceptions import InvalidFileException

    return (InvalidFileException, zipfile.BadZipFile, zlib.error, EOFError, SyntaxError, KeyError, OSError,
            ValueError, TypeError, IndexError, AttributeError)


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    import openpyxl  # imported here: only rosters in Excel need it

    errors = _xlsx_errors()
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except errors as exc:
        raise FileFormatError([RowProblem(path.name, 0, "", f"not a readable .xlsx file ({exc.__class__.__name__})",
                                          "Excelファイル(.xlsx)として読めません")]) from None
    row_no = 0
    rows: Iterator[tuple[object, ...]] | None = None
    try:
        while True:
            try:  # the sheet's XML is parsed lazily, row by row: damage shows up here
                if rows is None:
                    rows = wb.worksheets[0].iter_rows(values_only=True)
                values = next(rows)
            except StopIteration:
                return
            except errors as exc:
                raise FileFormatError([RowProblem(
                    path.name, row_no + 1, "", f"damaged .xlsx: row {row_no + 1} cannot be read ({exc.__class__.__name__})",
                    f"Excelファイルが壊れています ({row_no + 1}行目が読めません)")]) from None
            row_no += 1
            yield row_no, [_cell_text(v) for v in values]
    finally:
        wb.close()
