"""Registry pulls over a slow link (issue 16): compressed, sealed once, sent in hashed chunks.

Why: a town's registry backup was sent raw, boxed and base64-encoded in one JSON answer (~8 MB for
a 60 k town): 17 minutes at 64 kbit/s, lost whole when the satellite call drops. Here the file is
compressed (zstandard) before it is sealed, sealed to the device with a nonce derived from the
snapshot and the device (so every chunk request sees the same ciphertext and a pull resumes where
it stopped), and served in :data:`CHUNK` pieces whose SHA-256 are listed in the package.

The manifest is the one :func:`sync.hub.registry.device_package` signs (SHA-256 and size of the
*uncompressed* file), so the laptop checks exactly what it checked before.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Any, Mapping

import zstandard
from sqlalchemy.engine import Engine

from sync import crypto
from sync.errors import RegistryError
from sync.hub import registry
from sync.hub.store import HubIdentity

CHUNK = 64 * 1024
#: zstd level by file size: 19 saves ~18 % more than 12 on a registry CSV but costs ~3 s per MB of CPU,
#: so a city's file (~150 MB for 1 M residents) is compressed at 12 (once per snapshot, then cached)
LEVEL_SMALL, LEVEL_LARGE, LARGE = 19, 12, 32 * 1024 * 1024
_cache: dict[tuple[str, str], bytes] = {}  # (snapshot, device or "") → sealed blob / compressed file
_cache_lock = threading.Lock()
_CACHE_MAX = 6


def _nonce(identity: HubIdentity, snapshot_id: str, device_id: str) -> bytes:
    """Deterministic per (hub, snapshot, device): the same plaintext always seals to the same bytes."""
    seed = identity.box_key.encode() + f"anpi-registry-nonce|{snapshot_id}|{device_id}".encode()
    return hashlib.sha256(seed).digest()[:24]


def _cached(ck: tuple[str, str], make: Any) -> bytes:
    with _cache_lock:
        if ck in _cache:
            return _cache[ck]
    value = make()
    with _cache_lock:
        while len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[ck] = value
    return value


def sealed_blob(engine: Engine, identity: HubIdentity, key: registry.DataKey, device: Mapping[str, Any],
                snapshot_id: str) -> bytes:
    """zstd(file) boxed to the device: compressed once per snapshot, sealed once per device."""
    def packed() -> bytes:
        data = registry.open_file(engine, key, device["municipality_code"], snapshot_id)
        level = LEVEL_SMALL if len(data) < LARGE else LEVEL_LARGE
        return zstandard.ZstdCompressor(level=level).compress(data)

    def sealed() -> bytes:
        box = crypto.hub_box(identity.box_key, device["public_key"])
        return bytes(box.encrypt(_cached((snapshot_id, ""), packed), _nonce(identity, snapshot_id, device_id)))

    device_id = str(device["device_id"])
    return _cached((snapshot_id, device_id), sealed)


def chunked_package(engine: Engine, identity: HubIdentity, key: registry.DataKey, device: Mapping[str, Any],
                    have: str | None = None) -> dict[str, Any]:
    """The signed manifest (audited, as before) and the blob's description instead of the file."""
    pkg = registry.device_package(engine, identity, key, device, have, send_file=False)
    if pkg.get("unchanged"):
        return {k: v for k, v in pkg.items() if k != "unchanged"}
    blob = sealed_blob(engine, identity, key, device, pkg["manifest"]["snapshot_id"])
    chunks = [hashlib.sha256(blob[i:i + CHUNK]).hexdigest() for i in range(0, len(blob), CHUNK)]
    return {**pkg, "file": None, "blob": {"encoding": "zstd", "size": len(blob),
                                          "sha256": hashlib.sha256(blob).hexdigest(), "chunk_size": CHUNK,
                                          "chunks": chunks}}


def chunk(engine: Engine, identity: HubIdentity, key: registry.DataKey, device: Mapping[str, Any],
          snapshot_id: str, index: int) -> bytes:
    """Chunk ``index`` of the device's sealed blob of ``snapshot_id`` (its own municipality's only)."""
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, device["municipality_code"])
    if snap is None or snap.snapshot_id != snapshot_id:
        raise RegistryError("that snapshot is not this laptop's newest registry; pull again")
    blob = sealed_blob(engine, identity, key, device, snapshot_id)
    if not 0 <= index * CHUNK < len(blob):
        raise RegistryError("no such chunk")
    return blob[index * CHUNK:(index + 1) * CHUNK]
