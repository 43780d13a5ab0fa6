"""Compact wire format v2 for event batches (HTTP push and USB bundles) — issue 16.

Why: over a satellite phone (tens of kbit/s, drops every few minutes) every byte counts. The v1
envelope repeats the device id, a 64-hex payload hash and an escaped JSON string per event, and
nothing is compressed: ~690 bytes per event. v2 keeps every guarantee and sends what the hub
cannot recompute:

- one batch = ``MAGIC`` + a zstandard frame of canonical JSON
  ``{"v": 2, "e": [[event_id, epoch, seq, type, recorded_at, payload], …]}``, compressed with a
  small dictionary shipped in the code (:data:`DICTIONARY`: the keys and values every payload
  repeats, so even a 10-event batch on a bad link compresses well);
- ``payload`` travels as the JSON object when the stored payload is canonical (the hub writes it
  back with :func:`sync.canonical.canonical_json`, byte for byte), else as the stored string;
- no ``device_id`` per event (the signed request, or the signed bundle, names the device) and no
  ``payload_sha256`` (the hub recomputes it from the exact payload bytes);
- authenticity: the whole compressed batch is covered by the request signature (HTTP: Ed25519 over
  method, path, body hash, timestamp, nonce, device) or by the bundle's signature — the batch is
  compressed *before* it is sealed, so the signature and the box cover exactly what travels.

Replies (:func:`encode_reply`) are a zstandard frame too, with one status letter per event of the
batch in batch order (``h`` held, ``a`` applied, ``f`` fork) and the SHA-256 of the batch's event
ids, so the laptop only marks delivered what it sent and the hub said it holds.
Nothing here imports ``app/`` (ARCHITECTURE.md §8).
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import zstandard

from sync.canonical import canonical_bytes, canonical_json, sha256_hex
from sync.errors import IngestError

#: first bytes of a v2 batch; the last byte names the dictionary version
MAGIC = b"ANPI-W2\x01"
REPLY_MAGIC = b"ANPI-R2\x00"
#: HTTP content types (the hub tells v1 JSON from v2 by this header, and by the magic)
BATCH_TYPE = "application/vnd.anpi.batch+zstd"
REPLY_TYPE = "application/vnd.anpi.reply+zstd"
#: wire versions this code speaks (the hub advertises it in ``GET /v1/acks`` as ``"wire"``)
VERSION = 2
LEVEL = 19  # a batch is small and the link is slow: spend CPU, save airtime
MAX_DECOMPRESSED = 64 * 1024 * 1024  # a zstd bomb is refused before it fills memory

_STATUS_CODES = {"held": "h", "applied": "a", "fork": "f"}
_STATUS_NAMES = {v: k for k, v in _STATUS_CODES.items()}


def _sample() -> bytes:
    """Raw-content dictionary: what every payload repeats (keys, type names, common values)."""
    keys = ["evacuee_id", "shelter_code", "external_key", "name", "name_kana", "birth_date_raw", "birth_date",
            "sex", "address", "phone", "household_key", "care", "consents", "registered_at", "nationality",
            "identifying_info", "injury", "injury_state", "current_location", "contact", "stay_id", "kind", "at",
            "destination", "decision_id", "resident_id", "decision", "snapshot_as_of", "score", "reasons",
            "by_user", "municipality_code", "changes", "old", "new", "certificate_id", "restricted", "v"]
    values = ["evacuee.registered", "stay.recorded", "match.decided", "evacuee.updated", "consent.changed",
              "certificate.issued", "certificate.voided", "hq.recorded", "check_in", "check_out", "transfer",
              "auto", "review", "none", "confirmed", "kana=exact; birth=exact; kanji=exact", "宮城県", "岩手県",
              "陸前高田市", "石巻市", "気仙沼市", "大船渡市", "丁目", "番地", "番", "号", "090-", "080-", "+09:00",
              "+00:00", "T00:00:00", "2026-", "1970-", "share", "relatives", "acquaintances", "public", "wheelchair"]
    parts = [json.dumps(k, ensure_ascii=False) + ":" for k in keys] + [json.dumps(v, ensure_ascii=False) for v in values]
    return (",".join(parts) * 2).encode("utf-8")


DICTIONARY = zstandard.ZstdCompressionDict(_sample(), dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def compress(data: bytes, *, dictionary: bool = True, level: int = LEVEL) -> bytes:
    kw: dict[str, Any] = {"dict_data": DICTIONARY} if dictionary else {}
    return zstandard.ZstdCompressor(level=level, **kw).compress(data)


def decompress(data: bytes, *, dictionary: bool = True) -> bytes:
    kw: dict[str, Any] = {"dict_data": DICTIONARY} if dictionary else {}
    try:
        return zstandard.ZstdDecompressor(**kw).decompress(data, max_output_size=MAX_DECOMPRESSED)
    except zstandard.ZstdError as exc:
        raise IngestError(f"compressed batch cannot be read: {exc}") from exc


def _payload_field(payload: str) -> Any:
    """The payload object when writing it back canonically gives the same bytes, else the string."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return payload
    return obj if isinstance(obj, dict) and canonical_json(obj) == payload else payload


