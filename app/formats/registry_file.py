"""Reading a registry snapshot file (住民基本台帳 backup) into plain rows.

This layer only decodes bytes, maps columns through a profile and checks the shape of each
row. What the values mean (dates, sex, keys) is decided by `app.services.registry`, which
calls `matching/`.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.formats.encodings import decoded_lines, resolve_encoding
from app.formats.errors import FileFormatError, RowProblem
from app.formats.profile import Profile, load_profile

SPACES = (" ", "\u3000")


@dataclass(slots=True)
class RegistryRow:
    line: int
    cells: list[str]
    raw: str  # the record's text exactly as in the file (decoded), every column included
    columns: dict[str, list[int]]  # profile field -> column indexes (shared by all rows)

    @property
    def fields(self) -> dict[str, str]:
        """Profile field -> text (stripped); computed on demand, it is the costly part."""
        return fields_of(self.cells, self.columns)


def _header_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().lower()


def guess_profile(header: list[str]) -> str:
    keys = {_header_key(h) for h in header}
    if "氏名" in keys and "氏" not in keys and "family_name" not in keys:
        return "kihon"
    return "anpi"


def split_full(text: str) -> tuple[str, str]:
    """氏名 as '山田　太郎' (full-width space in the national spec; accept any space)."""
    text = text.strip()
    for i, ch in enumerate(text):
        if ch in SPACES:
            return text[:i].strip(), text[i + 1 :].strip()
    return text, ""


class RegistryReader:
    """Iterate over the rows of one registry file. Raises FileFormatError on the first bad shape."""

    def __init__(self, path: Path, profile: str = "auto", encoding: str = "auto") -> None:
        self.path = path
        self.name = path.name
        if not path.is_file():
            raise FileFormatError([RowProblem(self.name, 0, "", "file not found", "ファイルが見つかりません")])
        self.encoding = resolve_encoding(path, encoding)
        self._profile_arg = profile
        self.profile: Profile | None = None
        self.header: list[str] = []
        self.columns: dict[str, list[int]] = {}

    def read_header(self) -> int:
        """Read the header line, choose the profile, map the columns; return the byte offset
        where the data rows start."""
        with self.path.open("rb") as stream:
            first = stream.readline()
            offset = stream.tell()
        if not first.strip(b"\r\n\xef\xbb\xbf \t"):
            raise FileFormatError([RowProblem(self.name, 1, "", "file is empty (no header row)", "ファイルが空です")])
        text = next(decoded_lines(iter([first]), self.encoding, self.name))[1]  # type: ignore[arg-type]
        try:
            header = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            raise FileFormatError([RowProblem(self.name, 1, "", "CSV error in the header row", "CSVの形式が正しくありません")]) from None
        header = [h.strip() for h in header]
        self.header = header
        profile_name = guess_profile(header) if self._profile_arg == "auto" else self._profile_arg
        self.profile = load_profile(profile_name)
        self.columns = self._map_columns(header, self.profile)
        return offset

    def rows(self, bad_shape: Callable[[RowProblem], None] | None = None) -> Iterator[RegistryRow]:
        """Every data row of the file, in order."""
        start = self.read_header()
        yield from self.rows_between(start, None, 2, bad_shape)

    def rows_between(self, start: int, end: int | None, first_line: int,
                     bad_shape: Callable[[RowProblem], None] | None = None) -> Iterator[RegistryRow]:
        """The data rows in bytes [start, end) of the file (end None: to the end), whose first
        physical line is line `first_line`. `read_header` must have been called. The range must
        begin and end at a record boundary. A row with the wrong number of columns refuses the
        file, unless `bad_shape` is given: then it is handed the problem and the row is skipped
        (`--quarantine-bad-rows`)."""
        columns = self.columns
        width = len(self.header)
        with self.path.open("rb") as stream:
            stream.seek(start)
            source: BinaryIO = stream if end is None else io.BytesIO(stream.read(end - start))
            lines = decoded_lines(source, self.encoding, self.name, start_line=first_line)
            counted = _LineCounter(lines, first_line - 1)
            reader = csv.reader(counted)
            at = first_line
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise FileFormatError([RowProblem(self.name, at, "", f"CSV error: {exc}", "CSVの形式が正しくありません")]) from None
                line = at
                at = counted.line_no + 1
                raw = counted.take()
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line
                if len(cells) != width:
                    problem = RowProblem(self.name, line, "", f"row has {len(cells)} columns, header has {width}",
                                         f"列の数が見出し({width}列)と合いません({len(cells)}列)", raw)
                    if bad_shape is None:
                        raise FileFormatError([problem])
                    bad_shape(problem)
                    continue
                yield RegistryRow(line, cells, raw, columns)

    def _map_columns(self, header: list[str], profile: Profile) -> dict[str, list[int]]:
        index = {}
        for i, h in enumerate(header):
            index.setdefault(_header_key(h), i)
        columns: dict[str, list[int]] = {}
        for fld, aliases in profile.fields.items():
            for alias in aliases:
                if _header_key(alias) in index:
                    columns[fld] = [index[_header_key(alias)]]
                    break
        for fld, parts in profile.join.items():
            found = [index[_header_key(p)] for p in parts if _header_key(p) in index]
            if found:
                columns[fld] = found
        if "resident_id" not in columns:
            wanted = " / ".join(profile.fields["resident_id"])
            raise FileFormatError([RowProblem(
                self.name, 1, wanted, f"no resident id column ({wanted}) in the header for profile {profile.name!r}",
                f"見出しに宛名番号の列 ({wanted}) がありません")])
        return columns

class _LineCounter:
    """Feeds decoded lines to csv.reader and remembers the physical line number reached."""

    def __init__(self, lines: Iterator[tuple[int, str]], line_no: int = 0) -> None:
        self._lines = lines
        self.line_no = line_no
        self._taken: list[str] = []

    def __iter__(self) -> "_LineCounter":
        return self

    def __next__(self) -> str:
        self.line_no, text = next(self._lines)
        self._taken.append(text)
        return text

    def take(self) -> str:
        """The text of the lines consumed since the last call (one CSV record), line ending removed."""
        text = "".join(self._taken).rstrip("\r\n")
        self._taken.clear()
        return text


def fields_of(cells: list[str], columns: dict[str, list[int]]) -> dict[str, str]:
    # One dict comprehension over single-column fields: this runs once per registry row, a
    # million times per import, and a plain loop with per-field branching cost twice as much.
    out = {fld: cells[idx[0]].strip() for fld, idx in columns.items() if len(idx) == 1}
    if len(out) != len(columns):
        for fld, idx in columns.items():
            if len(idx) > 1:
                out[fld] = "".join(cells[i].strip() for i in idx)
    if "full_name" in out:
        fam, giv = split_full(out.pop("full_name"))
        out.setdefault("family_name", fam)
        out.setdefault("given_name", giv)
    if "full_name_kana" in out:
        fam, giv = split_full(out.pop("full_name_kana"))
        out.setdefault("family_name_kana", fam)
        out.setdefault("given_name_kana", giv)
    return out
