"""Reading bytes from vendors' exports: UTF-8 (with or without BOM), CP932, EUC-JP.

Decoding is done line by line (every supported encoding keeps 0x0A unambiguous) so that an
undecodable byte is reported with its line number instead of a bare offset.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.formats.errors import FileFormatError, RowProblem

ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "cp932": "cp932", "shift_jis": "cp932", "sjis": "cp932", "euc-jp": "euc-jp"}


def sniff_encoding(path: Path) -> str:
    """`auto`: a BOM means UTF-8; else UTF-8 if the whole file decodes as UTF-8; else CP932."""
    with path.open("rb") as f:
        head = f.read(3)
        if head == codecs.BOM_UTF8:
            return "utf-8-sig"
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp932"
    return "utf-8"


def resolve_encoding(path: Path, requested: str) -> str:
    requested = requested.lower()
    if requested == "auto":
        return sniff_encoding(path)
    try:
        enc = ENCODINGS[requested]
    except KeyError:
        raise FileFormatError(
            [RowProblem(path.name, 0, "", f"unknown encoding {requested!r} (use auto, utf-8, cp932 or euc-jp)",
                        f"文字コード {requested} は使えません")]
        ) from None
    if enc == "utf-8":
        with path.open("rb") as f:
            if f.read(3) == codecs.BOM_UTF8:
                enc = "utf-8-sig"
    return enc


def decoded_lines(stream: BinaryIO, encoding: str, file_name: str, *,
                  start_line: int = 1) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each physical line; raise on the first undecodable line.

    `start_line` numbers the lines of a stream that starts in the middle of a file (the registry
    import reads a large file in two parts at once).
    """
    first = start_line == 1
    for line_no, raw in enumerate(stream, start=start_line):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise FileFormatError(
                [RowProblem(file_name, line_no, "", f"bytes {raw[exc.start:exc.end]!r} cannot be decoded as {encoding}",
                            f"{encoding} として読めない文字があります")]
            ) from None
        if first and text.startswith("\ufeff"):
            text = text[1:]
        first = False
        yield line_no, text
