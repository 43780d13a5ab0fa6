"""Tables of the shelter database (one SQLite file per shelter laptop).

Rules that every table follows, because the data outlives the laptop:
- rows that leave the laptop carry ULID primary keys (`app.ids.new_id`), so two laptops never
  hand out the same identifier without talking to each other;
- nothing is physically deleted except by an explicit purge command; stay events and match
  decisions are append-only, the current state is the newest row;
- every field typed by a person is kept verbatim (`*_raw`) beside what we parsed from it, so a
  parsing mistake can always be undone by looking at what was really typed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.ids import new_id, utcnow


class Shelter(SQLModel, table=True):
    """避難所: the shelter this laptop serves (normally exactly one row)."""

    id: str = Field(default_factory=new_id, primary_key=True)
    code: str = Field(index=True, unique=True)
    name: str
    municipality_code: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class ShelterRecord(SQLModel, table=True):
    """One shelter of the municipality's shelter list (避難所一覧): a 移動 picks its destination here.

    source: "own" (this laptop's shelter), "hub" (heard of from the hub's feed) or "admin" (typed
    in by an administrator or `anpi shelter add`). population is what was last known for another
    shelter; this laptop's own population is always counted from its roster.
    """

    __tablename__ = "shelter_record"

    id: str = Field(default_factory=new_id, primary_key=True)
    code: str = Field(index=True, unique=True)
    name: str
    capacity: Optional[int] = None
    population: Optional[int] = None
    address: str = ""
    source: str = "admin"
    active: bool = True
    updated_at: datetime = Field(default_factory=utcnow)


class Staff(SQLModel, table=True):
    """One account per person: shared logins are how residents' data leaked before."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True)
    role: str  # staff | desk | hq | admin
    pin_hash: Optional[str] = None  # argon2; None until the person sets a PIN with their setup code
    setup_hash: Optional[str] = None  # argon2 of the one-time setup code an admin handed out (None: none open)
    disabled: bool = False
    failed_attempts: int = 0
    locked_until: Optional[datetime] = None
    created_at: datetime = Field(default_factory=utcnow)


class RegistrySnapshot(SQLModel, table=True):
    """One imported backup of the resident registry (住民基本台帳); never changed after import."""

    id: Optional[int] = Field(default=None, primary_key=True)
    as_of: date
    source_file: str
    sha256: str = Field(index=True, unique=True)
    encoding: str
    profile: str
    row_count: int
    imported_at: datetime = Field(default_factory=utcnow)
    imported_by: str = ""
    # rows left out by `anpi registry import --quarantine-bad-rows` (0 = the snapshot is complete)
    quarantined: int = 0
    quarantine_report: str = ""  # the report file (file, row, field, reason) written at import
    gaiji_map: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    header: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # as in the file


