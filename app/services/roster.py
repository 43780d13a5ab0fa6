"""Evacuee registration: from the intake form and from rosters volunteers typed in Excel.

A roster is typed by tired people, so unlike the registry it is never refused whole: every
readable row becomes an evacuee, every unreadable one goes to a rejects report (row, field,
reason), and what was typed is always kept verbatim beside what we parsed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.formats.errors import RowProblem
from app.formats.roster_file import ROSTER_COLUMNS, RosterRow, read_roster
from app.formats.tables import csv_writer
from app.ids import new_id, utcnow
from app.models import Evacuee, RosterImport, StayEvent
from app.services import journal
from app.services.errors import AlreadyDone, InvalidInput
from app.services.reconcile import match_roster_import
from app.services.shelters import current_shelter
from matching.dates import DateError, ParsedDate, parse_date
from matching.kana import to_katakana
from matching.names import split_full_name
from matching.person import parse_sex

KNOWN_SEX = frozenset({"", "不明", "不詳", "?", "？"})
# What volunteers write for "same address as the row above" (a family registered together).
SAME_AS_ABOVE = frozenset({"同上", "〃", "同", "仝", "同じ", "″", "ditto", "same"})


@dataclass
class EvacueeInput:
    """What a person typed for one evacuee, as strings, before any parsing."""

    name: str = ""
    name_kana: str = ""
    birth_date: str = ""
    sex: str = ""
    address: str = ""
    phone: str = ""
    external_key: str = ""
    household_key: str = ""
    relationship: str = ""
    nationality: str = ""
    identifying_info: str = ""  # ⑦
    injury: str = ""
    injury_state: str = ""
    current_location: str = ""
    contact: str = ""
    pets: str = ""
    care_flags: dict[str, Any] = field(default_factory=dict)
    consent_relatives: bool | None = None
    consent_acquaintances: bool | None = None
    consent_public: bool | None = None


@dataclass
class FieldError:
    field: str  # EvacueeInput attribute
    message: str
    message_ja: str


def check_birth(typed: str, today: date) -> ParsedDate:
    """A date of birth as typed, read; a day or year after today is an error, not a person.

    Why here and not in the parser: the parser reads registry files too, whose dates are data;
    a date of birth typed at the desk that lies in the future (令和10年1月1日) is a typing slip."""
    pd = parse_date(typed, today=today)
    if (pd.value is not None and pd.value > today) or (pd.value is None and (pd.year_min or 0) > today.year):
        raise DateError(f"{typed.strip()!r} is in the future", "未来の日付です")
    return pd


def parse_evacuee(data: EvacueeInput, *, today: datetime | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    """Parsed columns for an Evacuee, or the errors to show next to each field."""
    errors: list[FieldError] = []
    name = data.name.strip()
    kana = data.name_kana.strip()
    if not name and not kana:
        errors.append(FieldError("name", "neither name nor kana was given", "氏名かふりがなを入力してください"))
    parsed: dict[str, Any] = {}
    splits = split_full_name(name) if name else []
    family, given = splits[0] if splits else (name, "")
    parsed["family_name"], parsed["given_name"] = family, given
    parsed["name_kana"] = to_katakana(kana) if kana else ""
    try:
        pd = check_birth(data.birth_date, (today or utcnow()).date())
        parsed.update(birth_date=pd.value, birth_kind=pd.kind, birth_year_min=pd.year_min, birth_year_max=pd.year_max)
    except DateError as exc:
        errors.append(FieldError("birth_date", f"cannot read date of birth {data.birth_date!r}: {exc}",
                                 f"生年月日: {exc.ja}"))
    sex = parse_sex(data.sex)
    if not sex and data.sex.strip() not in KNOWN_SEX:
        errors.append(FieldError("sex", f"unknown sex {data.sex!r} (男/女, M/F, 1/2)", "性別を読み取れません: 男・女 で入力してください"))
    parsed["sex"] = sex
    parsed["address"] = data.address.strip()
    return parsed, errors


def _evacuee_from(data: EvacueeInput, parsed: dict[str, Any], shelter_id: str, by: str, source: str) -> Evacuee:
    return Evacuee(
        shelter_id=shelter_id, external_key=data.external_key.strip(), household_key=data.household_key.strip(),
        relationship=data.relationship.strip(), name_raw=data.name, name_kana_raw=data.name_kana,
        birth_raw=data.birth_date, sex_raw=data.sex, address_raw=data.address, phone_raw=data.phone,
        nationality=data.nationality, identifying_info=data.identifying_info, injury=data.injury, injury_state=data.injury_state,
        current_location=data.current_location, contact=data.contact or data.phone, pets=data.pets,
        care_flags=dict(data.care_flags), consent_relatives=data.consent_relatives,
        consent_acquaintances=data.consent_acquaintances, consent_public=data.consent_public,
        source=source, created_by=by, **parsed,
    )


def register(session: Session, data: EvacueeInput, *, by: str, shelter_code: str | None = None,
             source: str = "ui", roster_import_id: str | None = None, roster_line: int | None = None) -> Evacuee:
    """Register one evacuee and check them in, inside the caller's transaction."""
    from app.services.evacuees import check_lengths

    parsed, errors = parse_evacuee(data)
    if errors:
        e = errors[0]
        raise InvalidInput(e.message, e.message_ja, e.field)
    check_lengths(vars(data))
    return _register_parsed(session, data, parsed, by=by, shelter_code=shelter_code, source=source,
                            roster_import_id=roster_import_id, roster_line=roster_line)


