"""Pushing over a poor link (satellite phone): v2 batches, urgent first, resumable, adaptive — issue 16.

:func:`push_v2` replaces the v1 push loop when the hub speaks wire v2 (it says so in
``GET /v1/acks``). Why each piece:

- **urgent first**: what a person typed during this run goes out in the next round trip, before the
  backlog; then registrations, stays, safety status and match decisions (:data:`URGENT`); then the
  rest (certificates, PFIF, other notices). The hub stores events out of order (it applies each
  stream gap-free, and applies a new evacuee's registration at once, see ``sync.hub.store``).
- **resumable**: every batch commits at the hub as a whole; when the reply is lost (the link
  dropped), the laptop asks ``POST /v1/push/probe`` whether the hub holds exactly those events
  (ids digest over their numbers) instead of sending them again.
- **adaptive**: the batch grows ×2 after each answered round trip and shrinks ÷2 after a failed
  one, never beyond what the last measured link speed carries in :data:`ROUND_SECONDS`.
- **measured**: bytes per second of the last rounds and bytes per event are kept in ``sync_cursor``
  for ``anpi sync --status`` (pending, bytes, estimated time); ``max_kbps`` keeps the laptop under
  a share of a link used by others.

Kept apart from :mod:`sync.client` (which decides *whether* to use it) so that both evolve alone.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx
from sqlalchemy import func, select

from sync import crypto, outbox, wire
from sync.canonical import canonical_bytes
from sync.errors import AuthError, HubRejected, HubUnavailable, IngestError
from sync.models import OutboxEvent

#: event types that go before the rest of a backlog: who is here, who left, who is safe (and the
#: match decision typed with each registration, so the hub's 閲覧制限 rule sees both together)
URGENT = ("evacuee.registered", "stay.recorded", "evacuee.updated", "consent.changed", "hq.recorded",
          "match.decided")
MIN_BATCH, START_BATCH, MAX_BATCH = 4, 32, 1000
ROUND_SECONDS = 8.0  # a batch should cross the link in about this long at the measured speed
MAX_FAILURES = 30  # consecutive failed round trips before the run gives up (the next run resumes)
#: sync_cursor names (integers)
LINK_BPS = "sync/link-bytes-per-second"
WIRE_MILLI_BYTES = "sync/wire-millibytes-per-event"
HEADER_BYTES = 420  # request + reply headers of one signed round trip, counted for the link speed


@dataclass
class LinkStats:
    """What one run put on the wire (both directions, bodies and headers) and how long it took."""

    bytes_up: int = 0
    bytes_down: int = 0
    rounds: int = 0
    failures: int = 0
    probes_held: int = 0  # batches the hub turned out to hold after a lost reply (not resent)


def send_once(client: Any, method: str, path: str, data: bytes, content_type: str,
              timeout: float | None = None) -> httpx.Response:
    """One signed request, no retry (the caller decides what a failure means on this link);
    ``timeout`` None: the client's own."""
    hdrs = crypto.sign_request(client.key, client.device_id, method, path, data,
                               client.clock() + client.clock_offset).as_dict()
    hdrs["Content-Type"] = content_type
    kw: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
    return client.http.request(method, client.base_url + path, content=data, headers=hdrs, **kw)


def _raise_for(resp: httpx.Response, path: str) -> None:
    if resp.status_code < 400:
        return
    try:
        doc = resp.json()
    except ValueError:
        doc = {}
    if resp.status_code in (401, 403):
        raise AuthError(doc.get("error", "unauthorised"), doc.get("detail", ""), resp.status_code)
    if resp.status_code >= 500 or resp.status_code == 429:
        raise httpx.TransportError(f"HTTP {resp.status_code}")
    raise HubRejected(f"hub refused POST {path}: {doc.get('detail') or resp.text[:200]}", resp.status_code)


def next_batch(session: Any, size: int, fresh_after: tuple[int, int], skip: set[str]) -> list[dict[str, Any]]:
    """Up to ``size`` pending events: typed during this run first, then :data:`URGENT`, then the rest."""
    pending = OutboxEvent.acked_at.is_(None)  # type: ignore[union-attr]
    order = (OutboxEvent.epoch, OutboxEvent.seq)
    epoch, seq = fresh_after
    fresh = (OutboxEvent.epoch > epoch) | ((OutboxEvent.epoch == epoch) & (OutboxEvent.seq > seq))
    urgent = OutboxEvent.type.in_(URGENT)  # type: ignore[attr-defined]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for cond in (fresh, urgent, ~urgent):
        if len(out) >= size:
            break
        want = size - len(out) + len(skip) + len(seen)
        for e in session.execute(select(OutboxEvent).where(pending, cond).order_by(*order).limit(want)).scalars():
            if e.event_id in skip or e.event_id in seen:
                continue
            seen.add(e.event_id)
            out.append(e.to_wire())
            if len(out) >= size:
                break
    return out


