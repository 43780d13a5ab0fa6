"""PFIF rules that do not depend on where the rows live: one implementation for the shelter
(`app.services.pfif`, SQLite rows) and the hub (`app.hub_pfif`, PostgreSQL rows as plain data).

- what the reconciliation engine is asked about a sought person (`sought_query`),
- how a sought person and an evacuee are compared (`EvacueeIndex`, the matching package's keys),
- which links the engine proposes and which link rows that writes (`propose`, `plan_links`): a
  staff decision is never overridden, a link the engine no longer proposes is withdrawn,
- how an evacuee becomes a PFIF 1.4 person with `believed_alive` notes, a confirmed sought person
  a note pointing at ours, and `entry_date` strictly increasing in document order
  (`evacuee_person`, `stay_note`, `found_note`, `stamp_entry_dates`).

No database, no web: plain values in, PFIF records and proposals out (writing is
`app.formats.pfif.write_pfif`). Who may be exported (consent ⑭, 閲覧制限) is decided by the caller,
which knows its own tables; these functions only build what they are given.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from app.formats.pfif import PfifDocument, PfifNote, PfifPerson
from app.ids import aware  # noqa: F401 - pfif_rules.aware: the desks import it from here
from matching.engine import Matcher
from matching.names import script_of
from matching.person import query_keys
from matching.query import Query

ENGINE = ("auto", "review")  # decisions the engine owns (an undo hands a link back to it)
STAFF_FINAL = ("confirmed", "rejected")
DEFAULT_EXPIRY_DAYS = 365
EXPIRY_ENV = "ANPI_PFIF_EXPIRY_DAYS"
SEX_PFIF = {"M": "male", "F": "female"}

Pair = tuple[str, str]  # (target kind: resident | evacuee, target id)


class SoughtFields(Protocol):
    """What a sought person offers to matching: a stored `SoughtPerson` or a parsed `PfifPerson`."""

    full_name: str
    given_name: str
    family_name: str
    alternate_names: str
    sex: str
    date_of_birth: str
    age: str
    home_street: str
    home_neighborhood: str
    home_city: str
    home_state: str


# --- time ---------------------------------------------------------------------------------------

def newer(a: datetime | None, b: datetime | None) -> bool:
    """Is `a` strictly newer than `b` (a missing time is older than any time)? Person Finder's rule
    for a record seen again: only a newer source_date replaces it."""
    a, b = aware(a), aware(b)
    if a is None:
        return False
    return b is None or a > b


def second(dt: datetime | None, default: datetime) -> datetime:
    """A time to the whole second (PFIF's precision), UTC."""
    return (aware(dt) or default).replace(microsecond=0)


def default_expiry_days() -> int:
    try:
        from app.config import Settings

        return max(1, Settings.from_env().pfif_expiry_days)
    except ValueError:
        return DEFAULT_EXPIRY_DAYS


# --- what the engine is asked -------------------------------------------------------------------

def display_name(p: SoughtFields) -> str:
    if p.full_name:
        return p.full_name
    return " ".join(x for x in (p.family_name, p.given_name) if x)


def reading(p: SoughtFields) -> str:
    """Japanese Person Finder users typed the ふりがな as an alternate name."""
    for line in p.alternate_names.splitlines():
        if line.strip() and script_of(line.strip()) == "kana":
            return line.strip()
    return ""


def birth_text(p: SoughtFields) -> str:
    if p.date_of_birth:
        return p.date_of_birth
    if p.age.isdigit():
        return f"{p.age}歳"
    return ""


def address(p: SoughtFields) -> str:
    return "".join(x for x in (p.home_state, p.home_city, p.home_neighborhood, p.home_street) if x)


def sought_query(p: SoughtFields, key: str = "") -> Query:
    """What the engine is asked: the same Query an evacuee typed at intake would give."""
    name = display_name(p).replace("\n", " ")
    return Query(name=name, name_kana=reading(p), birth=birth_text(p), sex=p.sex, address=address(p), key=key)


# --- sought person ↔ evacuee -----------------------------------------------------------------------

@dataclass
class PersonKeys:
    names: set[str]
    years: tuple[int, int] | None
    day: str
    sex: str


def person_keys(name: str, kana: str, birth: str, sex: str, years: tuple[int, int] | None = None) -> PersonKeys:
    qk = query_keys(name, kana, birth, sex)
    names: set[str] = set()
    if qk.kanji_variant:
        names.add("k:" + qk.kanji_variant)
    names.update("r:" + x for x in qk.kana_loose if x)
    if qk.alpha_tokens:
        names.add("a:" + qk.alpha_tokens)
    names.update("s:" + x for x in qk.romaji if x)
    pd = qk.birth
    day = pd.value.isoformat() if pd.kind == "day" and pd.value else ""
    if pd.year_min is not None and pd.year_max is not None:
        years = (pd.year_min, pd.year_max)
    return PersonKeys(names, years, day, qk.sex)


_NAME_LEVEL = {"k": ("kanji", 0.6), "r": ("kana", 0.5), "a": ("alpha", 0.45), "s": ("romaji", 0.4)}


def compare(a: PersonKeys, b: PersonKeys) -> tuple[float, str] | None:
    """Score and reasons when the names agree and nothing contradicts, else None."""
    shared = a.names & b.names
    if not shared:
        return None
    level, score = max((_NAME_LEVEL[k[0]] for k in shared), key=lambda x: x[1])
    reasons = [f"name={level}"]
    if a.day and b.day:
        if a.day != b.day:
            return None
        score += 0.35
        reasons.append("birth=exact")
    elif a.years and b.years:
        if a.years[1] < b.years[0] or b.years[1] < a.years[0]:
            return None
        score += 0.15
        reasons.append("birth=year-agrees")
    else:
        reasons.append("birth=missing")
    if a.sex and b.sex:
        if a.sex != b.sex:
            return None
        score += 0.04
        reasons.append("sex=agree")
    return min(score, 0.99), "; ".join(reasons)


def age_years(age: str, today: datetime) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d{1,3})(?:-(\d{1,3}))?", age or "")
    if not m:
        return None
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    return today.year - max(lo, hi) - 1, today.year - min(lo, hi)


