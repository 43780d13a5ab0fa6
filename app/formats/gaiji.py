"""Gaiji map files: `code,char` rows such as `U+E000,𠮷` (ARCHITECTURE.md §3).

Municipal registries hold characters that exist only in the vendor's private-use area; the map
tells which standard character each one stands for.
"""

from __future__ import annotations

import csv
from pathlib import Path

from app.formats.encodings import decoded_lines, resolve_encoding
from app.formats.errors import FileFormatError, RowProblem


def _parse_code(text: str) -> str | None:
    t = text.strip().upper()
    if t.startswith("U+"):
        t = t[2:]
    elif t.startswith("0X"):
        t = t[2:]
    try:
        cp = int(t, 16)
    except ValueError:
        return None
    if not (0xE000 <= cp <= 0xF8FF or 0xF0000 <= cp <= 0x10FFFD):
        return None
    return chr(cp)


def read_gaiji_map(path: Path, encoding: str = "auto") -> dict[str, str]:
    """Private-use character -> standard text. Every bad row is reported; nothing half-read."""
    name = path.name
    if not path.is_file():
        raise FileFormatError([RowProblem(name, 0, "", "gaiji map not found", "外字表が見つかりません")])
    enc = resolve_encoding(path, encoding)
    mapping: dict[str, str] = {}
    problems: list[RowProblem] = []
    with path.open("rb") as stream:
        for line_no, text in decoded_lines(stream, enc, name):
            try:
                cells = next(csv.reader([text]), [])
            except csv.Error as exc:  # a stray CR or NUL inside the line
                problems.append(RowProblem(name, line_no, "", f"CSV error: {exc}", "CSVの形式が正しくありません"))
                continue
            if not cells or not "".join(cells).strip():
                continue
            if line_no == 1 and cells[0].strip().lower() in ("code", "コード"):
                continue
            if len(cells) < 2 or not cells[1].strip():
                problems.append(RowProblem(name, line_no, "char", "expected `code,char`", "「コード,文字」の形で書いてください"))
                continue
            ch = _parse_code(cells[0])
            if ch is None:
                problems.append(RowProblem(name, line_no, "code", f"{cells[0]!r} is not a private-use code point (U+E000–U+F8FF)",
                                           "外字のコード(U+E000〜U+F8FF)ではありません", cells[0]))
                continue
            mapping[ch] = cells[1].strip()
    if problems:
        raise FileFormatError(problems)
    return mapping
