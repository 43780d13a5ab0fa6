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

from sync import crypto, registry_diff
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
#: a difference is sent only when it is at most this share of the compressed file: a rebuild that saves
#: a few bytes is not worth the risk of a second, full transfer after a failed rebuild
DIFF_MAX_RATIO = 0.9


def _nonce(identity: HubIdentity, snapshot_id: str, device_id: str, base: str = "") -> bytes:
    """Deterministic per (hub, snapshot, device, base): the same plaintext always seals to the same bytes."""
    tail = f"|diff|{base}" if base else ""
    seed = identity.box_key.encode() + f"anpi-registry-nonce|{snapshot_id}|{device_id}{tail}".encode()
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
    def sealed() -> bytes:
        box = crypto.hub_box(identity.box_key, device["public_key"])
        packed = _packed_full(engine, key, device["municipality_code"], snapshot_id)
        return bytes(box.encrypt(packed, _nonce(identity, snapshot_id, device_id)))

    device_id = str(device["device_id"])
    return _cached((snapshot_id, device_id), sealed)


def _packed_full(engine: Engine, key: registry.DataKey, m: str, snapshot_id: str) -> bytes:
    def packed() -> bytes:
        data = registry.open_file(engine, key, m, snapshot_id)
        level = LEVEL_SMALL if len(data) < LARGE else LEVEL_LARGE
        return zstandard.ZstdCompressor(level=level).compress(data)

    return _cached((snapshot_id, ""), packed)


def _packed_diff(engine: Engine, key: registry.DataKey, m: str, snapshot_id: str, base_id: str) -> bytes:
    def packed() -> bytes:
        return registry_diff.make(registry.open_file(engine, key, m, base_id),
                                  registry.open_file(engine, key, m, snapshot_id))

    return _cached((snapshot_id, f"diff:{base_id}"), packed)


def sealed_diff(engine: Engine, identity: HubIdentity, key: registry.DataKey, device: Mapping[str, Any],
                snapshot_id: str, base_id: str) -> bytes:
    """The difference from snapshot ``base_id`` to ``snapshot_id``, boxed to the device like the full file."""
    device_id = str(device["device_id"])

    def sealed() -> bytes:
        box = crypto.hub_box(identity.box_key, device["public_key"])
        packed = _packed_diff(engine, key, device["municipality_code"], snapshot_id, base_id)
        return bytes(box.encrypt(packed, _nonce(identity, snapshot_id, device_id, base_id)))

    return _cached((snapshot_id, f"{device_id}:diff:{base_id}"), sealed)


def _base_id(engine: Engine, m: str, snapshot_id: str, base: str | None) -> str | None:
    """The stored snapshot the laptop says it holds the bytes of, if the hub has it (and it is not the newest)."""
    if not base:
        return None
    with engine.connect() as conn:
        snap = registry.snapshot_with_sha(conn, m, base)
    return snap.snapshot_id if snap is not None and snap.snapshot_id != snapshot_id else None


def _describe(blob: bytes, encoding: str, **extra: Any) -> dict[str, Any]:
    chunks = [hashlib.sha256(blob[i:i + CHUNK]).hexdigest() for i in range(0, len(blob), CHUNK)]
    return {"encoding": encoding, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
            "chunk_size": CHUNK, "chunks": chunks, **extra}


def chunked_package(engine: Engine, identity: HubIdentity, key: registry.DataKey, device: Mapping[str, Any],
                    have: str | None = None, base: str | None = None) -> dict[str, Any]:
    """The signed manifest (audited, as before) and the blob's description instead of the file.

    ``base``: the SHA-256 of an older file the laptop holds byte for byte. When the hub stores that
    snapshot too and the compressed difference is smaller than the compressed file (by 10 %), the blob is the
    difference (``encoding: "zstd-linediff"``, ``base``), fetched with ``&base=`` on each chunk.
    """
    pkg = registry.device_package(engine, identity, key, device, have, send_file=False)
    if pkg.get("unchanged"):
        return {k: v for k, v in pkg.items() if k != "unchanged"}
    m, sid = device["municipality_code"], pkg["manifest"]["snapshot_id"]
    base_id = _base_id(engine, m, sid, base)
    if base_id is not None and (len(_packed_diff(engine, key, m, sid, base_id))
                                < DIFF_MAX_RATIO * len(_packed_full(engine, key, m, sid))):
        blob = sealed_diff(engine, identity, key, device, sid, base_id)
        return {**pkg, "file": None, "blob": _describe(blob, "zstd-linediff", base=base)}
    blob = sealed_blob(engine, identity, key, device, sid)
    return {**pkg, "file": None, "blob": _describe(blob, "zstd")}


def chunk(engine: Engine, identity: HubIdentity, key: registry.DataKey, device: Mapping[str, Any],
          snapshot_id: str, index: int, base: str | None = None) -> bytes:
    """Chunk ``index`` of the device's sealed blob of ``snapshot_id`` (its own municipality's only);
    with ``base``, of the sealed difference from that older snapshot."""
    m = device["municipality_code"]
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, m)
    if snap is None or snap.snapshot_id != snapshot_id:
        raise RegistryError("that snapshot is not this laptop's newest registry; pull again")
    base_id = _base_id(engine, m, snapshot_id, base)
    if base and base_id is None:
        raise RegistryError("the hub holds no such older snapshot; pull the full file")
    blob = (sealed_diff(engine, identity, key, device, snapshot_id, base_id) if base_id is not None
            else sealed_blob(engine, identity, key, device, snapshot_id))
    if not 0 <= index * CHUNK < len(blob):
        raise RegistryError("no such chunk")
    return blob[index * CHUNK:(index + 1) * CHUNK]
