"""The shelter outbox: every change becomes an immutable, numbered event.

Services call :func:`append` inside their own transaction, so an event exists exactly when
the change it describes was committed (no dual-write gap).  Numbering is gap-free per stream
``(device_id, epoch)``: the counter lives on the ``sync_device`` row and is bumped with an
``UPDATE … RETURNING`` that takes SQLite's write lock first, so two writers are serialised
and a rolled-back transaction gives its number back.  A laptop restored from a backup calls
:func:`start_new_epoch`, after which numbering restarts at 1 in a stream that cannot collide
with the numbers the lost laptop may already have sent to the hub.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session
from ulid import ULID

from sync.canonical import canonical_json, sha256_hex
from sync.crypto import new_signing_key, signing_key_to_b64
from sync.events import Event
from sync.models import OutboxEvent, SyncCursor, SyncDevice

_DEVICE_TABLE = SyncDevice.__table__
_CURSOR_TABLE = SyncCursor.__table__


def _now() -> datetime:
    return datetime.now(timezone.utc)


def ack_cursor_name(device_id: str, epoch: int) -> str:
    return f"ack/{device_id}/{epoch}"


def get_device(session: Session) -> SyncDevice | None:
    """The laptop identity, or None if no event was ever recorded and it never enrolled."""
    return session.get(SyncDevice, 1)


def ensure_device(session: Session) -> SyncDevice:
    """Return the device identity, creating one lazily (random ULID, epoch 1, new key).

    Offline shelters that never enrolled still record events under a stable identity; the
    identity is later bound to a hub slot by ``anpi enroll``.  Does not commit.
    """
    dev = session.get(SyncDevice, 1)
    if dev is not None:
        return dev
    values = dict(
        id=1, device_id=str(ULID()), epoch=1, last_seq=0,
        signing_key=signing_key_to_b64(new_signing_key()), created_at=_now(),
    )
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        # a concurrent first writer may have created it: keep theirs
        session.execute(sqlite_insert(_DEVICE_TABLE).values(**values).on_conflict_do_nothing())
    else:
        session.execute(_DEVICE_TABLE.insert().values(**values))
    dev = session.get(SyncDevice, 1, populate_existing=True)
    assert dev is not None
    return dev


def _expire_device(session: Session) -> None:
    for obj in list(session.identity_map.values()):
        if isinstance(obj, SyncDevice):
            session.expire(obj)


def _next_number(session: Session, count: int = 1) -> tuple[str, int, int]:
    """Reserve `count` numbers (takes the write lock); returns (device_id, epoch, last reserved seq)."""
    ensure_device(session)
    row = session.execute(
        update(_DEVICE_TABLE)
        .where(_DEVICE_TABLE.c.id == 1)
        .values(last_seq=_DEVICE_TABLE.c.last_seq + count)
        .returning(_DEVICE_TABLE.c.device_id, _DEVICE_TABLE.c.epoch, _DEVICE_TABLE.c.last_seq)
    ).one()
    _expire_device(session)
    return row[0], int(row[1]), int(row[2])


def append(session: Session, event: Event) -> OutboxEvent:
    """Record ``event`` in the outbox as part of the caller's transaction (never commits).

    Assigns a ULID event id and the next gap-free ``seq`` of the stream (device_id, epoch),
    stores the canonical JSON payload and its SHA-256.  If the transaction rolls back, the
    event and its number vanish together.
    """
    payload = canonical_json(event.to_dict())
    device_id, epoch, seq = _next_number(session)
    row = OutboxEvent(
        event_id=str(ULID()), device_id=device_id, epoch=epoch, seq=seq, type=event.type,
        recorded_at=_now().isoformat(), payload=payload, payload_sha256=sha256_hex(payload),
    )
    session.add(row)
    session.flush()
    return row


def append_many(session: Session, events: list[Event]) -> int:
    """`append` for a batch (a reconciliation run writes thousands of decisions at once):
    one counter bump and one bulk insert, same guarantees, never commits. Returns the count."""
    if not events:
        return 0
    device_id, epoch, last = _next_number(session, len(events))
    first = last - len(events) + 1
    now = _now().isoformat()
    rows = []
    for n, event in enumerate(events):
        payload = canonical_json(event.to_dict())
        rows.append(dict(event_id=str(ULID()), device_id=device_id, epoch=epoch, seq=first + n, type=event.type,
                         recorded_at=now, payload=payload, payload_sha256=sha256_hex(payload), acked_at=None))
    session.execute(OutboxEvent.__table__.insert(), rows)  # type: ignore[attr-defined]
    return len(rows)


#: a restored laptop numbers its events in a provisional epoch drawn at random from this range
#: until the hub grants it one: two laptops restored from one backup then share a stream even
#: while both are offline only once in 90,000 (and then the hub's fork answers catch it).  Five
#: digits, because certificate numbers carry the epoch (app.services.certificates).
PROVISIONAL_EPOCHS = (10_000, 100_000)
#: sync_cursor names that carry the laptop's sync health (integers, like every cursor)
HUB_EPOCH_NEEDED = "sync/hub-epoch-needed"  # 1 after a restore, until the hub granted an epoch
FORKED_EVENTS = "sync/forked-events"  # events the hub answered "fork" for at the last sync
CLOCK_OFFSET = "sync/clock-offset-seconds"  # hub time − this laptop's clock, measured at the last sync
CLOCK_MEASURED = "sync/clock-measured-at"  # unix time (hub clock) of that measurement
#: the audit head the hub last acknowledged (by a sync or a bundle's receipt) and how far it holds the
#: entries: a USB bundle answers for that head offline, as `anpi sync` does online (issue 16)
AUDIT_KNOWN_SEQ = "sync/audit-known-seq"
AUDIT_UPLOADED = "sync/audit-uploaded"


def remember_audit_head(session: Session, seq: int, uploaded: int) -> None:
    """The hub now holds this laptop's audit head ``seq`` and its entries up to ``uploaded``. Does not commit."""
    set_cursor(session, AUDIT_KNOWN_SEQ, int(seq))
    set_cursor(session, AUDIT_UPLOADED, int(uploaded))


