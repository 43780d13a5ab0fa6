"""Registry search for one person: the CLI's `anpi match` and the staff UI's live candidates."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Resident
from app.services.reconcile import current_matcher
from matching.engine import MatchResult
from matching.query import Query


def _display(session: Session, snapshot_id: int, ids: list[str], reveal_restricted: bool) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = session.exec(select(Resident).where(Resident.snapshot_id == snapshot_id, Resident.resident_id.in_(ids)))
    out = {}
    for r in rows:
        hidden = r.restricted and not reveal_restricted
        out[r.resident_id] = {
            "name": f"{r.family_name} {r.given_name}".strip(),
            "name_kana": f"{r.family_name_kana} {r.given_name_kana}".strip(),
            "alpha_name": r.alpha_name,
            "birth_date": r.birth_date.isoformat() if r.birth_date else None,
            "sex": r.sex,
            "address": "（閲覧制限）" if hidden else r.address,
            "household_id": "" if hidden else r.household_id,
            "relationship": r.relationship,
            "restricted": r.restricted,
        }
    return out


def result_dict(session: Session, snapshot_id: int, result: MatchResult, limit: int, reveal_restricted: bool) -> dict[str, Any]:
    cands = result.candidate_dicts(limit)
    shown = _display(session, snapshot_id, [c["resident_id"] for c in cands], reveal_restricted)  # type: ignore[misc]
    for c in cands:
        c.update(shown.get(c["resident_id"], {}))  # type: ignore[arg-type]
    return {"decision": result.decision, "resident_id": result.resident_id, "probability": result.probability,
            "reasons": result.reasons, "candidates": cands}


def match_one(engine: Engine, *, name: str = "", kana: str = "", birth: str = "", sex: str = "", address: str = "",
              limit: int = 5, exclude: list[str] | None = None, reveal_restricted: bool = False) -> dict[str, Any]:
    matcher, snap = current_matcher(engine)
    result = matcher.match(Query(name=name, name_kana=kana, birth=birth, sex=sex, address=address), exclude or ())
    with Session(engine) as s:
        return result_dict(s, snap.id or 0, result, limit, reveal_restricted)
