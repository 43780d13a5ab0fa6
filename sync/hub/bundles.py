"""Hub side of USB bundles: verify, ingest idempotently, write a signed receipt.

Every check runs before the first write, and the events, the bundle record and the receipt
are committed in one transaction — a refused bundle changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from sync import crypto
from sync.bundles import covered_ranges, make_receipt, open_body, parse_bundle
from sync.errors import BundleAlreadyImported, BundleCorrupt, BundleForeign, IngestError
from sync.files import atomic_write_bytes
from sync.hub import forks, ingest, store


@dataclass(frozen=True)
class ImportOutcome:
    bundle_id: str
    device_id: str
    device_name: str
    events: int
    new: int
    duplicates: int
    forks: int
    receipt: bytes
    crossmatch_jobs: int = 0
    audit: str | None = None  # the hub's verdict on the audit head the bundle carried (ok, first, cut …)

    @property
    def all_known(self) -> bool:
        return self.events > 0 and self.new == 0 and self.forks == 0


def _receipt(identity: store.HubIdentity, header_bundle_id: str, device_id: str, acks: list[store.StreamAck],
             wire: list[store.WireEvent], new: int, dup: int, not_stored: list[dict],
             audit: dict | None = None) -> bytes:
    """``not_stored`` names the bundle's events the hub keeps only as forks: a laptop marks every
    other event of a covered range delivered, never these (older laptops read ``acks``, which
    stop below the first open fork)."""
    return make_receipt(identity.sign_key, {
        "hub_id": identity.hub_id, "device_id": device_id, "bundle_id": header_bundle_id,
        "acks": [a.as_dict() for a in acks], "covered": covered_ranges(wire), "events_in_bundle": len(wire),
        "events_new": new, "events_duplicate": dup, "forks": len(not_stored), "not_stored": not_stored,
        "imported_at": datetime.now(timezone.utc).isoformat(), **({"audit": audit} if audit else {})})


def _record_audit(engine: Engine, device_id: str, m: str, report: object) -> dict | None:
    """A v2 bundle's audit head, judged exactly like one reported by ``anpi sync`` (issue 16): a laptop
    that only ever travels by USB still has its cut tail caught. The receipt tells the laptop what
    the hub now holds (``seq``, ``uploaded``) so that its next bundle answers for it."""
    from sync.hub import audit_head

    if not isinstance(report, dict):
        return None
    try:
        got = audit_head.record_report(engine, device_id, m, report)
    except IngestError as exc:
        raise BundleCorrupt(f"bundle audit report is invalid: {exc}") from exc
    return {"status": got["status"], "seq": int(report["head"]["seq"]), "uploaded": int(got["uploaded"])}


def import_bundle(engine: Engine, data: bytes) -> ImportOutcome:
    """Ingest one bundle's bytes.  Raises a :class:`~sync.errors.BundleError` subclass on refusal;
    :class:`BundleAlreadyImported` (carrying a fresh receipt) when this bundle id was imported."""
    identity = store.hub_identity(engine)
    header, ciphertext = parse_bundle(data)
    if header.hub_id != identity.hub_id:
        raise BundleForeign(f"bundle is addressed to hub {header.hub_id}, this is hub {identity.hub_id}")
    with engine.connect() as conn:
        dev = store.device_record(conn, header.device_id)
    if dev is None or not dev["public_key"]:
        raise BundleForeign(f"bundle comes from device {header.device_id}, which is not enrolled at this hub")
    if dev["status"] != "active":
        raise BundleForeign(f"bundle comes from device {dev['name']!r}, which is {dev['status']}")
    doc = open_body(header, ciphertext, crypto.hub_box(identity.box_key, dev["public_key"]), dev["public_key"])
    try:
        wire = store.validate_wire_events(header.device_id, doc["events"])
    except IngestError as exc:
        raise BundleCorrupt(f"bundle content is invalid: {exc}") from exc
    m = dev["municipality_code"]
    with engine.connect() as conn:
        store.set_tenant(conn, m)
        known = conn.execute(select(store.hub_bundle.c.bundle_id).where(
            store.hub_bundle.c.municipality_code == m, store.hub_bundle.c.bundle_id == header.bundle_id)).first()
    audit = None if known is not None else _record_audit(engine, header.device_id, m, doc.get("audit"))
    with engine.begin() as conn:
        store.hub_lock(conn, m)
        seen = conn.execute(select(store.hub_bundle.c.imported_at, store.hub_bundle.c.event_count)
                            .where(store.hub_bundle.c.municipality_code == m,
                                   store.hub_bundle.c.bundle_id == header.bundle_id)).first()
        if seen is not None:
            acks = store._stream_acks(conn, header.device_id, m)
            missing = forks.unstored(conn, m, header.device_id, wire)
            receipt = _receipt(identity, header.bundle_id, header.device_id, acks, wire, 0,
                               len(wire) - len(missing), missing)
            raise BundleAlreadyImported(
                f"already imported: bundle {header.bundle_id} from {dev['name']!r} was imported at "
                f"{seen[0]:%Y-%m-%d %H:%M} ({seen[1]} events); nothing changed", receipt)
        res = ingest.ingest_conn(conn, header.device_id, wire, via="bundle", municipality=m)
        missing = [{k: r[k] for k in ("epoch", "seq", "event_id")} for r in res.results if r["status"] == "fork"]
        receipt = _receipt(identity, header.bundle_id, header.device_id, res.acks, wire, res.stored,
                           res.duplicates, missing, audit)
        conn.execute(store.hub_bundle.insert().values(
            municipality_code=m, bundle_id=header.bundle_id, device_id=header.device_id, imported_at=store.utcnow(),
            event_count=len(wire), new_count=res.stored, receipt=receipt.decode("utf-8")))
    return ImportOutcome(header.bundle_id, header.device_id, dev["name"], len(wire), res.stored, res.duplicates,
                         len(res.forks), receipt, res.crossmatch_jobs, audit["status"] if audit else None)


def import_bundle_file(engine: Engine, path: str | Path, receipt_out: str | Path | None = None) -> ImportOutcome:
    """File wrapper: reads the bundle, writes the receipt atomically when asked."""
    try:
        outcome = import_bundle(engine, Path(path).read_bytes())
    except BundleAlreadyImported as exc:
        if receipt_out is not None and exc.receipt:
            atomic_write_bytes(Path(receipt_out), exc.receipt)
        raise
    if receipt_out is not None:
        atomic_write_bytes(Path(receipt_out), outcome.receipt)
    return outcome