def start_new_epoch(session: Session, *, restored: bool = False) -> int:
    """Begin a new stream: numbering restarts at 1 in a higher epoch.

    ``restored`` (a backup was restored): the epoch is provisional and random (see
    :data:`PROVISIONAL_EPOCHS`) and the next sync asks the hub for a fresh one before pushing
    (:data:`HUB_EPOCH_NEEDED`) — an epoch computed here alone could be computed identically on a
    second laptop restored from the same file.  Old-epoch events that are still unacknowledged
    stay pending and are sent as before.  Does not commit (call inside the restore transaction).
    """
    dev = ensure_device(session)
    target = _DEVICE_TABLE.c.epoch + 1
    if restored:
        import secrets

        lo, hi = PROVISIONAL_EPOCHS
        target = max(int(dev.epoch) + 1, lo + secrets.randbelow(hi - lo))  # type: ignore[assignment]
        set_cursor(session, HUB_EPOCH_NEEDED, 1)
    row = session.execute(
        update(_DEVICE_TABLE).where(_DEVICE_TABLE.c.id == 1)
        .values(epoch=target, last_seq=0)
        .returning(_DEVICE_TABLE.c.epoch)
    ).one()
    _expire_device(session)
    return int(row[0])


def adopt_epoch(session: Session, epoch: int) -> int:
    """Switch to an epoch the hub granted (numbering restarts at 1); never moves backwards.
    Clears :data:`HUB_EPOCH_NEEDED`.  Does not commit."""
    dev = ensure_device(session)
    if int(epoch) > int(dev.epoch):
        session.execute(update(_DEVICE_TABLE).where(_DEVICE_TABLE.c.id == 1).values(epoch=int(epoch), last_seq=0))
        _expire_device(session)
    set_cursor(session, HUB_EPOCH_NEEDED, 0)
    return int(session.get(SyncDevice, 1, populate_existing=True).epoch)  # type: ignore[union-attr]


def ack_events(session: Session, device_id: str, items: Iterable[tuple[int, int, str]],
               now: datetime | None = None) -> int:
    """Mark delivered exactly the events the hub said it holds: (epoch, seq, event_id) must all
    match, so an answer about another laptop's event at our number acknowledges nothing."""
    now = now or _now()
    tbl = OutboxEvent.__table__
    newly = 0
    for epoch, seq, event_id in items:
        res = session.execute(update(tbl).where(
            tbl.c.event_id == event_id, tbl.c.device_id == device_id, tbl.c.epoch == int(epoch),
            tbl.c.seq == int(seq), tbl.c.acked_at.is_(None)).values(acked_at=now))
        newly += res.rowcount or 0
    return newly


def lower_to_hub(session: Session, device_id: str, held: Iterable[tuple[int, int]]) -> int:
    """The hub holds each stream gap-free only up to ``held`` (it was restored from its own
    backup): events above that are sent again (the hub answers which it holds).  Returns how
    many went back to pending."""
    tbl = OutboxEvent.__table__
    back = 0
    for epoch, seq in held:
        res = session.execute(update(tbl).where(tbl.c.device_id == device_id, tbl.c.epoch == int(epoch),
                                                tbl.c.seq > int(seq), tbl.c.acked_at.is_not(None))
                              .values(acked_at=None))
        back += res.rowcount or 0
        name = ack_cursor_name(device_id, int(epoch))
        if get_cursor(session, name) > int(seq):
            set_cursor(session, name, int(seq))
    return back


