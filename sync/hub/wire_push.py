"""Hub side of wire v2 (:mod:`sync.wire`): read a compact batch, answer a probe — issue 16.

A v2 batch is turned back into v1 envelopes (device id from the signed request, payload hashes
recomputed) and goes through the one ingest (:func:`sync.hub.store.ingest`), so every guarantee
(idempotent, exactly once per (device, epoch, seq), forks kept) is the same for both formats.
"""
from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.engine import Engine

from sync import wire
from sync.hub.store import hub_event, set_tenant

MAX_PROBE_EVENTS = 5000


def read_batch(device_id: str, body: bytes) -> dict[str, Any]:
    """The v1 push document of a v2 batch: ``{"events": [...], "laptop_time": T}``."""
    doc = wire.decode_batch(body)
    return {"events": wire.expand_events(device_id, doc["e"]), "laptop_time": doc.get("laptop_time")}


def probe(engine: Engine, device_id: str, m: str, doc: Mapping[str, Any]) -> bool:
    """True when the hub holds, at exactly the numbers named (runs ``[epoch, from, to]`` in batch
    order), events whose ids hash to ``ids_sha256``: the laptop's lost batch was committed."""
    runs = doc["ranges"]
    if not isinstance(runs, list) or sum(int(r[2]) - int(r[1]) + 1 for r in runs) > MAX_PROBE_EVENTS:
        raise ValueError("ranges must be a list of at most 5,000 events")
    ids: list[str] = []
    with engine.connect() as conn:
        set_tenant(conn, m)
        for epoch, lo, hi in ((int(r[0]), int(r[1]), int(r[2])) for r in runs):
            got = [row[0] for row in conn.execute(select(hub_event.c.event_id).where(
                hub_event.c.municipality_code == m, hub_event.c.device_id == device_id, hub_event.c.epoch == epoch,
                hub_event.c.seq >= lo, hub_event.c.seq <= hi).order_by(hub_event.c.seq)).all()]
            if len(got) != hi - lo + 1:
                return False
            ids.extend(got)
    return wire.ids_sha256(ids) == str(doc.get("ids_sha256"))