class Resident(SQLModel, table=True):
    def raw_fields(self, header: list[str]) -> dict[str, str]:
        """Every column of the imported row by header name, unknown vendor columns included."""
        import csv

        cells = next(csv.reader([self.raw_line]), [])
        return dict(zip(header, cells))

    """One person in one snapshot: raw fields as imported plus the matching keys.

    Keys (`k_*`) are computed once at import by `matching.person.registry_keys`, so
    reconciliation and search only read them.
    """

    __table_args__ = (
        UniqueConstraint("snapshot_id", "resident_id", name="uq_resident_snapshot_rid"),
        Index("ix_resident_snapshot_household", "snapshot_id", "household_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    snapshot_id: int = Field(foreign_key="registrysnapshot.id")
    line_no: int
    resident_id: str  # 宛名番号
    household_id: str = ""  # 世帯番号
    family_name: str = ""  # 氏, kanji as registered (old forms and gaiji kept)
    given_name: str = ""  # 名
    family_name_kana: str = ""
    given_name_kana: str = ""
    alpha_name: str = ""  # 英字氏名 (foreign residents)
    birth_date: Optional[date] = None  # None when 不詳 (unknown): never invented
    birth_raw: str = ""
    sex: str = ""  # "M" | "F" | ""
    relationship: str = ""  # 続柄
    postal_code: str = ""
    address: str = ""
    restricted: bool = False  # 閲覧制限 (DV等支援措置): never disclosed outside HQ's internal view
    raw_line: str = ""  # the record exactly as in the file; with the snapshot's header, every column
    # matching keys
    k_family_variant: str = ""
    k_given_variant: str = ""
    k_family_kana: str = ""  # loose reading keys, per part
    k_given_kana: str = ""
    k_alpha: str = ""
    k_town: str = ""
    k_house: str = ""  # 町字 + 番地・号: the same house


class RosterImport(SQLModel, table=True):
    """A volunteers' Excel/CSV roster file that was loaded (避難者名簿)."""

    id: str = Field(default_factory=new_id, primary_key=True)
    shelter_id: str = Field(foreign_key="shelter.id")
    source_file: str
    sha256: str
    rows: int
    accepted: int
    rejected: int
    imported_at: datetime = Field(default_factory=utcnow)
    imported_by: str = ""
    # Which desk's roster this is (default: the file name without extension): a 受付番号 names a
    # row within its source, so two desks may both use A-0003-1 for different people.
    source: str = ""
    status: str = "done"  # running (stopped part-way: re-running the import continues) | done
    done_rows: int = 0  # data rows handled so far, committed chunk by chunk
    duplicates: int = 0  # rows of people already registered (same person, or the same row again)


class RosterFlag(SQLModel, table=True):
    """A cell of an imported roster row that could not be read, kept for staff to check.

    Nothing typed is dropped: the evacuee is registered with the cell stored as typed (`*_raw`),
    and this record says which row, which column, what was typed and why it was not understood.
    `kind` rejected (no name nor reading: no evacuee) and duplicate (the person was already
    registered) also live here, so a resumed import can still write the whole report.
    """

    __table_args__ = (Index("ix_rosterflag_import_line", "roster_import_id", "line"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    roster_import_id: str = Field(foreign_key="rosterimport.id")
    evacuee_id: Optional[str] = Field(default=None, foreign_key="evacuee.id", index=True)
    line: int  # row of the file (1 = header)
    field: str  # column as named in the file
    value: str = ""  # exactly as typed
    reason: str = ""  # English, for the CLI report
    reason_ja: str = ""  # for staff
    kind: str = "flag"  # flag | rejected | duplicate
    status: str = "open"  # open | resolved
    created_at: datetime = Field(default_factory=utcnow)


class SelfEntry(SQLModel, table=True):
    """本人記入: a household's form typed by the evacuee at the kiosk, waiting for staff at the desk.

    `data` holds the form exactly as typed (the intake form's field names), so staff finish intake
    from it with every field prefilled; once finished or discarded it is emptied (the registration
    holds the data from then on). `ticket` is the short number the person tells the desk."""

    __tablename__ = "self_entry"

    id: str = Field(default_factory=new_id, primary_key=True)
    ticket: int
    lang: str = "ja"
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="waiting", index=True)  # waiting | done | discarded
    created_at: datetime = Field(default_factory=utcnow)
    closed_at: Optional[datetime] = None
    closed_by: str = ""
    household_key: str = ""


class Evacuee(SQLModel, table=True):
    """A person registered at this shelter, with what was typed kept verbatim."""

    __table_args__ = (Index("ix_evacuee_shelter_key", "shelter_id", "external_key"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    shelter_id: str = Field(foreign_key="shelter.id")
    external_key: str = ""  # 受付番号 as written on the paper form or roster
    household_key: str = ""  # evacuees who arrived together share it (世帯)
    relationship: str = ""  # 続柄 as told at intake
    # as typed
    name_raw: str = ""
    name_kana_raw: str = ""
    birth_raw: str = ""
    sex_raw: str = ""
    address_raw: str = ""
    phone_raw: str = ""
    # parsed beside them
    family_name: str = ""
    given_name: str = ""
    name_kana: str = ""  # katakana
    birth_date: Optional[date] = None
    birth_kind: str = "empty"  # day | year | age | unknown | empty
    birth_year_min: Optional[int] = None
    birth_year_max: Optional[int] = None
    sex: str = ""
    address: str = ""  # as typed, or the address a "同上" (same as above) row refers to
    # 様式第1号 items beyond the basic four
    nationality: str = ""
    identifying_info: str = ""  # ⑦ 個人を識別するための情報 (通称, 旧姓, 特徴 …) as told
    injury: str = ""  # 負傷・疾病
    injury_state: str = ""
    current_location: str = ""  # 現在の居所
    contact: str = ""  # 連絡先
    care_flags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    pets: str = ""
    # disclosure consents (様式第1号 ⑫ ⑬ ⑭); None = not asked
    consent_relatives: Optional[bool] = None
    consent_acquaintances: Optional[bool] = None
    consent_public: Optional[bool] = None
    status: str = "in_shelter"  # in_shelter | left | transferred
    source: str = "ui"  # ui | roster
    roster_import_id: Optional[str] = Field(default=None, foreign_key="rosterimport.id")
    roster_line: Optional[int] = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class StayEvent(SQLModel, table=True):
    """Check-in, check-out or transfer; append-only, the newest one gives the evacuee's status."""

    id: str = Field(default_factory=new_id, primary_key=True)
    evacuee_id: str = Field(foreign_key="evacuee.id", index=True)
    kind: str  # check_in | check_out | transfer
    destination: str = ""  # e.g. 第二中学校, 親族宅
    at: datetime = Field(default_factory=utcnow)
    by_user: str = ""


class CardArrival(SQLModel, table=True):
    """A person registered here from a scanned 避難者カード of another shelter (app.services.card_scan):
    the movement trail across shelters (the card's evacuee id, where it was issued)."""

    __tablename__ = "card_arrival"

    id: str = Field(default_factory=new_id, primary_key=True)
    evacuee_id: str = Field(foreign_key="evacuee.id", index=True)  # the registration made here
    origin_evacuee_id: str = Field(index=True)  # the id the card carries (another laptop's registration)
    origin_shelter: str = ""  # the shelter code on the card (empty on a 閲覧制限 card)
    origin_shelter_name: str = ""  # its name, as sealed in the card or known from the hub
    key_id: str = ""
    at: datetime = Field(default_factory=utcnow)
    by_user: str = ""


class MatchDecision(SQLModel, table=True):
    """A link (or refusal to link) between an evacuee and a registry resident; append-only.

    `decision` is one of: auto / review / none (the engine), confirmed / rejected /
    not_resident (a staff member, final: re-running the engine never overrides them).
    """

    id: str = Field(default_factory=new_id, primary_key=True)
    evacuee_id: str = Field(foreign_key="evacuee.id", index=True)
    resident_id: Optional[str] = None  # 宛名番号: survives a new snapshot
    snapshot_id: Optional[int] = Field(default=None, foreign_key="registrysnapshot.id")
    decision: str
    score: Optional[float] = None
    reasons: str = ""
    candidates: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    by_user: str = ""  # empty = the engine
    at: datetime = Field(default_factory=utcnow)


class RemoteMatch(SQLModel, table=True):
    """This laptop's engine decision about another shelter's evacuee pulled from the hub (one row
    per evacuee, replaced when the person's pulled data or the snapshot changes). Used only where
    that shelter's laptop sent no match decision of its own."""

    __tablename__ = "remote_match"
    evacuee_id: str = Field(primary_key=True)
    resident_id: Optional[str] = Field(default=None, index=True)
    snapshot_id: Optional[int] = None
    decision: str
    score: Optional[float] = None
    reasons: str = ""
    at: datetime = Field(default_factory=utcnow)


# --- Certificates (り災証明書 / 被災証明書) ---------------------------------------------------
# Owner: certificate work. A certificate row carries what was printed (so a reissue prints the
# same paper even after a newer registry snapshot); its history lives in CertificateEvent.


class Certificate(SQLModel, table=True):
    """One issued certificate. `status` and `reissue_count` change; everything else never does.

    The number (整理番号) is `<R|H>-<short device id>-<sync epoch>-<seq>`, allocated from
    CertificateCounter in the same transaction, so two laptops (or one restored from a backup)
    never hand out the same number without talking to each other.
    """

    __table_args__ = (Index("ix_certificate_resident", "resident_id"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    number: str = Field(index=True, unique=True)  # 整理番号
    kind: str  # risai (り災証明書) | hisai (被災証明書)
    resident_id: str = ""  # 宛名番号 of the applicant; "" on the manual path
    household_id: str = ""  # 世帯番号
    head_address: str = ""  # 世帯主住所, as registered (or as declared on the manual path)
    head_name: str = ""  # 世帯主氏名, registered form (old kanji and gaiji kept; folded only when printing)
    cause: str = ""  # 罹災原因, e.g. 令和8年11月20日の地震
    location: str = ""  # 被災住家の所在地
    damage: str = ""  # 住家の被害の程度 code (zenkai … ichibu); "" for hisai
    members: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # 世帯構成員
    manual: bool = False  # 手動: the household was declared by the applicant, not taken from the registry
    manual_reason: str = ""  # 台帳で確認できないため申請者の申告による
    identity: str = ""  # match_auto | match_confirmed | in_person | manual: how the applicant was tied to the registry
    identity_note: str = ""  # e.g. the ID document the desk looked at
    evacuee_id: Optional[str] = None  # the evacuee whose match decision linked the resident, when there is one
    snapshot_id: Optional[int] = Field(default=None, foreign_key="registrysnapshot.id")
    device_id: str = ""  # sync device that allocated the number (full ULID; the number holds a 6-char hash)
    epoch: int = 0
    seq: int = 0
    issued_at: datetime = Field(default_factory=utcnow)
    issued_by: str = ""
    reissue_count: int = 0
    status: str = "issued"  # issued | void
    void_reason: str = ""


class CertificateEvent(SQLModel, table=True):
    """issue / reissue / void of one certificate; append-only (the database refuses changes)."""

    id: str = Field(default_factory=new_id, primary_key=True)
    number: str = Field(index=True)
    action: str  # issue | reissue | void
    reason: str = ""
    by_user: str = ""
    at: datetime = Field(default_factory=utcnow)


class CertificateCounter(SQLModel, table=True):
    """The last sequence number handed out per number prefix (`R-7K3QXM-1`): gap-free, per laptop."""

    prefix: str = Field(primary_key=True)
    last_seq: int = 0


# --- Safety inquiries (安否照会 desk) -----------------------------------------------------------


class Inquiry(SQLModel, table=True):
    """One 安否照会 at the desk and the answer given; append-only (an auditor's record).

    `outcome` is the real reason (answered / refused / restricted / not_found / ambiguous); the
    inquirer was only ever shown "no information" for anything but `answered`, so this column is
    for auditors and must never reach the desk screen. `items_disclosed` and `answer_text` are
    exactly what the screen showed, kept so the answer can be shown again without re-reading
    consents that may have changed since.
    """

    __table_args__ = (Index("ix_inquiry_at", "at"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    by_user: str = ""  # desk staff member
    shelter_id: Optional[str] = Field(default=None, foreign_key="shelter.id")
    # 照会者 (the person asking)
    inquirer_name: str
    inquirer_address: str = ""
    inquirer_phone: str = ""
    id_proof: str = ""  # 運転免許証 | マイナンバーカード | 健康保険証 | その他
    id_proof_note: str = ""
    relationship: str  # 同居の親族 | その他の親族・職場 | 知人 | その他
    purpose: str = ""  # 照会の理由, as told
    # 照会に係る者 (the person asked about), verbatim as given
    sought_name: str = ""
    sought_kana: str = ""
    sought_birth: str = ""
    sought_address: str = ""
    evacuee_id: Optional[str] = Field(default=None, foreign_key="evacuee.id", index=True)
    items_disclosed: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: str = Field(index=True)
    answer_text: str = ""


# --- HQ confirmations (安否確認: 本部が他の手段で確認した記録) ------------------------------------


class HqConfirmation(SQLModel, table=True):
    """What disaster HQ learned about a resident outside the shelters; append-only.

    `status`: confirmed_other (他の手段で確認: phone, visit …), dead (死亡), missing (行方不明), or
    withdrawn, which undoes the previous HQ record of the same resident (a wrong entry is never
    edited or deleted; the list shows the record below it again). `resident_id` is the 宛名番号,
    so a record survives a new registry snapshot.
    """

    __table_args__ = (Index("ix_hqconfirmation_resident_at", "resident_id", "at"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    resident_id: str  # 宛名番号
    status: str  # confirmed_other | dead | missing | withdrawn
    method: str = ""  # 電話 | 訪問 | その他
    note: str = ""
    by_user: str = ""
    at: datetime = Field(default_factory=utcnow)


# --- Backups (verified copies of this database; owner: backup work) ----------------------------

class BackupRecord(SQLModel, table=True):
    """One backup attempt, good or failed, so the dashboard can show the last good copy.

    Failed attempts are kept too: an unplugged USB stick must show up on the dashboard instead
    of silently leaving the shelter without a copy.
    """

    id: str = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    path: str = ""  # where the copy was written (absolute)
    size: int = 0
    sha256: str = ""
    ok: bool = False  # integrity_check and foreign_key_check passed on the copy
    message: str = ""  # why it failed, or a short summary
    kind: str = "manual"  # manual | auto


# --- PFIF / sought persons (捜索依頼: Google Person Finder interchange) ----------------------

class SoughtPerson(SQLModel, table=True):
    """捜索依頼: a person someone is looking for, imported from PFIF XML or Person Finder's CSV.

    One row per PFIF person record; a re-import of the same record id updates it only when its
    source_date is newer. `raw` keeps the record's fields exactly as they were in the file.
    """

    __table_args__ = (UniqueConstraint("source", "pfif_record_id", name="uq_sought_source_record"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    source: str  # the record id's domain (e.g. test.google.com, or csv.<source_name> for bare CSV ids)
    pfif_record_id: str  # person_record_id as in the file, domain included
    source_file: str = ""
    pfif_version: str = ""  # 1.1 … 1.4, or csv
    source_name: str = ""
    source_date: Optional[datetime] = None
    entry_date: Optional[datetime] = None
    expiry_date: Optional[datetime] = None  # past: Person Finder withdrew the record (kept, not shown)
    author_name: str = ""  # who asked (contact details stay in raw)
    full_name: str = ""
    given_name: str = ""
    family_name: str = ""
    alternate_names: str = ""  # Japanese Person Finder users put the reading (ふりがな) here
    sex: str = ""  # female | male | other | ""
    date_of_birth: str = ""  # YYYY, YYYY-MM or YYYY-MM-DD
    age: str = ""  # "42" or "35-45"
    home_street: str = ""
    home_neighborhood: str = ""
    home_city: str = ""
    home_state: str = ""
    home_postal_code: str = ""
    home_country: str = ""
    description: str = ""
    photo_url: str = ""
    latest_status: str = ""  # status of the newest note (by source_date) that has one
    latest_status_at: Optional[datetime] = None
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    imported_at: datetime = Field(default_factory=utcnow)
    imported_by: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class SoughtNote(SQLModel, table=True):
    """A PFIF note about a sought person; kept even when its person is not (yet) known here."""

    __table_args__ = (UniqueConstraint("source", "note_record_id", name="uq_sought_note_source_record"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    source: str
    note_record_id: str
    person_record_id: str = Field(default="", index=True)
    linked_person_record_id: str = ""  # the note says these two records are the same person
    source_file: str = ""
    author_name: str = ""
    source_date: Optional[datetime] = None
    entry_date: Optional[datetime] = None
    status: str = ""  # information_sought | is_note_author | believed_alive | believed_missing | believed_dead
    author_made_contact: Optional[bool] = None
    last_known_location: str = ""
    text: str = ""
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    imported_at: datetime = Field(default_factory=utcnow)
    imported_by: str = ""


class SoughtLink(SQLModel, table=True):
    """A proposed or decided link from a sought person to a registry resident or an evacuee; append-only.

    The newest row per (sought_id, target_kind, target_id) is the current state, so every decision
    can be undone by a newer row. `decision`: auto / review (the engine, by_user empty), confirmed /
    rejected (a staff member; rejected by the engine means it no longer proposes the link).
    """

    __table_args__ = (Index("ix_soughtlink_pair", "sought_id", "target_kind", "target_id"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    sought_id: str = Field(foreign_key="soughtperson.id", index=True)
    target_kind: str  # resident | evacuee
    target_id: str  # 宛名番号 (survives a new snapshot) or Evacuee.id
    snapshot_id: Optional[int] = Field(default=None, foreign_key="registrysnapshot.id")
    decision: str
    score: Optional[float] = None
    reasons: str = ""
    by_user: str = ""  # empty = the engine
    at: datetime = Field(default_factory=utcnow)


class PairedDevice(SQLModel, table=True):
    """A tablet or laptop allowed onto `anpi serve --lan` (issue 15): it typed the one-time code the
    laptop showed and holds a device token (cookie). Only the token's SHA-256 is stored; a revoked
    device is kept (with who revoked it) so the list says what happened."""

    __tablename__ = "paired_device"

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str
    token_hash: str = Field(index=True, unique=True)
    client: str = ""  # the address it paired from
    paired_at: datetime = Field(default_factory=utcnow)
    revoked_at: Optional[datetime] = None
    revoked_by: str = ""


class LanIdentity(SQLModel, table=True):
    """The laptop's own self-signed TLS certificate for `anpi serve --lan` (one row). The private key
    is kept here, inside the encrypted database, and written out only encrypted with `key_password`
    for the TLS listener, so a copied folder gives nobody the key."""

    __tablename__ = "lan_identity"

    id: int = Field(default=1, primary_key=True)
    cert_pem: str
    key_pem: str  # PKCS#8, encrypted with key_password
    key_password: str
    fingerprint: str  # SHA-256 of the certificate, AB:CD:… as browsers show it
    created_at: datetime = Field(default_factory=utcnow)
