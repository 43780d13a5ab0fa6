"""Hub storage: tables, tenants, identity, devices, request authentication, idempotent ingest, feed.

The hub keeps its tables on its *own* ``MetaData`` (never ``SQLModel.metadata``) so the
shelter's migrations never create hub tables and vice versa.  It runs on PostgreSQL
(``postgresql+psycopg://``) or, for a one-laptop HQ, SQLite.

**Tenants (自治体クラウド).**  Every table carries ``municipality_code`` (全国地方公共団体コード)
as the first column of its primary key, and every unique key includes it: a national
deployment can distribute every table by that column (Citus ``create_distributed_table(…,
'municipality_code')``) and each municipality's rows then live on one shard.  A hub where no
municipality was ever added runs as one implicit tenant, :data:`IMPLICIT_TENANT`.  Isolation
is kept twice: every query filters on the tenant, and on PostgreSQL every table (but the
public list of municipalities) has ``ENABLE`` + ``FORCE ROW LEVEL SECURITY`` with a policy
``municipality_code = current_setting('anpi.municipality', true)``; each transaction states
its tenant with ``set_config(…, true)`` (:func:`set_tenant`), which ends with the transaction.
A few rows must be found *before* the tenant is known (a device by the id in its signed
headers, an enrolment slot by its code, an HQ user by a token); their policies also admit a
row whose secret lookup key the transaction has stated (``anpi.device``, ``anpi.enrol``,
``anpi.token``) — you can only see a row whose key you already hold.

Ingest is the heart: every write transaction first takes its tenant's lock
(``pg_advisory_xact_lock`` keyed by schema and municipality on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite).  That makes the tenant's feed number ``hub_seq`` commit in order (a
puller can never skip an event that commits late with a smaller number), and lets apply
logic read-modify-write hub tables without races.  Batches are inserted with one multi-row
``INSERT … ON CONFLICT DO NOTHING``, so a 500-event batch costs a handful of statements.
"""
from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

