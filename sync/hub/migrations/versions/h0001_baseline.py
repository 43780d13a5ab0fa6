"""Baseline: the hub schema as release 1 created it (``metadata.create_all`` + hand-added indexes).

Revision ID: h0001
Revises: (none)

Idempotent on purpose: a hub database created by the release before Alembic (no
``anpi_hub_alembic_version`` table) is *adopted* by running this revision over it — every table
and index that exists is left alone, the missing ones are created, and the row-level security
policies are installed where missing.  On an empty database it simply creates everything.
The columns are written out here (not taken from ``sync.hub.store``) so that later edits of the
table definitions never change what this revision does.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0001"
down_revision = None
branch_labels = None
depends_on = None

_T = "municipality_code = current_setting('anpi.municipality', true)"
#: table -> (USING, WITH CHECK) for the tables whose rows are found before the tenant is known
_POLICIES: dict[str, tuple[str, str]] = {
    "hub_meta": (f"municipality_code = '' OR {_T}", f"municipality_code = '' OR {_T}"),
    "hub_device": (f"{_T} OR device_id = current_setting('anpi.device', true)"
                   f" OR code_hash = current_setting('anpi.enrol', true)",) * 2,
    "hub_user": (f"{_T} OR token_hash = current_setting('anpi.token', true)", _T),
    "hub_share": (f"{_T} OR host_code = current_setting('anpi.municipality', true)", _T),
}
_NO_RLS = {"hub_municipality"}
_created: list[str] = []


def _table(name: str, *items: sa.SchemaItem) -> None:
    """Create a table unless a pre-Alembic hub already has it."""
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *items)
    _created.append(name)


def _index(name: str, table: str, columns: list[str], unique: bool = False) -> None:
    """Create an index unless it exists (pre-Alembic hubs got some indexes in later releases)."""
    if name not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns, unique=unique)


def _row_level_security() -> None:
    """ENABLE + FORCE row-level security and the ``anpi_tenant`` policy on every tenant table
    (PostgreSQL only; skipped where the policy already exists)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in _created:
        if name in _NO_RLS:
            continue
        row = bind.execute(sa.text(
            "SELECT c.relrowsecurity, c.relforcerowsecurity, pg_has_role(current_user, c.relowner, 'USAGE') "
            "FROM pg_class c WHERE c.oid = to_regclass(:t)"), {"t": name}).first()
        if row is None or not row[2]:  # not the owner: relies on what the owner installed
            continue
        has_policy = bind.execute(sa.text(
            "SELECT 1 FROM pg_policies WHERE schemaname = current_schema() AND tablename = :t "
            "AND policyname = 'anpi_tenant'"), {"t": name}).first() is not None
        if row[0] and row[1] and has_policy:
            continue
        op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
        if not has_policy:
            using, check = _POLICIES.get(name, (_T, _T))
            op.execute(f"CREATE POLICY anpi_tenant ON {name} USING ({using}) WITH CHECK ({check})")


