"""Forks, hub-granted epochs and per-event answers: nothing acknowledged that the hub did not store.

A *fork* is a second, different event under a (device, epoch, seq) the hub already holds.  It
happens when one shelter database runs on two laptops — restored from one backup onto both, or
copied with ``cp`` — because both then number their new events in the same stream.  The hub
keeps the first event it received in ``hub_event`` and the other in ``hub_fork`` (never
overwriting either), and:

- answers every pushed event explicitly (:func:`event_statuses`): ``held`` (this very event is
  stored), ``applied`` (a fork HQ applied, now stored under a hub-granted epoch) or ``fork``
  (kept apart, not applied).  Laptops mark delivered only ``held`` and ``applied`` events; the
  stream watermark old laptops read stops below the first open fork (``store._stream_acks``);
- hands out epochs itself (:func:`grant_epoch`), so two laptops sharing a device id cannot
  both pick the same new stream: every grant is a number no one got before;
- counts open forks as review items, and :func:`apply_forks` applies them after review —
  re-homed into a fresh hub-granted epoch of the same device, so they get a feed number and
  reach every table exactly like any stored event.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from sync.errors import HubNotFound
from sync.hub import store
from sync.hub.ingest import event_statuses, ingest_conn, record_clock, unstored  # noqa: F401 - forks.* kept
from sync.hub.store import (
    WireEvent, hub_device_clock, hub_epoch_grant, hub_fork, hub_fork_resolution, hub_stream,
)


def _grant(conn: Connection, m: str, device_id: str, at_least: int, reason: str, now: datetime) -> int:
    """Next epoch above everything this device ever used or was given (caller holds the tenant lock)."""
    used = [conn.execute(select(func.max(t.c.epoch)).where(t.c.municipality_code == m, t.c.device_id == device_id))
            .scalar_one() for t in (hub_stream, hub_fork, hub_epoch_grant)]
    epoch = max([int(at_least)] + [int(u) for u in used if u is not None]) + 1
    conn.execute(hub_epoch_grant.insert().values(municipality_code=m, device_id=device_id, epoch=epoch,
                                                 reason=reason[:64], granted_at=now))
    return epoch


def grant_epoch(engine: Engine, device_id: str, *, current: int, reason: str, municipality: str | None = None) -> int:
    """A fresh epoch for a laptop (after a restore, or when its stream forked).  Serialised by the
    tenant lock, so two laptops with one device id asking at once get two different epochs."""
    m = municipality or store.device_municipality(engine, device_id)
    with engine.begin() as conn:
        store.hub_lock(conn, m)
        return _grant(conn, m, device_id, current, reason, store.utcnow())


# ---- review: list and apply ----------------------------------------------------------------------------------
def list_forks(engine: Engine, municipality: str | None = None, *, open_only: bool = False) -> list[dict[str, Any]]:
    """Kept forks of one municipality, oldest first, with HQ's resolution when there is one."""
    with engine.connect() as conn:
        m = store.resolve_municipality(conn, municipality)
        store.set_tenant(conn, m)
        rows = conn.execute(
            select(hub_fork, hub_fork_resolution.c.action, hub_fork_resolution.c.resolved_at,
                   hub_fork_resolution.c.resolved_by)
            .join(hub_fork_resolution, (hub_fork_resolution.c.municipality_code == hub_fork.c.municipality_code)
                  & (hub_fork_resolution.c.fork_id == hub_fork.c.fork_id), isouter=True)
            .where(hub_fork.c.municipality_code == m)
            .order_by(hub_fork.c.device_id, hub_fork.c.epoch, hub_fork.c.seq, hub_fork.c.fork_id)).mappings().all()
    out = [dict(r) for r in rows]
    return [r for r in out if r["action"] is None] if open_only else out


