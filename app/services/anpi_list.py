"""安否確認リスト: for every resident of the newest registry snapshot, what is known of them.

Disaster HQ walks this list street by street: who is confirmed safe (in a shelter, left a
shelter, confirmed by phone or visit), who was reported dead or missing, and who nobody has
heard of yet (未確認). The shelter builds it from its own SQLite file (plus what it pulled from
the hub); the hub builds the same list from PostgreSQL for all shelters.

Reusable API (the hub, issue 8, calls the pure half with data it fetched itself)
--------------------------------------------------------------------------------
Plain records in, rows out; nothing below touches a database:

- `ResidentRecord` — one registry person (宛名番号, 世帯番号, 続柄, names, birth date, sex,
  address, `town` = `matching.address.town_key(address)` (stored as `Resident.k_town`),
  `restricted` = 閲覧制限).
- `ShelterStay` — one evacuee linked to that resident by an `auto`/`confirmed` match decision
  that was not later rejected: shelter name, state (in_shelter | left | transferred), since
  (registration or last check-in), left_at and destination (退所先 / 移動先), 要配慮 labels.
- `HqRecord` — one HQ record (`HqConfirmation` row). `current_hq_records(records)` replays them
  in time order (withdrawn undoes the previous record) and gives the one in force per resident;
  `replay_hq_records` is that replay, also telling which withdrawal undid which record (history).
- `resolve_status(stays, hq)` — the status of one person (precedence below).
- `build_rows(residents, stays, hq, filters=…, today=…, include_restricted=…)` → `AnpiList`:
  filtered, sorted rows (`AnpiRow`) with counts per status and per 町字; each row names the
  stay (`evacuee_id`) and HQ record (`hq_record_id`) its status rests on, so a caller holding
  richer records (the hub's JSON) can show them without deciding the status again.
- `export_table(anpi_list, …)` → `app.formats.anpi_list_export.ExportTable`, the plain table the
  writers (`write_csv`, `write_xlsx`, `write_pdf`) take. It always drops 閲覧制限 rows and
  reports only their number, whatever list it is given.

Example (the hub, with records it read from PostgreSQL):

    lst = build_rows(residents, stays_by_resident_id, current_hq_records(hq_rows),
                     filters=AnpiFilter(towns=("高田町館ノ沖",), age_band="75+"))
    result = write_xlsx(export_table(lst, by="本部 田中"), Path("anpi-list.xlsx"))
    # result.replacements: characters the format could not hold (also FILE.replacements.csv)

The shelter half: `build_anpi_list(session, filters=…)` fetches with SQL (only the needed
columns, no ORM object per row: a 60,000-resident snapshot takes about 1.5 s on two cores) and calls
`build_rows`; `export_anpi_list` writes a file and audits it; `record_hq_confirmation` stores
an HQ record and audits it.

Status precedence (one status per person; the reasons stay visible in the row):
1. 死亡 — HQ recorded a death (until withdrawn).
2. 避難所で確認 — registered in a shelter and still there (the newest such stay); a person who
   is in a shelter now is safe whatever HQ recorded earlier.
3. otherwise the newest of: 退所 (left / moved on, with the destination), 他の手段で確認 and
   行方不明 (HQ records, by time).
4. 未確認 — nothing known.

HQ records (`HqConfirmation`) typed on a laptop travel to the hub (`hq.recorded` events), whose list
replays them with its own (typed at the hub, `app.hub_export.record_hq`); both check their input
with `check_hq_input`. The way back: other laptops' `hq.recorded` events and the hub's `hq.recorded`
notices (same payload) arrive in `remote_event`, and `hq_records` replays them with the laptop's own,
so every list of the municipality shows the same record in force.

Sort: 町字, then the house number (番地・号, natural order), then 世帯番号, then 続柄 (世帯主
first, spouse, children, …), then date of birth — the order a field team walks a street in.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app.formats.anpi_list_export import ExportResult, ExportTable, write_csv, write_pdf, write_xlsx
from app.ids import aware as _aware, utcnow
from app.models import (Evacuee, HqConfirmation, MatchDecision, RegistrySnapshot, Resident, Shelter,
                        StayEvent)
from app.services import audit, journal
from app.services.anpi_towns import town_labels, town_sort_key
from app.services.errors import AnpiError, Conflict, InvalidInput, NotFound
from app.services.roster_search import SearchKey, name_matches
from matching.disclosure import Caller, Facts, decide
from sync.files import atomic_write_text

#: status code → label (the order of counts and chart legends)
STATUS_JA: dict[str, str] = {
    "in_shelter": "避難所で確認", "left": "退所", "confirmed_other": "他の手段で確認",
    "dead": "死亡", "missing": "行方不明", "unconfirmed": "未確認",
}
#: statuses that mean "this person is known to be alive"
SAFE = frozenset({"in_shelter", "left", "confirmed_other"})
HQ_STATUS_JA: dict[str, str] = {"confirmed_other": "他の手段で確認", "dead": "死亡", "missing": "行方不明",
                                "withdrawn": "直前の記録を取り消す"}
METHODS = ("電話", "訪問", "その他")
_METHOD_ALIASES = {"phone": "電話", "tel": "電話", "visit": "訪問", "other": "その他"}
#: age band → (min, max) years, max None = no upper bound
AGE_BANDS: dict[str, tuple[int, int | None]] = {
    "0-5": (0, 5), "6-14": (6, 14), "15-64": (15, 64), "65-74": (65, 74), "75+": (75, None),
}
NO_TOWN = "（町字なし）"
SEX_JA = {"M": "男", "F": "女"}
_MAX_NOTE = 500


# --- plain records ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ResidentRecord:
    resident_id: str  # 宛名番号
    household_id: str = ""  # 世帯番号
    relationship: str = ""  # 続柄
    family_name: str = ""
    given_name: str = ""
    family_name_kana: str = ""
    given_name_kana: str = ""
    alpha_name: str = ""
    birth_date: date | None = None
    birth_raw: str = ""
    sex: str = ""  # M | F | ""
    address: str = ""
    town: str = ""  # matching.address.town_key(address), "" when none
    restricted: bool = False  # 閲覧制限 (DV等支援措置)


@dataclass(frozen=True, slots=True)
class ShelterStay:
    """One evacuee linked to a resident, at this shelter or (pulled from the hub) another one."""

    shelter: str
    state: str  # in_shelter | left | transferred
    since: datetime | None = None  # registration or the last check-in
    left_at: datetime | None = None
    destination: str = ""
    care: tuple[str, ...] = ()  # 要配慮 labels
    evacuee_id: str = ""
    remote: bool = False


@dataclass(frozen=True, slots=True)
class HqRecord:
    resident_id: str
    status: str  # confirmed_other | dead | missing | withdrawn
    at: datetime
    method: str = ""
    note: str = ""
    by_user: str = ""
    id: str = ""


@dataclass(slots=True)
class AnpiRow:
    """One line of the list. `status` is a key of STATUS_JA."""

    resident_id: str
    household_id: str
    relationship: str
    name: str
    kana: str
    birth_date: date | None
    birth_raw: str
    age: int | None
    sex: str  # 男 | 女 | ""
    address: str
    town: str
    status: str
    shelter: str = ""  # 避難所 (where confirmed / which was left)
    since: datetime | None = None  # in the shelter since
    left_at: datetime | None = None
    destination: str = ""  # 退所先・移動先
    hq_method: str = ""
    hq_by: str = ""
    hq_at: datetime | None = None
    hq_note: str = ""
    care: tuple[str, ...] = ()
    restricted: bool = False
    remote: bool = False  # the shelter information came from another shelter via the hub
    evacuee_id: str = ""  # the stay the status rests on (ShelterStay.evacuee_id), "" when none
    hq_record_id: str = ""  # the HQ record shown (HqRecord.id), "" when none
    town_label: str = ""  # the 町字 as the registry spells it (anpi_towns.town_spelling); town is the key
    moved: bool = False  # status "left" because the person was transferred (移動) to another shelter

    @property
    def status_ja(self) -> str:
        return "移動" if self.moved and self.status == "left" else STATUS_JA[self.status]

    @property
    def safe(self) -> bool:
        return self.status in SAFE

    @property
    def confirmed_at(self) -> datetime | None:
        """When the status shown was learned."""
        if self.status == "in_shelter":
            return self.since
        if self.status == "left":
            return self.left_at
        if self.status in ("confirmed_other", "dead", "missing"):
            return self.hq_at
        return None

    @property
    def detail(self) -> str:
        """The status in words a field team reads aloud: where, since when, how, by whom."""
        when = local_text(self.confirmed_at, "%m/%d %H:%M")
        if self.status == "in_shelter":
            return f"{self.shelter}（{when}から）" if when else self.shelter
        if self.status == "left" and self.moved:
            dest = f"{self.destination}へ移動" if self.destination else "ほかの避難所へ移動"
            return f"{self.shelter}から{dest}" + (f"（{when}）" if when else "")
        if self.status == "left":
            dest = f" → {self.destination}" if self.destination else ""
            return f"{self.shelter}を退所{dest}" + (f"（{when}）" if when else "")
        if self.status in ("confirmed_other", "dead", "missing"):
            parts = [p for p in (self.hq_method, when, self.hq_by and f"記録者 {self.hq_by}", self.hq_note) if p]
            return " ".join(parts)
        return ""


@dataclass
class AnpiFilter:
    towns: tuple[str, ...] = ()  # 町字 (display form or any address; compared by town key)
    household: str = ""  # 世帯番号
    age_band: str = ""  # a key of AGE_BANDS
    care_only: bool = False  # 要配慮 only
    status: str = ""  # a key of STATUS_JA, or "safe"
    #: part of a name (any spelling the engine folds: kana, kanji variants, romaji); a name search
    #: never shows 閲覧制限 people, whoever asks, and does not count them either
    name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"towns": list(self.towns), "household": self.household, "age_band": self.age_band,
                "care_only": self.care_only, "status": self.status, "name": self.name}

    def describe(self) -> str:
        parts = []
        if self.towns:
            parts.append("町字=" + "・".join(self.towns))
        if self.household:
            parts.append(f"世帯番号={self.household}")
        if self.age_band:
            parts.append(f"年齢={self.age_band}")
        if self.care_only:
            parts.append("要配慮のみ")
        if self.status:
            parts.append("状態=" + ("確認済み" if self.status == "safe" else STATUS_JA.get(self.status, self.status)))
        if self.name:
            parts.append(f"氏名={self.name}")
        return "、".join(parts) or "なし（全員）"


@dataclass
class AnpiList:
    rows: list[AnpiRow]
    counts: dict[str, int]  # status → people (rows of this list)
    town_counts: dict[str, dict[str, int]]  # 町字 → status → people, in list order
    restricted_excluded: int  # 閲覧制限 people matching the filters but left out
    total_residents: int  # everyone in the snapshot
    filters: AnpiFilter
    today: date
    snapshot_id: int | None = None
    as_of: date | None = None
    gaiji_map: dict[str, str] = field(default_factory=dict)
    generated_at: datetime = field(default_factory=utcnow)
    town_labels: dict[str, str] = field(default_factory=dict)  # town key → registry spelling

    def page(self, page: int, per_page: int) -> tuple[list[AnpiRow], int, int]:
        """(rows of page `page` (from 1, clamped), the page shown, page count)."""
        per_page = max(1, per_page)
        pages = max(1, -(-len(self.rows) // per_page))
        page = min(max(1, page), pages)
        return self.rows[(page - 1) * per_page: page * per_page], page, pages

    def town_progress(self) -> list[dict[str, Any]]:
        """Per 町字: confirmed safe, dead or missing, unconfirmed (for the chart)."""
        out = []
        for town, c in self.town_counts.items():
            safe = sum(c.get(s, 0) for s in SAFE)
            out.append({"town": town, "label": self.town_labels.get(town, town), "safe": safe,
                        "dead_missing": c.get("dead", 0) + c.get("missing", 0),
                        "unconfirmed": c.get("unconfirmed", 0), "total": sum(c.values())})
        return out


# --- pure logic ---------------------------------------------------------------------------

def local_text(dt: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Stored times are UTC; people read the laptop's local time."""
    if dt is None:
        return ""
    dt = _aware(dt)
    return dt.astimezone().strftime(fmt) if dt else ""


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def replay_hq_records(records: Iterable[HqRecord]) -> tuple[dict[str, list[HqRecord]], dict[str, str]]:
    """The one replay of HQ records: in time order (then id), `withdrawn` undoes the previous record
    of that resident still standing.

    Returns (per resident, the records still standing, oldest first — the last is in force;
    withdrawal id → id of the record it undid). The shelter's list, the hub's list and the hub's
    history view (`app.hub_export.hq_history`) all read these two.
    """
    stacks: dict[str, list[HqRecord]] = {}
    undid: dict[str, str] = {}
    for r in sorted(records, key=lambda r: (_aware(r.at) or _EPOCH, r.id)):
        stack = stacks.setdefault(r.resident_id, [])
        if r.status == "withdrawn":
            if stack:
                undid[r.id] = stack.pop().id
        else:
            stack.append(r)
    return stacks, undid