def _register_parsed(session: Session, data: EvacueeInput, parsed: dict[str, Any], *, by: str,
                     shelter_code: str | None, source: str, roster_import_id: str | None,
                     roster_line: int | None) -> Evacuee:
    shelter = current_shelter(session, shelter_code)
    ev = _evacuee_from(data, parsed, shelter.id, by, source)
    ev.roster_import_id, ev.roster_line = roster_import_id, roster_line
    session.add(ev)
    session.flush()
    stay = StayEvent(evacuee_id=ev.id, kind="check_in", destination=shelter.name, by_user=by)
    session.add(stay)
    journal.evacuee_registered(session, ev, shelter)
    journal.stay_recorded(session, stay)
    return ev


def register_household(session: Session, members: Iterable[EvacueeInput], *, by: str,
                       shelter_code: str | None = None) -> list[Evacuee]:
    """A household arriving together (head first): they share one household key."""
    members = list(members)
    key = next((m.household_key for m in members if m.household_key), "") or new_id()
    out = []
    for m in members:
        m.household_key = key
        out.append(register(session, m, by=by, shelter_code=shelter_code))
    return out


@dataclass
class RosterResult:
    import_id: str
    rows: int
    accepted: int
    rejects: list[RowProblem]
    rejects_file: Path | None


