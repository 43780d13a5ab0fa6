"""Hub storage: tables, identity, devices, request authentication, idempotent ingest, feed.

The hub keeps its tables on its *own* ``MetaData`` (never ``SQLModel.metadata``) so the
shelter's migrations never create hub tables and vice versa.  It runs on PostgreSQL
(``postgresql+psycopg://``) or, for a one-laptop HQ, SQLite.

Ingest is the heart: every write transaction first takes one hub-wide lock
(``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).  That makes the
hub-wide feed number ``hub_seq`` commit in order (a puller can never skip an event that
commits late with a smaller number), and lets apply logic read-modify-write hub tables
without races.  Batches are inserted with one multi-row ``INSERT … ON CONFLICT DO NOTHING``,
so a 500-event batch costs a handful of statements.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from sqlalchemy import (
    BigInteger, Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text,
    UniqueConstraint, bindparam, create_engine, event, func, select, text, update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from ulid import ULID

from sync import crypto
from sync.canonical import sha256_hex
from sync.crypto import enrolment_message, enrolment_reply_message
from sync.errors import AuthError, EnrollmentError, IngestError

metadata = MetaData()

hub_meta = Table(
    "hub_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

hub_device = Table(
    "hub_device", metadata,
    Column("slot_id", String(26), primary_key=True),
    Column("name", Text, nullable=False),
    Column("municipality", String(16)),
    Column("code_hash", String(64), unique=True),  # crypto.code_id(code): lookup only
    Column("code_key", String(64)),  # hex of crypto.code_key(code): MAC key
    Column("code_expires_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # pending | active | revoked
    Column("device_id", String(26), unique=True),
    Column("public_key", Text),
    Column("shelter_name", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("enrolled_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
)

hub_event = Table(
    "hub_event", metadata,
    # the primary key *is* the (device_id, epoch, seq) unique constraint
    Column("device_id", String(26), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("event_id", String(26), nullable=False, index=True),
    Column("type", String(64), nullable=False),
    Column("recorded_at", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("hub_seq", BigInteger, nullable=False, unique=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("via", String(16), nullable=False),
)

hub_stream = Table(
    "hub_stream", metadata,
    Column("device_id", String(26), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("contiguous_seq", BigInteger, nullable=False),  # highest gap-free seq held
    Column("max_seq", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

hub_fork = Table(
    "hub_fork", metadata,
    Column("fork_id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(26), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("existing_event_id", String(26), nullable=False),
    Column("existing_sha256", String(64), nullable=False),
    Column("incoming_event_id", String(26), nullable=False),
    Column("incoming_type", String(64), nullable=False),
    Column("incoming_sha256", String(64), nullable=False),
    Column("incoming_recorded_at", Text, nullable=False),
    Column("incoming_payload", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("via", String(16), nullable=False),
    UniqueConstraint("device_id", "epoch", "seq", "incoming_event_id", "incoming_sha256", name="uq_fork_incoming"),
)

hub_nonce = Table(
    "hub_nonce", metadata,
    Column("device_id", String(26), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False, index=True),
)

hub_bundle = Table(
    "hub_bundle", metadata,
    Column("bundle_id", String(26), primary_key=True),
    Column("device_id", String(26), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("new_count", Integer, nullable=False),
    Column("receipt", Text, nullable=False),
)

# ---- tables filled by sync.hub.apply -----------------------------------------------------
hub_evacuee = Table(
    "hub_evacuee", metadata,
    Column("evacuee_id", String(26), primary_key=True),
    Column("device_id", String(26)),
    Column("shelter_code", Text),
    Column("external_key", Text),
    Column("name", Text),
    Column("name_kana", Text),
    Column("birth_date_raw", Text),
    Column("birth_date", Text),
    Column("sex", Text),
    Column("address", Text),
    Column("phone", Text),
    Column("household_key", Text),
    Column("care", Text),  # JSON
    Column("consents", Text),  # JSON
    Column("registered_at", Text),
    Column("registered", Boolean, nullable=False),  # False: stub created by an early update
    Column("status", String(16)),  # in_shelter | left | transferred
    Column("current_shelter_code", Text),
    Column("last_stay_key", Text),  # "<at>|<stay_id>" of the stay that set status
    Column("provenance", Text),  # JSON {field: [at, event_id]} of the value shown
    Column("extra", Text),  # JSON of unknown keys
    Column("updated_at", DateTime(timezone=True)),
)

hub_evacuee_value = Table(
    "hub_evacuee_value", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("evacuee_id", String(26), nullable=False, index=True),
    Column("field", String(64), nullable=False),
    Column("old", Text),
    Column("new", Text),
    Column("conflict", Boolean, nullable=False),
    Column("event_id", String(26), nullable=False),
    Column("device_id", String(26), nullable=False),
    Column("at", Text),
)

hub_stay = Table(
    "hub_stay", metadata,
    Column("stay_id", String(26), primary_key=True),
    Column("evacuee_id", String(26), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("shelter_code", Text),
    Column("destination", Text),
    Column("at", Text, nullable=False),
    Column("event_id", String(26), nullable=False),
    Column("device_id", String(26), nullable=False),
)

hub_decision = Table(
    "hub_decision", metadata,
    Column("decision_id", String(26), primary_key=True),
    Column("evacuee_id", String(26), nullable=False, index=True),
    Column("resident_id", Text),
    Column("municipality_code", Text),
    Column("person_key", Text),
    Column("snapshot_as_of", Text),
    Column("decision", String(16), nullable=False),
    Column("score", Float),
    Column("reasons", Text),
    Column("by_user", Text),
    Column("at", Text, nullable=False),
    Column("event_id", String(26), nullable=False),
    Column("device_id", String(26), nullable=False),
)

hub_person_link = Table(
    "hub_person_link", metadata,
    Column("link_id", Integer, primary_key=True, autoincrement=True),
    Column("evacuee_id", String(26), nullable=False, index=True),
    Column("person_key", Text, nullable=False, index=True),
    Column("resident_id", Text, nullable=False),
    Column("municipality_code", Text),
    Column("decision_id", String(26), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by_decision_id", String(26)),
)

hub_review_item = Table(
    "hub_review_item", metadata,
    Column("item_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # field_conflict
    Column("evacuee_id", String(26), index=True),
    Column("field", String(64)),
    Column("status", String(16), nullable=False),  # open | resolved
    Column("candidates", Text, nullable=False),  # JSON list of {value, event_id, device_id, at}
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

hub_certificate = Table(
    "hub_certificate", metadata,
    Column("number", String(64), primary_key=True),
    Column("kind", Text),
    Column("resident_id", Text),
    Column("household_id", Text),
    Column("status", String(16), nullable=False),  # issued | voided
    Column("issued_at", Text),
    Column("voided_at", Text),
    Column("void_reason", Text),
    Column("device_id", String(26)),
    Column("payload", Text),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---- engine ---------------------------------------------------------------------------------
def normalise_database_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` and use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def open_hub_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    """Create the hub engine and its tables (idempotent: safe on every start)."""
    url = normalise_database_url(database_url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # one writer at a time, taken up front: the SQLite twin of the advisory lock
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


def _insert(conn: Connection, table: Table):  # noqa: ANN202 - dialect-specific Insert
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def _pg_binary(conn: Connection, sql: str, params: dict[str, Any]) -> None:
    """Run on the same psycopg connection (same transaction) with *binary* parameters: array
    parameters full of JSON text are dumped without per-character escaping."""
    raw = conn.connection.driver_connection
    with raw.cursor(binary=True) as cur:  # type: ignore[union-attr]
        cur.execute(sql, params, prepare=True)


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]], *, on_conflict_nothing: bool = True) -> None:
    """Insert many rows in one statement.

    PostgreSQL: ``INSERT … SELECT FROM unnest(arrays) [ON CONFLICT DO NOTHING]`` — constant SQL
    text (prepared once), one round trip for a whole batch.  SQLite: ``executemany``.
    """
    if not rows:
        return
    names = list(rows[0])
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(%(a{i})b AS {_pg_type(table.c[c])}[])" for i, c in enumerate(names))
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"
               + (" ON CONFLICT DO NOTHING" if on_conflict_nothing else ""))
        _pg_binary(conn, sql, {f"a{i}": [r[c] for r in rows] for i, c in enumerate(names)})
        return
    stmt = _insert(conn, table).on_conflict_do_nothing() if on_conflict_nothing else table.insert()
    conn.execute(stmt, rows)


def bulk_update(conn: Connection, table: Any, key: str, rows: list[dict[str, Any]], cols: list[str],
                coalesce: Sequence[str] = (), guard: str | None = None) -> None:
    """Update many rows by primary key in one statement.

    PostgreSQL: ``UPDATE … FROM unnest(arrays)`` (one round trip, constant SQL text).  SQLite:
    ``executemany``.  Columns in ``coalesce`` keep their value when the new one is NULL; with
    ``guard`` a row is only updated when its ``guard`` column is NULL or smaller than the new
    value (monotonic: applying updates in any order ends in the same state).
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        names = [key, *cols]
        arrays = ", ".join(f"CAST(%(a{i})b AS {_pg_type(table.c[c])}[])" for i, c in enumerate(names))
        sets = ", ".join(f"{c} = COALESCE(v.{c}, t.{c})" if c in coalesce else f"{c} = v.{c}" for c in cols)
        cond = f" AND (t.{guard} IS NULL OR t.{guard} < v.{guard})" if guard else ""
        sql = (f"UPDATE {table.name} AS t SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "
               f"WHERE t.{key} = v.{key}{cond}")
        _pg_binary(conn, sql, {f"a{i}": [r[c] for r in rows] for i, c in enumerate(names)})
        return
    sets = {c: (func.coalesce(bindparam(f"_{c}"), table.c[c]) if c in coalesce else bindparam(f"_{c}")) for c in cols}
    where = [table.c[key] == bindparam("_key")]
    if guard:
        where.append(table.c[guard].is_(None) | (table.c[guard] < bindparam(f"_{guard}")))
    conn.execute(update(table).where(*where).values(sets),
                 [{"_key": r[key], **{f"_{c}": r[c] for c in cols}} for r in rows])


