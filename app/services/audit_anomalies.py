"""監査ログの異常報告: staff whose looks at personal data are unlike their work.

Why: the seed's leak was a staff login used to find one person, and nobody could say afterwards
who had looked. The audit log records every look; this report reads it (offline, no network)
and points an admin or HQ at the few accounts worth a question, with the entries behind each
flag. It accuses no one: a flag is a reason to ask, not a finding.

Each rule is a plain function over plain entries (the dicts of `audit.as_dict`, the same shape
the laptops upload to the hub), so the shelter and the hub run the same rules. The thresholds
are module constants, documented in the README (監査ログの異常報告):

- `unregistered_lookups`: at least UNREGISTERED_MIN_SEARCHES searches whose registry candidates
  include nobody registered at this shelter, making up at least UNREGISTERED_MIN_SHARE of the
  person's searches. Intake staff search for people who then register; a person hunting
  searches for people who never came.
- `address_oracle`: one resident returned by at least ORACLE_MIN_SEARCHES searches of one person,
  typed with at least ORACLE_MIN_ADDRESSES different addresses (walking the address until the
  engine's answer changes).
- `odd_hour_exports`: an export (list, PFIF, audit log, backup, reconcile CSV) between
  QUIET_START and QUIET_END o'clock, local time (TIMEZONE).
- `restricted_lookups`: at least RESTRICTED_MIN entries of one person whose subjects include the
  same 閲覧制限 person (or one of their household). A chance candidate in a list now and then is
  not flagged.

What a flag shows: the account, the rule, counts, entry ids and subject ids (`resident:1001`,
`evacuee:…`) — what the audit log already shows an admin — never a name or address, and never
which of the subjects is the 閲覧制限 person beyond the entry ids the log already holds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from app.ids import aware

UNREGISTERED_MIN_SEARCHES = 20
UNREGISTERED_MIN_SHARE = 0.5
ORACLE_MIN_SEARCHES = 5
ORACLE_MIN_ADDRESSES = 4
QUIET_START, QUIET_END = 22, 6  # 22:00–05:59
TIMEZONE = timezone(timedelta(hours=9), "JST")  # Japan has no summer time; no tz database needed
RESTRICTED_MIN = 3

SEARCH_ACTIONS = frozenset({"search", "inquiry_search"})
LOOK_ACTIONS = frozenset({"search", "inquiry_search", "view", "inquiry", "export", "print"})
EXPORT_ACTIONS = frozenset({"export", "audit_export", "backup"})

RULES_JA = {
    "unregistered_lookups": "この避難所に登録のない住民の検索が多い",
    "address_oracle": "同じ住民を住所を変えながら繰り返し検索",
    "odd_hour_exports": "深夜・早朝の出力",
    "restricted_lookups": "閲覧制限の方の記録を閲覧",
}


@dataclass
class Flag:
    rule: str
    user: str  # the account as the log names it (name, or id when it has no name)
    role: str
    summary: str  # English, for the CLI
    summary_ja: str  # plain Japanese, for the admin screen
    entry_ids: list[int]
    subjects: list[str] = field(default_factory=list)
    device: str = ""  # at the hub: which laptop's log

    @property
    def rule_ja(self) -> str:
        return RULES_JA[self.rule]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rule_ja": self.rule_ja}


@dataclass(frozen=True)
class Context:
    """What the rules need to know beyond the log: who registered here, who is 閲覧制限."""

    registered: frozenset[str] = frozenset()  # "resident:ID" linked to an evacuee of this shelter
    restricted: frozenset[str] = frozenset()  # "resident:ID" / "evacuee:ID" under 閲覧制限 (with household)


def _subjects(e: Mapping[str, Any]) -> list[str]:
    s = e.get("subjects") or []
    return json.loads(s) if isinstance(s, str) else list(s)


def _detail(e: Mapping[str, Any]) -> dict[str, Any]:
    d = e.get("detail") or {}
    return json.loads(d) if isinstance(d, str) else dict(d)


def _who(e: Mapping[str, Any]) -> str:
    return str(e.get("user_name") or e.get("user_id") or "(不明)")


def _by_user(entries: Iterable[Mapping[str, Any]], actions: frozenset[str]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in entries:
        if e.get("action") in actions:
            out[_who(e)].append(e)
    return out


def _residents(e: Mapping[str, Any]) -> list[str]:
    return [s for s in _subjects(e) if s.startswith("resident:")]


def unregistered_lookups(entries: Sequence[Mapping[str, Any]], ctx: Context) -> list[Flag]:
    flags = []
    for user, searches in _by_user(entries, SEARCH_ACTIONS).items():
        with_residents = [e for e in searches if _residents(e)]
        strangers = [e for e in with_residents if not any(r in ctx.registered for r in _residents(e))]
        if len(strangers) >= UNREGISTERED_MIN_SEARCHES and len(strangers) >= UNREGISTERED_MIN_SHARE * len(with_residents):
            flags.append(Flag("unregistered_lookups", user, str(strangers[0].get("role") or ""),
                              f"{len(strangers)} of {len(with_residents)} searches found only residents who never "
                              "registered at this shelter",
                              f"検索{len(with_residents)}回のうち{len(strangers)}回が、この避難所に登録のない住民だけの結果",
                              [int(e["id"]) for e in strangers]))
    return flags


def _address(e: Mapping[str, Any]) -> str:
    d = _detail(e)
    q = d.get("query") or d.get("q") or {}
    return str(q.get("address") or "").strip() if isinstance(q, Mapping) else ""


def address_oracle(entries: Sequence[Mapping[str, Any]], ctx: Context) -> list[Flag]:
    flags = []
    for user, searches in _by_user(entries, SEARCH_ACTIONS).items():
        per_resident: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for e in searches:
            if _address(e):
                for r in _residents(e):
                    per_resident[r].append(e)
        for resident, hits in sorted(per_resident.items()):
            addresses = {_address(e) for e in hits}
            if len(hits) >= ORACLE_MIN_SEARCHES and len(addresses) >= ORACLE_MIN_ADDRESSES:
                flags.append(Flag("address_oracle", user, str(hits[0].get("role") or ""),
                                  f"{resident} returned by {len(hits)} searches typed with {len(addresses)} "
                                  "different addresses",
                                  f"{resident} が、住所を{len(addresses)}通りに変えた検索{len(hits)}回で表示されています",
                                  [int(e["id"]) for e in hits], [resident]))
    return flags


def _local_hour(at: Any) -> int:
    t = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return aware(t).astimezone(TIMEZONE).hour  # type: ignore[union-attr]  # never None for a datetime


def _quiet(hour: int) -> bool:
    return hour >= QUIET_START or hour < QUIET_END


def odd_hour_exports(entries: Sequence[Mapping[str, Any]], ctx: Context) -> list[Flag]:
    flags = []
    for user, exports in _by_user(entries, EXPORT_ACTIONS).items():
        late = [e for e in exports if _quiet(_local_hour(e["at"]))]
        if late:
            hours = sorted({f"{_local_hour(e['at']):02d}時" for e in late})
            flags.append(Flag("odd_hour_exports", user, str(late[0].get("role") or ""),
                              f"{len(late)} exports between {QUIET_START}:00 and {QUIET_END}:00 local time",
                              f"{QUIET_START}時〜{QUIET_END}時の出力が{len(late)}件 ({'、'.join(hours)})",
                              [int(e["id"]) for e in late]))
    return flags


def restricted_lookups(entries: Sequence[Mapping[str, Any]], ctx: Context) -> list[Flag]:
    flags = []
    for user, looks in _by_user(entries, LOOK_ACTIONS).items():
        per_person: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for e in looks:
            for s in dict.fromkeys(_subjects(e)):
                if s in ctx.restricted:
                    per_person[s].append(e)
        hits = {int(e["id"]): e for found in per_person.values() if len(found) >= RESTRICTED_MIN for e in found}
        if hits:  # the flag names the entries, not which of their subjects is the 閲覧制限 person
            first = hits[min(hits)]
            flags.append(Flag("restricted_lookups", user, str(first.get("role") or ""),
                              f"{len(hits)} looks whose results include the same person under 閲覧制限 "
                              f"{RESTRICTED_MIN} times or more",
                              f"閲覧制限の方を繰り返し含む閲覧・検索が{len(hits)}件", sorted(hits)))
    return flags


RULES: tuple[Callable[[Sequence[Mapping[str, Any]], Context], list[Flag]], ...] = (
    unregistered_lookups, address_oracle, odd_hour_exports, restricted_lookups)


def anomalies(entries: Sequence[Mapping[str, Any]], ctx: Context, device: str = "") -> list[Flag]:
    """Every flag of every rule, by account then rule (the report's order)."""
    flags = [f for rule in RULES for f in rule(entries, ctx)]
    for f in flags:
        f.device = device
    return sorted(flags, key=lambda f: (f.device, f.user, f.rule))


# --- at the shelter --------------------------------------------------------------------------

_REGISTERED_SQL = ("SELECT DISTINCT resident_id FROM matchdecision WHERE resident_id IS NOT NULL "
                   "AND decision IN ('auto', 'review', 'confirmed')")
#: 閲覧制限 residents and everyone in their registry household (the one disclosure rule's reach)
_RESTRICTED_SQL = ("SELECT DISTINCT r.resident_id FROM resident r WHERE r.restricted = 1 OR EXISTS ("
                   "SELECT 1 FROM resident f WHERE f.restricted = 1 AND f.snapshot_id = r.snapshot_id "
                   "AND f.household_id != '' AND f.household_id = r.household_id)")
_RESTRICTED_EVACUEES_SQL = ("SELECT DISTINCT evacuee_id FROM matchdecision WHERE decision IN ('auto', 'confirmed') "
                            "AND resident_id IN ({})")


def shelter_context(session: Any) -> Context:
    """Who registered at this shelter and who is 閲覧制限, read from the shelter database."""
    from sqlalchemy import text

    registered = {f"resident:{r[0]}" for r in session.execute(text(_REGISTERED_SQL))}
    rids = [r[0] for r in session.execute(text(_RESTRICTED_SQL))]
    restricted = {f"resident:{r}" for r in rids}
    for i in range(0, len(rids), 500):
        chunk = rids[i:i + 500]
        sql = _RESTRICTED_EVACUEES_SQL.format(",".join(f":r{j}" for j in range(len(chunk))))
        restricted |= {f"evacuee:{r[0]}" for r in session.execute(text(sql), {f"r{j}": v for j, v in enumerate(chunk)})}
    return Context(frozenset(registered), frozenset(restricted))


def shelter_report(session: Any) -> list[Flag]:
    """The report over this laptop's whole audit log (read only; the caller audits the look)."""
    from app.services import audit

    entries = [audit.as_dict(e) for e in audit.query(session, limit=10_000_000, newest_first=False)]
    return anomalies(entries, shelter_context(session))


# --- at the hub, across laptops --------------------------------------------------------------

def hub_report(engine: Any, m: str, key: Any) -> tuple[list[Flag], bool]:
    """The same rules over every laptop's uploaded log of municipality `m`, each laptop with its own
    shelter's registrations; (flags, whether the 閲覧制限 rule could run — it needs the data key)."""
    from sync.hub import audit_head

    flags: list[Flag] = []
    for device, (device_id, entries) in sorted(audit_head.device_entries(engine, m).items()):
        rids = {s.split(":", 1)[1] for e in entries for s in _subjects(e) if s.startswith("resident:")}
        registered, restricted = audit_head.device_context(engine, m, key, device_id, rids)
        flags += anomalies(entries, Context(frozenset(registered), frozenset(restricted)), device=device)
    return flags, key is not None