def import_roster(engine: Engine, path: Path, *, shelter_code: str | None = None, by: str = "",
                  rejects_out: Path | None = None) -> RosterResult:
    """Load a roster; readable rows become evacuees in one transaction, the rest are reported."""
    path = Path(path)
    header, rows = read_roster(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    rejects: list[RowProblem] = []
    accepted = 0
    total = 0
    with Session(engine, expire_on_commit=False) as s:
        shelter = current_shelter(s, shelter_code)
        dup = s.exec(select(RosterImport).where(RosterImport.sha256 == sha, RosterImport.shelter_id == shelter.id)).first()
        if dup:
            raise AlreadyDone(f"{path.name} was already imported on {dup.imported_at:%Y-%m-%d %H:%M} "
                              f"({dup.accepted} evacuees); nothing changed",
                              f"この名簿は取込済みです ({dup.imported_at:%Y-%m-%d %H:%M}, {dup.accepted}人)")
        known_keys = set(s.exec(select(Evacuee.external_key).where(Evacuee.shelter_id == shelter.id, Evacuee.external_key != "")))
        imp = RosterImport(shelter_id=shelter.id, source_file=path.name, sha256=sha, rows=0, accepted=0, rejected=0, imported_by=by)
        s.add(imp)
        s.flush()
        seen_in_file: dict[str, int] = {}
        for row, address, household in _resolve_same_as_above(rows):
            total += 1
            f = row.fields
            data = EvacueeInput(
                name=f.get("name", ""), name_kana=f.get("name_kana", ""), birth_date=f.get("birth_date", ""),
                sex=f.get("sex", ""), address=f.get("address", ""), phone=f.get("phone", ""),
                external_key=f.get("evacuee_id", ""), household_key=f.get("household", "") or household,
                relationship=f.get("relationship", ""), nationality=f.get("nationality", ""),
                identifying_info=f.get("identifying_info", ""),
            )
            key = data.external_key.strip()
            if key and key in seen_in_file:
                rejects.append(RowProblem(path.name, row.line, _header_for("evacuee_id", header),
                                          f"evacuee id {key!r} repeats line {seen_in_file[key]}",
                                          f"受付番号 {key} が {seen_in_file[key]}行目と重複しています", key))
                continue
            if key and key in known_keys:
                rejects.append(RowProblem(path.name, row.line, _header_for("evacuee_id", header),
                                          f"evacuee id {key!r} is already registered in this shelter",
                                          f"受付番号 {key} は登録済みです", key))
                continue
            parsed, errors = parse_evacuee(data)
            if errors:
                for e in errors:
                    rejects.append(RowProblem(path.name, row.line, _header_for(_FIELD_OF.get(e.field, e.field), header),
                                              e.message, e.message_ja, getattr(data, e.field, "")))
                continue
            if key:
                seen_in_file[key] = row.line
            parsed["address"] = address
            _register_parsed(s, data, parsed, by=by, shelter_code=shelter.code, source="roster",
                             roster_import_id=imp.id, roster_line=row.line)
            accepted += 1
        imp.rows, imp.accepted, imp.rejected = total, accepted, len({r.line for r in rejects})
        s.add(imp)
        s.commit()
    match_roster_import(engine, imp.id)  # every registered row matched at once (auto / review / none)
    rejects_file = None
    if rejects:
        rejects_file = rejects_out or path.with_name(path.stem + ".rejects.csv")
        write_rejects(rejects, rejects_file)
    return RosterResult(imp.id, total, accepted, rejects, rejects_file)


def _resolve_same_as_above(rows: Iterable[RosterRow]) -> Iterator[tuple[RosterRow, str, str]]:
    """Rows with the address the volunteer meant, and a household key for "同上" runs.

    A family written one person per row often says 同上 under the first member's address: that
    is both their address and the sign that they arrived together.
    """
    rows = list(rows)
    addresses: list[str] = []
    households = [""] * len(rows)
    for n, row in enumerate(rows):
        typed = row.fields.get("address", "").strip()
        if typed in SAME_AS_ABOVE and n > 0:
            addresses.append(addresses[-1])
            households[n - 1] = households[n - 1] or new_id()
            households[n] = households[n - 1]
        else:
            addresses.append(typed)
    for row, address, household in zip(rows, addresses, households):
        yield row, address, household


_FIELD_OF = {"name": "name", "birth_date": "birth_date", "sex": "sex"}


def _header_for(fld: str, header: list[str]) -> str:
    """The column name as the volunteer wrote it, so the report points at their own header."""
    from app.formats.roster_file import _key  # the same folding the reader used

    aliases = {_key(a) for a in ROSTER_COLUMNS.get(fld, ())}
    for h in header:
        if _key(h) in aliases:
            return h
    return ROSTER_COLUMNS.get(fld, (fld,))[0]


def write_rejects(rejects: list[RowProblem], out: Path) -> None:
    """CSV in UTF-8 with BOM so Excel opens it: row, field, reason (Japanese and English), value."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv_writer(f)
        w.writerow(["行", "項目", "理由", "reason", "入力値"])
        for r in rejects:
            w.writerow([r.line, r.field, r.message_ja, r.message, r.value])