def upgrade() -> None:
    _created.clear()
    _table('hub_audit',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.Text(), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('prev_hash', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'seq')
    )
    _table('hub_audit_head',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('report_id', sa.String(length=26), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('anchor_seq', sa.BigInteger(), nullable=True),
        sa.Column('anchor_hash', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('uploaded_to', sa.BigInteger(), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'report_id')
    )
    _index('ix_hub_audit_head_device', 'hub_audit_head', ['municipality_code', 'device_id', 'received_at'], unique=False)
    _table('hub_bundle',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('bundle_id', sa.String(length=26), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('event_count', sa.Integer(), nullable=False),
        sa.Column('new_count', sa.Integer(), nullable=False),
        sa.Column('receipt', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'bundle_id')
    )
    _table('hub_certificate',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('number', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.Text(), nullable=True),
        sa.Column('resident_id', sa.Text(), nullable=True),
        sa.Column('household_id', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('issued_at', sa.Text(), nullable=True),
        sa.Column('voided_at', sa.Text(), nullable=True),
        sa.Column('void_reason', sa.Text(), nullable=True),
        sa.Column('device_id', sa.String(length=26), nullable=True),
        sa.Column('payload', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'number')
    )
    _table('hub_counter',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'name')
    )
    _table('hub_cross_link',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('host_code', sa.String(length=16), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=False),
        sa.Column('resident_id', sa.Text(), nullable=True),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('linked', sa.Boolean(), nullable=False),
        sa.Column('probability', sa.Float(), nullable=True),
        sa.Column('reasons', sa.Text(), nullable=True),
        sa.Column('rejected', sa.Text(), nullable=False),
        sa.Column('decided_by', sa.Text(), nullable=True),
        sa.Column('item_id', sa.String(length=26), nullable=True),
        sa.Column('restricted', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('ev_name', sa.Text(), nullable=True),
        sa.Column('ev_name_kana', sa.Text(), nullable=True),
        sa.Column('ev_birth', sa.Text(), nullable=True),
        sa.Column('ev_sex', sa.Text(), nullable=True),
        sa.Column('ev_address', sa.Text(), nullable=True),
        sa.Column('shelter_code', sa.Text(), nullable=True),
        sa.Column('shelter_name', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=True),
        sa.Column('registered_at', sa.Text(), nullable=True),
        sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'host_code', 'evacuee_id')
    )
    _index('ix_hub_cross_link_resident', 'hub_cross_link', ['municipality_code', 'resident_id'], unique=False)
    _table('hub_crossmatch_job',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'evacuee_id')
    )
    _index('ix_hub_crossmatch_pending', 'hub_crossmatch_job', ['municipality_code', 'status'], unique=False)
    _table('hub_decision',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('decision_id', sa.String(length=26), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=False),
        sa.Column('resident_id', sa.Text(), nullable=True),
        sa.Column('resident_municipality', sa.Text(), nullable=True),
        sa.Column('person_key', sa.Text(), nullable=True),
        sa.Column('snapshot_as_of', sa.Text(), nullable=True),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('reasons', sa.Text(), nullable=True),
        sa.Column('by_user', sa.Text(), nullable=True),
        sa.Column('at', sa.Text(), nullable=False),
        sa.Column('event_id', sa.String(length=26), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'decision_id')
    )
    _index('ix_hub_decision_evacuee', 'hub_decision', ['municipality_code', 'evacuee_id'], unique=False)
    _table('hub_device',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('slot_id', sa.String(length=26), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=True),
        sa.Column('code_key', sa.String(length=64), nullable=True),
        sa.Column('code_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=True),
        sa.Column('public_key', sa.Text(), nullable=True),
        sa.Column('shelter_name', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'slot_id'),
        sa.UniqueConstraint('municipality_code', 'code_hash', name='uq_hub_device_code'),
        sa.UniqueConstraint('municipality_code', 'device_id', name='uq_hub_device_device')
    )
    _index('ix_hub_device_code_hash', 'hub_device', ['code_hash'], unique=False)
    _index('ix_hub_device_device_id', 'hub_device', ['device_id'], unique=False)
    _table('hub_device_audit',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('entry', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'device_id', 'seq', 'hash')
    )
    _table('hub_device_clock',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('offset_seconds', sa.Float(), nullable=False),
        sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'device_id')
    )
    _table('hub_epoch_grant',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'device_id', 'epoch')
    )
    _table('hub_evacuee',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=True),
        sa.Column('shelter_code', sa.Text(), nullable=True),
        sa.Column('external_key', sa.Text(), nullable=True),
        sa.Column('name', sa.Text(), nullable=True),
        sa.Column('name_kana', sa.Text(), nullable=True),
        sa.Column('birth_date_raw', sa.Text(), nullable=True),
        sa.Column('birth_date', sa.Text(), nullable=True),
        sa.Column('sex', sa.Text(), nullable=True),
        sa.Column('address', sa.Text(), nullable=True),
        sa.Column('phone', sa.Text(), nullable=True),
        sa.Column('household_key', sa.Text(), nullable=True),
        sa.Column('care', sa.Text(), nullable=True),
        sa.Column('consents', sa.Text(), nullable=True),
        sa.Column('registered_at', sa.Text(), nullable=True),
        sa.Column('registered', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=True),
        sa.Column('current_shelter_code', sa.Text(), nullable=True),
        sa.Column('last_stay_key', sa.Text(), nullable=True),
        sa.Column('provenance', sa.Text(), nullable=True),
        sa.Column('extra', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('withheld', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'evacuee_id')
    )
    _index('ix_hub_evacuee_updated', 'hub_evacuee', ['municipality_code', 'updated_at'], unique=False)
    _table('hub_evacuee_value',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('value_id', sa.String(length=26), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=False),
        sa.Column('field', sa.String(length=64), nullable=False),
        sa.Column('old', sa.Text(), nullable=True),
        sa.Column('new', sa.Text(), nullable=True),
        sa.Column('conflict', sa.Boolean(), nullable=False),
        sa.Column('event_id', sa.String(length=26), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('at', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'value_id')
    )
    _index('ix_hub_evacuee_value_evacuee', 'hub_evacuee_value', ['municipality_code', 'evacuee_id'], unique=False)
    _table('hub_event',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('event_id', sa.String(length=26), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', sa.Text(), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('payload_sha256', sa.String(length=64), nullable=False),
        sa.Column('hub_seq', sa.BigInteger(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'device_id', 'epoch', 'seq'),
        sa.UniqueConstraint('municipality_code', 'hub_seq', name='uq_hub_event_hub_seq')
    )
    _index('ix_hub_event_evacuee', 'hub_event', ['municipality_code', 'evacuee_id'], unique=False)
    _index('ix_hub_event_event_id', 'hub_event', ['municipality_code', 'event_id'], unique=False)
    _table('hub_fork',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('fork_id', sa.String(length=26), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('existing_event_id', sa.String(length=26), nullable=False),
        sa.Column('existing_sha256', sa.String(length=64), nullable=False),
        sa.Column('incoming_event_id', sa.String(length=26), nullable=False),
        sa.Column('incoming_type', sa.String(length=64), nullable=False),
        sa.Column('incoming_sha256', sa.String(length=64), nullable=False),
        sa.Column('incoming_recorded_at', sa.Text(), nullable=False),
        sa.Column('incoming_payload', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'fork_id'),
        sa.UniqueConstraint('municipality_code', 'device_id', 'epoch', 'seq', 'incoming_event_id', 'incoming_sha256', name='uq_fork_incoming')
    )
    _table('hub_fork_resolution',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('fork_id', sa.String(length=26), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('applied_epoch', sa.Integer(), nullable=True),
        sa.Column('applied_seq', sa.BigInteger(), nullable=True),
        sa.Column('resolved_by', sa.Text(), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'fork_id')
    )
    _table('hub_hq_record',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('record_id', sa.String(length=26), nullable=False),
        sa.Column('resident_id', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('method', sa.Text(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('by_user', sa.Text(), nullable=True),
        sa.Column('at', sa.Text(), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=True),
        sa.Column('event_id', sa.String(length=26), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'record_id')
    )
    _index('ix_hub_hq_record_resident', 'hub_hq_record', ['municipality_code', 'resident_id'], unique=False)
    _table('hub_inquiry',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('inquiry_id', sa.String(length=26), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('by_user', sa.Text(), nullable=False),
        sa.Column('inquirer', sa.Text(), nullable=False),
        sa.Column('relationship', sa.Text(), nullable=False),
        sa.Column('asked', sa.Text(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=True),
        sa.Column('items', sa.Text(), nullable=False),
        sa.Column('answer_text', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'inquiry_id')
    )
    _table('hub_meta',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'key')
    )
    _table('hub_municipality',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code')
    )
    _table('hub_nonce',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('seen_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'device_id', 'nonce')
    )
    _index('ix_hub_nonce_seen_at', 'hub_nonce', ['seen_at'], unique=False)
    _table('hub_notice',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('notice_id', sa.String(length=26), nullable=False),
        sa.Column('hub_seq', sa.BigInteger(), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('payload_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'notice_id'),
        sa.UniqueConstraint('municipality_code', 'hub_seq', name='uq_hub_notice_hub_seq')
    )
    _table('hub_person_link',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('link_id', sa.String(length=26), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=False),
        sa.Column('person_key', sa.Text(), nullable=False),
        sa.Column('resident_id', sa.Text(), nullable=False),
        sa.Column('resident_municipality', sa.Text(), nullable=True),
        sa.Column('decision_id', sa.String(length=26), nullable=False),
        sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by_decision_id', sa.String(length=26), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'link_id')
    )
    _index('ix_hub_person_link_evacuee', 'hub_person_link', ['municipality_code', 'evacuee_id'], unique=False)
    _index('ix_hub_person_link_person', 'hub_person_link', ['municipality_code', 'person_key'], unique=False)
    _index('ix_hub_person_link_resident', 'hub_person_link', ['municipality_code', 'resident_id'], unique=False)
    _table('hub_registry_snapshot',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('snapshot_id', sa.String(length=26), nullable=False),
        sa.Column('as_of', sa.String(length=10), nullable=False),
        sa.Column('source_file', sa.Text(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('row_count', sa.Integer(), nullable=False),
        sa.Column('encoding', sa.String(length=16), nullable=False),
        sa.Column('profile', sa.Text(), nullable=False),
        sa.Column('options', sa.Text(), nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('file_ct', sa.LargeBinary(), nullable=False),
        sa.Column('records_ct', sa.LargeBinary(), nullable=False),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('imported_by', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'snapshot_id'),
        sa.UniqueConstraint('municipality_code', 'sha256', name='uq_hub_snapshot_sha')
    )
    _table('hub_restricted',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('snapshot_id', sa.String(length=26), nullable=False),
        sa.Column('rid_mac', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'snapshot_id', 'rid_mac')
    )
    _table('hub_review_item',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('item_id', sa.String(length=26), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=True),
        sa.Column('field', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('candidates', sa.Text(), nullable=False),
        sa.Column('host_code', sa.String(length=16), nullable=True),
        sa.Column('resolution', sa.Text(), nullable=True),
        sa.Column('resolved_by', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'item_id')
    )
    _index('ix_hub_review_item_evacuee', 'hub_review_item', ['municipality_code', 'evacuee_id'], unique=False)
    _table('hub_share',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('host_code', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.Text(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'host_code')
    )
    _table('hub_sought_link',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('link_id', sa.String(length=26), nullable=False),
        sa.Column('sought_id', sa.String(length=26), nullable=False),
        sa.Column('target_kind', sa.String(length=16), nullable=False),
        sa.Column('target_id', sa.Text(), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('reasons', sa.Text(), nullable=True),
        sa.Column('by_user', sa.Text(), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'link_id')
    )
    _index('ix_hub_sought_link_sought', 'hub_sought_link', ['municipality_code', 'sought_id'], unique=False)
    _table('hub_sought_person',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('sought_id', sa.String(length=26), nullable=False),
        sa.Column('person_record_id', sa.Text(), nullable=False),
        sa.Column('source_file', sa.Text(), nullable=True),
        sa.Column('entry_date', sa.Text(), nullable=True),
        sa.Column('expiry_date', sa.Text(), nullable=True),
        sa.Column('record', sa.Text(), nullable=False),
        sa.Column('notes', sa.Text(), nullable=False),
        sa.Column('imported_by', sa.Text(), nullable=True),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'sought_id'),
        sa.UniqueConstraint('municipality_code', 'person_record_id', name='uq_hub_sought_person_record')
    )
    _table('hub_stay',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('stay_id', sa.String(length=26), nullable=False),
        sa.Column('evacuee_id', sa.String(length=26), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('shelter_code', sa.Text(), nullable=True),
        sa.Column('destination', sa.Text(), nullable=True),
        sa.Column('at', sa.Text(), nullable=False),
        sa.Column('event_id', sa.String(length=26), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'stay_id')
    )
    _index('ix_hub_stay_evacuee', 'hub_stay', ['municipality_code', 'evacuee_id'], unique=False)
    _table('hub_stream',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('contiguous_seq', sa.BigInteger(), nullable=False),
        sa.Column('max_seq', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'device_id', 'epoch')
    )
    _table('hub_stream_order',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('device_id', sa.String(length=26), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('last_at', sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint('municipality_code', 'device_id', 'epoch')
    )
    _table('hub_user',
        sa.Column('municipality_code', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.String(length=26), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('municipality_code', 'user_id'),
        sa.UniqueConstraint('municipality_code', 'name', name='uq_hub_user_name'),
        sa.UniqueConstraint('municipality_code', 'token_hash', name='uq_hub_user_token')
    )
    _index('ix_hub_user_token', 'hub_user', ['token_hash'], unique=False)
    _row_level_security()


def downgrade() -> None:
    raise NotImplementedError("the hub baseline is not downgraded: restore a backup instead")
