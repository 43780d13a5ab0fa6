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


class Staff(SQLModel, table=True):
    """One account per person: shared logins are how residents' data leaked before."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True)
    role: str  # staff | desk | hq | admin
    pin_hash: Optional[str] = None  # argon2; None until the person sets a PIN on first use
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