def current_hq_records(records: Iterable[HqRecord]) -> dict[str, HqRecord]:
    """The HQ record in force per resident: replayed in time order, `withdrawn` undoes the previous one."""
    stacks, _ = replay_hq_records(records)
    return {rid: s[-1] for rid, s in stacks.items() if s}


def resolve_status(stays: Sequence[ShelterStay], hq: HqRecord | None) -> tuple[str, ShelterStay | None]:
    """(status, the stay it rests on) by the precedence in the module docstring."""
    if hq is not None and hq.status == "dead":
        return "dead", None
    inside = [s for s in stays if s.state == "in_shelter"]
    if inside:
        return "in_shelter", max(inside, key=lambda s: (_aware(s.since) or _EPOCH, not s.remote))
    candidates: list[tuple[datetime, str, ShelterStay | None]] = []
    for s in stays:
        candidates.append((_aware(s.left_at) or _aware(s.since) or _EPOCH, "left", s))
    if hq is not None and hq.status in ("confirmed_other", "missing"):
        candidates.append((_aware(hq.at) or _EPOCH, hq.status, None))
    if not candidates:
        return "unconfirmed", None
    _, status, stay = max(candidates, key=lambda c: c[0])
    return status, stay


def age_on(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


_REL_RANK = {"世帯主": 0, "妻": 1, "夫": 1, "配偶者": 1, "未届の妻": 1, "未届の夫": 1, "子": 2, "養子": 2,
             "長男": 2, "長女": 2, "次男": 2, "次女": 2, "二男": 2, "二女": 2, "三男": 2, "三女": 2,
             "子の妻": 3, "子の夫": 3, "孫": 4, "父": 5, "母": 5, "祖父": 6, "祖母": 6, "同居人": 9}


def relationship_rank(rel: str) -> int:
    """世帯主 first, then spouse, children, their spouses, grandchildren, parents, others; 同居人 last."""
    rel = rel.strip()
    if rel in _REL_RANK:
        return _REL_RANK[rel]
    if rel.startswith("子") or rel.endswith(("男", "女")):
        return 2
    if "孫" in rel:
        return 4
    if rel.endswith(("父", "母")):
        return 5
    return 8


_DIGITS = re.compile(r"\d+")


def house_numbers(address: str) -> tuple[int, ...]:
    """The numbers of an address (丁目, 番地, 号) in order, compared as numbers: 2-3 < 12-1.

    NFKC first, so １２ = 12; an address written without numbers sorts first in its town.
    """
    import unicodedata

    return tuple(int(p) for p in _DIGITS.findall(unicodedata.normalize("NFKC", address)))


def normalize_town(value: str) -> str:
    """A 町字 as typed (or a whole address) → the town key the list uses."""
    from matching.address import town_key

    value = value.strip()
    if not value or value == NO_TOWN:
        return ""
    return town_key(value) or value


def check_filters(f: AnpiFilter) -> None:
    """Check the filters as `build_rows` does (InvalidInput naming the field) and turn a status label
    into its code, in place; for a caller that serves a list built earlier with equal filters."""
    _parse_filters(f)


def _parse_filters(f: AnpiFilter) -> None:
    if f.age_band and f.age_band not in AGE_BANDS:
        raise InvalidInput(f"unknown age band {f.age_band!r} (one of {', '.join(AGE_BANDS)})",
                           f"年齢区分は {'・'.join(AGE_BANDS)} のどれかです", "age_band")
    if f.status and f.status not in STATUS_JA and f.status != "safe":
        by_label = {v: k for k, v in STATUS_JA.items()}
        if f.status in by_label:
            f.status = by_label[f.status]
        else:
            raise InvalidInput(f"unknown status {f.status!r} (one of {', '.join(STATUS_JA)}, safe)",
                               "状態の指定が正しくありません", "status")


_FAR = date.max


@dataclass(frozen=True)
class SortedResidents:
    """A snapshot's residents already in list order, grouped by 町字 (town key, "" when none).

    Only the registry decides the order (the key reads no status), so a caller that keeps a snapshot
    in memory (the hub, per snapshot: `app.hub_export`) sorts once with `sort_residents` and hands
    this to `build_rows`, which then skips its sort and, for a 町字 filter, reads only those towns.
    Each town's residents are contiguous in list order, so the towns' dict order is the list order.
    """

    rows: tuple[ResidentRecord, ...]
    by_town: dict[str, tuple[ResidentRecord, ...]]
    flagged_households: frozenset[str] = frozenset()  # 世帯番号 holding a 閲覧制限 member


def flagged_households(residents: Iterable[ResidentRecord]) -> frozenset[str]:
    """世帯番号 with a 閲覧制限 member: the one rule protects the whole household on the list."""
    return frozenset(r.household_id for r in residents if r.restricted and r.household_id)


def sort_residents(residents: Iterable[ResidentRecord]) -> SortedResidents:
    numbers: dict[str, tuple[int, ...]] = {}

    def key(r: ResidentRecord) -> tuple:
        n = numbers.get(r.address)
        if n is None:
            n = numbers[r.address] = house_numbers(r.address)
        town = r.town or NO_TOWN
        return (town == NO_TOWN, town_sort_key(town), n, r.household_id, relationship_rank(r.relationship), r.birth_date or _FAR,
                r.resident_id)

    rows = tuple(sorted(residents, key=key))
    groups: dict[str, list[ResidentRecord]] = {}
    for r in rows:
        groups.setdefault(r.town or "", []).append(r)
    return SortedResidents(rows, {t: tuple(g) for t, g in groups.items()}, flagged_households(rows))


def build_rows(residents: Iterable[ResidentRecord] | SortedResidents, stays: Mapping[str, Sequence[ShelterStay]],
               hq: Mapping[str, HqRecord], *, filters: AnpiFilter | None = None, today: date | None = None,
               include_restricted: bool = False) -> AnpiList:
    """The list from plain records: filtered, sorted, counted.

    `stays` and `hq` are keyed by 宛名番号 (`hq` holds the records in force, see
    `current_hq_records`). 閲覧制限 residents are left out (and counted) unless
    `include_restricted`, which only HQ's internal screen may ask for. An unknown 町字 in the
    filters is an error (a typo must not look like "nobody lives there"). `residents` may be a
    `SortedResidents` (already in list order: same rows, no sort, a 町字 filter reads only its towns).
    """
    f = filters or AnpiFilter()
    _parse_filters(f)
    today = today or datetime.now().astimezone().date()
    # a value the list itself offered (a chart bar, the 町字 menu) is a town key already and is taken
    # as it is: normalising "中央1" again would cut its 丁目 number off; anything typed is normalised
    typed = {t.strip(): normalize_town(t) for t in f.towns if t.strip()}
    want_towns = set(typed) | set(typed.values())
    band = AGE_BANDS.get(f.age_band) if f.age_band else None
    name_key = SearchKey.of(f.name) if f.name.strip() else None
    all_towns: set[str] = set()
    rows: list[AnpiRow] = []
    excluded = 0
    total = 0
    presorted = isinstance(residents, SortedResidents)
    source: Iterable[ResidentRecord]
    if isinstance(residents, SortedResidents):
        total = len(residents.rows)
        all_towns = set(residents.by_town)
        # the towns asked for, in list order (the rest would all be skipped below)
        source = ([r for t, g in residents.by_town.items() if t in want_towns for r in g] if want_towns
                  else residents.rows)
        bad_hh = residents.flagged_households
    else:
        source = list(residents)
        bad_hh = flagged_households(source)
    who = Caller(sees_restricted=include_restricted, publication=not include_restricted)
    for r in source:
        town = r.town or ""
        if not presorted:
            total += 1
            all_towns.add(town)
        if want_towns and town not in want_towns:
            continue
        if f.household and r.household_id != f.household:
            continue
        age = age_on(r.birth_date, today)
        if band is not None and (age is None or age < band[0] or (band[1] is not None and age > band[1])):
            continue
        person_stays = stays.get(r.resident_id, ())
        care: tuple[str, ...] = ()
        if person_stays:
            care = tuple(dict.fromkeys(label for s in person_stays for label in s.care))
        if f.care_only and not care:
            continue
        record = hq.get(r.resident_id)
        if person_stays or record is not None:
            status, stay = resolve_status(person_stays, record)
        else:  # most of the list, most of the time
            status, stay = "unconfirmed", None
        if f.status and (status not in SAFE if f.status == "safe" else status != f.status):
            continue
        shown = decide(who, Facts(flagged=r.restricted, household_flagged=r.household_id in bad_hh))
        if name_key is not None and (shown.protected or not name_matches(name_key, r)):
            continue  # checked after every other filter: a name search never counts 閲覧制限 people
        if not shown.listed:
            excluded += 1
            continue
        row = AnpiRow(
            resident_id=r.resident_id, household_id=r.household_id, relationship=r.relationship,
            name=(f"{r.family_name} {r.given_name}".strip() or r.alpha_name),
            kana=f"{r.family_name_kana} {r.given_name_kana}".strip(), birth_date=r.birth_date,
            birth_raw=r.birth_raw, age=age, sex=SEX_JA.get(r.sex, r.sex), address=r.address,
            town=town or NO_TOWN, status=status, care=care, restricted=shown.protected)
        if stay is not None:
            row.moved = stay.state == "transferred"
            row.shelter, row.since, row.left_at = stay.shelter, stay.since, stay.left_at
            row.destination, row.remote, row.evacuee_id = stay.destination, stay.remote, stay.evacuee_id
        if record is not None and status in ("confirmed_other", "dead", "missing"):
            row.hq_method, row.hq_by, row.hq_at, row.hq_note = record.method, record.by_user, record.at, record.note
            row.hq_record_id = record.id
        rows.append(row)
    unknown = sorted(raw for raw, key in typed.items() if raw not in all_towns and key not in all_towns)
    if unknown:
        raise InvalidInput(f"unknown town (町字) {', '.join(unknown)}: no resident of the snapshot lives there",
                           f"町字「{'・'.join(unknown)}」の住民は台帳にいません", "town")
    chosen = {raw if raw in all_towns else key for raw, key in typed.items()}
    if chosen != want_towns:  # "中央1" named a town of its own: its normalised "中央" was not meant
        rows = [x for x in rows if (x.town if x.town != NO_TOWN else "") in chosen]
    if not presorted:
        numbers: dict[str, tuple[int, ...]] = {}  # households share addresses

        def sort_key(x: AnpiRow) -> tuple:
            n = numbers.get(x.address)
            if n is None:
                n = numbers[x.address] = house_numbers(x.address)
            return (x.town == NO_TOWN, town_sort_key(x.town), n, x.household_id, relationship_rank(x.relationship),
                    x.birth_date or _FAR, x.resident_id)

        rows.sort(key=sort_key)
    counts = Counter(x.status for x in rows)
    town_counts: dict[str, dict[str, int]] = {}
    for x in rows:
        tc = town_counts.get(x.town)
        if tc is None:
            tc = town_counts[x.town] = dict.fromkeys(STATUS_JA, 0)
        tc[x.status] += 1
    labels = town_labels((x.town, x.address) for x in rows if x.town != NO_TOWN)
    for x in rows:
        x.town_label = labels.get(x.town, x.town)
    return AnpiList(rows=rows, counts={k: counts.get(k, 0) for k in STATUS_JA}, town_counts=town_counts,
                    restricted_excluded=excluded, total_residents=total, filters=f, today=today, town_labels=labels)


# --- fetching (shelter SQLite) ------------------------------------------------------------

def newest_snapshot(session: Session) -> RegistrySnapshot | None:
    return session.scalars(select(RegistrySnapshot).order_by(RegistrySnapshot.as_of.desc(),  # type: ignore[attr-defined]
                                                             RegistrySnapshot.id.desc())).first()  # type: ignore[union-attr]


def _as_date(value: Any) -> date | None:
    if value is None or value == "" or isinstance(value, date):
        return value or None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def fetch_residents(session: Session, snapshot_id: int) -> list[ResidentRecord]:
    """The columns the list needs, straight from the driver: building 60,000 ORM objects (or even
    SQLAlchemy's typed rows) would cost more than everything else together."""
    result = session.connection().exec_driver_sql(
        "SELECT resident_id, household_id, relationship, family_name, given_name, family_name_kana, "
        "given_name_kana, alpha_name, birth_date, birth_raw, sex, address, k_town, restricted "
        "FROM resident WHERE snapshot_id = ?" if session.get_bind().dialect.paramstyle == "qmark" else
        "SELECT resident_id, household_id, relationship, family_name, given_name, family_name_kana, "
        "given_name_kana, alpha_name, birth_date, birth_raw, sex, address, k_town, restricted "
        "FROM resident WHERE snapshot_id = %(s)s",
        (snapshot_id,) if session.get_bind().dialect.paramstyle == "qmark" else {"s": snapshot_id})
    return [ResidentRecord(a, b or "", c or "", d or "", e or "", f or "", g or "", h or "", _as_date(bd), br or "",
                           sx or "", ad or "", t or "", bool(r))
            for a, b, c, d, e, f, g, h, bd, br, sx, ad, t, r in result.fetchall()]


def _care(flags: Mapping[str, Any] | None) -> tuple[str, ...]:
    from app.services.evacuees import care_labels

    return tuple(care_labels(dict(flags or {}))) if flags else ()


def _local_stays(session: Session) -> dict[str, list[ShelterStay]]:
    """Evacuees of this laptop linked to a resident (their newest decision is auto/confirmed)."""
    latest: dict[str, tuple[str, str | None]] = {}
    for ev_id, rid, decision in session.execute(select(MatchDecision.evacuee_id, MatchDecision.resident_id,  # type: ignore[call-overload]
                                                       MatchDecision.decision)
                                                .order_by(MatchDecision.at, MatchDecision.id)):
        latest[ev_id] = (decision, rid)
    linked = {ev: rid for ev, (d, rid) in latest.items() if d in ("auto", "confirmed") and rid}
    if not linked:
        return {}
    shelters = dict(session.execute(select(Shelter.id, Shelter.name)).all())  # type: ignore[call-overload]
    stay_info: dict[str, dict[str, Any]] = {}
    for ev_id, kind, dest, at in session.execute(select(StayEvent.evacuee_id, StayEvent.kind,  # type: ignore[call-overload]
                                                        StayEvent.destination, StayEvent.at)
                                                 .order_by(StayEvent.at, StayEvent.id)):
        if ev_id not in linked:
            continue
        info = stay_info.setdefault(ev_id, {})
        info["last"] = (kind, dest, at)
        if kind == "check_in":
            info["checked_in"] = at
    out: dict[str, list[ShelterStay]] = {}
    q = select(Evacuee.id, Evacuee.shelter_id, Evacuee.status, Evacuee.care_flags, Evacuee.created_at)  # type: ignore[call-overload]
    for ev_id, shelter_id, status, flags, created in session.execute(q):
        rid = linked.get(ev_id)
        if rid is None:
            continue
        info = stay_info.get(ev_id, {})
        kind, dest, at = info.get("last", ("", "", None))
        state = status if status in ("in_shelter", "left", "transferred") else "in_shelter"
        out.setdefault(rid, []).append(ShelterStay(
            shelter=shelters.get(shelter_id, ""), state=state, since=info.get("checked_in") or created,
            left_at=at if state != "in_shelter" else None,
            destination=(dest or "") if state != "in_shelter" else "", care=_care(flags), evacuee_id=ev_id))
    return out


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return _aware(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def _remote_stays(session: Session) -> dict[str, list[ShelterStay]]:
    """Other shelters' evacuees linked to our residents, from the events pulled from the hub
    (`remote_event`: evacuee.registered / evacuee.updated / stay.recorded / match.decided)."""
    own = session.execute(select(Shelter.municipality_code).order_by(Shelter.created_at)).first()  # type: ignore[call-overload]
    own_code = own[0] if own else ""
    try:
        rows = session.execute(text(
            "SELECT type, payload, shelter_code, shelter_name, evacuee_id FROM remote_event "
            "WHERE type IN ('evacuee.registered', 'evacuee.updated', 'stay.recorded', 'match.decided') "
            "ORDER BY hub_seq")).all()
    except OperationalError:  # a database made before sync existed has no remote_event table
        return {}
    evs: dict[str, dict[str, Any]] = {}
    for etype, payload, shelter_code, shelter_name, ev_id in rows:
        try:
            p = json.loads(payload)
        except ValueError:
            continue
        ev_id = ev_id or p.get("evacuee_id")
        if not ev_id:
            continue
        e = evs.setdefault(ev_id, {"state": "in_shelter", "care": {}, "link": None})
        if etype == "evacuee.registered":
            e["shelter"] = shelter_name or p.get("shelter_code") or shelter_code or ""
            e["since"] = _parse_time(p.get("registered_at"))
            e["care"] = p.get("care") or {}
        elif etype == "evacuee.updated":
            care = (p.get("changes") or {}).get("care")
            if isinstance(care, dict) and isinstance(care.get("new"), dict):
                e["care"] = care["new"]
        elif etype == "stay.recorded":
            kind, at = p.get("kind"), _parse_time(p.get("at"))
            if kind == "check_in":
                e["state"], e["since"], e["left_at"], e["destination"] = "in_shelter", at, None, ""
            elif kind in ("check_out", "transfer"):
                e["state"] = "left" if kind == "check_out" else "transferred"
                e["left_at"], e["destination"] = at, p.get("destination") or ""
            e.setdefault("shelter", shelter_name or shelter_code or "")
        elif etype == "match.decided":
            code = p.get("municipality_code") or ""
            if own_code and code and code != own_code:
                continue  # another municipality's 宛名番号 is not ours
            d, rid = p.get("decision"), p.get("resident_id")
            e["link"] = rid if d in ("auto", "confirmed") and rid else None
            e["decided"] = True
    from app.services.remote_match import auto_links

    ours = auto_links(session)  # this laptop's engine, where the other laptop sent no decision
    out: dict[str, list[ShelterStay]] = {}
    for ev_id, e in evs.items():
        if not e.get("decided") and ev_id in ours:
            e["link"] = ours[ev_id]
        if not e.get("link") or "shelter" not in e:
            continue
        out.setdefault(e["link"], []).append(ShelterStay(
            shelter=e["shelter"], state=e["state"], since=e.get("since"), left_at=e.get("left_at"),
            destination=e.get("destination", ""), care=_care(e["care"]), evacuee_id=ev_id, remote=True))
    return out


def local_hq_records(session: Session) -> list[HqRecord]:
    """HQ records typed on this laptop (`HqConfirmation`)."""
    q = select(HqConfirmation.resident_id, HqConfirmation.status, HqConfirmation.at, HqConfirmation.method,  # type: ignore[call-overload]
               HqConfirmation.note, HqConfirmation.by_user, HqConfirmation.id)
    return [HqRecord(*r) for r in session.execute(q)]


def _own_municipality(session: Session) -> str:
    own = session.execute(select(Shelter.municipality_code).order_by(Shelter.created_at)).first()  # type: ignore[call-overload]
    return (own[0] or "") if own else ""


def remote_hq_records(session: Session, resident_id: str | None = None) -> list[HqRecord]:
    """HQ records typed elsewhere, from what the laptop pulled (`remote_event` type `hq.recorded`):
    other laptops' events, and the hub's notices for records typed at the hub (`record_hq`), which
    carry the same payload. A record naming another municipality's 宛名番号 is not ours and is left
    out (the hub files such a record nowhere either); one that names none is taken as ours, since
    the hub's feed only ever holds the laptop's own municipality."""
    own_code = _own_municipality(session)
    sql = "SELECT payload, recorded_at FROM remote_event WHERE type = 'hq.recorded'"
    params: dict[str, Any] = {}
    if resident_id is not None:
        sql += " AND json_extract(payload, '$.resident_id') = :rid"
        params["rid"] = resident_id
    try:
        rows = session.execute(text(sql + " ORDER BY hub_seq"), params).all()
    except OperationalError:  # a database made before sync existed has no remote_event table
        return []
    out: list[HqRecord] = []
    for payload, recorded_at in rows:
        try:
            p = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(p, dict) or not p.get("record_id") or not p.get("resident_id"):
            continue
        code = p.get("municipality_code") or ""
        if own_code and code and code != own_code:
            continue
        if p.get("status") not in HQ_STATUS_JA:
            continue
        at = _parse_time(p.get("at")) or _parse_time(recorded_at)
        if at is None:
            continue
        out.append(HqRecord(resident_id=str(p["resident_id"]), status=str(p["status"]), at=at,
                            method=str(p.get("method") or ""), note=str(p.get("note") or ""),
                            by_user=str(p.get("by_user") or ""), id=str(p["record_id"])))
    return out


def hq_records(session: Session) -> list[HqRecord]:
    """Every HQ record this laptop knows: its own and those typed on other laptops or at the hub
    (pulled). One replay (`current_hq_records` / `replay_hq_records`, by (at, record id)) over all of
    them gives the same record in force here as at the hub; a record id is counted once."""
    seen: dict[str, HqRecord] = {}
    for r in (*local_hq_records(session), *remote_hq_records(session)):
        seen.setdefault(r.id, r)
    return list(seen.values())


def fetch_stays(session: Session) -> dict[str, list[ShelterStay]]:
    stays = _local_stays(session)
    for rid, remote in _remote_stays(session).items():
        stays.setdefault(rid, []).extend(remote)
    return stays


def build_anpi_list(session: Session, *, filters: AnpiFilter | None = None, include_restricted: bool = False,
                    today: date | None = None) -> AnpiList:
    """The list for the newest snapshot of this database. Raises NotFound before the first registry import."""
    snap = newest_snapshot(session)
    if snap is None:
        raise NotFound("no registry snapshot imported yet (anpi registry import FILE)",
                       "住民基本台帳がまだ取り込まれていません")
    result = build_rows(_with_protection(session, fetch_residents(session, snap.id)),  # type: ignore[arg-type]
                        fetch_stays(session), current_hq_records(hq_records(session)),
                        filters=filters, today=today, include_restricted=include_restricted)
    result.snapshot_id, result.as_of, result.gaiji_map = snap.id, snap.as_of, dict(snap.gaiji_map or {})
    return result


def _with_protection(session: Session, residents: list[ResidentRecord]) -> list[ResidentRecord]:
    """Residents the shelter's facts protect beyond this snapshot's flag (flagged in an older
    snapshot, registered at intake with a flagged person) count as flagged on the list."""
    from dataclasses import replace

    from app.services import disclosure

    extra = disclosure.protected(session).residents
    if not extra:
        return residents
    return [replace(r, restricted=True) if not r.restricted and r.resident_id in extra else r for r in residents]


def town_names(session: Session, *, include_restricted: bool = False) -> list[str]:
    """The 町字 of the newest snapshot (for a choice list), in list order."""
    snap = newest_snapshot(session)
    if snap is None:
        return []
    q = select(Resident.k_town).where(Resident.snapshot_id == snap.id).distinct()  # type: ignore[call-overload]
    if not include_restricted:
        q = q.where(Resident.restricted == False)  # noqa: E712 - SQL comparison
    names = {t or NO_TOWN for (t,) in session.execute(q)}
    return sorted(names, key=town_sort_key)


def town_choices(session: Session, *, include_restricted: bool = False) -> list[tuple[str, str]]:
    """(town key, the registry's spelling) for the 町字 menu, in natural order."""
    snap = newest_snapshot(session)
    if snap is None:
        return []
    q = select(Resident.k_town, Resident.address).where(Resident.snapshot_id == snap.id)  # type: ignore[call-overload]
    if not include_restricted:
        q = q.where(Resident.restricted == False)  # noqa: E712 - SQL comparison
    pairs = [(t or "", a or "") for t, a in session.execute(q)]
    labels = town_labels(pairs)
    keys = {t or NO_TOWN for t, _ in pairs}
    return [(k, labels.get(k, k)) for k in sorted(keys, key=town_sort_key)]


def display_text(text_: str, gaiji_map: Mapping[str, str]) -> str:
    """What a screen shows: a municipal gaiji as its mapped character, else 〓 (ARCHITECTURE.md §3)."""
    from matching.text import apply_gaiji, has_gaiji, is_gaiji

    if not has_gaiji(text_):
        return text_
    text_ = apply_gaiji(text_, gaiji_map)
    return "".join("〓" if is_gaiji(c) else c for c in text_)


# --- HQ records ---------------------------------------------------------------------------

def normalize_method(method: str) -> str:
    m = (method or "").strip()
    return _METHOD_ALIASES.get(m.lower(), m)


def check_hq_input(status: str, method: str = "", note: str = "", by: Any = "") -> tuple[str, str, str]:
    """(method, note, by_name) of one HQ record, normalised; InvalidInput naming the field otherwise.

    Pure: the shelter (`record_hq_confirmation`) and the hub (`app.hub_export.record_hq`) check alike.
    """
    if status not in HQ_STATUS_JA:
        raise InvalidInput(f"unknown status {status!r} (one of {', '.join(HQ_STATUS_JA)})",
                           "記録の種類を選んでください", "status")
    method = normalize_method(method)
    if method and method not in METHODS:
        raise InvalidInput(f"unknown method {method!r} (one of {', '.join(METHODS)})",
                           f"確認方法は {'・'.join(METHODS)} のどれかです", "method")
    if status == "confirmed_other" and not method:
        raise InvalidInput("say how the person was confirmed (--method 電話|訪問|その他)",
                           "確認方法を選んでください", "method")
    note = (note or "").strip()
    if len(note) > _MAX_NOTE:
        raise InvalidInput(f"note is longer than {_MAX_NOTE} characters", f"備考は{_MAX_NOTE}文字までです", "note")
    by_name = by if isinstance(by, str) else str(getattr(by, "name", "") or "")
    if not by_name.strip():
        raise InvalidInput("who recorded it is required (--by NAME)", "記録者がわかりません", "by")
    return method, note, by_name.strip()


def record_hq_confirmation(session: Session, resident_id: str, status: str, method: str = "", note: str = "",
                           by: Any = "", *, screen: str = "cli: anpi hq confirm") -> HqConfirmation:
    """Store one HQ record (他の手段で確認 / 死亡 / 行方不明 / withdrawn) and audit it; the caller commits.

    The resident must be in the newest snapshot. `withdrawn` needs a record in force to undo.
    `by` is the staff member (a name, or a Staff / CurrentUser).
    """
    resident_id = (resident_id or "").strip()
    method, note, by_name = check_hq_input(status, method, note, by)
    snap = newest_snapshot(session)
    if snap is None:
        raise NotFound("no registry snapshot imported yet", "住民基本台帳がまだ取り込まれていません")
    found = session.execute(select(Resident.id).where(Resident.snapshot_id == snap.id,  # type: ignore[call-overload]
                                                      Resident.resident_id == resident_id)).first()
    if found is None:
        raise NotFound(f"resident {resident_id!r} is not in the newest snapshot (as of {snap.as_of})",
                       f"宛名番号 {resident_id} は台帳にありません")
    current = current_hq_records(_records_of(session, resident_id)).get(resident_id)
    if status == "withdrawn" and current is None:
        raise Conflict(f"resident {resident_id} has no HQ record to withdraw", "取り消す記録がありません")
    rec = HqConfirmation(resident_id=resident_id, status=status, method=method, note=note, by_user=by_name)
    latest = current.at if current else None
    if latest is not None and _aware(rec.at) <= _aware(latest):  # type: ignore[operator]
        # a laptop clock set back must not reorder the undo stack
        from datetime import timedelta

        rec.at = _aware(latest) + timedelta(microseconds=1)  # type: ignore[operator]
    session.add(rec)
    session.flush()
    shelter = session.execute(select(Shelter)).scalars().first()
    journal.hq_recorded(session, rec, shelter.municipality_code if shelter else None, snap.as_of.isoformat())
    audit.record(session, by, "hq_confirm", screen, [f"resident:{resident_id}"],
                 {"status": status, "method": method, "record_id": rec.id,
                  "withdrew": current.id if status == "withdrawn" and current else None})
    return rec


def _records_of(session: Session, resident_id: str) -> list[HqRecord]:
    """One resident's HQ records, this laptop's and pulled ones (ids counted once)."""
    from sqlmodel import select as sm_select

    local = [HqRecord(r.resident_id, r.status, r.at, r.method, r.note, r.by_user, r.id)
             for r in session.exec(sm_select(HqConfirmation).where(HqConfirmation.resident_id == resident_id))]
    seen: dict[str, HqRecord] = {}
    for r in (*local, *remote_hq_records(session, resident_id)):
        seen.setdefault(r.id, r)
    return list(seen.values())


def hq_history(session: Session, resident_id: str) -> list[HqRecord]:
    """Every HQ record of one resident — typed here, on another laptop or at the hub — oldest first
    (withdrawn ones included), in the replay's order (at, record id)."""
    return sorted(_records_of(session, resident_id), key=lambda r: (_aware(r.at) or _EPOCH, r.id))


# --- export -------------------------------------------------------------------------------

#: every column of the CSV/xlsx export, in order
COLUMNS = ["町字", "世帯番号", "続柄", "宛名番号", "氏名", "カナ", "生年月日", "年齢", "性別", "住所", "状態",
           "避難所", "確認日時", "退所先", "確認方法", "確認者", "備考", "要配慮"]
#: the PDF (A4 landscape) shows fewer, wider columns; 確認内容 sums up 避難所…備考
PDF_COLUMNS: list[tuple[str, float]] = [
    ("世帯番号", 1.1), ("続柄", 0.9), ("宛名番号", 1.2), ("氏名", 1.7), ("カナ", 1.9), ("生年月日", 1.2),
    ("年齢", 0.5), ("性別", 0.5), ("住所", 3.2), ("状態", 1.2), ("確認内容", 3.3), ("要配慮", 1.3)]


def row_cells(r: AnpiRow) -> list[str]:
    """COLUMNS + 確認内容 of one row, as text."""
    hq_status = r.status in ("confirmed_other", "dead", "missing")
    method = r.hq_method if hq_status else ("避難所受付" + ("（他の避難所）" if r.remote else "") if r.shelter else "")
    return [r.town, r.household_id, r.relationship, r.resident_id, r.name, r.kana,
            r.birth_date.isoformat() if r.birth_date else r.birth_raw, "" if r.age is None else str(r.age),
            r.sex, r.address, r.status_ja, r.shelter, local_text(r.confirmed_at), r.destination, method,
            r.hq_by if hq_status else "", r.hq_note if hq_status else "", "・".join(r.care), r.detail]


def export_table(lst: AnpiList, *, by: str = "", title: str = "安否確認リスト") -> ExportTable:
    """The plain table the writers take. 閲覧制限 rows never reach it, whatever `lst` holds."""
    rows = [r for r in lst.rows if not r.restricted]
    dropped = len(lst.rows) - len(rows)
    counts = Counter(r.status for r in rows)
    town_counts: dict[str, dict[str, int]] = {}
    for r in rows:
        tc = town_counts.setdefault(r.town, dict.fromkeys(STATUS_JA.values(), 0))
        tc[STATUS_JA[r.status]] += 1
    notes = [("台帳", f"{lst.as_of.isoformat() if lst.as_of else ''} 時点（スナップショット {lst.snapshot_id}）"),
             ("作成", local_text(lst.generated_at) + (f" {by}" if by else "")),
             ("条件", lst.filters.describe()),
             ("年齢の基準日", lst.today.isoformat())]
    return ExportTable(title=title, columns=[*COLUMNS, "確認内容"], rows=[row_cells(r) for r in rows],
                       notes=notes, status_counts={v: counts.get(k, 0) for k, v in STATUS_JA.items()},
                       town_counts=town_counts, excluded_count=lst.restricted_excluded + dropped,
                       gaiji_map=lst.gaiji_map, sheet_columns=list(COLUMNS), pdf_columns=PDF_COLUMNS)


FORMATS = ("csv", "xlsx", "pdf", "pfif")


@dataclass
class ExportOutcome:
    path: Path
    format: str
    rows: int
    restricted_excluded: int
    result: ExportResult | None = None  # None for PFIF (written by app.services.pfif)
    summary_path: Path | None = None
    table: ExportTable | None = None


def summary_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".summary.txt")


def write_table(table: ExportTable, out: Path, *, fmt: str, encoding: str = "utf-8-sig",
                write_summary: bool = False) -> tuple[ExportResult, Path | None]:
    """The list's table as csv / xlsx / pdf (a shelter's or the hub's); with a csv, optionally the
    counts as FILE.summary.txt beside it (written atomically). Returns the writer's result and the
    summary's path."""
    if fmt == "csv":
        result = write_csv(table, out, encoding=encoding)
    elif fmt == "xlsx":
        result = write_xlsx(table, out)
    else:
        result = write_pdf(table, out)
    summary_path = None
    if fmt == "csv" and write_summary:
        from app.formats.anpi_list_export import summary_lines

        summary_path = summary_path_for(out)
        atomic_write_text(summary_path, "\n".join(summary_lines(table)) + "\n", encoding="utf-8-sig")
    return result, summary_path


def export_anpi_list(session: Session, out: Path, *, fmt: str, encoding: str = "utf-8-sig",
                     filters: AnpiFilter | None = None, by: Any = "", screen: str = "cli: anpi export anpi-list",
                     write_summary: bool = True) -> ExportOutcome:
    """Write the list as csv / xlsx / pdf (or PFIF via app.services.pfif, which audits itself) and audit it.

    The audit entry names every exported resident and the format, filters and row count; the
    caller commits. A CSV gets its summary (counts, how many 閲覧制限 people were left out) in
    `FILE.summary.txt` beside it; xlsx and PDF carry it inside.
    """
    out = Path(out)
    by_name = by if isinstance(by, str) else str(getattr(by, "name", "") or "")
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})", "出力形式が正しくありません", "format")
    if fmt != "csv" and encoding not in ("", "utf-8-sig"):
        raise InvalidInput("--encoding applies to csv only", "文字コードはCSVだけに指定できます", "encoding")
    if fmt == "csv" and encoding not in ("utf-8-sig", "cp932"):
        raise InvalidInput(f"unknown encoding {encoding!r} (utf-8-sig or cp932)", "文字コードは UTF-8(BOM付) か CP932 です",
                           "encoding")
    f = filters or AnpiFilter()
    if fmt == "pfif":
        if f.as_dict() != AnpiFilter().as_dict():
            raise InvalidInput("filters do not apply to PFIF (it follows each person's consent to publication)",
                               "PFIFには絞り込み条件を指定できません", "format")
        try:
            from app.services.pfif import export_pfif
        except ModuleNotFoundError as exc:
            if exc.name not in ("app.services.pfif",):
                raise
            raise AnpiError("PFIF export is not available in this version", "PFIF出力はこの版ではまだ使えません") from None
        import inspect

        # export_pfif audits (and commits) the export itself: no second entry here
        extra = {"screen": screen} if "screen" in inspect.signature(export_pfif).parameters else {}
        n = export_pfif(session, out, by_user=by_name, **extra)
        return ExportOutcome(out, "pfif", n, 0)
    lst = build_anpi_list(session, filters=f, include_restricted=False)
    table = export_table(lst, by=by_name)
    result, summary_path = write_table(table, out, fmt=fmt, encoding=encoding, write_summary=write_summary)
    exported = [r.resident_id for r in lst.rows if not r.restricted]
    audit.record(session, by, "export", screen, [f"resident:{rid}" for rid in exported], {
        "list": "anpi-list", "format": fmt, "encoding": encoding if fmt == "csv" else "", "file": out.name,
        "filters": f.as_dict(), "rows": result.rows, "restricted_excluded": table.excluded_count,
        "replacements": len(result.replacements), "snapshot_id": lst.snapshot_id})
    return ExportOutcome(out, fmt, result.rows, table.excluded_count, result, summary_path, table)
