"""USB bundles (shelter → hub) and receipts (hub → shelter).

Bundle file::

    ANPI-BUNDLE 1\\n
    <header: canonical JSON, one line>\\n      bundle_id, device_id, hub_id, created_at, events,
                                              ciphertext_length, ciphertext_sha256 (in clear,
                                              so refusals can say *why*: truncated, other hub…)
    <ciphertext>                              Box(device key → hub box key) of the signed body

The body is ``Ed25519-signed(canonical JSON {bundle_id, device_id, hub_id, created_at,
events:[wire envelopes]})``; the hub re-checks every clear header field against it.

Version 2 (issue 16; ``ANPI-BUNDLE 2``): the same header, and a body that is a wire v2 batch
(:mod:`sync.wire`: compact rows, zstandard with the shipped dictionary) whose extra keys are
``kind, bundle_id, device_id, hub_id, created_at`` and ``audit`` — the laptop's audit chain head
and new entries, answering for the head the hub acknowledged last (receipt or sync), exactly as
``anpi sync`` reports it online. Compressed, then signed, then boxed. Hubs read both versions.

Receipt file (no personal data, only watermarks; signed by the hub)::

    ANPI-RECEIPT 1\\n
    <body: canonical JSON>\\n
    <base64 Ed25519 signature of the body line>\\n

Exporting never marks anything delivered; only a receipt (or an online ack) does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nacl.exceptions import CryptoError
from sqlalchemy import select
from ulid import ULID

from sync import crypto, outbox
from sync.files import atomic_write_bytes
from sync.canonical import canonical_bytes, sha256_hex
from sync.client import SessionFactory
from sync.models import OutboxEvent
from sync.errors import BundleCorrupt, BundleError, BundleForeign, BundleTruncated, NotEnrolled

BUNDLE_MAGIC = b"ANPI-BUNDLE 1\n"
BUNDLE_MAGIC_V2 = b"ANPI-BUNDLE 2\n"
RECEIPT_MAGIC = b"ANPI-RECEIPT 1\n"
MAX_HEADER = 64 * 1024


@dataclass(frozen=True)
class BundleHeader:
    bundle_id: str
    device_id: str
    hub_id: str
    created_at: str
    events: int
    ciphertext_length: int
    ciphertext_sha256: str
    version: int = 1


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    bundle_id: str
    events: int
    size: int


def parse_bundle(data: bytes) -> tuple[BundleHeader, bytes]:
    """Split a bundle into header and ciphertext, checking length and hash (no keys needed)."""
    version = 2 if data.startswith(BUNDLE_MAGIC_V2) else 1
    if not data.startswith(BUNDLE_MAGIC) and version == 1:
        if BUNDLE_MAGIC.startswith(data) or BUNDLE_MAGIC_V2.startswith(data):
            raise BundleTruncated("bundle is truncated (file ends inside the header)")
        if data.startswith(b"ANPI-BUNDLE "):
            raise BundleCorrupt("bundle was written by a newer version of Anpi; update the hub")
        raise BundleCorrupt("not an Anpi bundle (bad magic line)")
    rest = data[len(BUNDLE_MAGIC):]
    nl = rest.find(b"\n", 0, MAX_HEADER)
    if nl < 0:
        raise BundleTruncated("bundle is truncated (file ends inside the header)") if len(rest) < MAX_HEADER \
            else BundleCorrupt("bundle header is unreadable")
    try:
        h = json.loads(rest[:nl])
        header = BundleHeader(str(h["bundle_id"]), str(h["device_id"]), str(h["hub_id"]), str(h["created_at"]),
                              int(h["events"]), int(h["ciphertext_length"]), str(h["ciphertext_sha256"]), version)
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        # OverflowError: "events": 1e999; RecursionError: a header of 60,000 "[" (found by tests/fuzz)
        raise BundleCorrupt(f"bundle header is unreadable ({exc})") from exc
    ct = rest[nl + 1:]
    if len(ct) < header.ciphertext_length:
        raise BundleTruncated(f"bundle is truncated: {len(ct)} of {header.ciphertext_length} bytes present")
    if len(ct) > header.ciphertext_length:
        raise BundleCorrupt("bundle has extra bytes after its end")
    if sha256_hex(ct) != header.ciphertext_sha256:
        raise BundleCorrupt("bundle is corrupted (checksum mismatch)")
    return header, ct


def open_body(header: BundleHeader, ciphertext: bytes, box: Any, device_verify_b64: str) -> dict[str, Any]:
    """Decrypt, check the device signature and that the clear header matches the signed body."""
    try:
        signed = box.decrypt(ciphertext)
    except CryptoError as exc:
        raise BundleCorrupt("bundle cannot be decrypted (corrupted, or sealed for another hub)") from exc
    sig, body = signed[:64], signed[64:]
    if not crypto.verify_detached(device_verify_b64, body, crypto.b64e(sig)):
        raise BundleCorrupt("bundle signature does not verify")
    if header.version == 2:
        doc = _v2_body(header, body)
    else:
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise BundleCorrupt("bundle body is not JSON") from exc
    for k in ("bundle_id", "device_id", "hub_id", "created_at"):
        if doc.get(k) != getattr(header, k):
            raise BundleCorrupt(f"bundle header was altered ({k} differs from the signed body)")
    if not isinstance(doc.get("events"), list) or len(doc["events"]) != header.events:
        raise BundleCorrupt("bundle event count differs from its header")
    return doc


def _v2_body(header: BundleHeader, body: bytes) -> dict[str, Any]:
    """A v2 body (signature already checked) → the v1 body shape, events as full envelopes."""
    from sync import wire
    from sync.errors import IngestError

    try:
        doc = wire.decode_batch(body)
        doc["events"] = wire.expand_events(header.device_id, doc.pop("e"))
    except IngestError as exc:
        raise BundleCorrupt(f"bundle body is unreadable ({exc})") from exc
    if doc.get("kind") != "anpi.bundle":
        raise BundleCorrupt("not an Anpi bundle body")
    return doc


def _body_v2(events: list[dict[str, Any]], meta: dict[str, Any], audit: dict[str, Any] | None) -> bytes:
    from sync import wire

    return wire.encode_events(events, {"kind": "anpi.bundle", **meta, "audit": audit})


def _audit_report(session_factory: SessionFactory, reporter: Any) -> dict[str, Any] | None:
    """The audit head and new entries, answering for the head the hub acknowledged last."""
    if reporter is None:
        return None
    with session_factory() as s:
        known, uploaded = outbox.get_cursor(s, outbox.AUDIT_KNOWN_SEQ), outbox.get_cursor(s, outbox.AUDIT_UPLOADED)
    return reporter(known or None, uploaded)


def export_bundle(session_factory: SessionFactory, out: str | Path, *, audit_reporter: Any = None,
                  version: int = 2) -> BundleInfo:
    """Write every unacknowledged event into a signed, encrypted bundle at ``out``.

    Written to a temp file beside the target, fsync'd, renamed, then read back and fully
    verified (decrypted with our side of the box, signature and event ids checked) — a USB
    stick that lies about writes is caught here, not at the data center.  Changes nothing in
    the database: an exported event is still pending until the hub's receipt comes back.
    ``audit_reporter`` (the faces' :data:`sync.client.AuditReporter`) puts the audit chain head in
    a v2 bundle; ``version=1`` writes the format older hubs read.
    """
    out = Path(out)
    with session_factory() as s:
        dev = outbox.get_device(s)
        if dev is None or not dev.hub_id or not dev.hub_box_public_key:
            raise NotEnrolled("bundles are sealed for a hub: enrol this laptop first (`anpi enroll`)")
        events = [e.to_wire() for e in outbox.pending_events(s)]
        device_id, hub_id, key_b64, hub_box_pk = dev.device_id, dev.hub_id, dev.signing_key, dev.hub_box_public_key
    key = crypto.signing_key_from_b64(key_b64)
    box = crypto.device_box(key, hub_box_pk)
    bundle_id = str(ULID())
    created_at = datetime.now(timezone.utc).isoformat()
    meta = {"bundle_id": bundle_id, "device_id": device_id, "hub_id": hub_id, "created_at": created_at}
    if version >= 2:
        body = _body_v2(events, meta, _audit_report(session_factory, audit_reporter))
    else:
        body = canonical_bytes({"kind": "anpi.bundle", "v": 1, **meta, "events": events})
    ciphertext = bytes(box.encrypt(key.sign(body).signature + body))
    header = canonical_bytes({"bundle_id": bundle_id, "device_id": device_id, "hub_id": hub_id,
                              "created_at": created_at, "events": len(events),
                              "ciphertext_length": len(ciphertext), "ciphertext_sha256": sha256_hex(ciphertext)})
    data = (BUNDLE_MAGIC_V2 if version >= 2 else BUNDLE_MAGIC) + header + b"\n" + ciphertext
    atomic_write_bytes(out, data)
    readback = out.read_bytes()
    try:
        h, ct = parse_bundle(readback)
        doc = open_body(h, ct, box, crypto.verify_key_b64(key))
        if [e["event_id"] for e in doc["events"]] != [e["event_id"] for e in events]:
            raise BundleCorrupt("bundle read back with different events")
    except BundleError as exc:
        out.unlink(missing_ok=True)
        raise BundleCorrupt(f"bundle written to {out} failed verification and was removed: {exc}") from exc
    return BundleInfo(out, bundle_id, len(events), len(readback))


# ---- receipts ---------------------------------------------------------------------------------------------
def ids_digest(event_ids: list[str]) -> str:
    return sha256_hex("\n".join(event_ids))


def covered_ranges(events: list[Any]) -> list[dict[str, Any]]:
    """Per epoch: the seq range a bundle carried and a digest of its event ids in seq order.

    A receipt only acknowledges what the laptop can prove it sent: if its own events in that
    range have other ids (it was restored from a backup and re-used the numbers), the receipt
    acknowledges nothing there.
    """
    by_epoch: dict[int, list[tuple[int, str]]] = {}
    for e in events:
        epoch, seq, eid = (e.epoch, e.seq, e.event_id) if hasattr(e, "epoch") else (e["epoch"], e["seq"], e["event_id"])
        by_epoch.setdefault(int(epoch), []).append((int(seq), str(eid)))
    out = []
    for epoch, items in sorted(by_epoch.items()):
        items.sort()
        out.append({"epoch": epoch, "from": items[0][0], "to": items[-1][0],
                    "ids_sha256": ids_digest([i for _, i in items])})
    return out


def make_receipt(sign_key: Any, body: dict[str, Any]) -> bytes:
    line = canonical_bytes({"kind": "anpi.receipt", "v": 1, **body})
    return RECEIPT_MAGIC + line + b"\n" + crypto.sign_detached(sign_key, line).encode("ascii") + b"\n"


def parse_receipt(data: bytes, hub_sign_public_b64: str) -> dict[str, Any]:
    if not data.startswith(RECEIPT_MAGIC):
        raise BundleCorrupt("not an Anpi receipt (bad magic line)")
    parts = data[len(RECEIPT_MAGIC):].split(b"\n")
    if len(parts) < 2 or not parts[1]:
        raise BundleTruncated("receipt is truncated")
    line, sig = parts[0], parts[1].decode("ascii", "replace")
    if not crypto.verify_detached(hub_sign_public_b64, line, sig):
        raise BundleForeign("receipt signature does not verify (corrupted, or from another hub)")
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise BundleCorrupt("receipt body is not JSON") from exc
    if doc.get("kind") != "anpi.receipt":
        raise BundleCorrupt("not an Anpi receipt")
    return doc


@dataclass(frozen=True)
class ReceiptInfo:
    bundle_id: str
    acknowledged: int
    pending: int
    events_new: int
    events_duplicate: int
    #: epochs where this laptop's events differ from what the bundle carried (restored laptop)
    mismatched_epochs: list[int]
    #: events the hub keeps only as forks (another laptop runs a copy of this database): still pending
    forked: int = 0


def _ack_covered(s: Any, device_id: str, caps: dict[int, int], doc: dict[str, Any]) -> int:
    """Every event of a covered range whose ids match what the bundle carried, except those the
    hub names ``not_stored`` (forks): those stay pending, and are counted for the dashboard."""
    forked = {str(f["event_id"]) for f in doc.get("not_stored", [])}
    ranges = {int(c["epoch"]): int(c["from"]) for c in doc.get("covered", [])}
    items = []
    for epoch, hi in caps.items():
        for eid, seq in s.execute(select(OutboxEvent.event_id, OutboxEvent.seq).where(
                OutboxEvent.device_id == device_id, OutboxEvent.epoch == epoch,
                OutboxEvent.seq >= ranges[epoch], OutboxEvent.seq <= hi)).all():
            if eid not in forked:
                items.append((epoch, int(seq), eid))
    outbox.set_cursor(s, outbox.FORKED_EVENTS, len(forked))
    return outbox.ack_events(s, device_id, items)


def import_receipt(session_factory: SessionFactory, path: str | Path) -> ReceiptInfo:
    """Mark events acknowledged according to a hub receipt (only ever moves watermarks up)."""
    data = Path(path).read_bytes()
    with session_factory() as s:
        dev = outbox.get_device(s)
        if dev is None or not dev.hub_sign_public_key:
            raise NotEnrolled("this laptop is not enrolled at a hub; it cannot check a receipt")
        doc = parse_receipt(data, dev.hub_sign_public_key)
        if doc.get("hub_id") != dev.hub_id:
            raise BundleForeign(f"receipt is from hub {doc.get('hub_id')}, this laptop is enrolled at {dev.hub_id}")
        if doc.get("device_id") != dev.device_id:
            raise BundleForeign(f"receipt is for device {doc.get('device_id')}, not this laptop ({dev.device_id})")
        acks = [(int(a["epoch"]), int(a["seq"])) for a in doc.get("acks", [])]
        caps: dict[int, int] = {}
        mismatched: list[int] = []
        for c in doc.get("covered", []):
            epoch, lo, hi = int(c["epoch"]), int(c["from"]), int(c["to"])
            mine = [r[0] for r in s.execute(
                select(OutboxEvent.event_id).where(OutboxEvent.device_id == dev.device_id, OutboxEvent.epoch == epoch,
                                                   OutboxEvent.seq >= lo, OutboxEvent.seq <= hi)
                .order_by(OutboxEvent.seq)).all()]
            if ids_digest(mine) == c.get("ids_sha256"):
                caps[epoch] = hi
            else:
                mismatched.append(epoch)
        if "not_stored" in doc:  # a hub of this version names the events it holds only as forks
            newly = _ack_covered(s, dev.device_id, caps, doc)
        else:
            newly = outbox.apply_acks(s, dev.device_id, acks, authoritative=False, caps=caps)
        head = doc.get("audit") if isinstance(doc.get("audit"), dict) else {}
        if isinstance(head.get("seq"), int) and head["seq"] >= outbox.get_cursor(s, outbox.AUDIT_KNOWN_SEQ):
            outbox.remember_audit_head(s, head["seq"], int(head.get("uploaded") or 0))
        outbox.mark_synced(s)
        s.commit()
        pending = outbox.pending_count(s)
    return ReceiptInfo(str(doc.get("bundle_id")), newly, pending, int(doc.get("events_new", 0)),
                       int(doc.get("events_duplicate", 0)), mismatched, len(doc.get("not_stored", [])))