def sought_keys(p: SoughtFields, today: datetime) -> PersonKeys:
    return person_keys(display_name(p).replace("\n", " "), reading(p), p.date_of_birth, p.sex,
                       age_years(p.age, today) if not p.date_of_birth else None)


@dataclass(frozen=True)
class EvacueeTyped:
    """What was typed at intake for one evacuee (as stored at the shelter or at the hub)."""

    id: str
    name: str
    kana: str
    birth: str
    sex: str


class EvacueeIndex:
    """Evacuees by the matching keys of what was typed at intake; `resident_of` maps an evacuee to
    the resident the engine or staff linked it to (a sought person linked to that same resident
    makes the evacuee link automatic)."""

    def __init__(self, rows: Iterable[EvacueeTyped], resident_of: Mapping[str, str]) -> None:
        self.rows = list(rows)
        self.keys = [person_keys(e.name, e.kana, e.birth, e.sex) for e in self.rows]
        self.by_name: dict[str, list[int]] = defaultdict(list)
        for i, k in enumerate(self.keys):
            for n in k.names:
                self.by_name[n].append(i)
        self.resident_of = dict(resident_of)

    def candidates(self, p: SoughtFields, today: datetime) -> list[tuple[str, float, str]]:
        want = sought_keys(p, today)
        hits = sorted({i for n in want.names for i in self.by_name.get(n, ())})
        out = []
        for i in hits:
            c = compare(want, self.keys[i])
            if c is not None:
                out.append((self.rows[i].id, c[0], c[1]))
        return out


# --- proposals and the rows they write ------------------------------------------------------------

@dataclass
class Proposal:
    decision: str  # auto | review (engine) or rejected (withdrawn by the engine)
    score: float | None
    reasons: str
    snapshot: Any = None  # the registry snapshot a resident link came from (shelter: its id)


@dataclass
class LinkState:
    """The newest row of one (sought person, target) link, in the engine's vocabulary."""

    decision: str  # auto | review | confirmed | rejected
    by_user: str = ""
    score: float | None = None
    snapshot: Any = None


def refused(latest: Mapping[Pair, LinkState]) -> set[Pair]:
    """Targets a staff member said are someone else: never proposed again."""
    return {pair for pair, st in latest.items() if st.decision == "rejected" and st.by_user}


def propose(p: SoughtFields, *, key: str, registry: tuple[Matcher, Any] | None, evacuees: EvacueeIndex,
            refused_pairs: set[Pair], expired: bool, today: datetime) -> dict[Pair, Proposal]:
    """The engine's view of one sought person: its resident (the same query and decision rules as
    `anpi match`) and the evacuees whose typed name and birth agree. An evacuee link is `auto` only
    when that evacuee and the sought person point the engine at the same resident automatically."""
    out: dict[Pair, Proposal] = {}
    if expired:
        return out
    resident_auto = ""
    if registry is not None:
        matcher, snap = registry
        r = matcher.match(sought_query(p, key), exclude=[t for k, t in refused_pairs if k == "resident"])
        if r.decision in ENGINE and r.resident_id:
            out[("resident", r.resident_id)] = Proposal(r.decision, r.probability, r.reasons, snap)
            resident_auto = r.resident_id if r.decision == "auto" else ""
    for ev_id, score, reasons in evacuees.candidates(p, today):
        if ("evacuee", ev_id) in refused_pairs:
            continue
        same = bool(resident_auto) and evacuees.resident_of.get(ev_id) == resident_auto
        if same:
            reasons += f"; both linked to resident {resident_auto} by the engine"
        out[("evacuee", ev_id)] = Proposal("auto" if same else "review", score, reasons)
    return out