def apply_forks(engine: Engine, fork_ids: Sequence[str] | None, *, by: str,
                municipality: str | None = None) -> list[dict[str, Any]]:
    """Apply reviewed forks (``None``: every open one): each device's forked events, in their own
    order, become a new stream under a hub-granted epoch and are stored and applied like any
    pushed event (same event id).  The laptop still holding them learns at its next push that
    they are ``applied`` and marks them delivered.  Returns what was applied."""
    done: list[dict[str, Any]] = []
    with engine.begin() as conn:
        m = store.resolve_municipality(conn, municipality)
        store.hub_lock(conn, m)
        now = store.utcnow()
        resolved = select(hub_fork_resolution.c.fork_id).where(hub_fork_resolution.c.municipality_code == m)
        q = select(hub_fork).where(hub_fork.c.municipality_code == m, hub_fork.c.fork_id.not_in(resolved))
        if fork_ids is not None:
            q = q.where(hub_fork.c.fork_id.in_(list(fork_ids)))
        rows = conn.execute(q.order_by(hub_fork.c.device_id, hub_fork.c.epoch, hub_fork.c.seq,
                                       hub_fork.c.received_at)).mappings().all()
        if fork_ids is not None and len(rows) != len(set(fork_ids)):
            found = {r["fork_id"] for r in rows}
            missing = [f for f in fork_ids if f not in found]
            raise HubNotFound(f"no open fork {', '.join(missing)} in municipality {m}")
        by_device: dict[str, list[Any]] = {}
        for r in rows:
            by_device.setdefault(r["device_id"], []).append(r)
        for device_id, forks in by_device.items():
            done.extend(_apply_device_forks(conn, m, device_id, forks, by, now))
    return done


def _apply_device_forks(conn: Connection, m: str, device_id: str, forks: list[Any], by: str,
                        now: datetime) -> list[dict[str, Any]]:
    import json

    seen: dict[tuple[str, str], int] = {}
    wire: list[WireEvent] = []
    epoch = _grant(conn, m, device_id, 0, "fork-review", now)
    for r in forks:
        key = (r["incoming_event_id"], r["incoming_sha256"])
        if key not in seen:  # the same event forked twice (three copies) is applied once
            seen[key] = len(wire) + 1
            wire.append(WireEvent(r["incoming_event_id"], device_id, epoch, len(wire) + 1, r["incoming_type"],
                                  r["incoming_recorded_at"], r["incoming_payload"], r["incoming_sha256"],
                                  json.loads(r["incoming_payload"])))
    ingest_conn(conn, device_id, wire, via="fork-review", now=now, municipality=m)
    out = []
    for r in forks:
        seq = seen[(r["incoming_event_id"], r["incoming_sha256"])]
        conn.execute(hub_fork_resolution.insert().values(
            municipality_code=m, fork_id=r["fork_id"], action="applied", applied_epoch=epoch, applied_seq=seq,
            resolved_by=by, resolved_at=now))
        out.append({"fork_id": r["fork_id"], "device_id": device_id, "event_id": r["incoming_event_id"],
                    "type": r["incoming_type"], "epoch": epoch, "seq": seq})
    return out


# ---- the laptop's clock -----------------------------------------------------------------------------------------
def record_clock_engine(engine: Engine, device_id: str, municipality: str, offset: float) -> None:
    with engine.begin() as conn:
        store.set_tenant(conn, municipality)
        record_clock(conn, municipality, device_id, offset, store.utcnow())


def clock_offsets(engine: Engine, municipality: str | None = None) -> dict[str, tuple[float, datetime]]:
    """{device_id: (offset seconds, measured at)} of one municipality (HQ's device list)."""
    with engine.connect() as conn:
        m = store.resolve_municipality(conn, municipality)
        store.set_tenant(conn, m)
        return {r[0]: (float(r[1]), r[2]) for r in conn.execute(
            select(hub_device_clock.c.device_id, hub_device_clock.c.offset_seconds, hub_device_clock.c.measured_at)
            .where(hub_device_clock.c.municipality_code == m)).all()}