from sqlalchemy import (
    BigInteger, Boolean, Column, DateTime, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text,
    UniqueConstraint, bindparam, create_engine, event, false, func, inspect, select, text, update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from ulid import ULID

from sync import crypto
from sync.canonical import canonical_json, sha256_hex
from sync.crypto import enrolment_message, enrolment_reply_message
from sync.errors import AuthError, EnrollmentError, IngestError, TenantError
from sync.events import EVACUEE_FORM_FIELDS

#: tenant of a hub where no municipality was ever added (not a valid 団体コード: none starts with 00)
IMPLICIT_TENANT = "000000"
#: the PostgreSQL setting every policy reads
TENANT_SETTING = "anpi.municipality"

metadata = MetaData()


def _tenant_col() -> Column:
    return Column("municipality_code", String(16), primary_key=True)


def new_row_id() -> str:
    return str(ULID())


# ---- hub-wide (reference) tables ------------------------------------------------------------
hub_meta = Table(
    "hub_meta", metadata,
    # hub-wide rows (identity keys) use municipality_code ''
    Column("municipality_code", String(16), primary_key=True, default=""),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

hub_municipality = Table(  # the public list of tenants: code and name only (no RLS: a reference table)
    "hub_municipality", metadata,
    _tenant_col(),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# ---- tenant tables ---------------------------------------------------------------------------
hub_share = Table(  # home lets the hub match evacuees at host's shelters against home's registry
    "hub_share", metadata,
    _tenant_col(),  # home
    Column("host_code", String(16), primary_key=True),
    Column("status", String(16), nullable=False),  # active | revoked
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", Text),
)

hub_audit = Table(  # append-only, hash-chained per municipality
    "hub_audit", metadata,
    _tenant_col(),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("detail", Text, nullable=False),  # JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

hub_audit_head = Table(  # the laptop audit-chain head each device reported at a sync (sync/hub/audit_head.py)
    "hub_audit_head", metadata,
    _tenant_col(),
    Column("report_id", String(26), primary_key=True),
    Column("device_id", String(26), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("anchor_seq", BigInteger),  # the head the hub knew before this report
    Column("anchor_hash", String(64)),  # what the laptop's chain holds at anchor_seq now (None: gone)
    Column("status", String(16), nullable=False),  # first | ok | cut | restored | unchecked
    Column("uploaded_to", BigInteger, nullable=False),  # entries of the current chain held up to here
    Column("detail", Text, nullable=False),  # JSON: the report as sent, the hub's verdict
    Index("ix_hub_audit_head_device", "municipality_code", "device_id", "received_at"),
)

hub_device_audit = Table(  # the laptops' own audit entries, uploaded at each sync (append-only)
    "hub_device_audit", metadata,
    _tenant_col(),
    Column("device_id", String(26), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), primary_key=True),  # a rewritten entry is kept beside the first one
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("entry", Text, nullable=False),  # JSON: the entry as the laptop's `anpi audit export` writes it
)

hub_user = Table(  # HQ staff of one municipality (災害対策本部)
    "hub_user", metadata,
    _tenant_col(),
    Column("user_id", String(26), primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", String(16), nullable=False),  # hq | admin
    Column("token_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    UniqueConstraint("municipality_code", "name", name="uq_hub_user_name"),
    UniqueConstraint("municipality_code", "token_hash", name="uq_hub_user_token"),
    Index("ix_hub_user_token", "token_hash"),
)

hub_device = Table(
    "hub_device", metadata,
    _tenant_col(),
    Column("slot_id", String(26), primary_key=True),
    Column("name", Text, nullable=False),
    Column("code_hash", String(64)),  # crypto.code_id(code): lookup only
    Column("code_key", String(64)),  # hex of crypto.code_key(code): MAC key
    Column("code_expires_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # pending | active | revoked
    Column("device_id", String(26)),
    Column("public_key", Text),
    Column("shelter_name", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("enrolled_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
    # unique per tenant (a distributed unique key must contain the distribution column);
    # hub-wide uniqueness of device ids and codes is kept by enrolment under a hub-wide lock
    UniqueConstraint("municipality_code", "code_hash", name="uq_hub_device_code"),
    UniqueConstraint("municipality_code", "device_id", name="uq_hub_device_device"),
    Index("ix_hub_device_device_id", "device_id"),
    Index("ix_hub_device_code_hash", "code_hash"),
)

hub_event = Table(
    "hub_event", metadata,
    # the primary key *is* the (device_id, epoch, seq) unique constraint, within the tenant
    _tenant_col(),
    Column("device_id", String(26), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("event_id", String(26), nullable=False),
    Column("type", String(64), nullable=False),
    Column("recorded_at", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("hub_seq", BigInteger, nullable=False),  # the tenant's feed number
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("via", String(16), nullable=False),
    Column("evacuee_id", String(26)),  # from the payload: lets the feed withhold 閲覧制限 evacuees
    UniqueConstraint("municipality_code", "hub_seq", name="uq_hub_event_hub_seq"),
    Index("ix_hub_event_event_id", "municipality_code", "event_id"),
    Index("ix_hub_event_evacuee", "municipality_code", "evacuee_id"),
)

hub_stream = Table(
    "hub_stream", metadata,
    _tenant_col(),
    Column("device_id", String(26), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("contiguous_seq", BigInteger, nullable=False),  # highest gap-free seq held
    Column("max_seq", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

hub_fork = Table(
    "hub_fork", metadata,
    _tenant_col(),
    Column("fork_id", String(26), primary_key=True),
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
    UniqueConstraint("municipality_code", "device_id", "epoch", "seq", "incoming_event_id", "incoming_sha256",
                     name="uq_fork_incoming"),
)

hub_fork_resolution = Table(  # what HQ decided about one kept fork (hub_fork rows never change)
    "hub_fork_resolution", metadata,
    _tenant_col(),
    Column("fork_id", String(26), primary_key=True),
    Column("action", String(16), nullable=False),  # applied | discarded
    Column("applied_epoch", Integer),  # where an applied fork now lives in hub_event (a hub-granted epoch)
    Column("applied_seq", BigInteger),
    Column("resolved_by", Text),
    Column("resolved_at", DateTime(timezone=True), nullable=False),
)

hub_epoch_grant = Table(  # epochs the hub handed out: no two laptops sharing a device id get the same one
    "hub_epoch_grant", metadata,
    _tenant_col(),
    Column("device_id", String(26), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("reason", String(64), nullable=False),  # restore | fork | fork-review
    Column("granted_at", DateTime(timezone=True), nullable=False),
)

hub_device_clock = Table(  # the laptop's clock error as measured at its latest sync (hub time - laptop time)
    "hub_device_clock", metadata,
    _tenant_col(),
    Column("device_id", String(26), primary_key=True),
    Column("offset_seconds", Float, nullable=False),
    Column("measured_at", DateTime(timezone=True), nullable=False),
)

hub_stream_order = Table(  # per stream: the order key of its newest applied stay (keeps seq order)
    "hub_stream_order", metadata,
    _tenant_col(),
    Column("device_id", String(26), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("last_at", String(40), nullable=False),  # hub-corrected time, fixed-width UTC ISO
)

hub_nonce = Table(
    "hub_nonce", metadata,
    _tenant_col(),
    Column("device_id", String(26), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False, index=True),
)

hub_bundle = Table(
    "hub_bundle", metadata,
    _tenant_col(),
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
    _tenant_col(),  # the municipality of the shelter that registered the evacuee
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
    # 閲覧制限 (DV等支援措置): never sent to other shelters; sticky once set
    Column("withheld", Boolean, nullable=False, server_default=false()),
    Index("ix_hub_evacuee_updated", "municipality_code", "updated_at"),  # what changed since (inquiry index)
)

hub_evacuee_value = Table(
    "hub_evacuee_value", metadata,
    _tenant_col(),
    Column("value_id", String(26), primary_key=True),
    Column("evacuee_id", String(26), nullable=False),
    Column("field", String(64), nullable=False),
    Column("old", Text),
    Column("new", Text),
    Column("conflict", Boolean, nullable=False),
    Column("event_id", String(26), nullable=False),
    Column("device_id", String(26), nullable=False),
    Column("at", Text),
    Index("ix_hub_evacuee_value_evacuee", "municipality_code", "evacuee_id"),
)

hub_stay = Table(
    "hub_stay", metadata,
    _tenant_col(),
    Column("stay_id", String(26), primary_key=True),
    Column("evacuee_id", String(26), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("shelter_code", Text),
    Column("destination", Text),
    Column("at", Text, nullable=False),
    Column("event_id", String(26), nullable=False),
    Column("device_id", String(26), nullable=False),
    Index("ix_hub_stay_evacuee", "municipality_code", "evacuee_id"),
)

hub_decision = Table(
    "hub_decision", metadata,
    _tenant_col(),
    Column("decision_id", String(26), primary_key=True),
    Column("evacuee_id", String(26), nullable=False),
    Column("resident_id", Text),
    Column("resident_municipality", Text),  # the registry's municipality when the event names one
    Column("person_key", Text),
    Column("snapshot_as_of", Text),
    Column("decision", String(16), nullable=False),
    Column("score", Float),
    Column("reasons", Text),
    Column("by_user", Text),
    Column("at", Text, nullable=False),
    Column("event_id", String(26), nullable=False),
    Column("device_id", String(26), nullable=False),
    Index("ix_hub_decision_evacuee", "municipality_code", "evacuee_id"),
)

hub_person_link = Table(
    "hub_person_link", metadata,
    _tenant_col(),
    Column("link_id", String(26), primary_key=True),
    Column("evacuee_id", String(26), nullable=False),
    Column("person_key", Text, nullable=False),
    Column("resident_id", Text, nullable=False),
    Column("resident_municipality", Text),
    Column("decision_id", String(26), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by_decision_id", String(26)),
    Index("ix_hub_person_link_evacuee", "municipality_code", "evacuee_id"),
    Index("ix_hub_person_link_person", "municipality_code", "person_key"),
    Index("ix_hub_person_link_resident", "municipality_code", "resident_id"),  # the inquiry desk's lookups
)

hub_review_item = Table(
    "hub_review_item", metadata,
    _tenant_col(),
    Column("item_id", String(26), primary_key=True),
    Column("kind", String(32), nullable=False),  # field_conflict | cross_match
    Column("evacuee_id", String(26)),
    Column("field", String(64)),
    Column("status", String(16), nullable=False),  # open | resolved
    Column("candidates", Text, nullable=False),  # JSON
    Column("host_code", String(16)),  # cross_match: the municipality whose shelter holds the evacuee
    Column("resolution", Text),
    Column("resolved_by", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_hub_review_item_evacuee", "municipality_code", "evacuee_id"),
)

hub_certificate = Table(
    "hub_certificate", metadata,
    _tenant_col(),
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

hub_counter = Table(  # per-municipality sequences the hub hands out itself (e.g. its certificate numbers)
    "hub_counter", metadata,
    _tenant_col(),
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# ---- the desks at the hub (HQ records, 安否照会, PFIF) ------------------------------------------
hub_hq_record = Table(  # append-only: what HQ learned about a resident by other means, from any laptop or the hub
    "hub_hq_record", metadata,
    _tenant_col(),
    Column("record_id", String(26), primary_key=True),
    Column("resident_id", Text, nullable=False),  # 宛名番号 of this municipality
    Column("status", String(32), nullable=False),  # confirmed_other | dead | missing | withdrawn
    Column("method", Text),
    Column("note", Text),
    Column("by_user", Text),
    Column("at", Text, nullable=False),  # ISO time; records replay by (at, record_id)
    Column("device_id", String(26)),  # NULL: typed at the hub
    Column("event_id", String(26)),
    Index("ix_hub_hq_record_resident", "municipality_code", "resident_id"),
)

hub_inquiry = Table(  # append-only log of the hub's 安否照会 desk (who asked, about whom, what was said)
    "hub_inquiry", metadata,
    _tenant_col(),
    Column("inquiry_id", String(26), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by_user", Text, nullable=False),
    Column("inquirer", Text, nullable=False),  # JSON: name, address, id_proof, relationship, phone
    Column("relationship", Text, nullable=False),
    Column("asked", Text, nullable=False),  # JSON: name, kana, birth, address as typed
    Column("outcome", String(16), nullable=False),  # answered | refused | restricted | not_found | ambiguous
    Column("evacuee_id", String(26)),
    Column("items", Text, nullable=False),  # JSON list of disclosed items
    Column("answer_text", Text, nullable=False),
)

hub_sought_person = Table(  # PFIF persons imported at the hub ("sought" by someone outside)
    "hub_sought_person", metadata,
    _tenant_col(),
    Column("sought_id", String(26), primary_key=True),
    Column("person_record_id", Text, nullable=False),
    Column("source_file", Text),
    Column("entry_date", Text),
    Column("expiry_date", Text),
    Column("record", Text, nullable=False),  # JSON of the parsed PFIF person
    Column("notes", Text, nullable=False),  # JSON list of its PFIF notes
    Column("imported_by", Text),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("municipality_code", "person_record_id", name="uq_hub_sought_person_record"),
)

hub_sought_link = Table(  # append-only: a sought person linked (or unlinked) to a resident or an evacuee
    "hub_sought_link", metadata,
    _tenant_col(),
    Column("link_id", String(26), primary_key=True),
    Column("sought_id", String(26), nullable=False),
    Column("target_kind", String(16), nullable=False),  # resident | evacuee
    Column("target_id", Text, nullable=False),
    Column("decision", String(16), nullable=False),  # suggested | confirmed | rejected
    Column("score", Float),
    Column("reasons", Text),
    Column("by_user", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_hub_sought_link_sought", "municipality_code", "sought_id"),
)

# ---- registry backups, cross-town matching, feed notices ------------------------------------
hub_registry_snapshot = Table(  # a registry backup held at the data center, encrypted at rest
    "hub_registry_snapshot", metadata,
    _tenant_col(),
    Column("snapshot_id", String(26), primary_key=True),
    Column("as_of", String(10), nullable=False),
    Column("source_file", Text, nullable=False),
    Column("sha256", String(64), nullable=False),  # of the file as imported
    Column("size", BigInteger, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("encoding", String(16), nullable=False),
    Column("profile", Text, nullable=False),
    Column("options", Text, nullable=False),  # JSON: how to import it again (no personal data)
    Column("key_id", String(32), nullable=False),  # which data key sealed it
    Column("file_ct", LargeBinary, nullable=False),  # SecretBox(header + zlib(file))
    Column("records_ct", LargeBinary, nullable=False),  # SecretBox(header + zlib(parsed records JSON))
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("imported_by", Text, nullable=False),
    UniqueConstraint("municipality_code", "sha256", name="uq_hub_snapshot_sha"),
)

hub_restricted = Table(  # 閲覧制限 residents of a snapshot, as keyed MACs of their 宛名番号 (never in clear)
    "hub_restricted", metadata,
    _tenant_col(),
    Column("snapshot_id", String(26), primary_key=True),
    Column("rid_mac", String(64), primary_key=True),
)

hub_notice = Table(  # hub-made feed entries for one municipality's shelters (same numbering as hub_event)
    "hub_notice", metadata,
    _tenant_col(),
    Column("notice_id", String(26), primary_key=True),
    Column("hub_seq", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("evacuee_id", String(26)),
    Column("payload", Text, nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("municipality_code", "hub_seq", name="uq_hub_notice_hub_seq"),
)

hub_crossmatch_job = Table(  # evacuees of a host municipality to match against sharing homes' registries
    "hub_crossmatch_job", metadata,
    _tenant_col(),  # host
    Column("evacuee_id", String(26), primary_key=True),
    Column("status", String(16), nullable=False),  # pending | done
    Column("reason", Text),
    Column("version", Integer, nullable=False),
    Column("result", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_hub_crossmatch_pending", "municipality_code", "status"),
)

hub_cross_link = Table(  # the home municipality's view of one of its residents found at a host's shelter
    "hub_cross_link", metadata,
    _tenant_col(),  # home
    Column("host_code", String(16), primary_key=True),
    Column("evacuee_id", String(26), primary_key=True),
    Column("resident_id", Text),
    Column("decision", String(16), nullable=False),  # auto | review | none | confirmed | rejected
    Column("linked", Boolean, nullable=False),
    Column("probability", Float),
    Column("reasons", Text),
    Column("rejected", Text, nullable=False),  # JSON list of 宛名番号 staff rejected for this evacuee
    Column("decided_by", Text),
    Column("item_id", String(26)),
    Column("restricted", Boolean, nullable=False, server_default=false()),
    # what the host disclosed about the evacuee (as registered there), kept current by apply
    Column("ev_name", Text),
    Column("ev_name_kana", Text),
    Column("ev_birth", Text),
    Column("ev_sex", Text),
    Column("ev_address", Text),
    Column("shelter_code", Text),
    Column("shelter_name", Text),
    Column("status", String(16)),
    Column("registered_at", Text),
    Column("linked_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_hub_cross_link_resident", "municipality_code", "resident_id"),
)

#: policies: a row is visible when it belongs to the transaction's tenant, or when the
#: transaction states the row's own secret lookup key (see module docstring)
_T = "municipality_code = current_setting('anpi.municipality', true)"
RLS_POLICIES: dict[str, tuple[str, str]] = {  # table -> (USING, WITH CHECK)
    "hub_meta": (f"municipality_code = '' OR {_T}", f"municipality_code = '' OR {_T}"),
    "hub_device": (f"{_T} OR device_id = current_setting('anpi.device', true)"
                   f" OR code_hash = current_setting('anpi.enrol', true)",) * 2,
    "hub_user": (f"{_T} OR token_hash = current_setting('anpi.token', true)", _T),
    "hub_share": (f"{_T} OR host_code = current_setting('anpi.municipality', true)", _T),
}
#: hub_municipality is the public list of tenants (code, name): a reference table without RLS
NO_RLS_TABLES = frozenset({"hub_municipality"})
TENANT_TABLES = [t for t in metadata.sorted_tables if t.name not in NO_RLS_TABLES]


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
    """Create the hub engine, its tables and (PostgreSQL) its row-level security (idempotent)."""
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
    _refuse_old_schema(engine)
    metadata.create_all(engine)
    _add_new_indexes(engine)
    if engine.dialect.name == "postgresql":
        install_row_level_security(engine)
    return engine


def _add_new_indexes(engine: Engine) -> None:
    """``create_all`` makes only missing *tables*: an index added to an existing table in a later
    version is created here, so a hub upgraded in place gets it too (cheap when all exist)."""
    insp = inspect(engine)
    for table in metadata.sorted_tables:
        have = {ix["name"] for ix in insp.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in have:
                index.create(engine, checkfirst=True)


def _refuse_old_schema(engine: Engine) -> None:
    """A hub created before municipalities existed has no tenant column: say so plainly."""
    insp = inspect(engine)
    if insp.has_table("hub_event") and "municipality_code" not in {c["name"] for c in insp.get_columns("hub_event")}:
        raise TenantError("this hub database predates municipalities (no municipality_code column); "
                          "export its events as bundles and import them into a new hub database")


def install_row_level_security(engine: Engine) -> list[str]:
    """ENABLE + FORCE row-level security with the tenant policy on every tenant table.

    Runs only where the connected role owns the tables (the role that created them); a hub
    that connects as another role relies on what the owner installed.  Returns the tables
    it changed.  FORCE makes the policies bind the owning role too, so a hub that connects
    as the (non-superuser) owner is confined as well; superusers and BYPASSRLS roles are not —
    never run the hub as one.
    """
    changed: list[str] = []
    with engine.begin() as conn:
        for table in TENANT_TABLES:
            row = conn.execute(text(
                "SELECT c.relrowsecurity, c.relforcerowsecurity, "
                "pg_has_role(current_user, c.relowner, 'USAGE') "
                "FROM pg_class c WHERE c.oid = to_regclass(:t)"), {"t": table.name}).first()
            if row is None or not row[2]:
                continue
            has_policy = conn.execute(text(
                "SELECT 1 FROM pg_policies WHERE schemaname = current_schema() AND tablename = :t "
                "AND policyname = 'anpi_tenant'"), {"t": table.name}).first() is not None
            if row[0] and row[1] and has_policy:
                continue
            using, check = RLS_POLICIES.get(table.name, (_T, _T))
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ENABLE ROW LEVEL SECURITY")
            conn.exec_driver_sql(f"ALTER TABLE {table.name} FORCE ROW LEVEL SECURITY")
            if not has_policy:
                conn.exec_driver_sql(f"CREATE POLICY anpi_tenant ON {table.name} USING ({using}) WITH CHECK ({check})")
            changed.append(table.name)
    return changed


# ---- tenant context -----------------------------------------------------------------------
def _set(conn: Connection, name: str, value: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": value})


def set_tenant(conn: Connection, municipality: str) -> None:
    """State the transaction's tenant for the row-level security policies (until commit)."""
    _set(conn, TENANT_SETTING, municipality)


def state_lookup_key(conn: Connection, kind: str, value: str) -> None:
    """State a secret lookup key (``device``, ``enrol`` or ``token``) for this transaction."""
    assert kind in ("device", "enrol", "token")
    _set(conn, f"anpi.{kind}", value)


def hub_lock(conn: Connection, municipality: str = IMPLICIT_TENANT) -> None:
    """Serialise one tenant's writers (see module docstring) and state the tenant.
    On SQLite the transaction already holds the only write lock (BEGIN IMMEDIATE)."""
    set_tenant(conn, municipality)
    if conn.dialect.name == "postgresql":
        # Hub writes are point lookups by indexed keys.  A young hub has stale statistics until
        # autovacuum's first ANALYZE, and the planner then picks sequential scans whose cost
        # grows with every event stored; pin index plans inside hub write transactions.
        # …and no JIT: a plan that must still scan (a tiny table) is costed at 10^10 with seqscan
        # off, which would otherwise buy a 16 ms JIT compilation for a sub-millisecond query
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off; SET LOCAL jit = off")
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274, hashtext(current_schema() || ':' || %(m)s))",
                             {"m": municipality})


def hub_wide_lock(conn: Connection, purpose: str) -> None:
    """For the rare hub-wide invariants (device ids and enrolment codes unique across tenants)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727273, hashtext(current_schema() || ':' || %(p)s))",
                             {"p": purpose})


def tenant_codes(conn: Connection) -> list[str]:
    """Every tenant that can hold rows: the implicit one and each municipality added."""
    return [IMPLICIT_TENANT] + [r[0] for r in conn.execute(
        select(hub_municipality.c.municipality_code).order_by(hub_municipality.c.municipality_code)).all()]


def each_tenant(conn: Connection) -> Iterator[str]:
    """Visit every tenant in turn inside one transaction (operator-wide reads such as status)."""
    for code in tenant_codes(conn):
        set_tenant(conn, code)
        yield code


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
                coalesce: Sequence[str] = (), guard: str | None = None, *, municipality: str) -> None:
    """Update many rows of one tenant by key in one statement.

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
               f"WHERE t.municipality_code = %(m)s AND t.{key} = v.{key}{cond}")
        _pg_binary(conn, sql, {"m": municipality} | {f"a{i}": [r[c] for r in rows] for i, c in enumerate(names)})
        return
    sets = {c: (func.coalesce(bindparam(f"_{c}"), table.c[c]) if c in coalesce else bindparam(f"_{c}")) for c in cols}
    where = [table.c.municipality_code == municipality, table.c[key] == bindparam("_key")]
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
    if isinstance(t, LargeBinary):
        return "bytea"
    return "text"


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
    def load(conn: Connection) -> dict[str, str]:
        return dict(conn.execute(select(hub_meta.c.key, hub_meta.c.value)
                                 .where(hub_meta.c.municipality_code == "")).all())

    with engine.begin() as conn:
        rows = load(conn)
        if not {"hub_id", "sign_key", "box_key"} <= rows.keys():
            fresh = {"hub_id": str(ULID()),
                     "sign_key": crypto.signing_key_to_b64(crypto.new_signing_key()),
                     "box_key": crypto.b64e(bytes(crypto.new_box_key()))}
            for k, v in fresh.items():
                conn.execute(_insert(conn, hub_meta).values(municipality_code="", key=k, value=v)
                             .on_conflict_do_nothing())
            rows = load(conn)
    return HubIdentity(rows["hub_id"], crypto.signing_key_from_b64(rows["sign_key"]),
                       crypto.box_key_from_b64(rows["box_key"]))


# ---- municipalities (tenants) --------------------------------------------------------------------
def municipality_names(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(select(hub_municipality.c.municipality_code, hub_municipality.c.name)).all())


def resolve_municipality(conn: Connection, code: str | None) -> str:
    """``--municipality`` as given, else the only municipality, else the implicit tenant."""
    names = municipality_names(conn)
    if code:
        code = code.strip()
        if code == IMPLICIT_TENANT and not names:
            return code
        if code not in names:
            known = ", ".join(sorted(names)) or "none yet"
            raise TenantError(f"unknown municipality {code} (known: {known}); add it with "
                              f"`anpi hub municipality add CODE NAME`")
        return code
    if not names:
        return IMPLICIT_TENANT
    if len(names) == 1:
        return next(iter(names))
    raise TenantError(f"this hub serves {len(names)} municipalities ({', '.join(sorted(names))}); "
                      "pass --municipality CODE")


# ---- devices and enrolment ----------------------------------------------------------------------
@dataclass(frozen=True)
class EnrolmentSlot:
    slot_id: str
    name: str
    code: str
    expires_at: datetime
    municipality_code: str = IMPLICIT_TENANT


def create_enrolment(engine: Engine, name: str, municipality: str | None = None,
                     ttl: timedelta = timedelta(days=14)) -> EnrolmentSlot:
    """Register a device slot of one municipality and return its one-time code (only its hash is stored)."""
    if not name.strip():
        raise EnrollmentError("device name must not be empty")
    code = crypto.new_enrolment_code()
    now = utcnow()
    with engine.begin() as conn:
        m = resolve_municipality(conn, municipality)
        slot = EnrolmentSlot(str(ULID()), name.strip(), code, now + ttl, m)
        set_tenant(conn, m)
        conn.execute(hub_device.insert().values(
            municipality_code=m, slot_id=slot.slot_id, name=slot.name,
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
        hub_wide_lock(conn, "enrol")
        state_lookup_key(conn, "enrol", code_id)
        state_lookup_key(conn, "device", device_id)
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
        m = slot["municipality_code"]
        set_tenant(conn, m)
        conn.execute(update(hub_device).where(hub_device.c.municipality_code == m,
                                              hub_device.c.slot_id == slot["slot_id"]).values(
            status="active", device_id=device_id, public_key=public_key,
            shelter_name=shelter_name, enrolled_at=now))
        names = municipality_names(conn)
    reply = {**identity.public_info(), "device_name": slot["name"], "slot_id": slot["slot_id"],
             "municipality_code": m, "municipality_name": names.get(m)}
    reply["mac"] = crypto.mac(bytes.fromhex(slot["code_key"]), enrolment_reply_message(reply, device_id))
    return reply


def revoke_device(engine: Engine, name_or_id: str, municipality: str | None = None) -> int:
    """Refuse a lost or stolen laptop from now on; its stored events stay."""
    with engine.begin() as conn:
        m = resolve_municipality(conn, municipality)
        set_tenant(conn, m)
        res = conn.execute(update(hub_device).where(hub_device.c.municipality_code == m, (
            (hub_device.c.device_id == name_or_id) | (hub_device.c.slot_id == name_or_id)
            | (hub_device.c.name == name_or_id))).values(status="revoked", revoked_at=utcnow()))
        return res.rowcount or 0


def list_devices(engine: Engine, municipality: str | None = None) -> list[dict[str, Any]]:
    """Device slots of one municipality (``None``: of every tenant, for the operator)."""
    cols = (hub_device.c.municipality_code, hub_device.c.slot_id, hub_device.c.name, hub_device.c.status,
            hub_device.c.device_id, hub_device.c.shelter_name, hub_device.c.enrolled_at, hub_device.c.last_seen_at,
            hub_device.c.created_at)
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        codes = [resolve_municipality(conn, municipality)] if municipality else list(each_tenant(conn))
        for m in codes:
            set_tenant(conn, m)
            for r in conn.execute(select(*cols).where(hub_device.c.municipality_code == m)).mappings():
                out.append(dict(r) | {"municipality": r["municipality_code"]})
    out.sort(key=lambda r: r["created_at"])
    return out


def device_record(conn: Connection, device_id: str) -> Mapping[str, Any] | None:
    """A device by the id it claims (before its tenant is known): the ``anpi.device`` lookup."""
    state_lookup_key(conn, "device", device_id)
    return conn.execute(select(hub_device).where(hub_device.c.device_id == device_id)).mappings().first()


def device_municipality(engine: Engine, device_id: str) -> str:
    """The tenant a device's events belong to (the implicit tenant for a device the hub does
    not know, e.g. events ingested directly by tests and tools)."""
    with engine.connect() as conn:
        dev = device_record(conn, device_id)
    return dev["municipality_code"] if dev is not None else IMPLICIT_TENANT


# ---- request authentication --------------------------------------------------------------------
def authenticate(engine: Engine, headers: Any, method: str, path: str, body: bytes,
                 now: float | None = None) -> Mapping[str, Any]:
    """Check a signed request; return the device row (with its ``municipality_code``) or raise
    :class:`AuthError`.  Order matters: signature before nonce, so nobody can burn a device's nonces.
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
    m = dev["municipality_code"]
    with engine.begin() as conn:
        set_tenant(conn, m)
        fresh = conn.execute(_insert(conn, hub_nonce).values(municipality_code=m, device_id=sh.device_id,
                                                             nonce=sh.nonce, seen_at=now)
                             .on_conflict_do_nothing().returning(hub_nonce.c.nonce)).first()
        if fresh is None:
            raise AuthError("replayed_nonce", "this request was already received", 401)
        if random.random() < 0.02:  # prune now and then; the window is what matters
            conn.execute(hub_nonce.delete().where(hub_nonce.c.municipality_code == m,
                                                  hub_nonce.c.seen_at < now - 3 * crypto.MAX_CLOCK_SKEW))
    return dev


# ---- ingest ------------------------------------------------------------------------------------------
WIRE_KEYS = ("event_id", "device_id", "epoch", "seq", "type", "recorded_at", "payload", "payload_sha256")


@dataclass
class StreamAck:
    device_id: str
    epoch: int
    seq: int  # highest gap-free seq the hub holds *and* no open fork sits at or below (safe for old laptops)
    max_seq: int
    held_seq: int | None = None  # highest gap-free seq held, forks or not (None: same as seq)

    def as_dict(self) -> dict[str, Any]:
        held = self.seq if self.held_seq is None else self.held_seq
        return {"epoch": self.epoch, "seq": self.seq, "max_seq": self.max_seq, "held_seq": held}


@dataclass
class IngestResult:
    acks: list[StreamAck]
    stored: int = 0
    duplicates: int = 0
    forks: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0
    crossmatch_jobs: int = 0  # evacuees queued for matching against other municipalities
    #: per incoming event: {"event_id", "epoch", "seq", "status": held | applied | fork} — read back
    #: from the tables before commit, so only what is really stored is ever called held
    results: list[dict[str, Any]] = field(default_factory=list)
    clock_offset: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"acks": [a.as_dict() for a in self.acks], "stored": self.stored,
                "duplicates": self.duplicates, "forks": self.forks, "applied": self.applied,
                "results": self.results, "clock_offset": self.clock_offset}


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


def open_fork_floor(conn: Connection, device_id: str, municipality: str) -> dict[int, int]:
    """{epoch: lowest seq with a fork HQ has not resolved} for one device."""
    resolved = select(hub_fork_resolution.c.fork_id).where(hub_fork_resolution.c.municipality_code == municipality)
    return {int(r[0]): int(r[1]) for r in conn.execute(
        select(hub_fork.c.epoch, func.min(hub_fork.c.seq))
        .where(hub_fork.c.municipality_code == municipality, hub_fork.c.device_id == device_id,
               hub_fork.c.fork_id.not_in(resolved))
        .group_by(hub_fork.c.epoch)).all()}


def _stream_acks(conn: Connection, device_id: str, municipality: str) -> list[StreamAck]:
    """Per stream: ``seq`` stops below the first open fork, because a laptop of an older version
    marks everything up to ``seq`` delivered — and a forked event of its own at that number was
    *not* stored.  ``held_seq`` is the plain gap-free watermark (newer laptops ack per event)."""
    rows = conn.execute(select(hub_stream.c.epoch, hub_stream.c.contiguous_seq, hub_stream.c.max_seq)
                        .where(hub_stream.c.municipality_code == municipality, hub_stream.c.device_id == device_id)
                        .order_by(hub_stream.c.epoch)).all()
    floor = open_fork_floor(conn, device_id, municipality)
    return [StreamAck(device_id, int(r[0]), min(int(r[1]), floor.get(int(r[0]), int(r[1]) + 1) - 1), int(r[2]),
                      int(r[1])) for r in rows]


def stream_acks(engine: Engine, device_id: str, municipality: str | None = None) -> list[StreamAck]:
    m = municipality or device_municipality(engine, device_id)
    with engine.connect() as conn:
        set_tenant(conn, m)
        return _stream_acks(conn, device_id, m)


def _evacuee_of(data: Mapping[str, Any]) -> str | None:
    eid = data.get("evacuee_id")
    return eid[:26] if isinstance(eid, str) and eid else None


def next_hub_seq(conn: Connection, municipality: str) -> int:
    """The tenant's highest feed number so far (events and hub notices share the numbering).
    Callers hold the tenant's lock, so numbers commit in order."""
    ev = conn.execute(select(func.coalesce(func.max(hub_event.c.hub_seq), 0))
                      .where(hub_event.c.municipality_code == municipality)).scalar_one()
    no = conn.execute(select(func.coalesce(func.max(hub_notice.c.hub_seq), 0))
                      .where(hub_notice.c.municipality_code == municipality)).scalar_one()
    return max(int(ev), int(no))


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
    from sync.hub import apply as hub_apply  # local: apply imports this module's tables
    from sync.hub import forks as hub_forks

    m = municipality
    now = now or utcnow()
    hub_lock(conn, m)
    result = IngestResult(acks=[], clock_offset=clock_offset)
    offset = hub_forks.record_clock(conn, m, device_id, clock_offset, now)
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
    result.results = hub_forks.event_statuses(conn, m, device_id, events)
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


# ---- feed for pulling other shelters' events ---------------------------------------------------------------
#: health and contact items of an evacuee (様式第1号 ⑥–⑪ and the phone number) that the feed never
#: forwards to *other* laptops — see :func:`pull_feed`
FEED_PRIVATE_FIELDS: tuple[str, ...] = ("phone", *EVACUEE_FORM_FIELDS)
#: event types whose payload may carry them (top level, or under ``changes`` for an edit)
_REDACTED_TYPES = ("evacuee.registered", "evacuee.updated")


def redact_for_feed(etype: str, payload: str, payload_sha256: str) -> tuple[str, str] | None:
    """(payload, sha256) as another laptop may receive it, or ``None`` when nothing is left to send.

    An ``evacuee.registered`` loses the keys of :data:`FEED_PRIVATE_FIELDS`; an ``evacuee.updated``
    loses those changes, and is not sent at all when it changed nothing else.  A payload with nothing
    to remove is returned byte for byte (same hash as the laptop that wrote it); a redacted one is
    canonical JSON (sync.canonical) with its own SHA-256, which is what the laptop checks.
    """
    if etype not in _REDACTED_TYPES:
        return payload, payload_sha256
    try:
        data = json.loads(payload)
    except ValueError:
        return payload, payload_sha256
    if not isinstance(data, dict):
        return payload, payload_sha256
    changed = False
    if etype == "evacuee.registered":
        for k in FEED_PRIVATE_FIELDS:
            if k in data:
                del data[k]
                changed = True
    else:
        changes = data.get("changes")
        if isinstance(changes, dict):
            kept = {k: v for k, v in changes.items() if k not in FEED_PRIVATE_FIELDS}
            if len(kept) != len(changes):
                if not kept:
                    return None
                data["changes"], changed = kept, True
    if not changed:
        return payload, payload_sha256
    text_ = canonical_json(data)
    return text_, sha256_hex(text_)


def pull_feed(engine: Engine, device_id: str, after: int, limit: int = 500,
              municipality: str | None = None) -> dict[str, Any]:
    """The device's municipality's feed after ``after``: other devices' events and the hub's
    notices to that municipality, in feed order — nothing of another municipality, and no event
    about an evacuee the hub withholds (閲覧制限).

    **Health and contact items stay at the hub.**  Registrations and edits carry 様式第1号 items
    ⑥–⑪ (国籍, 通称・特徴, 負傷・疾病 and its state, 居所, 連絡先) and the phone number; other laptops
    have no use for them — what they read from their ``remote_event`` (the safety list's stays and
    要配慮 ``care``, "already registered at …" by name, kana and birth date, cross-town notices,
    HQ records, certificate notices) never includes them, and their 安否照会 desk does not answer
    for people registered elsewhere (the hub's desk does, from its own tables, which keep
    everything).  A laptop lost or stolen at one shelter should expose as little as possible of
    the people at every other one, so :func:`redact_for_feed` removes them from what is served
    here (an edit of only those items is not served at all); the payload is then re-hashed, since
    the laptop verifies ``sha256(payload) == payload_sha256`` and keys nothing on the original hash.

    ``next`` advances past the requester's own (and withheld or emptied) events too, so a shelter
    whose own events end the feed is not asked to page through them again.
    """
    limit = max(1, min(int(limit), 2000))
    m = municipality or device_municipality(engine, device_id)
    with engine.connect() as conn:
        set_tenant(conn, m)
        ev_rows = conn.execute(
            select(hub_event.c.hub_seq, hub_event.c.device_id, hub_event.c.evacuee_id)
            .where(hub_event.c.municipality_code == m, hub_event.c.hub_seq > after)
            .order_by(hub_event.c.hub_seq).limit(limit)).all()
        no_rows = conn.execute(
            select(hub_notice).where(hub_notice.c.municipality_code == m, hub_notice.c.hub_seq > after)
            .order_by(hub_notice.c.hub_seq).limit(limit)).mappings().all()
        seqs = sorted([int(r[0]) for r in ev_rows] + [int(r["hub_seq"]) for r in no_rows])[:limit]
        if not seqs:
            return {"events": [], "next": after, "more": False}
        last = seqs[-1]
        more = len(ev_rows) == limit or len(no_rows) == limit
        withheld: set[str] = set()
        candidates = {r[2] for r in ev_rows if r[2] and r[1] != device_id and int(r[0]) <= last}
        if candidates:
            from sync.hub.apply import in_  # local: apply imports this module

            withheld = {r[0] for r in conn.execute(select(hub_evacuee.c.evacuee_id).where(
                hub_evacuee.c.municipality_code == m, hub_evacuee.c.withheld.is_(True),
                in_(conn, hub_evacuee.c.evacuee_id, sorted(candidates)))).all()}
        wanted = [int(r[0]) for r in ev_rows if r[1] != device_id and int(r[0]) <= last and r[2] not in withheld]
        items: list[tuple[int, dict[str, Any]]] = []
        if wanted:
            q = (select(hub_event, hub_device.c.shelter_name, hub_device.c.name.label("device_name"))
                 .join(hub_device, (hub_device.c.municipality_code == hub_event.c.municipality_code)
                       & (hub_device.c.device_id == hub_event.c.device_id), isouter=True)
                 .where(hub_event.c.municipality_code == m, hub_event.c.hub_seq > after,
                        hub_event.c.hub_seq <= last, hub_event.c.device_id != device_id)
                 .order_by(hub_event.c.hub_seq))
            for r in conn.execute(q).mappings():
                if r["evacuee_id"] in withheld:
                    continue
                served = redact_for_feed(r["type"], r["payload"], r["payload_sha256"])
                if served is None:
                    continue
                wire = {k: r[k] for k in ("hub_seq",) + WIRE_KEYS}
                wire["payload"], wire["payload_sha256"] = served
                items.append((int(r["hub_seq"]), wire | {"shelter_name": r["shelter_name"] or r["device_name"]}))
        for r in no_rows:
            if int(r["hub_seq"]) <= last:
                items.append((int(r["hub_seq"]), notice_wire(r)))
    items.sort(key=lambda x: x[0])
    return {"events": [e for _, e in items], "next": last, "more": more}


def notice_wire(r: Mapping[str, Any]) -> dict[str, Any]:
    """A hub notice in the shape of a pulled event (the laptop stores it like any other)."""
    return {"hub_seq": int(r["hub_seq"]), "event_id": r["notice_id"], "device_id": "hub", "epoch": 1,
            "seq": int(r["hub_seq"]), "type": r["type"], "recorded_at": r["created_at"].isoformat()
            if isinstance(r["created_at"], datetime) else str(r["created_at"]), "payload": r["payload"],
            "payload_sha256": r["payload_sha256"], "shelter_name": None}


def insert_notices(conn: Connection, municipality: str, notices: Sequence[Mapping[str, Any]],
                   now: datetime | None = None) -> list[str]:
    """Append hub-made feed entries for one municipality's laptops; returns their notice ids.

    Each notice is ``{"type": …, "payload": {…}}`` (``evacuee_id`` taken from the payload when it
    names one).  The payload is stored as canonical JSON with its SHA-256, exactly what the laptop
    checks when it pulls.  The caller holds the tenant's lock (:func:`hub_lock`): notices share the
    feed numbering with events (:func:`next_hub_seq`), which must commit in order.
    """
    if not notices:
        return []
    now = now or utcnow()
    base = next_hub_seq(conn, municipality)
    rows = []
    for i, n in enumerate(notices):
        payload = canonical_json(dict(n["payload"]))
        eid = n["payload"].get("evacuee_id")
        rows.append(dict(municipality_code=municipality, notice_id=new_row_id(), hub_seq=base + i + 1,
                         type=str(n["type"])[:64], evacuee_id=eid if isinstance(eid, str) and eid else None,
                         payload=payload, payload_sha256=sha256_hex(payload), created_at=now))
    bulk_insert(conn, hub_notice, rows, on_conflict_nothing=False)
    return [r["notice_id"] for r in rows]


# ---- status -----------------------------------------------------------------------------------------------
STATUS_KEYS = ("devices", "events", "evacuees", "people", "forks", "review_items")


def _status_one(conn: Connection, m: str) -> dict[str, int]:
    def count(q: Any) -> int:
        return int(conn.execute(q).scalar_one())

    active_links = select(hub_person_link.c.evacuee_id, hub_person_link.c.person_key).where(
        hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None)).subquery()
    linked_people = count(select(func.count(func.distinct(active_links.c.person_key))))
    unlinked = count(select(func.count()).select_from(hub_evacuee).where(
        hub_evacuee.c.municipality_code == m, hub_evacuee.c.registered.is_(True),
        ~hub_evacuee.c.evacuee_id.in_(select(active_links.c.evacuee_id))))
    return {
        "devices": count(select(func.count()).select_from(hub_device).where(
            hub_device.c.municipality_code == m, hub_device.c.status == "active")),
        "events": count(select(func.count()).select_from(hub_event).where(hub_event.c.municipality_code == m)),
        # stub rows (a stay or edit that arrived before its registration) are not counted
        "evacuees": count(select(func.count()).select_from(hub_evacuee).where(
            hub_evacuee.c.municipality_code == m, hub_evacuee.c.registered.is_(True))),
        "people": linked_people + unlinked,
        "forks": count(select(func.count()).select_from(hub_fork).where(hub_fork.c.municipality_code == m)),
        # a fork HQ has not applied or discarded is a review item too: it is an event nobody sees yet
        "review_items": count(select(func.count()).select_from(hub_review_item)
                              .where(hub_review_item.c.municipality_code == m, hub_review_item.c.status == "open"))
        + count(select(func.count()).select_from(hub_fork).where(
            hub_fork.c.municipality_code == m, hub_fork.c.fork_id.not_in(
                select(hub_fork_resolution.c.fork_id).where(hub_fork_resolution.c.municipality_code == m)))),
    }


def status(engine: Engine, municipality: str | None = None) -> dict[str, int]:
    """Counts for ``anpi hub status``: one municipality's, or (``None``) the whole hub's.

    ``people``: evacuees linked to the same person (same 宛名番号 via an auto/confirmed match)
    count once; unlinked registered evacuees count one each.
    """
    with engine.connect() as conn:
        if municipality:
            m = resolve_municipality(conn, municipality)
            set_tenant(conn, m)
            return _status_one(conn, m)
        total = dict.fromkeys(STATUS_KEYS, 0)
        for m in each_tenant(conn):
            for k, v in _status_one(conn, m).items():
                total[k] += v
        return total


def held_events(engine: Engine) -> list[tuple[str, int, int, str, str]]:
    """(device_id, epoch, seq, event_id, sha256) of every stored event, every tenant (tests, audits)."""
    out: list[tuple[int, str, tuple[str, int, int, str, str]]] = []
    with engine.connect() as conn:
        for m in each_tenant(conn):
            for r in conn.execute(select(hub_event.c.device_id, hub_event.c.epoch, hub_event.c.seq,
                                         hub_event.c.event_id, hub_event.c.payload_sha256, hub_event.c.hub_seq)
                                  .where(hub_event.c.municipality_code == m)).all():
                out.append((int(r[5]), m, (r[0], int(r[1]), int(r[2]), r[3], r[4])))
    out.sort(key=lambda x: (x[1], x[0]))
    return [x[2] for x in out]


def movement_trail(engine: Engine, person_key: str, municipality: str = IMPLICIT_TENANT) -> list[dict[str, Any]]:
    """Every stay of every evacuee currently linked to one person, across shelters, by time."""
    with engine.connect() as conn:
        set_tenant(conn, municipality)
        ev_ids = select(hub_person_link.c.evacuee_id).where(
            hub_person_link.c.municipality_code == municipality,
            hub_person_link.c.person_key == person_key, hub_person_link.c.revoked_at.is_(None))
        rows = conn.execute(select(hub_stay).where(hub_stay.c.municipality_code == municipality,
                                                   hub_stay.c.evacuee_id.in_(ev_ids))
                            .order_by(hub_stay.c.at, hub_stay.c.stay_id)).mappings().all()
    return [dict(r) for r in rows]