def _pg_type(col: Any) -> str:
    """Array element type for ``unnest`` (constant SQL text: compiled and prepared once)."""
    t = col.type
    if isinstance(t, DateTime):
        return "timestamptz"
    if isinstance(t, Boolean):
        return "boolean"
    if isinstance(t, Float):
        return "float8"
    if isinstance(t, Integer):  # BigInteger is an Integer
        return "bigint"
    return "text"


def hub_lock(conn: Connection) -> None:
    """Serialise hub writers (see module docstring).  No-op on SQLite (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        # Hub writes are point lookups by indexed keys.  A young hub has stale statistics until
        # autovacuum's first ANALYZE, and the planner then picks sequential scans whose cost
        # grows with every event stored; pin index plans inside hub write transactions.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.execute(text("SELECT pg_advisory_xact_lock(727274, hashtext(current_schema()))"))


# ---- identity ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubIdentity:
    hub_id: str
    sign_key: Any  # nacl.signing.SigningKey
    box_key: Any  # nacl.public.PrivateKey

    @property
    def sign_public_b64(self) -> str:
        return crypto.b64e(bytes(self.sign_key.verify_key))

    @property
    def box_public_b64(self) -> str:
        return crypto.b64e(bytes(self.box_key.public_key))

    def public_info(self) -> dict[str, str]:
        return {"hub_id": self.hub_id, "sign_public_key": self.sign_public_b64,
                "box_public_key": self.box_public_b64}


def hub_identity(engine: Engine) -> HubIdentity:
    """Load the hub's id and keys, creating them on first start (first writer wins)."""
    with engine.begin() as conn:
        rows = dict(conn.execute(select(hub_meta.c.key, hub_meta.c.value)).all())
        if not {"hub_id", "sign_key", "box_key"} <= rows.keys():
            fresh = {"hub_id": str(ULID()),
                     "sign_key": crypto.signing_key_to_b64(crypto.new_signing_key()),
                     "box_key": crypto.b64e(bytes(crypto.new_box_key()))}
            for k, v in fresh.items():
                conn.execute(_insert(conn, hub_meta).values(key=k, value=v).on_conflict_do_nothing())
            rows = dict(conn.execute(select(hub_meta.c.key, hub_meta.c.value)).all())
    return HubIdentity(rows["hub_id"], crypto.signing_key_from_b64(rows["sign_key"]),
                       crypto.box_key_from_b64(rows["box_key"]))