def plan_links(proposals: Mapping[Pair, Proposal], latest: Mapping[Pair, LinkState], *,
               expired: bool) -> list[tuple[Pair, Proposal]]:
    """Rows to append: a row only where the engine's view changed; a link a staff member confirmed
    or rejected is left alone; a link the engine no longer proposes is withdrawn (`rejected`
    without a user)."""
    rows: list[tuple[Pair, Proposal]] = []
    for pair, prop in proposals.items():
        prev = latest.get(pair)
        if prev is not None and (prev.decision in STAFF_FINAL and prev.by_user or prev.decision == prop.decision):
            continue
        rows.append((pair, prop))
    for pair, prev in latest.items():
        if prev.decision in ENGINE and pair not in proposals:
            why = "record expired at its source" if expired else "no longer proposed by the engine"
            rows.append((pair, Proposal("rejected", prev.score, why, prev.snapshot)))
    return rows


# --- export ---------------------------------------------------------------------------------------

def record_domain_for_code(code: str, fallback: str = "local") -> str:
    """Our PFIF record ids: `anpi.<municipality code, else shelter code>.jp/<ULID>`, the same at a
    shelter and at the hub, so a record published by either is the same Person Finder record."""
    slug = re.sub(r"[^a-z0-9-]+", "-", (code or "").lower()).strip("-")
    return f"anpi.{slug or fallback}.jp"


def age_text(birth: date | None, year_min: int | None, year_max: int | None, today: datetime) -> str:
    """Age, or an age range when only a birth year (or range) is known; never an invented date."""
    if birth is not None:
        years = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        return str(max(years, 0))
    if year_min is not None and year_max is not None:
        lo, hi = today.year - year_max - 1, today.year - year_min
        return f"{max(lo, 0)}-{max(hi, 0)}"
    return ""


def stay_note_text(kind: str, shelter_name: str, at: datetime) -> tuple[str, str]:
    """(text, last_known_location) of a stay: where someone went after leaving is not published."""
    day = at.astimezone().strftime("%Y-%m-%d")
    if kind == "check_out":
        return f"{day}、{shelter_name}を退所しました（無事を確認済み）。", ""
    if kind == "transfer":
        return f"{day}、{shelter_name}から別の避難先へ移りました（無事を確認済み）。", ""
    return f"{shelter_name}に避難しています（{day} 受付、無事を確認）。", shelter_name


def evacuee_person(pid: str, *, expiry: datetime, shelter_name: str, source_date: datetime, name: str,
                   given_name: str = "", family_name: str = "", kana: str = "", sex: str = "",
                   age: str = "") -> PfifPerson:
    """One evacuee as a PFIF 1.4 person (`sex` in our M/F); no birth date, address or phone."""
    return PfifPerson(
        person_record_id=pid, expiry_date=expiry, author_name=shelter_name or "Anpi",
        source_name=f"Anpi {shelter_name}".strip(), source_date=source_date, full_name=name,
        given_name=given_name, family_name=family_name, alternate_names=kana if kana and kana != name else "",
        sex=SEX_PFIF.get(sex, ""), age=age)


def stay_note(domain: str, stay_id: str, pid: str, kind: str, shelter_name: str, at: datetime) -> PfifNote:
    text, location = stay_note_text(kind, shelter_name, at)
    return PfifNote(note_record_id=f"{domain}/{stay_id}", person_record_id=pid, author_name=shelter_name or "Anpi",
                    source_date=at, author_made_contact=True, status="believed_alive",
                    last_known_location=location, text=text)


def registered_note(domain: str, evacuee_id: str, pid: str, shelter_name: str, at: datetime) -> PfifNote:
    """For an evacuee without stay records: registration itself confirms they are safe."""
    return PfifNote(note_record_id=f"{domain}/{evacuee_id}.note", person_record_id=pid,
                    author_name=shelter_name or "Anpi", source_date=at, author_made_contact=True,
                    status="believed_alive", last_known_location=shelter_name,
                    text=f"{shelter_name}で無事を確認しました。")


def found_note(domain: str, link_id: str, sought_record_id: str, our_pid: str, shelter_name: str,
               at: datetime) -> PfifNote:
    """On *their* record for a person staff confirmed as one of ours: alive, and which record is ours."""
    return PfifNote(
        note_record_id=f"{domain}/{link_id}", person_record_id=sought_record_id, linked_person_record_id=our_pid,
        author_name=shelter_name or "Anpi", source_date=at, author_made_contact=True, status="believed_alive",
        last_known_location=shelter_name,
        text=f"{shelter_name}で無事が確認された方と同一人物と確認しました（避難所の記録: {our_pid}）。")


def stamp_entry_dates(doc: PfifDocument, now: datetime) -> None:
    """`entry_date` strictly increasing in document order, ending at `now` (Person Finder takes a
    later entry as newer); no record claims a source newer than its entry."""
    records: list[PfifPerson | PfifNote] = []
    for p in doc.persons:
        records.append(p)
        records.extend(p.notes)
    records.extend(doc.notes)
    start = now - timedelta(seconds=len(records) - 1) if records else now
    for i, rec in enumerate(records):
        rec.entry_date = start + timedelta(seconds=i)
        if rec.source_date is not None and rec.source_date > rec.entry_date:
            rec.source_date = rec.entry_date
