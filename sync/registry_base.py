"""The laptop's sealed copy of the last registry file it pulled: the base a difference is applied to.

Why a copy: the shelter database keeps each resident's decoded line (``resident.raw_line``), not the
file's bytes (encoding, BOM, line endings, quarantined rows), so the old file cannot be rebuilt byte
for byte from it. A registry difference (:mod:`sync.registry_diff`) must apply to bytes the laptop
really has, so after each pull the file is kept next to the database, zstd-compressed and sealed
(XSalsa20-Poly1305) with a key derived from this laptop's device key — which lives only inside the
encrypted database. Never plaintext personal data on disk; a damaged or foreign copy is ignored (the
laptop then pulls the full file).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import zstandard
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from sync import crypto, outbox

SUFFIX = ".registry-base"
_PURPOSE = b"anpi-registry-base-1|"


def path_for(db_path: Path) -> Path:
    """``shelter.db`` → ``shelter.db.registry-base`` (deleted with the database, copied with backups only by hand)."""
    return db_path.with_name(db_path.name + SUFFIX)


def partial_for(db_path: Path) -> Path:
    """``shelter.db`` → ``shelter.db.registry-partial/``: sealed chunks of a pull cut off before its end."""
    return db_path.with_name(db_path.name + ".registry-partial")


def _box(session_factory: Any) -> SecretBox | None:
    with session_factory() as s:
        dev = outbox.get_device(s)
        if dev is None or not dev.signing_key:
            return None
        seed = bytes(crypto.signing_key_from_b64(dev.signing_key))
    return SecretBox(hashlib.sha256(_PURPOSE + seed).digest())


def save(session_factory: Any, path: Path, data: bytes) -> None:
    """Replace the copy atomically (a crash leaves the old copy or the new one, never half)."""
    box = _box(session_factory)
    if box is None:
        return
    sha = hashlib.sha256(data).hexdigest().encode()
    sealed = bytes(box.encrypt(sha + zstandard.ZstdCompressor(level=6).compress(data)))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(sealed)
    os.replace(tmp, path)


def load(session_factory: Any, path: Path) -> tuple[str, bytes] | None:
    """(SHA-256, bytes) of the kept file, or ``None`` when there is none or it cannot be trusted."""
    box = _box(session_factory)
    if box is None or not path.is_file():
        return None
    try:
        body = bytes(box.decrypt(path.read_bytes()))
        sha, data = body[:64].decode(), zstandard.ZstdDecompressor().decompress(body[64:], max_output_size=1 << 31)
    except (CryptoError, zstandard.ZstdError, UnicodeDecodeError, ValueError, OSError):
        return None
    return (sha, data) if hashlib.sha256(data).hexdigest() == sha else None
