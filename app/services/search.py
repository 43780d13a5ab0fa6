"""Registry search for one person: the CLI's `anpi match` and the staff UI's live candidates.

What a candidate may show is decided by the one 閲覧制限 rule (`matching.disclosure`): for a caller
without the "restricted" permission a protected candidate (flagged, or in a flagged household)
shows no address or 世帯番号, and when any candidate is protected the typed address is left out of
the whole query, so no level, weight, probability or ordering can answer "is this the address?".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Resident
from app.services import disclosure
from app.services.reconcile import current_matcher
from matching.disclosure import Caller, hidden_id, ignore_address, masked
from matching.engine import Matcher, MatchResult
from matching.query import Query


def _display(session: Session, snapshot_id: int, ids: list[str], who: Caller,
             prot: disclosure.Protected) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = session.exec(select(Resident).where(Resident.snapshot_id == snapshot_id, Resident.resident_id.in_(ids)))  # type: ignore[attr-defined]
    out = {}
    for r in rows:
        shown = disclosure.shown_resident(who, prot, r.resident_id)
        out[r.resident_id] = {
            "name": f"{r.family_name} {r.given_name}".strip(),
            "name_kana": f"{r.family_name_kana} {r.given_name_kana}".strip(),
            "alpha_name": r.alpha_name,
            "birth_date": r.birth_date.isoformat() if r.birth_date else None,
            "sex": r.sex,
            "address": masked(r.address, shown),
            "household_id": hidden_id(r.household_id, shown),
            "relationship": r.relationship,
            "restricted": shown.protected,
        }
    return out


def result_dict(session: Session, snapshot_id: int, result: MatchResult, limit: int, reveal_restricted: bool,
                prot: disclosure.Protected | None = None) -> dict[str, Any]:
    """The engine's answer as the caller may see it (the rule decides every candidate's fields)."""
    who = disclosure.caller(sees_restricted=reveal_restricted)
    prot = prot if prot is not None else disclosure.protected(session)
    cands = result.candidate_dicts(limit)
    shown = _display(session, snapshot_id, [str(c["resident_id"]) for c in cands], who, prot)
    for c in cands:
        c["household_id"] = ""
        c.update(shown.get(str(c["resident_id"]), {}))
    return {"decision": result.decision, "resident_id": result.resident_id, "probability": result.probability,
            "reasons": result.reasons, "candidates": cands}


def blind_match(matcher: Matcher, q: Query, who: Caller, prot: disclosure.Protected,
                exclude: list[str] | None = None) -> MatchResult:
    """The engine's answer, scored without the typed address when the rule says the engine may not
    use it for this caller: a protected candidate among everyone scored. That set is found from
    names and birth dates only (the engine keeps every candidate it scores), so the check itself
    says nothing about the address; only then is the query scored a second time."""
    pq = matcher.prepare(q)
    cands = matcher.scored(pq, exclude or ())
    if q.address and ignore_address(who, (prot.resident(c.resident_id) for c in cands)):
        pq = matcher.prepare(replace(q, address=""))
        cands = matcher.without_address(cands)
    return matcher.decide(pq, cands)


def match_one(engine: Engine, *, name: str = "", kana: str = "", birth: str = "", sex: str = "", address: str = "",
              limit: int = 5, exclude: list[str] | None = None, reveal_restricted: bool = False) -> dict[str, Any]:
    matcher, snap = current_matcher(engine)
    with Session(engine) as s:
        prot = disclosure.protected(s)
        who = disclosure.caller(sees_restricted=reveal_restricted)
        result = blind_match(matcher, Query(name=name, name_kana=kana, birth=birth, sex=sex, address=address),
                             who, prot, exclude)
        return result_dict(s, snap.id or 0, result, limit, reveal_restricted, prot)