def _ranges(batch: list[dict[str, Any]]) -> list[list[int]]:
    """[[epoch, from, to], …]: the batch's numbers as runs, in batch order (a probe names them)."""
    runs: list[list[int]] = []
    for e in batch:
        if runs and runs[-1][0] == e["epoch"] and runs[-1][2] + 1 == e["seq"]:
            runs[-1][2] = e["seq"]
        else:
            runs.append([e["epoch"], e["seq"], e["seq"]])
    return runs


def probe(client: Any, batch: list[dict[str, Any]], timeout: float | None, stats: LinkStats) -> bool:
    """Does the hub hold exactly this batch (same ids at the same numbers)? One small round trip."""
    body = canonical_bytes({"ranges": _ranges(batch), "ids_sha256": wire.ids_sha256([e["event_id"] for e in batch])})
    resp = send_once(client, "POST", "/v1/push/probe", body, "application/json", timeout)
    stats.bytes_up += len(body) + HEADER_BYTES
    stats.bytes_down += len(resp.content)
    _raise_for(resp, "/v1/push/probe")
    return bool(resp.json().get("held"))


def _record_speed(session_factory: Any, nbytes: int, seconds: float, events: int, wire_bytes: int) -> int:
    bps = int(nbytes / max(seconds, 1e-3))
    with session_factory() as s:
        old = outbox.get_cursor(s, LINK_BPS)
        bps = bps if not old else int(0.5 * old + 0.5 * bps)  # smoothed over the last rounds
        outbox.set_cursor(s, LINK_BPS, max(1, bps))
        if events:
            outbox.set_cursor(s, WIRE_MILLI_BYTES, int(1000 * wire_bytes / events))
        s.commit()
    return bps


def _throttle(max_kbps: float | None, nbytes: int, started: float, sleep: Callable[[float], None]) -> None:
    """Stay under ``max_kbps`` on average: wait until the bytes of this round fit the budget."""
    if max_kbps:
        need = nbytes * 8 / (max_kbps * 1000)
        spent = time.monotonic() - started
        if need > spent:
            sleep(need - spent)


@dataclass
class PushState:
    size: int = START_BATCH
    failures: int = 0
    bps: int = 0


def _round(session_factory: Any, client: Any, batch: list[dict[str, Any]], body: bytes, timeout: float | None,
           stats: LinkStats) -> dict[str, Any] | None:
    """One push round trip: the decoded reply, or the hub's reply recovered by a probe (the events
    are then all held), or None when the link failed and the hub does not hold them."""
    try:
        resp = send_once(client, "POST", "/v1/push", body, wire.BATCH_TYPE, timeout)
        stats.bytes_up += len(body) + HEADER_BYTES
        stats.bytes_down += len(resp.content)
        _raise_for(resp, "/v1/push")
        return wire.decode_reply(resp.content, batch)
    except (httpx.TransportError, httpx.StreamError, IngestError):
        stats.bytes_up += len(body)  # what may have crossed before the cut
    try:
        if probe(client, batch, timeout, stats):
            stats.probes_held += 1
            return {"results": [{"event_id": e["event_id"], "epoch": e["epoch"], "seq": e["seq"], "status": "held"}
                                for e in batch], "acks": []}
    except (httpx.TransportError, httpx.StreamError, ValueError):
        stats.failures += 1  # the probe failed too (counted apart from the push it was about)
    return None