# ---- devices and enrolment ----------------------------------------------------------------------
@dataclass(frozen=True)
class EnrolmentSlot:
    slot_id: str
    name: str
    code: str
    expires_at: datetime


def create_enrolment(engine: Engine, name: str, municipality: str | None = None,
                     ttl: timedelta = timedelta(days=14)) -> EnrolmentSlot:
    """Register a device slot and return its one-time code (only its hash is stored)."""
    if not name.strip():
        raise EnrollmentError("device name must not be empty")
    code = crypto.new_enrolment_code()
    now = utcnow()
    slot = EnrolmentSlot(str(ULID()), name.strip(), code, now + ttl)
    with engine.begin() as conn:
        conn.execute(hub_device.insert().values(
            slot_id=slot.slot_id, name=slot.name, municipality=municipality,
            code_hash=crypto.code_id(code), code_key=crypto.code_key(code).hex(), code_expires_at=slot.expires_at,
            status="pending", created_at=now))
    return slot


def complete_enrolment(engine: Engine, identity: HubIdentity, *, code_id: str, device_id: str,
                       public_key: str, shelter_name: str | None, signature: str, mac: str) -> dict[str, Any]:
    """Bind a laptop (device id + Ed25519 public key) to the slot the code was issued for.

    The code itself never travels: the laptop proves it knows it with an HMAC, and the hub's
    reply carries an HMAC over its public keys, so a man in the middle who does not know the
    code can neither enrol nor substitute the hub's keys.
    """
    msg = enrolment_message(code_id, device_id, public_key, shelter_name)
    if not device_id or len(device_id) > 26:
        raise EnrollmentError("bad device id")
    if not crypto.verify_detached(public_key, msg, signature):
        raise EnrollmentError("enrolment request is not signed by the key it enrols")
    now = utcnow()
    with engine.begin() as conn:
        hub_lock(conn)
        slot = conn.execute(select(hub_device).where(hub_device.c.code_hash == code_id)).mappings().first()
        if slot is None or not crypto.mac_ok(bytes.fromhex(slot["code_key"]), msg, mac):
            raise EnrollmentError("unknown enrolment code")
        if slot["status"] != "pending":
            raise EnrollmentError("enrolment code already used")
        exp = slot["code_expires_at"]
        if exp is not None and (exp if exp.tzinfo else exp.replace(tzinfo=timezone.utc)) < now:
            raise EnrollmentError("enrolment code expired; ask the hub for a new one")
        other = conn.execute(select(hub_device.c.name, hub_device.c.status)
                             .where(hub_device.c.device_id == device_id)).first()
        if other is not None:
            raise EnrollmentError(f"device already enrolled as {other[0]!r} ({other[1]})")
        conn.execute(update(hub_device).where(hub_device.c.slot_id == slot["slot_id"]).values(
            status="active", device_id=device_id, public_key=public_key,
            shelter_name=shelter_name, enrolled_at=now))
    reply = {**identity.public_info(), "device_name": slot["name"], "slot_id": slot["slot_id"]}
    reply["mac"] = crypto.mac(bytes.fromhex(slot["code_key"]), enrolment_reply_message(reply, device_id))
    return reply