def sync_health(session: Session) -> dict:
    """What the dashboard warns about: forked events, an epoch still to fetch, the clock offset."""
    measured = get_cursor(session, CLOCK_MEASURED)
    return {"forked": get_cursor(session, FORKED_EVENTS), "hub_epoch_needed": bool(get_cursor(session, HUB_EPOCH_NEEDED)),
            "clock_offset_seconds": get_cursor(session, CLOCK_OFFSET) if measured else None,
            "clock_measured_at": datetime.fromtimestamp(measured, timezone.utc) if measured else None}


def pending_count(session: Session) -> int:
    """Events not yet acknowledged by the hub (exports to USB do not count as delivered)."""
    return int(session.execute(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.acked_at.is_(None))  # type: ignore[union-attr]
    ).scalar_one())


def last_sync(session: Session) -> datetime | None:
    """When the hub last acknowledged this laptop's events (online or by receipt)."""
    dev = session.get(SyncDevice, 1)
    if dev is None or dev.last_sync_at is None:
        return None
    ts = dev.last_sync_at
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def pending_events(session: Session, limit: int | None = None,
                   after: tuple[int, int] | None = None) -> list[OutboxEvent]:
    """Unacknowledged events in delivery order: older epochs first, then by seq (``after``: only
    those past (epoch, seq), so a run does not resend what the hub just answered as forks)."""
    stmt = (select(OutboxEvent).where(OutboxEvent.acked_at.is_(None))  # type: ignore[union-attr]
            .order_by(OutboxEvent.epoch, OutboxEvent.seq))
    if after is not None:
        stmt = stmt.where((OutboxEvent.epoch > after[0])
                          | ((OutboxEvent.epoch == after[0]) & (OutboxEvent.seq > after[1])))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


def get_cursor(session: Session, name: str) -> int:
    cur = session.get(SyncCursor, name)
    return int(cur.value) if cur else 0


def set_cursor(session: Session, name: str, value: int) -> None:
    now = _now()
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        stmt = sqlite_insert(_CURSOR_TABLE).values(name=name, value=value, updated_at=now)
        session.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                   set_={"value": value, "updated_at": now}))
    else:  # pragma: no cover - shelters are SQLite
        cur = session.get(SyncCursor, name)
        if cur is None:
            session.add(SyncCursor(name=name, value=value, updated_at=now))
        else:
            cur.value, cur.updated_at = value, now
    for obj in list(session.identity_map.values()):
        if isinstance(obj, SyncCursor) and obj.name == name:
            session.expire(obj)


def apply_acks(session: Session, device_id: str, acks: Iterable[tuple[int, int]], *,
               authoritative: bool, caps: Mapping[int, int] | None = None,
               now: datetime | None = None) -> int:
    """Record the hub's acknowledgement watermark per epoch; returns events newly acked.

    Raising a watermark is capped by ``caps[epoch]``: the highest seq whose *content* the hub
    just compared (the batch we pushed, the bundle a receipt covers).  Without that cap a
    laptop restored from a backup (same stream, new events at old numbers) would mark its new
    events delivered because the hub holds *other* events under those numbers.  ``caps=None``
    means uncapped; an epoch missing from ``caps`` is never raised.

    ``authoritative`` acks come straight from the hub over the network and may move a
    watermark *down* (a hub restored from its own backup asks us to resend).  Receipts from
    USB bundles can be old, so they never lower a watermark.
    """
    now = now or _now()
    newly = 0
    tbl = OutboxEvent.__table__
    for epoch, seq in acks:
        name = ack_cursor_name(device_id, epoch)
        current = get_cursor(session, name)
        if seq < current:
            target = seq if authoritative else current
        else:
            limit = seq if caps is None else caps.get(epoch, current)
            target = max(current, min(seq, limit))
        if target != current:
            set_cursor(session, name, target)
        res = session.execute(
            update(tbl).where(tbl.c.device_id == device_id, tbl.c.epoch == epoch,
                              tbl.c.seq <= target, tbl.c.acked_at.is_(None)).values(acked_at=now)
        )
        newly += res.rowcount or 0
        if authoritative:
            session.execute(
                update(tbl).where(tbl.c.device_id == device_id, tbl.c.epoch == epoch,
                                  tbl.c.seq > target, tbl.c.acked_at.is_not(None)).values(acked_at=None)
            )
    return newly


def streams(session: Session) -> Sequence[tuple[str, int, int]]:
    """(device_id, epoch, max seq) of every stream held locally."""
    rows = session.execute(
        select(OutboxEvent.device_id, OutboxEvent.epoch, func.max(OutboxEvent.seq))
        .group_by(OutboxEvent.device_id, OutboxEvent.epoch)
    ).all()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def mark_synced(session: Session, when: datetime | None = None) -> None:
    session.execute(update(_DEVICE_TABLE).where(_DEVICE_TABLE.c.id == 1).values(last_sync_at=when or _now()))
    _expire_device(session)
