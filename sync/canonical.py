"""Canonical JSON: the exact bytes that are hashed, signed and compared.

Two devices (or a device and the hub) must agree byte-for-byte on what an event *is*, so
fork detection and signatures never depend on key order or whitespace.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text kept as is (Japanese names stay readable)."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_bytes(obj: Any) -> bytes:
    return canonical_json(obj).encode("utf-8")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()