def revoke_device(engine: Engine, name_or_id: str) -> int:
    """Refuse a lost or stolen laptop from now on; its stored events stay."""
    with engine.begin() as conn:
        res = conn.execute(update(hub_device).where(
            (hub_device.c.device_id == name_or_id) | (hub_device.c.slot_id == name_or_id)
            | (hub_device.c.name == name_or_id)).values(status="revoked", revoked_at=utcnow()))
        return res.rowcount or 0


def list_devices(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(hub_device.c.slot_id, hub_device.c.name, hub_device.c.municipality,
                                   hub_device.c.status, hub_device.c.device_id, hub_device.c.shelter_name,
                                   hub_device.c.enrolled_at, hub_device.c.last_seen_at)
                            .order_by(hub_device.c.created_at)).mappings().all()
    return [dict(r) for r in rows]


def device_record(conn: Connection, device_id: str) -> Mapping[str, Any] | None:
    return conn.execute(select(hub_device).where(hub_device.c.device_id == device_id)).mappings().first()


# ---- request authentication --------------------------------------------------------------------
def authenticate(engine: Engine, headers: Any, method: str, path: str, body: bytes,
                 now: float | None = None) -> Mapping[str, Any]:
    """Check a signed request; return the device row or raise :class:`AuthError`.

    Order matters: signature before nonce, so nobody can burn a device's nonces.
    """
    now = time.time() if now is None else now
    sh = crypto.parse_signed_headers(headers)
    with engine.connect() as conn:
        dev = device_record(conn, sh.device_id)
    if dev is None:
        raise AuthError("unknown_device", f"device {sh.device_id} is not enrolled at this hub", 401)
    if dev["status"] != "active":
        raise AuthError("device_revoked", f"device {dev['name']!r} is {dev['status']}", 403)
    if abs(now - int(sh.timestamp)) > crypto.MAX_CLOCK_SKEW:
        raise AuthError("stale_timestamp", f"request time {sh.timestamp} too far from hub time {int(now)}", 401)
    msg = crypto.request_message(method, path, body, sh.timestamp, sh.nonce, sh.device_id)
    if not crypto.verify_detached(dev["public_key"], msg, sh.signature):
        raise AuthError("bad_signature", "signature does not verify", 401)
    with engine.begin() as conn:
        fresh = conn.execute(_insert(conn, hub_nonce).values(device_id=sh.device_id, nonce=sh.nonce, seen_at=now)
                             .on_conflict_do_nothing().returning(hub_nonce.c.nonce)).first()
        if fresh is None:
            raise AuthError("replayed_nonce", "this request was already received", 401)
        if random.random() < 0.02:  # prune now and then; the window is what matters
            conn.execute(hub_nonce.delete().where(hub_nonce.c.seen_at < now - 3 * crypto.MAX_CLOCK_SKEW))
    return dev


