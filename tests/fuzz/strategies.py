"""Hypothesis strategies shared by the fuzz tests: random bytes, awkward Japanese text, and
mutations of a valid file (bit flips, cuts, insertions of the bytes that break CSV, encodings
and zips).

Each test is bounded (`fuzz_settings`) and derandomized, so CI is repeatable; set
ANPI_FUZZ_EXAMPLES=N to run N examples per test locally for a longer hunt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from app.db_crypto import connect as db_connect


def fuzz_settings(examples: int, **kw: Any) -> settings:
    n = int(os.environ.get("ANPI_FUZZ_EXAMPLES", "0") or 0) or examples
    return settings(max_examples=n, deadline=None, derandomize=not os.environ.get("ANPI_FUZZ_EXAMPLES"),
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                          HealthCheck.function_scoped_fixture], **kw)


# Characters that have broken Japanese CSV readers before: old-form kanji, gaiji (private use),
# half-width kana, full-width spaces and digits, wave dash / minus confusions, BOMs, NUL, quotes,
# separators, line breaks of every kind, combining marks and surrogate-pair characters.
AWKWARD = list("髙﨑邉𠮷〓ｱｶﾞﾟ　１２３～〜－−―‐ー①Ⅱ㈱") + ["\ue000", "\uf8ff", "\ufeff", "\x00", '"', ",", "\t",
                                                               "\r", "\n", "\u2028", "\x85", "\u3099", "\U00020b9f"]
TEXT = st.text(alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters(codec="utf-8")), max_size=200)

# Bytes that matter to our readers: CSV syntax, BOM, CP932 lead bytes and its user-defined area,
# lone UTF-8 continuation bytes, EUC-JP SS2/SS3, zip signatures.
SPECIAL_BYTES = [b'"', b",", b"\r\n", b"\n", b"\r", b"\x00", b"\xef\xbb\xbf", b"\x81", b"\x82\xa0", b"\xf0\x40",
                 b"\x80", b"\xff", b"\x8e", b"\x8f", b"PK\x03\x04", b'""', b'"\n"', b"\xe3\x81"]


def cp932_or_utf8(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_mutations: int = 6) -> bytes:
    """`data` after a few random edits (never the identity for long)."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(["flip", "byte", "delete", "insert", "special", "truncate", "dup"]))
        n = len(buf)
        at = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip" and n:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and n:
            buf[at] = draw(st.integers(0, 255))
        elif kind == "delete" and n:
            del buf[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "special":
            buf[at:at] = draw(st.sampled_from(SPECIAL_BYTES))
        elif kind == "truncate":
            del buf[at:]
        elif kind == "dup" and n:
            end = min(n, at + draw(st.integers(1, 200)))
            buf[at:at] = buf[at:end]
    return bytes(buf)


def db_fingerprint(path: Path, tables: tuple[str, ...]) -> tuple[Any, ...]:
    """Row counts and the highest rowid of each table: what a refused import must leave alone."""
    con = db_connect(path)
    try:
        return tuple((t, *con.execute(f"SELECT count(*), max(rowid) FROM {t}").fetchone()) for t in tables)
    finally:
        con.close()


def integrity(path: Path) -> str:
    con = db_connect(path)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
