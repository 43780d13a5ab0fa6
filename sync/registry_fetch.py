"""Laptop side of a chunked registry pull (issue 16; hub side: :mod:`sync.hub.registry_pull`).

Each chunk is checked against the SHA-256 the package listed and retried alone when the link drops,
so a call that falls every few minutes costs at most one chunk, never the whole file. The blob is
then opened with this laptop's key and decompressed; the caller checks the signed manifest's
SHA-256 and size of the file as before (:func:`sync.client.fetch_registry`).
"""
from __future__ import annotations

import hashlib
import random
import time
from typing import Any, Callable, Mapping

import httpx
import zstandard
from nacl.exceptions import CryptoError

from sync import crypto
from sync.errors import HubRejected, HubUnavailable

MAX_TRIES = 30


def _get_chunk(client: Any, path: str, want: str, sleep: Callable[[float], None]) -> bytes:
    from sync.link import send_once

    last = ""
    for attempt in range(MAX_TRIES):
        try:
            resp = send_once(client, "GET", path, b"", "application/octet-stream")
            if resp.status_code == 200 and hashlib.sha256(resp.content).hexdigest() == want:
                return resp.content
            if 400 <= resp.status_code < 500 and resp.status_code != 429:
                raise HubRejected(f"hub refused {path}: {resp.text[:200]}", resp.status_code)
            last = f"HTTP {resp.status_code}" if resp.status_code != 200 else "chunk does not match its SHA-256"
        except (httpx.TransportError, httpx.StreamError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        sleep(min(5.0, 0.25 * (attempt + 1)) * (0.5 + random.random() / 2))
    raise HubUnavailable(f"registry chunk {path} failed {MAX_TRIES} times ({last})")


def opened_blob(client: Any, manifest: Mapping[str, Any], blob: Mapping[str, Any], key: Any, box_pub: str, *,
                sleep: Callable[[float], None] = time.sleep) -> bytes:
    """Every chunk, checked; then the blob's own hash; then opened with this laptop's key (a tampered
    blob fails here and is refused). Still compressed."""
    snapshot = str(manifest.get("snapshot_id", ""))
    base = f"&base={blob['base']}" if blob.get("base") else ""
    parts = [_get_chunk(client, f"/v1/registry/chunk?snapshot={snapshot}&i={i}{base}", str(want), sleep)
             for i, want in enumerate(blob.get("chunks") or [])]
    data = b"".join(parts)
    if len(data) != int(blob.get("size", -1)) or hashlib.sha256(data).hexdigest() != blob.get("sha256"):
        raise HubRejected("registry blob does not match the hash the hub listed; refused")
    try:
        return bytes(crypto.device_box(key, box_pub).decrypt(data))
    except CryptoError as exc:
        raise HubRejected(f"registry file cannot be opened with this laptop's key: {exc}") from None


def download(client: Any, manifest: Mapping[str, Any], blob: Mapping[str, Any], key: Any, box_pub: str, *,
             sleep: Callable[[float], None] = time.sleep) -> bytes:
    """The whole file: opened, then decompressed (bounded by the manifest's size, so a hostile blob
    cannot fill the disk)."""
    packed = opened_blob(client, manifest, blob, key, box_pub, sleep=sleep)
    try:
        return zstandard.ZstdDecompressor().decompress(packed, max_output_size=int(manifest.get("size", 0)) + 1)
    except zstandard.ZstdError as exc:
        raise HubRejected(f"registry file cannot be decompressed: {exc}") from None