def encode_events(events: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> bytes:
    """Wire envelopes (``OutboxEvent.to_wire()``) → a v2 batch (``extra``: more top-level keys)."""
    rows = [[e["event_id"], int(e["epoch"]), int(e["seq"]), e["type"], e["recorded_at"], _payload_field(e["payload"])]
            for e in events]
    return MAGIC + compress(canonical_bytes({"v": VERSION, "e": rows, **(extra or {})}))


def decode_batch(data: bytes) -> dict[str, Any]:
    """A v2 batch → its document; raises :class:`IngestError` on anything unreadable."""
    if not data.startswith(MAGIC[:-1]):
        raise IngestError("not an Anpi v2 batch (bad magic)")
    if data[len(MAGIC) - 1:len(MAGIC)] != MAGIC[-1:]:
        raise IngestError("batch uses a compression dictionary this hub does not know; update the hub")
    try:
        doc = json.loads(decompress(data[len(MAGIC):]))
    except ValueError as exc:
        raise IngestError("batch is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION or not isinstance(doc.get("e"), list):
        raise IngestError("batch is not a v2 document")
    return doc


def expand_events(device_id: str, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """v2 rows → v1 wire envelopes (device id from the signature, hashes recomputed), ready for
    :func:`sync.hub.store.validate_wire_events`."""
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, list) or len(r) != 6:
            raise IngestError(f"event #{i} is not a 6-item row")
        event_id, epoch, seq, etype, recorded_at, payload = r
        if isinstance(payload, dict):
            payload = canonical_json(payload)
        if not isinstance(payload, str):
            raise IngestError(f"event #{i} payload is neither an object nor a string")
        out.append({"event_id": event_id, "device_id": device_id, "epoch": epoch, "seq": seq, "type": etype,
                    "recorded_at": recorded_at, "payload": payload, "payload_sha256": sha256_hex(payload)})
    return out


def ids_sha256(event_ids: Sequence[str]) -> str:
    return sha256_hex("\n".join(event_ids))


def encode_reply(doc: Mapping[str, Any]) -> bytes:
    """The hub's answer to a v2 push: per-event results folded into one status letter each."""
    results = doc.get("results") or []
    compact = {k: v for k, v in doc.items() if k not in ("results", "forks")}
    compact["status"] = "".join(_STATUS_CODES.get(str(r.get("status")), "?") for r in results)
    compact["ids_sha256"] = ids_sha256([str(r["event_id"]) for r in results])
    compact["forks"] = len(doc.get("forks") or [])
    return REPLY_MAGIC + compress(canonical_bytes(compact), dictionary=False, level=3)


def decode_reply(data: bytes, batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A v2 reply → the v1 reply shape (``results`` per event of ``batch``), checked against what
    was sent: a reply about other events acknowledges nothing."""
    if not data.startswith(REPLY_MAGIC):
        raise IngestError("hub reply is not an Anpi v2 reply")
    doc = json.loads(decompress(data[len(REPLY_MAGIC):], dictionary=False))
    status = str(doc.get("status", ""))
    if len(status) != len(batch) or doc.get("ids_sha256") != ids_sha256([str(e["event_id"]) for e in batch]):
        raise IngestError("hub reply does not describe the batch that was sent")
    doc["results"] = [{"event_id": e["event_id"], "epoch": e["epoch"], "seq": e["seq"],
                       "status": _STATUS_NAMES.get(c, "unknown")} for e, c in zip(batch, status)]
    return doc
