"""Evacuee registration: from the intake form and from rosters volunteers typed in Excel.

A roster is typed by tired people, so unlike the registry it is never refused whole, and nothing
typed is dropped: every row with a name or a reading becomes an evacuee, a cell that cannot be
read is stored as typed and flagged for staff (row, field, value, reason), and only a row with
neither name nor reading is rejected. A 受付番号 names a row of one desk's roster, not a person:
duplicates are found by person (normalised name or reading plus date of birth).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy import update
from sqlmodel import Session, select

from app.config import Settings
from app.formats.errors import RowProblem
from app.formats.roster_file import ROSTER_COLUMNS, RosterRow, read_roster
from app.formats.tables import csv_writer
from app.ids import new_id, utcnow
from app.models import Evacuee, RosterFlag, RosterImport, Shelter, StayEvent
from app.services import journal
from app.services.errors import AlreadyDone, AnpiError, InvalidInput
from app.services.reconcile import match_now
from app.services.roster_checks import (KNOWN_SEX, CellFlag, check_lengths, consent_flags, lenient_birth, lenient_sex,
                                        name_keys, person_keys)
from app.services.shelters import current_shelter
from matching.dates import DateError, ParsedDate, parse_date
from matching.kana import to_katakana
from matching.names import split_full_name
from matching.person import parse_sex

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


# --- roster files -------------------------------------------------------------------------------
# A roster is loaded in short chunks, each its own transaction that holds the write lock for about
# CHUNK_SECONDS, with a pause after it (bench/import_load_bench.py, 4 registering desks, 20,000
# rows, a busy 2-core machine: one transaction gave p95 63 s and 17 answers 500; chunks of
# 0.25/0.1 s p95 2.2 s, 0.1/0.15 s 1.3 s, 0.05/0.2 s 0.6 s with no 5xx): registrations at the desk wait at most one chunk, never the
# whole file (a 20,000-row roster in one transaction froze a shelter for a minute, issue 18). The
# chunk commits the rows, their flags and how far the import got, so a killed import continues
# where it stopped when the same file is imported again.
CHUNK_ROWS = 500
CHUNK_SECONDS = Settings.from_env().roster_chunk_seconds
# SQLite's busy handler sleeps at most 100 ms between tries: a gap longer than that lets every
# waiting writer in before the next chunk.
PAUSE_SECONDS = Settings.from_env().roster_pause_seconds
KIND_JA = {"rejected": "登録しない（氏名なし）", "duplicate": "登録済みの人", "flag": "登録済み・要確認"}


@dataclass
class RosterResult:
    import_id: str
    rows: int
    accepted: int
    rejects: list[RowProblem]  # rows not registered: neither name nor reading
    rejects_file: Path | None  # the report of every row below (rejected, duplicate, flagged)
    flags: list[RowProblem] = field(default_factory=list)  # registered; a cell kept as typed for staff
    duplicates: list[RowProblem] = field(default_factory=list)  # people already registered
    resumed_at: int = 0  # data rows an earlier, interrupted run had already done


class ImportStopped(AnpiError):
    """A roster import stopped part-way (e.g. the disk or the lock); what is done is kept."""

    def __init__(self, file: str, done: int, total: int, line: int, cause: BaseException) -> None:
        super().__init__(f"{file}: stopped at line {line} after {done} of {total} rows ({cause.__class__.__name__}: "
                         f"{str(cause).splitlines()[0] if str(cause) else ''}); run the same import again to continue",
                         f"{file}: {line}行目で中断しました（{total}行中 {done}行まで登録済み）。"
                         f"同じファイルをもう一度取り込むと続きから再開します")
        self.done, self.total, self.line = done, total, line


@dataclass
class _Plan:
    """What the import knows between chunks: who is already here, by roster key and by person."""

    import_id: str
    file: str
    source: str
    shelter_code: str
    header: list[str]
    by: str
    keyed: dict[str, tuple[str, set[str]]]  # 受付番号 in this source -> (evacuee id, name keys)
    persons: dict[str, str]  # person key (name/reading + birth) -> evacuee id
    in_file: dict[str, int]  # 受付番号 -> first line in this file


def import_roster(engine: Engine, path: Path, *, shelter_code: str | None = None, by: str = "",
                  rejects_out: Path | None = None, source: str | None = None,
                  progress: Callable[[int], None] | None = None, pause: float | None = None) -> RosterResult:
    """Load a roster: every row with a name or a reading becomes an evacuee (unreadable cells kept
    as typed and flagged), people already registered are skipped, chunk by chunk.

    `source` names the desk's roster (default: the file name without extension); a 受付番号 is
    only the same row again within the same source. Raises FileFormatError (nothing stored),
    AlreadyDone, or ImportStopped (the rows before it are kept; importing again continues).
    `pause`: seconds between chunks (default PAUSE_SECONDS); 0 when nobody else can be writing,
    e.g. while a new demo database is built.
    """
    path = Path(path)
    header, reader = read_roster(path)
    rows = list(_resolve_same_as_above(reader))  # the whole file is read before anything is written
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    plan, start = _begin(engine, path, sha, header, rows, shelter_code, by, source or path.stem)
    n = start
    try:
        while n < len(rows):
            n = _run_chunk(engine, plan, rows, n)
            if progress:
                progress(n)
            if n < len(rows):
                time.sleep(PAUSE_SECONDS if pause is None else pause)
    except AnpiError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure: report where it stopped, keep what is done
        raise ImportStopped(path.name, n, len(rows), rows[n][0].line if n < len(rows) else 0, exc) from exc
    return _finish(engine, plan, path, len(rows), start, rejects_out)


def _begin(engine: Engine, path: Path, sha: str, header: list[str], rows: list, shelter_code: str | None,
           by: str, source: str) -> tuple[_Plan, int]:
    """The import record (new, or the one an interrupted run left) and what is already here."""
    with Session(engine, expire_on_commit=False) as s:
        shelter = current_shelter(s, shelter_code)
        imp = s.exec(select(RosterImport).where(RosterImport.sha256 == sha, RosterImport.shelter_id == shelter.id)).first()
        if imp and imp.status != "running":
            raise AlreadyDone(f"{path.name} was already imported on {imp.imported_at:%Y-%m-%d %H:%M} "
                              f"({imp.accepted} evacuees); nothing changed",
                              f"この名簿は取込済みです ({imp.imported_at:%Y-%m-%d %H:%M}, {imp.accepted}人)")
        if imp is None:
            imp = RosterImport(shelter_id=shelter.id, source_file=path.name, sha256=sha, rows=len(rows), accepted=0,
                               rejected=0, imported_by=by, source=source, status="running")
            s.add(imp)
            s.commit()
        plan = _Plan(imp.id, path.name, imp.source, shelter.code, header, by, {}, {}, {})
        _load_known(s, plan, shelter.id)
        return plan, imp.done_rows


def _load_known(s: Session, plan: _Plan, shelter_id: str) -> None:
    """Everyone registered here, by person, and the 受付番号 already used in this roster source."""
    q = (select(Evacuee.id, Evacuee.external_key, Evacuee.name_raw, Evacuee.name_kana_raw,
                Evacuee.birth_date, Evacuee.roster_import_id, Evacuee.roster_line, RosterImport.source)
         .join(RosterImport, RosterImport.id == Evacuee.roster_import_id, isouter=True)
         .where(Evacuee.shelter_id == shelter_id))
    for eid, key, name, kana, birth, imp_id, line, src in s.exec(q):
        for k in person_keys(name, kana, birth):
            plan.persons.setdefault(k, eid)
        if key and imp_id is not None and src == plan.source:
            plan.keyed.setdefault(key, (eid, name_keys(name, kana)))
        if key and imp_id == plan.import_id and line is not None:
            plan.in_file.setdefault(key, line)


def _run_chunk(engine: Engine, plan: _Plan, rows: list, start: int) -> int:
    """Rows from `start` in one short write transaction; returns where the next chunk starts."""
    counts = {"registered": 0, "rejected": 0, "duplicate": 0}
    with Session(engine, expire_on_commit=False) as s:
        _begin_write(s, plan.import_id)
        began = time.monotonic()  # from when the lock is ours: waiting for it is not writing
        shelter = current_shelter(s, plan.shelter_code)
        arrivals: list[tuple[Evacuee, StayEvent]] = []
        n = start
        while n < len(rows) and (n == start or (n - start < CHUNK_ROWS and time.monotonic() - began < CHUNK_SECONDS)):
            row, address, household = rows[n]
            counts[_import_row(s, plan, shelter, arrivals, row, address, household)] += 1
            n += 1
        s.flush()  # the chunk's evacuees, check-ins and flags in a few batched INSERTs
        journal.registrations(s, arrivals, shelter)
        # every registered row matched at once (auto / review / none), inside the chunk's own write
        match_now(s, [ev.id for ev, _stay in arrivals])
        s.execute(update(RosterImport).where(RosterImport.id == plan.import_id).values(
            done_rows=n, accepted=RosterImport.accepted + counts["registered"],
            rejected=RosterImport.rejected + counts["rejected"],
            duplicates=RosterImport.duplicates + counts["duplicate"]))
        s.commit()
    return n


def _begin_write(s: Session, import_id: str) -> None:
    """Take the write lock first (BEGIN IMMEDIATE, or a write as the first statement), so the chunk
    never finds mid-way that another writer got in after it read (SQLite's BUSY_SNAPSHOT)."""
    raw = s.connection().connection.dbapi_connection
    if raw is not None and not getattr(raw, "in_transaction", True):
        raw.execute("BEGIN IMMEDIATE")
    s.execute(update(RosterImport).where(RosterImport.id == import_id).values(status="running"))


def _row_input(row: RosterRow, household: str) -> tuple[EvacueeInput, list[CellFlag]]:
    f = row.fields
    consents, flags = consent_flags(f)
    data = EvacueeInput(
        name=f.get("name", ""), name_kana=f.get("name_kana", ""), birth_date=f.get("birth_date", ""),
        sex=f.get("sex", ""), address=f.get("address", ""), phone=f.get("phone", ""),
        external_key=f.get("evacuee_id", ""), household_key=f.get("household", "") or household,
        relationship=f.get("relationship", ""), nationality=f.get("nationality", ""),
        identifying_info=f.get("identifying_info", ""), **consents,
    )
    return data, flags


def _import_row(s: Session, plan: _Plan, shelter: Shelter, arrivals: list[tuple[Evacuee, StayEvent]],
                row: RosterRow, address: str, household: str) -> str:
    """One row: rejected (no name), duplicate (already here) or registered (maybe with flags)."""
    data, flags = _row_input(row, household)
    if not data.name.strip() and not data.name_kana.strip():
        _flag(s, plan, row.line, None, "rejected", CellFlag(
            "name", "", "neither name nor reading: not registered", "氏名もふりがなもないため登録できません"))
        return "rejected"
    parsed, cell_flags = parse_lenient(data)
    key = data.external_key.strip()
    names = name_keys(data.name, data.name_kana)
    pkeys = person_keys(data.name, data.name_kana, parsed["birth_date"])
    known = plan.keyed.get(key) if key else None
    if known and (names & known[1] or not (names or known[1])):
        _flag(s, plan, row.line, known[0], "duplicate", CellFlag(
            "evacuee_id", key, f"row {key!r} of {plan.source!r} was already imported",
            f"受付番号 {key} のこの人は取込済みです"))
        return "duplicate"
    same = next((plan.persons[k] for k in sorted(pkeys) if k in plan.persons), None)
    if same:
        _flag(s, plan, row.line, same, "duplicate", CellFlag(
            "name", data.name or data.name_kana, "the same person (name or reading and date of birth) is already registered",
            "同じ人（氏名またはふりがなと生年月日が同じ）が登録済みです"))
        return "duplicate"
    if key and key in plan.in_file:
        cell_flags.append(CellFlag("evacuee_id", key, f"evacuee id {key!r} repeats line {plan.in_file[key]}",
                                   f"受付番号 {key} が {plan.in_file[key]}行目と重複しています（別の人として登録しました）"))
    elif known:
        cell_flags.append(CellFlag("evacuee_id", key, f"evacuee id {key!r} is used by another person in this roster",
                                   f"受付番号 {key} は別の人に使われています（別の人として登録しました）"))
    flags.extend(cell_flags)
    parsed["address"] = address
    # as `_register_parsed` does, but the chunk is flushed and journalled as one batch
    ev = _evacuee_from(data, parsed, shelter.id, plan.by, "roster")
    ev.roster_import_id, ev.roster_line = plan.import_id, row.line
    stay = StayEvent(evacuee_id=ev.id, kind="check_in", destination=shelter.name, by_user=plan.by)
    s.add_all((ev, stay))
    arrivals.append((ev, stay))
    for fl in flags:
        _flag(s, plan, row.line, ev.id, "flag", fl)
    for k in pkeys:
        plan.persons.setdefault(k, ev.id)
    if key:
        plan.keyed.setdefault(key, (ev.id, names))
        plan.in_file.setdefault(key, row.line)
    return "registered"


def parse_lenient(data: EvacueeInput, *, today: datetime | None = None) -> tuple[dict[str, Any], list[CellFlag]]:
    """Parsed columns for an Evacuee from a file row: what cannot be read stays only as typed."""
    day = (today or utcnow()).date()
    name, kana = data.name.strip(), data.name_kana.strip()
    splits = split_full_name(name) if name else []
    family, given = splits[0] if splits else (name, "")
    birth, birth_flag = lenient_birth(data.birth_date, day)
    sex, sex_flag = lenient_sex(data.sex)
    parsed = {"family_name": family, "given_name": given, "name_kana": to_katakana(kana) if kana else "",
              **birth, "sex": sex, "address": data.address.strip()}
    return parsed, [f for f in (birth_flag, sex_flag) if f]


def _flag(s: Session, plan: _Plan, line: int, evacuee_id: str | None, kind: str, fl: CellFlag) -> None:
    s.add(RosterFlag(roster_import_id=plan.import_id, evacuee_id=evacuee_id, line=line,
                     field=_header_for(fl.field, plan.header), value=fl.value, reason=fl.reason,
                     reason_ja=fl.reason_ja, kind=kind, status="open" if kind == "flag" else "resolved"))


def _finish(engine: Engine, plan: _Plan, path: Path, total: int, resumed_at: int,
            rejects_out: Path | None) -> RosterResult:
    with Session(engine, expire_on_commit=False) as s:
        s.execute(update(RosterImport).where(RosterImport.id == plan.import_id).values(
            status="done", rows=total, done_rows=total))
        s.commit()
        imp = s.get(RosterImport, plan.import_id)
        assert imp is not None
        flags = list(s.exec(select(RosterFlag).where(RosterFlag.roster_import_id == plan.import_id)
                            .order_by(RosterFlag.line, RosterFlag.created_at)))
    problems = {kind: [RowProblem(path.name, f.line, f.field, f.reason, f.reason_ja, f.value) for f in flags if f.kind == kind]
                for kind in KIND_JA}
    report = None
    if flags:
        report = rejects_out or path.with_name(path.stem + ".rejects.csv")
        write_rejects([(KIND_JA[f.kind], RowProblem(path.name, f.line, f.field, f.reason, f.reason_ja, f.value))
                       for f in flags], report)
    return RosterResult(plan.import_id, total, imp.accepted, problems["rejected"], report, problems["flag"],
                        problems["duplicate"], resumed_at)


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


def _header_for(fld: str, header: list[str]) -> str:
    """The column name as the volunteer wrote it, so the report points at their own header."""
    from app.formats.roster_file import _key  # the same folding the reader used

    aliases = {_key(a) for a in ROSTER_COLUMNS.get(fld, ())}
    for h in header:
        if _key(h) in aliases:
            return h
    return ROSTER_COLUMNS.get(fld, (fld,))[0]


def write_rejects(problems: list[tuple[str, RowProblem]], out: Path) -> None:
    """CSV in UTF-8 with BOM so Excel opens it: row, field, reason (Japanese and English), value as
    typed, and what was done with the row (not registered / already here / registered, to check)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv_writer(f)
        w.writerow(["行", "項目", "理由", "reason", "入力値", "扱い"])
        for done, r in problems:
            w.writerow([r.line, r.field, r.message_ja, r.message, r.value, done])


# --- flags for staff ------------------------------------------------------------------------------

def open_flags(session: Session, *, limit: int = 300) -> list[dict[str, Any]]:
    """Unreadable cells of imported rows that nobody has checked yet, newest import first."""
    q = (select(RosterFlag, Evacuee, RosterImport)
         .join(Evacuee, Evacuee.id == RosterFlag.evacuee_id)
         .join(RosterImport, RosterImport.id == RosterFlag.roster_import_id)
         .where(RosterFlag.kind == "flag", RosterFlag.status == "open")
         .order_by(RosterImport.imported_at.desc(), RosterFlag.line, RosterFlag.field).limit(limit))  # type: ignore[attr-defined]
    return [{"id": f.id, "file": imp.source_file, "line": f.line, "field": f.field, "value": f.value,
             "reason": f.reason_ja, "evacuee_id": ev.id, "name": ev.name_raw or ev.name_kana_raw}
            for f, ev, imp in session.exec(q)]


def resolve_flag(session: Session, flag_id: str) -> RosterFlag:
    """Staff looked at the cell (and corrected the person's record if needed); inside the caller's transaction."""
    from app.services.errors import NotFound

    flag = session.get(RosterFlag, flag_id)
    if flag is None or flag.kind != "flag":
        raise NotFound(f"no roster flag {flag_id}", "該当する確認項目がありません")
    flag.status = "resolved"
    session.add(flag)
    return flag
