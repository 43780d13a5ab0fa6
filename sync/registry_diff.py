"""Line-level difference between two registry files (issue 16: "only the difference when smaller").

Why lines: a registry file is one resident per line; between two backups a few hundred lines change,
move or appear among tens of thousands. The new file is described as a sequence of operations on the
old one — *copy old lines [start, start+count)* or *insert these bytes* — and zstd-compressed. The
laptop rebuilds the new file from the old file it really holds and checks the result against the
SHA-256 the hub signed before importing anything (:func:`sync.client.fetch_registry`).

Format (before compression)::

    b"ANPI-RD1\\n"
    b"C" uint32 start uint32 count      copy old lines
    b"I" uint32 length <length bytes>   insert bytes (whole new lines)

Lines are split with ``bytes.splitlines(keepends=True)``, so joining them gives the exact bytes back
(line endings, a missing final newline, any encoding whose bytes never use 0x0A/0x0D in a character:
UTF-8, Shift_JIS, EUC-JP).
"""
from __future__ import annotations

import struct

import zstandard

MAGIC = b"ANPI-RD1\n"
LEVEL = 19
_OP = struct.Struct(">cII")
_INS = struct.Struct(">cI")


class DiffError(ValueError):
    """The difference cannot be applied to this old file (wrong base, damaged, or too big)."""


def _ops(old: list[bytes], new: list[bytes]) -> list[tuple[int, int] | bytes]:
    """Greedy: for each new line, continue the previous copy when it matches, else jump to the first
    old line with the same bytes and extend as far as both agree; unmatched lines are inserted."""
    first: dict[bytes, int] = {}
    for j, line in enumerate(old):
        first.setdefault(line, j)
    out: list[tuple[int, int] | bytes] = []
    pending: list[bytes] = []
    i, nxt = 0, -1
    while i < len(new):
        j = nxt if 0 <= nxt < len(old) and old[nxt] == new[i] else first.get(new[i], -1)
        if j < 0:
            pending.append(new[i])
            i += 1
            continue
        if pending:
            out.append(b"".join(pending))
            pending = []
        k = 1
        while i + k < len(new) and j + k < len(old) and new[i + k] == old[j + k]:
            k += 1
        if out and isinstance(out[-1], tuple) and out[-1][0] + out[-1][1] == j:
            out[-1] = (out[-1][0], out[-1][1] + k)
        else:
            out.append((j, k))
        i, nxt = i + k, j + k
    if pending:
        out.append(b"".join(pending))
    return out


def make(old: bytes, new: bytes) -> bytes:
    """zstd of the operations that turn ``old`` into ``new``."""
    parts = [MAGIC]
    for op in _ops(old.splitlines(keepends=True), new.splitlines(keepends=True)):
        if isinstance(op, tuple):
            parts.append(_OP.pack(b"C", op[0], op[1]))
        else:
            parts.append(_INS.pack(b"I", len(op)))
            parts.append(op)
    return zstandard.ZstdCompressor(level=LEVEL).compress(b"".join(parts))


def apply(old: bytes, packed: bytes, max_size: int) -> bytes:
    """Rebuild the new file from ``old``; never more than ``max_size`` bytes (no bomb). The caller
    still checks the result's SHA-256: this only guarantees a well-formed rebuild."""
    try:
        body = zstandard.ZstdDecompressor().decompress(packed, max_output_size=max(max_size, 1) * 2 + 1024)
    except zstandard.ZstdError as exc:
        raise DiffError(f"difference cannot be decompressed: {exc}") from None
    if not body.startswith(MAGIC):
        raise DiffError("not a registry difference")
    lines = old.splitlines(keepends=True)
    out: list[bytes] = []
    size, pos = 0, len(MAGIC)
    while pos < len(body):
        tag = body[pos:pos + 1]
        if tag == b"C" and pos + _OP.size <= len(body):
            _, start, count = _OP.unpack_from(body, pos)
            pos += _OP.size
            if start + count > len(lines):
                raise DiffError("difference refers to lines this laptop's old file does not have")
            piece = b"".join(lines[start:start + count])
        elif tag == b"I" and pos + _INS.size <= len(body):
            _, length = _INS.unpack_from(body, pos)
            pos += _INS.size
            piece = body[pos:pos + length]
            if len(piece) != length:
                raise DiffError("difference is cut short")
            pos += length
        else:
            raise DiffError("difference is damaged")
        size += len(piece)
        if size > max_size:
            raise DiffError("difference rebuilds a file larger than the signed size")
        out.append(piece)
    return b"".join(out)