def push_v2(session_factory: Any, client: Any, result: Any, on_acked: Callable[[dict[str, Any]], int], *,
            timeout: float | None = None, max_kbps: float | None = None, crash_after: int = 0,
            on_round: Callable[[int], None] | None = None, sleep: Callable[[float], None] = time.sleep,
            batch_size: int | None = None) -> LinkStats:
    """Push every pending event in v2 batches; ``on_acked(reply)`` marks delivered what the hub
    holds and returns how many (the caller's per-event logic, shared with v1). ``batch_size``
    (``anpi sync --batch-size``): batches start at, and never exceed, that many events."""
    stats = LinkStats()
    state = PushState(size=batch_size or START_BATCH)
    largest = batch_size or MAX_BATCH
    with session_factory() as s:
        dev = outbox.get_device(s)
        fresh_after = (dev.epoch, dev.last_seq) if dev is not None else (0, 0)
        state.bps = outbox.get_cursor(s, LINK_BPS)
    answered: set[str] = set()  # forks answered this run: not sent again until the next run
    while True:
        cap = max(2048, int(state.bps * ROUND_SECONDS)) if state.bps else 1 << 30
        with session_factory() as s:
            batch = next_batch(s, state.size, fresh_after, answered)
        if not batch:
            return stats
        stamp = {"laptop_time": round(client.clock(), 3)}
        body = wire.encode_events(batch, stamp)
        while len(body) > cap and len(batch) > MIN_BATCH:
            batch = batch[: max(MIN_BATCH, len(batch) // 2)]
            body = wire.encode_events(batch, stamp)
        started, before = time.monotonic(), stats.bytes_up + stats.bytes_down
        doc = _round(session_factory, client, batch, body, timeout, stats)
        stats.rounds += 1
        if doc is None:
            stats.failures += 1
            state.failures += 1
            state.size = max(MIN_BATCH, state.size // 2)
            if state.failures >= MAX_FAILURES:
                raise HubUnavailable(f"hub {client.base_url}: the link failed {state.failures} times in a row")
            sleep(min(5.0, 0.25 * state.failures) * (0.5 + random.random() / 2))
            continue
        state.failures = 0
        result.batches += 1
        result.pushed += len(batch)
        if crash_after and result.batches >= crash_after:
            os._exit(87)  # test hook: hub committed, laptop dies before recording the ack
        result.acknowledged += on_acked(doc)
        answered.update(r["event_id"] for r in doc["results"] if r["status"] not in ("held", "applied"))
        moved = stats.bytes_up + stats.bytes_down - before
        state.bps = _record_speed(session_factory, moved, time.monotonic() - started, len(batch), len(body))
        state.size = min(largest, state.size * 2)
        if on_round:
            on_round(result.acknowledged)
        _throttle(max_kbps, moved, started, sleep)


@dataclass
class PendingSummary:
    """What ``anpi sync --status`` and the dashboard show."""

    events: int
    urgent: int
    bytes: int
    link_bytes_per_second: int | None
    eta_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "urgent": self.urgent, "bytes": self.bytes,
                "link_kbps": round(self.link_bytes_per_second * 8 / 1000, 1) if self.link_bytes_per_second else None,
                "eta_seconds": round(self.eta_seconds, 1) if self.eta_seconds is not None else None}


def pending_summary(session: Any, *, exact: bool = True, chunk: int = 500, sample: int = 300) -> PendingSummary:
    """Pending events and their size in the v2 format, with the time they take at the last measured
    link speed. ``exact``: every pending event compressed as it would be sent (``anpi sync
    --status``); otherwise the first ``sample`` events scaled up (the dashboard, at every page load)."""
    pending = OutboxEvent.acked_at.is_(None)  # type: ignore[union-attr]
    n = int(session.execute(select(func.count()).select_from(OutboxEvent).where(pending)).scalar_one())
    urgent = int(session.execute(select(func.count()).select_from(OutboxEvent).where(
        pending, OutboxEvent.type.in_(URGENT))).scalar_one())  # type: ignore[attr-defined]
    total, seen, last = 0, 0, None
    while n and (exact or not seen):
        stmt = select(OutboxEvent).where(pending).order_by(OutboxEvent.epoch, OutboxEvent.seq)
        stmt = stmt.limit(chunk if exact else sample)
        if last is not None:
            stmt = stmt.where((OutboxEvent.epoch > last[0]) | ((OutboxEvent.epoch == last[0]) & (OutboxEvent.seq > last[1])))
        rows = [e.to_wire() for e in session.execute(stmt).scalars()]
        if not rows:
            break
        total += len(wire.encode_events(rows)) + HEADER_BYTES
        seen += len(rows)
        last = (rows[-1]["epoch"], rows[-1]["seq"])
    if seen and seen < n:
        total = int(total * n / seen)
    bps = outbox.get_cursor(session, LINK_BPS) or None
    return PendingSummary(n, urgent, total, bps, total / bps if bps else None)
