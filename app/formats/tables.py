"""The one place every CSV and xlsx table is written: a cell someone typed never becomes a formula.

Why: names, addresses, destinations and notes are typed by volunteers, evacuees (self-registration)
and other towns' staff. A value such as ``=HYPERLINK("http://…?"&A2,"詳細")`` or ``+cmd|' /c calc'!A0``
is run by Excel or LibreOffice when an HQ clerk opens the export (CSV/formula injection): it can
send the whole list to an outside host. So every writer of a table goes through this module:

- CSV (`csv_writer`): a text cell that starts with ``=``, ``+``, ``-``, ``@``, TAB or CR gets a
  leading apostrophe, which spreadsheets show as "this is text" (OWASP's advice). Numbers stay
  numbers: ints and floats pass through, and so does text that is just a number (``-3``), so
  counts and scores in numeric columns are not spoiled.
- xlsx (`xlsx_row`): such a cell is written as a string cell (``data_type = "s"``) with Excel's
  quotePrefix style, so the value is kept exactly as typed and is never a formula.

`raw_csv_writer` is for files only our own importers read back (e.g. a gaiji map handed to the
registry importer): those must keep every value byte-for-byte. `tests/app/test_export_formulas.py`
fails when a module writes CSV or xlsx without going through here.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from typing import Any

#: what makes Excel / LibreOffice / Google Sheets read a cell as a formula (or DDE command)
FORMULA_START = frozenset("=+-@\t\r")
#: plain numbers are not formulas: "-3", "+81", "1.5" stay as they are
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
#: a cell (joined with \x1f) that starts like a formula somewhere in a row
_ANY_START = re.compile("(?:^|\x1f)[=+\\-@\t\r]")


def is_risky(value: object) -> bool:
    """True for text a spreadsheet would run as a formula."""
    return (type(value) is str and value[:1] in FORMULA_START  # noqa: E721 - str subclasses too rare to matter
            and not _NUMBER.fullmatch(value))


def safe_text(value: Any) -> Any:
    """`value` as it may stand in a CSV cell: risky text gets a leading apostrophe, the rest is unchanged."""
    return "'" + value if is_risky(value) else value


def safe_row(row: Iterable[Any]) -> list[Any]:
    """One CSV row with every risky text cell neutralised. The hot path of 1M-row exports: one
    regex over the joined row finds the (rare) rows that need a look at each cell."""
    cells = list(row)
    try:
        if not _ANY_START.search("\x1f".join(cells)):
            return cells
    except TypeError:  # numbers in the row: look at each cell
        pass
    return [("'" + c) if (c.__class__ is str and c[:1] in FORMULA_START and not _NUMBER.fullmatch(c)) else c
            for c in cells]


class SafeCsvWriter:
    """`csv.writer` with the same `writerow` / `writerows`, neutralising every row it writes."""

    def __init__(self, fh: Any, **kwargs: Any) -> None:
        self._w = csv.writer(fh, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        w = self._w.writerow
        for row in rows:
            w(safe_row(row))


def csv_writer(fh: Any, **kwargs: Any) -> SafeCsvWriter:
    """The CSV writer for every file a person may open in a spreadsheet."""
    return SafeCsvWriter(fh, **kwargs)


def raw_csv_writer(fh: Any, **kwargs: Any) -> Any:
    """A plain `csv.writer`, only for machine files our own importers read back unchanged."""
    return csv.writer(fh, **kwargs)


def xlsx_cell(ws: Any, value: Any) -> Any:
    """A write-only cell holding `value`; risky text is a string cell with quotePrefix, never a formula."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=value)
    if is_risky(value):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


def xlsx_row(ws: Any, row: Sequence[Any]) -> list[Any]:
    """A row for `ws.append` (write-only sheet): plain values, except risky text as `xlsx_cell`s."""
    return [xlsx_cell(ws, c) if (c.__class__ is str and c[:1] in FORMULA_START and not _NUMBER.fullmatch(c)) else c
            for c in row]


def new_workbook() -> Any:
    """A write-only openpyxl workbook (the one way we create xlsx files; cells go in through `xlsx_row`)."""
    from openpyxl import Workbook

    return Workbook(write_only=True)
