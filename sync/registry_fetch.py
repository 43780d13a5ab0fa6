"""Laptop side of a chunked registry pull (issue 16; hub side: :mod:`sync.hub.registry_pull`).

Each chunk is checked against the SHA-256 the package listed and retried alone when the link drops,
so a call that falls every few minutes costs at most one chunk, never the whole file. The blob is
then opened with this laptop's key and decompressed; the caller checks the signed manifest's
SHA-256 and size of the file as before (:func:`sync.client.fetch_registry`).

Across runs (``keep``: a folder next to the laptop's database): every checked chunk is written there
as it arrives, named by the blob's SHA-256 and its index, so a pull that ends (call dropped for good,
laptop closed) resumes with the chunks it lacks. The chunks are the blob *boxed to this laptop*
(ciphertext that only the device key inside the encrypted database opens), never plaintext; the
folder is emptied when the pull completes or the hub lists another blob.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from pathlib import Path
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


def _kept(keep: Path | None, blob_sha: str, i: int, want: str) -> bytes | None:
    """A chunk fetched by an earlier run, when it is still exactly the one listed."""
    if keep is None:
        return None
    try:
        data = (keep / blob_sha / str(i)).read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == want else None


def _keep(keep: Path | None, blob_sha: str, i: int, data: bytes) -> None:
    if keep is None:
        return
    folder = keep / blob_sha
    if not folder.is_dir():  # a new blob: what was kept of another one is useless now
        shutil.rmtree(keep, ignore_errors=True)
        folder.mkdir(parents=True)
    tmp = folder / f"{i}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / str(i))


def opened_blob(client: Any, manifest: Mapping[str, Any], blob: Mapping[str, Any], key: Any, box_pub: str, *,
                sleep: Callable[[float], None] = time.sleep, keep: Path | None = None) -> bytes:
    """Every chunk (kept from an earlier run, or fetched and checked); then the blob's own hash; then
    opened with this laptop's key (a tampered blob fails here and is refused). Still compressed."""
    snapshot, blob_sha = str(manifest.get("snapshot_id", "")), str(blob.get("sha256", ""))
    base = f"&base={blob['base']}" if blob.get("base") else ""
    parts = []
    for i, want in enumerate(blob.get("chunks") or []):
        part = _kept(keep, blob_sha, i, str(want))
        if part is None:
            part = _get_chunk(client, f"/v1/registry/chunk?snapshot={snapshot}&i={i}{base}", str(want), sleep)
            _keep(keep, blob_sha, i, part)
        parts.append(part)
    data = b"".join(parts)
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
    if len(data) != int(blob.get("size", -1)) or hashlib.sha256(data).hexdigest() != blob_sha:
        raise HubRejected("registry blob does not match the hash the hub listed; refused")
    try:
        return bytes(crypto.device_box(key, box_pub).decrypt(data))
    except CryptoError as exc:
        raise HubRejected(f"registry file cannot be opened with this laptop's key: {exc}") from None


def download(client: Any, manifest: Mapping[str, Any], blob: Mapping[str, Any], key: Any, box_pub: str, *,
             sleep: Callable[[float], None] = time.sleep, keep: Path | None = None) -> bytes:
    """The whole file: opened, then decompressed (bounded by the manifest's size, so a hostile blob
    cannot fill the disk)."""
    packed = opened_blob(client, manifest, blob, key, box_pub, sleep=sleep, keep=keep)
    try:
        return zstandard.ZstdDecompressor().decompress(packed, max_output_size=int(manifest.get("size", 0)) + 1)
    except zstandard.ZstdError as exc:
        raise HubRejected(f"registry file cannot be decompressed: {exc}") from None
