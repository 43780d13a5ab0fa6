"""Shelter-side tables (SQLModel, registered on ``SQLModel.metadata``).

The lead's Alembic migrations import this module so these tables are created with the rest
of the shelter schema; :func:`create_all` creates just these tables for tests and for
databases created before the migration existed.

- ``sync_device``  one row (id=1): this laptop's identity, epoch, signing key, hub trust
- ``outbox_event`` immutable events, numbered gap-free per stream (device_id, epoch)
- ``remote_event`` events of other shelters pulled from the hub's feed
- ``sync_cursor``  named integer watermarks (pull position, per-epoch acknowledgement)
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import DDL, Column, Index, Integer, Text, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel


class SyncDevice(SQLModel, table=True):
    """The laptop's identity.  A singleton row so two writers can never invent two devices."""

    __tablename__ = "sync_device"

    id: int = Field(default=1, primary_key=True)
    device_id: str = Field(index=True, unique=True)
    epoch: int = Field(default=1)
    #: last seq handed out in the current epoch (gap-free counter; bumped under the write lock)
    last_seq: int = Field(default=0)
    signing_key: str  # base64 Ed25519 seed; never leaves the laptop
    created_at: datetime
    shelter_name: Optional[str] = None
    hub_url: Optional[str] = None
    #: JSON list of every hub node's URL (primary first) handed out at enrolment; see sync/failover.py
    hub_urls: Optional[str] = None
    hub_id: Optional[str] = None
    hub_sign_public_key: Optional[str] = None
    hub_box_public_key: Optional[str] = None
    enrolled_at: Optional[datetime] = None
    last_sync_at: Optional[datetime] = None


class OutboxEvent(SQLModel, table=True):
    """One immutable event.  Only ``acked_at`` ever changes (set when the hub acknowledges it)."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        UniqueConstraint("device_id", "epoch", "seq", name="uq_outbox_stream_seq"),
        Index("ix_outbox_pending", "acked_at", "epoch", "seq"),
    )

    event_id: str = Field(primary_key=True)  # ULID
    device_id: str
    epoch: int
    seq: int
    type: str
    recorded_at: str  # ISO-8601 UTC, from the laptop clock (may be wrong; seq is the order)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    payload_sha256: str
    acked_at: Optional[datetime] = None

    def to_wire(self) -> dict:
        """The envelope as sent to the hub and written into bundles."""
        return {
            "event_id": self.event_id, "device_id": self.device_id, "epoch": self.epoch,
            "seq": self.seq, "type": self.type, "recorded_at": self.recorded_at,
            "payload": self.payload, "payload_sha256": self.payload_sha256,
        }


class RemoteEvent(SQLModel, table=True):
    """An event from another shelter, as numbered by the hub's own feed (``hub_seq``)."""

    __tablename__ = "remote_event"

    hub_seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    event_id: str = Field(index=True)
    device_id: str
    epoch: int
    seq: int
    type: str = Field(index=True)
    recorded_at: str
    payload: str = Field(sa_column=Column(Text, nullable=False))
    payload_sha256: str
    shelter_code: Optional[str] = Field(default=None, index=True)
    shelter_name: Optional[str] = None
    evacuee_id: Optional[str] = Field(default=None, index=True)
    received_at: datetime


class RemoteShelter(SQLModel, table=True):
    """A shelter of this municipality as the hub last listed it (``GET /v1/shelters``): the laptop's
    shelter list (避難所一覧) offers it as a 移動 destination."""

    __tablename__ = "remote_shelter"

    code: str = Field(primary_key=True)
    name: str
    population: Optional[int] = None
    seen_at: datetime


class CardKey(SQLModel, table=True):
    """A secret that signs 避難者カード QR codes and seals their basic four items (app.services.card_keys).

    ``scope`` is ``municipality`` (issued by the hub at enrolment, held by every enrolled laptop of
    the municipality, so a card printed at one shelter verifies at another before either synced)
    or ``local`` (made by a laptop that was never enrolled: its cards verify on this laptop only).
    Stored in the encrypted shelter database like the device signing key."""

    __tablename__ = "card_key"

    key_id: str = Field(primary_key=True)
    scope: str  # municipality | local
    secret: str  # base64, 32 random bytes
    created_at: datetime


class SyncCursor(SQLModel, table=True):
    """Named watermark, e.g. ``ack/<device>/<epoch>`` or ``pull/<hub_id>``."""

    __tablename__ = "sync_cursor"

    name: str = Field(primary_key=True)
    value: int = 0
    updated_at: datetime


SYNC_TABLES = [SyncDevice.__table__, OutboxEvent.__table__, RemoteEvent.__table__, SyncCursor.__table__,
               RemoteShelter.__table__, CardKey.__table__]

# Immutability enforced by the database itself, not just by convention.  Created together
# with the table by ``create_all``; the lead's Alembic migration should execute the same DDL
# (``OUTBOX_TRIGGERS``).
OUTBOX_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS outbox_event_immutable
       BEFORE UPDATE OF event_id, device_id, epoch, seq, type, recorded_at, payload, payload_sha256
       ON outbox_event BEGIN SELECT RAISE(ABORT, 'outbox events are immutable'); END""",
    """CREATE TRIGGER IF NOT EXISTS outbox_event_no_delete
       BEFORE DELETE ON outbox_event BEGIN SELECT RAISE(ABORT, 'outbox events are never deleted'); END""",
]
for _ddl in OUTBOX_TRIGGERS:
    event.listen(OutboxEvent.__table__, "after_create", DDL(_ddl).execute_if(dialect="sqlite"))


def create_all(engine: Engine) -> None:
    """Create the sync tables (and triggers) if missing; leaves every other table alone."""
    SQLModel.metadata.create_all(engine, tables=SYNC_TABLES)
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            for ddl in OUTBOX_TRIGGERS:
                conn.exec_driver_sql(ddl)
