"""Matching what other shelters registered, as it is pulled from the hub (issue 14 item 1).

A laptop with no registry snapshot (or an older version) pushes registrations without a match
decision; until one arrives, this laptop's engine decides for it against this laptop's registry,
so HQ's list here shows the resident as in that shelter. A decision the other laptop sent (the
engine's there, or its staff's) always wins over ours: its desk saw the person.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app.ids import utcnow
from app.models import RemoteMatch
from app.services.reconcile import linked_elsewhere, matcher_for
from app.services.registry import newest_snapshot
from matching.query import Query

#: pulled `evacuee.updated` field → the registration field it replaces
_UPDATED = {"name": "name", "name_kana": "name_kana", "birth_date_raw": "birth_date_raw", "sex": "sex",
            "address": "address"}


def _pulled_people(session: Session, ids: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The typed fields of these remote evacuees as last pulled, and those whose own laptop decided."""
    people: dict[str, dict[str, Any]] = {}
    decided: set[str] = set()
    marks = ",".join(f":e{n}" for n in range(len(ids)))
    rows = session.connection().execute(text(
        f"SELECT type, payload, evacuee_id FROM remote_event WHERE evacuee_id IN ({marks}) "
        "AND type IN ('evacuee.registered', 'evacuee.updated', 'match.decided') ORDER BY hub_seq"),
        {f"e{n}": i for n, i in enumerate(ids)})
    for etype, payload, ev_id in rows:
        try:
            p = json.loads(payload)
        except ValueError:
            continue
        if etype == "match.decided":
            decided.add(ev_id)
        elif etype == "evacuee.registered":
            people[ev_id] = dict(p)
        elif ev_id in people:
            for f, change in (p.get("changes") or {}).items():
                if f in _UPDATED and isinstance(change, dict):
                    people[ev_id][_UPDATED[f]] = change.get("new")
    return people, decided


def match_pulled(session: Session, evacuee_ids: Iterable[str]) -> dict[str, str]:
    """Decide for the pulled evacuees no laptop decided for; returns evacuee id → decision."""
    ids = list(dict.fromkeys(i for i in evacuee_ids if i))
    snap = newest_snapshot(session)
    if snap is None or not ids:
        return {}
    try:
        people, decided = _pulled_people(session, ids)
    except OperationalError:  # a database made before sync existed
        return {}
    todo = [(i, p) for i, p in people.items() if i not in decided]
    if not todo:
        return {}
    matcher = matcher_for(session, snap)
    queries = [Query(name=p.get("name") or "", name_kana=p.get("name_kana") or "", birth=p.get("birth_date_raw") or
                     p.get("birth_date") or "", sex=p.get("sex") or "", address=p.get("address") or "", key=i,
                     household_key=p.get("household_key") or "") for i, p in todo]
    results = matcher.reconcile(queries, taken=linked_elsewhere(session, set()))
    out = {}
    for r in results:
        out[r.key] = r.decision
        row = session.get(RemoteMatch, r.key) or RemoteMatch(evacuee_id=r.key, decision=r.decision)
        row.resident_id, row.snapshot_id, row.decision = r.resident_id, snap.id, r.decision
        row.score, row.reasons, row.at = r.probability, r.reasons, utcnow()
        session.add(row)
    return out


def on_pulled(engine: Engine) -> Callable[[list[str]], None]:
    """The hook `sync.client.sync_once` calls after each pulled page is committed."""
    def match(evacuee_ids: list[str]) -> None:
        with Session(engine) as s:
            match_pulled(s, evacuee_ids)
            s.commit()
    return match


def auto_links(session: Session) -> dict[str, str]:
    """Remote evacuee id → resident id for this laptop's auto decisions (HQ's list reads them)."""
    try:
        rows = session.connection().execute(text(
            "SELECT evacuee_id, resident_id FROM remote_match WHERE decision = 'auto' AND resident_id IS NOT NULL"))
        return {e: r for e, r in rows}
    except OperationalError:  # before migration 0008
        return {}