# ---- ingest ------------------------------------------------------------------------------------------
WIRE_KEYS = ("event_id", "device_id", "epoch", "seq", "type", "recorded_at", "payload", "payload_sha256")


@dataclass
class StreamAck:
    device_id: str
    epoch: int
    seq: int  # highest gap-free seq the hub holds
    max_seq: int

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.seq, "max_seq": self.max_seq}


@dataclass
class IngestResult:
    acks: list[StreamAck]
    stored: int = 0
    duplicates: int = 0
    forks: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"acks": [a.as_dict() for a in self.acks], "stored": self.stored,
                "duplicates": self.duplicates, "forks": self.forks, "applied": self.applied}


@dataclass
class WireEvent:
    event_id: str
    device_id: str
    epoch: int
    seq: int
    type: str
    recorded_at: str
    payload: str
    payload_sha256: str
    data: dict[str, Any]  # parsed payload


def validate_wire_events(device_id: str, events: Sequence[Mapping[str, Any]]) -> list[WireEvent]:
    """Check shape, ownership and hashes before anything touches the database."""
    out: list[WireEvent] = []
    for i, e in enumerate(events):
        if not isinstance(e, Mapping):
            raise IngestError(f"event #{i} is not an object")
        missing = [k for k in WIRE_KEYS if k not in e]
        if missing:
            raise IngestError(f"event #{i} lacks {', '.join(missing)}")
        if e["device_id"] != device_id:
            raise IngestError(f"event #{i} belongs to device {e['device_id']}, not {device_id}")
        epoch, seq = e["epoch"], e["seq"]
        if not (isinstance(epoch, int) and isinstance(seq, int)) or epoch < 1 or seq < 1:
            raise IngestError(f"event #{i} has a bad epoch/seq")
        payload = e["payload"]
        if not isinstance(payload, str) or sha256_hex(payload) != e["payload_sha256"]:
            raise IngestError(f"event #{i} ({e['event_id']}) payload does not match its SHA-256")
        if not isinstance(e["event_id"], str) or not 1 <= len(e["event_id"]) <= 26:
            raise IngestError(f"event #{i} has a bad event id")
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise IngestError(f"event #{i} payload is not JSON") from exc
        if not isinstance(data, dict):
            raise IngestError(f"event #{i} payload is not an object")
        out.append(WireEvent(e["event_id"], device_id, epoch, seq, str(e["type"])[:64], str(e["recorded_at"]),
                             payload, e["payload_sha256"], data))
    return out


def _stream_acks(conn: Connection, device_id: str) -> list[StreamAck]:
    rows = conn.execute(select(hub_stream.c.epoch, hub_stream.c.contiguous_seq, hub_stream.c.max_seq)
                        .where(hub_stream.c.device_id == device_id).order_by(hub_stream.c.epoch)).all()
    return [StreamAck(device_id, int(r[0]), int(r[1]), int(r[2])) for r in rows]


def stream_acks(engine: Engine, device_id: str) -> list[StreamAck]:
    with engine.connect() as conn:
        return _stream_acks(conn, device_id)


