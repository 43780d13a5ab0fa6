"""Ingest: store a laptop's batch idempotently, answer every event, apply what is in order.

Above :mod:`sync.hub.store` (tables, locks, acks) and :mod:`sync.hub.apply` (what events do to
the hub's tables); :mod:`sync.hub.forks` (review of kept forks) re-ingests through
:func:`ingest_conn`.  See the module docstring of :mod:`sync.hub.store` for the locking.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from sync.hub import apply as hub_apply
from sync.hub import store
from sync.hub.store import (
    IMPLICIT_TENANT, IngestResult, WireEvent, _evacuee_of, _stream_acks, bulk_insert, device_municipality, hub_device, hub_device_clock, hub_event, hub_fork, hub_fork_resolution, hub_lock, hub_stream, new_row_id, next_hub_seq, update, utcnow, validate_wire_events,
)

# ---- per-event answers -----------------------------------------------------------------------------------
def event_statuses(conn: Connection, m: str, device_id: str, events: Sequence[WireEvent]) -> list[dict[str, Any]]:
    """What the hub now holds for each incoming event, read back from the tables (inside the
    ingest transaction, so the answer is exactly what commits)."""
    held: dict[tuple[int, int], tuple[str, str]] = {}
    by_epoch: dict[int, list[int]] = {}
    for e in events:
        by_epoch.setdefault(e.epoch, []).append(e.seq)
    for epoch, seqs in by_epoch.items():
        for r in conn.execute(select(hub_event.c.seq, hub_event.c.event_id, hub_event.c.payload_sha256).where(
                hub_event.c.municipality_code == m, hub_event.c.device_id == device_id, hub_event.c.epoch == epoch,
                hub_event.c.seq >= min(seqs), hub_event.c.seq <= max(seqs))).all():
            held[(epoch, int(r[0]))] = (r[1], r[2])
    others = [e for e in events if held.get((e.epoch, e.seq)) != (e.event_id, e.payload_sha256)]
    applied = _applied_forks(conn, m, device_id, [e.event_id for e in others]) if others else set()
    out = []
    for e in events:
        if held.get((e.epoch, e.seq)) == (e.event_id, e.payload_sha256):
            status = "held"
        elif (e.event_id, e.payload_sha256) in applied:
            status = "applied"
        else:
            status = "fork"
        out.append({"event_id": e.event_id, "epoch": e.epoch, "seq": e.seq, "status": status})
    return out


def _applied_forks(conn: Connection, m: str, device_id: str, event_ids: Iterable[str]) -> set[tuple[str, str]]:
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    rows = conn.execute(select(hub_fork.c.incoming_event_id, hub_fork.c.incoming_sha256)
                        .join(hub_fork_resolution, (hub_fork_resolution.c.municipality_code == hub_fork.c.municipality_code)
                              & (hub_fork_resolution.c.fork_id == hub_fork.c.fork_id))
                        .where(hub_fork.c.municipality_code == m, hub_fork.c.device_id == device_id,
                               hub_fork_resolution.c.action == "applied",
                               hub_fork.c.incoming_event_id.in_(ids))).all()
    return {(r[0], r[1]) for r in rows}


def unstored(conn: Connection, m: str, device_id: str, events: Sequence[WireEvent]) -> list[dict[str, Any]]:
    """The events of a bundle the hub does not hold (forks): a receipt names them so that no
    laptop marks them delivered."""
    return [{"epoch": r["epoch"], "seq": r["seq"], "event_id": r["event_id"]}
            for r in event_statuses(conn, m, device_id, events) if r["status"] == "fork"]


# ---- epochs the hub hands out ------------------------------------------------------------------------------
def record_clock(conn: Connection, m: str, device_id: str, offset: float | None, now: datetime) -> float:
    """Keep the offset measured on this request (hub time − laptop time); without one (a USB
    bundle, an older laptop) use the last one measured for the device, else 0."""
    if offset is None:
        got = conn.execute(select(hub_device_clock.c.offset_seconds).where(
            hub_device_clock.c.municipality_code == m, hub_device_clock.c.device_id == device_id)).scalar()
        return float(got or 0.0)
    values = dict(offset_seconds=float(offset), measured_at=now)
    stmt = store._insert(conn, hub_device_clock).values(municipality_code=m, device_id=device_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["municipality_code", "device_id"], set_=values))
    return float(offset)


def ingest_conn(conn: Connection, device_id: str, events: Sequence[WireEvent], *, via: str,
                now: datetime | None = None, municipality: str = IMPLICIT_TENANT,
                clock_offset: float | None = None) -> IngestResult:
    """Store a validated batch of one device (of tenant ``municipality``) inside an open
    transaction (caller commits).

    Idempotent: a (device, epoch, seq) already held with the same event id and hash is a
    duplicate; with different content it is a *fork*, kept in ``hub_fork`` and never
    overwriting what is stored.  Events are applied to the hub tables in seq order once their
    stream is gap-free up to them, so a batch that arrives ahead of its predecessor waits.
    """
    m = municipality
    now = now or utcnow()
    hub_lock(conn, m)
    result = IngestResult(acks=[], clock_offset=clock_offset)
    offset = record_clock(conn, m, device_id, clock_offset, now)
    by_epoch: dict[int, dict[int, WireEvent]] = {}
    batch_forks: list[tuple[WireEvent, WireEvent]] = []
    for ev in events:
        slot = by_epoch.setdefault(ev.epoch, {})
        prev = slot.get(ev.seq)
        if prev is None:
            slot[ev.seq] = ev
        elif (prev.event_id, prev.payload_sha256) == (ev.event_id, ev.payload_sha256):
            result.duplicates += 1
        else:
            batch_forks.append((prev, ev))

    new_rows: list[WireEvent] = []
    fork_rows: list[dict[str, Any]] = []

    def fork_row(existing_id: str, existing_sha: str, ev: WireEvent) -> dict[str, Any]:
        return dict(municipality_code=m, fork_id=new_row_id(), device_id=device_id, epoch=ev.epoch, seq=ev.seq,
                    existing_event_id=existing_id, existing_sha256=existing_sha, incoming_event_id=ev.event_id,
                    incoming_type=ev.type, incoming_sha256=ev.payload_sha256, incoming_recorded_at=ev.recorded_at,
                    incoming_payload=ev.payload, received_at=now, via=via)

    for epoch, slot in by_epoch.items():
        seqs = sorted(slot)
        existing = {int(r[0]): (r[1], r[2]) for r in conn.execute(
            select(hub_event.c.seq, hub_event.c.event_id, hub_event.c.payload_sha256).where(
                hub_event.c.municipality_code == m, hub_event.c.device_id == device_id, hub_event.c.epoch == epoch,
                hub_event.c.seq >= seqs[0], hub_event.c.seq <= seqs[-1])).all()}
        for s in seqs:
            ev = slot[s]
            held = existing.get(s)
            if held is None:
                new_rows.append(ev)
            elif held == (ev.event_id, ev.payload_sha256):
                result.duplicates += 1
            else:
                fork_rows.append(fork_row(held[0], held[1], ev))
    for prev, ev in batch_forks:
        fork_rows.append(fork_row(prev.event_id, prev.payload_sha256, ev))

    if new_rows:
        base = next_hub_seq(conn, m)
        new_rows.sort(key=lambda e: (e.epoch, e.seq))
        rows = [dict(municipality_code=m, device_id=device_id, epoch=e.epoch, seq=e.seq, event_id=e.event_id,
                     type=e.type, recorded_at=e.recorded_at, payload=e.payload, payload_sha256=e.payload_sha256,
                     hub_seq=base + i + 1, received_at=now, via=via, evacuee_id=_evacuee_of(e.data))
                for i, e in enumerate(new_rows)]
        bulk_insert(conn, hub_event, rows)
        result.stored = len(rows)
    if fork_rows:
        bulk_insert(conn, hub_fork, fork_rows)
        result.forks = [{"epoch": f["epoch"], "seq": f["seq"], "event_id": f["incoming_event_id"],
                         "held_event_id": f["existing_event_id"]} for f in fork_rows]

    # advance each touched stream's gap-free watermark and apply what became gap-free
    new_by_key = {(e.epoch, e.seq): e for e in new_rows}
    for epoch in sorted(by_epoch):
        st = conn.execute(select(hub_stream.c.contiguous_seq, hub_stream.c.max_seq).where(
            hub_stream.c.municipality_code == m, hub_stream.c.device_id == device_id,
            hub_stream.c.epoch == epoch)).first()
        old_contig, old_max = (int(st[0]), int(st[1])) if st else (0, 0)
        held_seqs = [int(r[0]) for r in conn.execute(
            select(hub_event.c.seq).where(hub_event.c.municipality_code == m, hub_event.c.device_id == device_id,
                                          hub_event.c.epoch == epoch, hub_event.c.seq > old_contig)
            .order_by(hub_event.c.seq)).all()]
        contig = old_contig
        for s in held_seqs:
            if s != contig + 1:
                break
            contig = s
        max_seq = max([old_max, contig] + held_seqs[-1:])
        if st is None:
            conn.execute(hub_stream.insert().values(municipality_code=m, device_id=device_id, epoch=epoch,
                                                    contiguous_seq=contig, max_seq=max_seq, updated_at=now))
        elif (contig, max_seq) != (old_contig, old_max):
            conn.execute(update(hub_stream).where(hub_stream.c.municipality_code == m,
                                                  hub_stream.c.device_id == device_id, hub_stream.c.epoch == epoch)
                         .values(contiguous_seq=contig, max_seq=max_seq, updated_at=now))
        if contig > old_contig:
            want = range(old_contig + 1, contig + 1)
            missing = [s for s in want if (epoch, s) not in new_by_key]
            stored_earlier: dict[int, WireEvent] = {}
            if missing:
                for r in conn.execute(select(hub_event).where(
                        hub_event.c.municipality_code == m, hub_event.c.device_id == device_id,
                        hub_event.c.epoch == epoch, hub_event.c.seq > old_contig,
                        hub_event.c.seq <= contig)).mappings():
                    if (epoch, int(r["seq"])) not in new_by_key:
                        stored_earlier[int(r["seq"])] = WireEvent(
                            r["event_id"], device_id, epoch, int(r["seq"]), r["type"], r["recorded_at"],
                            r["payload"], r["payload_sha256"], json.loads(r["payload"]))
            ordered = [new_by_key.get((epoch, s)) or stored_earlier[s] for s in want]
            applied = hub_apply.apply_events(conn, ordered, now=now, municipality=m, clock_offset=offset)
            result.applied += applied.count
            result.crossmatch_jobs += applied.crossmatch_jobs
        ahead = [e for e in new_rows if e.epoch == epoch and e.seq > contig and e.type == "evacuee.registered"]
        if ahead:  # issue 16: a registration sent ahead of its backlog is visible at once
            early = hub_apply.apply_events(conn, ahead, now=now, municipality=m, clock_offset=offset)
            result.crossmatch_jobs += early.crossmatch_jobs

    conn.execute(update(hub_device).where(hub_device.c.municipality_code == m, hub_device.c.device_id == device_id)
                 .values(last_seen_at=now))
    result.acks = _stream_acks(conn, device_id, m)
    result.results = event_statuses(conn, m, device_id, events)
    return result


def ingest(engine: Engine, device_id: str, events: Sequence[Mapping[str, Any]], *, via: str = "http",
           after_commit: Callable[[], None] | None = None, municipality: str | None = None,
           clock_offset: float | None = None) -> IngestResult:
    """Validate and store one batch in its own transaction; return acks only after commit.
    ``clock_offset`` (hub time minus the laptop's clock, measured on this request) orders the
    laptop's stays against other laptops' (see :mod:`sync.hub.forks`)."""
    wire = validate_wire_events(device_id, events)
    m = municipality or device_municipality(engine, device_id)
    with engine.begin() as conn:
        result = ingest_conn(conn, device_id, wire, via=via, municipality=m, clock_offset=clock_offset)
    if after_commit is not None:
        after_commit()
    if result.stored:
        keep_statistics_fresh(engine, result.stored)
    return result


_YOUNG_TABLES = ("hub_event", "hub_evacuee", "hub_stay", "hub_decision", "hub_person_link", "hub_crossmatch_job",
                 "hub_cross_link", "hub_evacuee_value", "hub_notice")
_stored_since_start: dict[int, int] = {}
_analyze_lock = threading.Lock()


def keep_statistics_fresh(engine: Engine, stored: int) -> None:
    """ANALYZE the busy tables while the hub is young (after 2k, 8k, 32k … events in this process).

    Every key is (municipality_code, id): with the statistics of an empty table the planner
    believes a municipality has a handful of rows and filters ``id = ANY(…)`` row by row instead
    of using the second key column — 50 times slower once a town has thousands of evacuees.
    Autovacuum fixes this within minutes; a hub that starts into a flood of backlog cannot wait.
    """
    if engine.dialect.name != "postgresql":
        return
    with _analyze_lock:
        before = _stored_since_start.get(id(engine), 0)
        after = before + stored
        _stored_since_start[id(engine)] = after
        due = any(before < t <= after for t in (2_000, 8_000, 32_000, 128_000, 512_000))
    if not due:
        return
    try:
        with engine.connect() as conn:
            for t in _YOUNG_TABLES:
                conn.exec_driver_sql(f"ANALYZE {t}")
            conn.commit()
    except Exception:  # noqa: BLE001 - only the owner may ANALYZE; autovacuum will do it then
        pass


