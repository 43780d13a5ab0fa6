"""Where the audit chain's key comes from — one small function, so the source can change.

Why a key at all: a plain hash chain stops a careless edit, but an insider who deletes rows can
recompute every later hash and `anpi audit verify` says OK. With an HMAC key that is *not in the
database*, a database file alone cannot be rewritten into a chain that verifies.

Why a file beside the database (mode 0600) and not a row in it: a copy of the database (a
backup on a USB stick, a file taken off the laptop) then carries no key. `ANPI_AUDIT_KEY_FILE`
names the file; without it the key lives at `<db>.audit-key`, created on first use.

What survives `anpi backup` / `anpi restore`: the key file is not part of either. Restoring on the
same laptop (the same `--db` path or the same `ANPI_AUDIT_KEY_FILE`) keeps the key, so the
restored chain verifies. On another laptop copy the key file too (kept apart from the backup,
like a passphrase); without it the keyed part of a restored chain cannot be verified and
`anpi audit verify` says so, naming the key id it needs.

A later version derives the key from the admin's passphrase instead: only :func:`audit_key`
changes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from pathlib import Path

from app.config import Settings

_cache: dict[Path, bytes] = {}
_lock = threading.Lock()


def key_file_for(db_path: Path | None) -> Path | None:
    """The key file this database uses: the configured one, else `<db>.audit-key`; None for :memory:."""
    configured = Settings.from_env().audit_key_file
    if configured is not None:
        return configured
    if db_path is None or str(db_path) in ("", ":memory:"):
        return None
    return Path(str(db_path) + ".audit-key")


def _read_or_create(path: Path, create: bool) -> bytes | None:
    if path.is_file():
        data = path.read_bytes().strip()
        return bytes.fromhex(data.decode("ascii")) if data else None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
    return key


def audit_key(db_path: Path | None, *, create: bool = False) -> bytes | None:
    """The HMAC key for the audit chain of the database at `db_path` (None when there is none).

    `create` makes a new random key when the file does not exist yet (the writer does; the
    verifier does not, so verifying never invents a key that cannot fit old entries).
    """
    path = key_file_for(db_path)
    if path is None:
        return None
    path = path.absolute()
    with _lock:
        if path in _cache:
            return _cache[path]
        try:
            key = _read_or_create(path, create)
        except FileExistsError:  # another process created it a moment ago
            key = _read_or_create(path, False)
        except (OSError, ValueError):
            return None
        if key is not None:
            _cache[path] = key
        return key


def key_id(key: bytes) -> str:
    """A public name for a key (written in the chain's marker entries): never enough to forge."""
    return hashlib.sha256(b"anpi-audit-key-id\0" + key).hexdigest()[:16]


def forget_cached_keys() -> None:
    """Tests and `anpi restore` call this when a key file may have changed under a running process."""
    with _lock:
        _cache.clear()