def ingest_conn(conn: Connection, device_id: str, events: Sequence[WireEvent], *, via: str,
                now: datetime | None = None) -> IngestResult:
    """Store a validated batch inside an open transaction (caller commits).

    Idempotent: a (device, epoch, seq) already held with the same event id and hash is a
    duplicate; with different content it is a *fork*, kept in ``hub_fork`` and never
    overwriting what is stored.  Events are applied to the hub tables in seq order once their
    stream is gap-free up to them, so a batch that arrives ahead of its predecessor waits.
    """
    from sync.hub import apply as hub_apply  # local: apply imports this module's tables

    now = now or utcnow()
    hub_lock(conn)
    result = IngestResult(acks=[])
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
        return dict(device_id=device_id, epoch=ev.epoch, seq=ev.seq, existing_event_id=existing_id,
                    existing_sha256=existing_sha, incoming_event_id=ev.event_id, incoming_type=ev.type,
                    incoming_sha256=ev.payload_sha256, incoming_recorded_at=ev.recorded_at,
                    incoming_payload=ev.payload, received_at=now, via=via)

    for epoch, slot in by_epoch.items():
        seqs = sorted(slot)
        existing = {int(r[0]): (r[1], r[2]) for r in conn.execute(
            select(hub_event.c.seq, hub_event.c.event_id, hub_event.c.payload_sha256).where(
                hub_event.c.device_id == device_id, hub_event.c.epoch == epoch,
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
        base = int(conn.execute(select(func.coalesce(func.max(hub_event.c.hub_seq), 0))).scalar_one())
        new_rows.sort(key=lambda e: (e.epoch, e.seq))
        rows = [dict(device_id=device_id, epoch=e.epoch, seq=e.seq, event_id=e.event_id, type=e.type,
                     recorded_at=e.recorded_at, payload=e.payload, payload_sha256=e.payload_sha256,
                     hub_seq=base + i + 1, received_at=now, via=via) for i, e in enumerate(new_rows)]
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
            hub_stream.c.device_id == device_id, hub_stream.c.epoch == epoch)).first()
        old_contig, old_max = (int(st[0]), int(st[1])) if st else (0, 0)
        held_seqs = [int(r[0]) for r in conn.execute(
            select(hub_event.c.seq).where(hub_event.c.device_id == device_id, hub_event.c.epoch == epoch,
                                          hub_event.c.seq > old_contig).order_by(hub_event.c.seq)).all()]
        contig = old_contig
        for s in held_seqs:
            if s != contig + 1:
                break
            contig = s
        max_seq = max([old_max, contig] + held_seqs[-1:])
        if st is None:
            conn.execute(hub_stream.insert().values(device_id=device_id, epoch=epoch, contiguous_seq=contig,
                                                    max_seq=max_seq, updated_at=now))
        elif (contig, max_seq) != (old_contig, old_max):
            conn.execute(update(hub_stream).where(hub_stream.c.device_id == device_id, hub_stream.c.epoch == epoch)
                         .values(contiguous_seq=contig, max_seq=max_seq, updated_at=now))
        if contig > old_contig:
            want = range(old_contig + 1, contig + 1)
            missing = [s for s in want if (epoch, s) not in new_by_key]
            stored_earlier: dict[int, WireEvent] = {}
            if missing:
                for r in conn.execute(select(hub_event).where(
                        hub_event.c.device_id == device_id, hub_event.c.epoch == epoch,
                        hub_event.c.seq > old_contig, hub_event.c.seq <= contig)).mappings():
                    if (epoch, int(r["seq"])) not in new_by_key:
                        stored_earlier[int(r["seq"])] = WireEvent(
                            r["event_id"], device_id, epoch, int(r["seq"]), r["type"], r["recorded_at"],
                            r["payload"], r["payload_sha256"], json.loads(r["payload"]))
            ordered = [new_by_key.get((epoch, s)) or stored_earlier[s] for s in want]
            result.applied += hub_apply.apply_events(conn, ordered, now=now)

    conn.execute(update(hub_device).where(hub_device.c.device_id == device_id).values(last_seen_at=now))
    result.acks = _stream_acks(conn, device_id)
    return result


def ingest(engine: Engine, device_id: str, events: Sequence[Mapping[str, Any]], *, via: str = "http",
           after_commit: Callable[[], None] | None = None) -> IngestResult:
    """Validate and store one batch in its own transaction; return acks only after commit."""
    wire = validate_wire_events(device_id, events)
    with engine.begin() as conn:
        result = ingest_conn(conn, device_id, wire, via=via)
    if after_commit is not None:
        after_commit()
    return result


# ---- feed for pulling other shelters' events ---------------------------------------------------------------
def pull_feed(engine: Engine, device_id: str, after: int, limit: int = 500) -> dict[str, Any]:
    """Events of *other* devices with ``hub_seq > after``, in hub order.

    ``next`` advances past the requester's own events too, so a shelter whose own events
    end the feed is not asked to page through them again.
    """
    limit = max(1, min(int(limit), 2000))
    with engine.connect() as conn:
        rows = conn.execute(
            select(hub_event.c.hub_seq, hub_event.c.device_id).where(hub_event.c.hub_seq > after)
            .order_by(hub_event.c.hub_seq).limit(limit)).all()
        if not rows:
            return {"events": [], "next": after, "more": False}
        last = int(rows[-1][0])
        wanted = [int(r[0]) for r in rows if r[1] != device_id]
        events: list[dict[str, Any]] = []
        if wanted:
            q = (select(hub_event, hub_device.c.shelter_name, hub_device.c.name.label("device_name"))
                 .join(hub_device, hub_device.c.device_id == hub_event.c.device_id, isouter=True)
                 .where(hub_event.c.hub_seq > after, hub_event.c.hub_seq <= last,
                        hub_event.c.device_id != device_id)
                 .order_by(hub_event.c.hub_seq))
            for r in conn.execute(q).mappings():
                events.append({k: r[k] for k in ("hub_seq",) + WIRE_KEYS}
                              | {"shelter_name": r["shelter_name"] or r["device_name"]})
    return {"events": events, "next": last, "more": len(rows) == limit}


# ---- status -----------------------------------------------------------------------------------------------
def status(engine: Engine) -> dict[str, int]:
    """Counts for ``anpi hub status``.

    ``people``: evacuees linked to the same person (same 宛名番号 via an auto/confirmed match)
    count once; unlinked registered evacuees count one each.
    """
    with engine.connect() as conn:
        def count(q: Any) -> int:
            return int(conn.execute(q).scalar_one())

        active_links = select(hub_person_link.c.evacuee_id, hub_person_link.c.person_key).where(
            hub_person_link.c.revoked_at.is_(None)).subquery()
        linked_people = count(select(func.count(func.distinct(active_links.c.person_key))))
        unlinked = count(select(func.count()).select_from(hub_evacuee).where(
            hub_evacuee.c.registered.is_(True),
            ~hub_evacuee.c.evacuee_id.in_(select(active_links.c.evacuee_id))))
        return {
            "devices": count(select(func.count()).select_from(hub_device).where(hub_device.c.status == "active")),
            "events": count(select(func.count()).select_from(hub_event)),
            # stub rows (a stay or edit that arrived before its registration) are not counted
            "evacuees": count(select(func.count()).select_from(hub_evacuee).where(hub_evacuee.c.registered.is_(True))),
            "people": linked_people + unlinked,
            "forks": count(select(func.count()).select_from(hub_fork)),
            "review_items": count(select(func.count()).select_from(hub_review_item)
                                  .where(hub_review_item.c.status == "open")),
        }


def held_events(engine: Engine) -> list[tuple[str, int, int, str, str]]:
    """(device_id, epoch, seq, event_id, sha256) of every stored event (tests, audits)."""
    with engine.connect() as conn:
        return [(r[0], int(r[1]), int(r[2]), r[3], r[4]) for r in conn.execute(
            select(hub_event.c.device_id, hub_event.c.epoch, hub_event.c.seq, hub_event.c.event_id,
                   hub_event.c.payload_sha256).order_by(hub_event.c.hub_seq)).all()]


def movement_trail(engine: Engine, person_key: str) -> list[dict[str, Any]]:
    """Every stay of every evacuee currently linked to one person, across shelters, by time."""
    with engine.connect() as conn:
        ev_ids = select(hub_person_link.c.evacuee_id).where(
            hub_person_link.c.person_key == person_key, hub_person_link.c.revoked_at.is_(None))
        rows = conn.execute(select(hub_stay).where(hub_stay.c.evacuee_id.in_(ev_ids))
                            .order_by(hub_stay.c.at, hub_stay.c.stay_id)).mappings().all()
    return [dict(r) for r in rows]

