"""Reconciliation: every evacuee against the newest registry snapshot (ARCHITECTURE.md §5).

Staff decisions are final: an evacuee a person confirmed, or declared not a resident, is never
touched by re-running; a candidate a person rejected is never proposed again for that evacuee;
and because decisions store the 宛名番号, confirmed links survive a new snapshot.
"""

from __future__ import annotations

import gc
import os
import pickle
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import select as sa_select
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config import Settings
from app.formats.tables import csv_writer
from app.ids import new_id, utcnow
from app.models import Evacuee, MatchDecision, RegistrySnapshot
from app.services import journal
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registry import newest_snapshot
from matching.engine import Matcher, MatchResult
from matching.query import PreparedQuery, Query
from matching.score import Candidate, FieldScore
from matching.registry_index import RegistryIndex
from sync.files import atomic_path

STAFF_FINAL = ("confirmed", "not_resident")

_cache_lock = threading.Lock()
_cache: dict[tuple[str, int], Matcher] = {}


def load_matcher(engine: Engine, snapshot: RegistrySnapshot) -> Matcher:
    """The engine for one snapshot, built once per process (a snapshot never changes)."""
    key = (str(engine.url), snapshot.id or 0)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        raw = engine.raw_connection()
        # Millions of small objects: the cyclic garbage collector would walk them again and again
        # while they are built and on every later query (measured: half the query time at 1 M).
        # None of them can form a cycle, so build with it paused and then freeze them out of its sight.
        gc.disable()
        try:
            index = RegistryIndex(_resident_rows(raw.cursor(), snapshot.id or 0))
            matcher = Matcher(index, readings=Matcher.learn_readings(index), as_of=snapshot.as_of)
        finally:
            raw.close()
            gc.enable()
        gc.freeze()
        _cache.clear()  # one snapshot at a time: an old one is never matched against again
        _cache[key] = matcher
        return matcher


def cached_matcher(engine: Any, snapshot: RegistrySnapshot) -> Matcher | None:
    """The engine for this snapshot if this process already built it (no connection needed)."""
    with _cache_lock:
        return _cache.get((str(engine.url), snapshot.id or 0))


_KEY_COLUMNS = ("resident_id, household_id, k_family_kana, k_given_kana, k_family_variant, k_given_variant, "
                "k_alpha, COALESCE(birth_date, ''), sex, k_town, restricted, k_house")


def _resident_rows(cur: Any, snapshot_id: int) -> Any:
    """The snapshot's residents in `RegistryRecord` field order, read front to back.

    Why the id range: filtering on snapshot_id makes SQLite walk an index and fetch each row
    from wherever it lies (measured: 4.7 s at 1 M); one import writes a snapshot's rows with
    consecutive ids, so their range is read in table order instead (3.3 s). The snapshot_id
    test stays, so rows of another snapshot inside the range could never slip in."""
    lo, hi = cur.execute("SELECT min(id), max(id) FROM resident WHERE snapshot_id = ?", (snapshot_id,)).fetchone()
    if lo is None:
        return []
    return cur.execute(f"SELECT {_KEY_COLUMNS} FROM resident WHERE id BETWEEN ? AND ? AND +snapshot_id = ?",
                       (lo, hi, snapshot_id))


def current_matcher(engine: Engine) -> tuple[Matcher, RegistrySnapshot]:
    with Session(engine) as s:
        snap = newest_snapshot(s)
    if snap is None:
        raise NotFound("no registry snapshot imported yet (anpi registry import FILE)",
                       "住民基本台帳のデータがまだ取り込まれていません")
    return load_matcher(engine, snap), snap


def evacuee_query(ev: Evacuee) -> Query:
    return Query(name=ev.name_raw, name_kana=ev.name_kana_raw, birth=ev.birth_raw, sex=ev.sex_raw,
                 address=ev.address or ev.address_raw, key=ev.id, household_key=ev.household_key)


class PreviousDecision(NamedTuple):
    """What re-running needs of an evacuee's latest decision (plain columns, no ORM objects)."""

    evacuee_id: str
    decision: str
    resident_id: str | None
    snapshot_id: int | None
    by_user: str


def latest_decisions(session: Session) -> dict[str, PreviousDecision]:
    t = MatchDecision.__table__  # type: ignore[attr-defined]
    rows = session.connection().execute(
        sa_select(t.c.evacuee_id, t.c.decision, t.c.resident_id, t.c.snapshot_id, t.c.by_user).order_by(t.c.at, t.c.id))
    return {r[0]: PreviousDecision(*r) for r in rows}


def rejected_by_staff(session: Session) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ev_id, rid in session.exec(text(  # type: ignore[call-overload]
            "SELECT evacuee_id, resident_id FROM matchdecision WHERE decision = 'rejected' AND resident_id IS NOT NULL")):
        out.setdefault(ev_id, set()).add(rid)
    return out


#: below this many evacuees a second process costs more than it saves
PARALLEL_MIN_QUERIES = 1000
#: the forked child's share of the queries
CHILD_SHARE_PERCENT = 46


def score_in_parallel(matcher: Matcher, queries: list[Query], rejected: Mapping[str, Iterable[str]], *,
                      stats: dict[str, int] | None = None) -> list[tuple[PreparedQuery, list[Candidate]]]:
    """Score the queries in this process and a forked copy of it, half each.

    Why fork: the child shares the already-built index (frozen out of the garbage collector's
    sight, so its pages stay shared) instead of building a second one; queries are independent,
    and the joint decisions (households, no double links) stay in this process. Only where it
    is safe: a platform with fork, no other thread running (the web server reconciles with
    one process), and enough queries to pay for the copy. `stats["processes"]` says which way
    it went.
    """
    if stats is not None:
        stats["processes"] = 1
    if (len(queries) < PARALLEL_MIN_QUERIES or not hasattr(os, "fork") or threading.active_count() > 1
            or Settings.from_env().reconcile_workers == 1):
        return matcher.score_all(queries, rejected=rejected)
    # The child also packs and sends its results, and this process waits for them: a slightly
    # smaller share for the child makes both finish together (from the measured pack and send
    # time at 1 M: about an eighth of the scoring time).
    half = len(queries) * (100 - CHILD_SHARE_PERCENT) // 100
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: score the second half, send it, leave without cleanup handlers
        status = 0
        try:
            gc.disable()  # see gc_paused; this process ends right after
            os.close(read_fd)
            data = pickle.dumps(_pack(matcher.score_all(queries[half:], rejected=rejected)),
                                protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as out:
                out.write(data)
        except BaseException:  # noqa: BLE001 - the parent sees a short read and scores it itself
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    with gc_paused():
        first = matcher.score_all(queries[:half], rejected=rejected)
        with os.fdopen(read_fd, "rb") as inp:
            data = inp.read()
        second = None
        if data:
            try:  # while the child exits (unmapping a large index takes a moment)
                second = _unpack(pickle.loads(data))  # noqa: S301 - our own forked child, private pipe
            except Exception:  # noqa: BLE001 - a short write: score that half here
                second = None
        _, status = os.waitpid(pid, 0)
        if status != 0 or second is None:
            return first + matcher.score_all(queries[half:], rejected=rejected)
    if stats is not None:
        stats["processes"] = 2
    return first + second


def _pack(pairs: list[tuple[PreparedQuery, list[Candidate]]]) -> tuple[list[PreparedQuery], list[tuple], list[list[tuple]]]:
    """The forked half's results as plain tuples: pickling tens of thousands of dataclass objects
    cost more than scoring a tenth of the queries. Field scores are shared between candidates
    (see `Scorer.score_many`), so each is sent once and candidates refer to it by number."""
    table: list[tuple] = []
    numbers: dict[int, int] = {}
    packed: list[list[tuple]] = []
    for _pq, cands in pairs:
        rows = []
        for c in cands:
            refs = []
            for f in c.fields:
                n = numbers.get(id(f))
                if n is None:
                    n = numbers[id(f)] = len(table)
                    table.append((f.field, f.level, f.weight, f.note))
                refs.append(n)
            rows.append((c.index, c.resident_id, c.household_id, c.weight, tuple(refs), c.probability,
                         tuple(c.contradictions)))
        packed.append(rows)
    return [pq for pq, _ in pairs], table, packed


def _unpack(data: tuple[list[PreparedQuery], list[tuple], list[list[tuple]]]
            ) -> list[tuple[PreparedQuery, list[Candidate]]]:
    prepared, table, packed = data
    fields = [FieldScore(*t) for t in table]
    return [(pq, [Candidate(i, rid, hh, w, [fields[n] for n in refs], p, list(contra))
                  for i, rid, hh, w, refs, p, contra in rows])
            for pq, rows in zip(prepared, packed, strict=True)]


@dataclass
class ReconcileRow:
    evacuee: Evacuee
    decision: str
    resident_id: str | None
    score: float
    reasons: str


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a burst of allocation without cycles.

    Scoring makes hundreds of thousands of small objects (candidates, field scores) and keeps
    them; each automatic collection rescans the ones made so far (measured: a quarter of the
    scoring time, and two thirds of reading the forked half's results back)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def reconcile_all(engine: Engine) -> list[ReconcileRow]:
    """Match every evacuee; writes a new decision only where the engine's view changed."""
    matcher, snap = current_matcher(engine)
    with gc_paused():
        # the run's temporaries (candidates, results) are freed when _reconcile returns, before
        # the collector is back: it then never has to walk them
        return _reconcile(engine, matcher, snap)


def _reconcile(engine: Engine, matcher: Matcher, snap: RegistrySnapshot) -> list[ReconcileRow]:
    with Session(engine, expire_on_commit=False) as s:
        evacuees = list(s.exec(select(Evacuee).order_by(Evacuee.created_at, Evacuee.id)))
        latest = latest_decisions(s)
        rejected = rejected_by_staff(s)
        taken = {d.resident_id: ev_id for ev_id, d in latest.items() if d.decision == "confirmed" and d.resident_id}
        open_evacuees = [e for e in evacuees if not (e.id in latest and latest[e.id].decision in STAFF_FINAL)]
        pairs = score_in_parallel(matcher, [evacuee_query(e) for e in open_evacuees], rejected)
        results = {r.key: r for r in cap_after_rejection(matcher.decide_all(pairs, taken=taken), rejected)}
        rows: list[ReconcileRow] = []
        new: list[NewDecision] = []
        for ev in evacuees:
            prev = latest.get(ev.id)
            if ev.id not in results:
                assert prev is not None
                rows.append(ReconcileRow(ev, "confirmed" if prev.decision == "confirmed" else "none",
                                         prev.resident_id, 1.0 if prev.decision == "confirmed" else 0.0,
                                         f"decided by staff ({prev.decision}, {prev.by_user})"))
                continue
            r = results[ev.id]
            rows.append(ReconcileRow(ev, r.decision, r.resident_id, r.probability, r.reasons))
            if prev is not None and prev.decision == r.decision and prev.resident_id == r.resident_id \
                    and prev.snapshot_id == snap.id:
                continue
            new.append(engine_decision(ev, r, snap))
        if new:
            # One bulk INSERT of plain values: building thousands of ORM objects cost more than
            # matching them at 60,000 residents (pydantic defaults, unit-of-work bookkeeping).
            s.connection().execute(MatchDecision.__table__.insert(),  # type: ignore[attr-defined]
                                   [d._asdict() for d in new])
        # journal reads only these attributes, which NewDecision has under the same names
        journal.matches_decided(s, cast("list[MatchDecision]", new), snap.as_of.isoformat())
        s.commit()
    return rows


class NewDecision(NamedTuple):
    """One engine decision about to be stored: the columns of `matchdecision`, nothing more."""

    id: str
    evacuee_id: str
    resident_id: str | None
    snapshot_id: int | None
    decision: str
    score: float
    reasons: str
    candidates: list[dict[str, object]]
    by_user: str
    at: datetime


def engine_decision(ev: Evacuee, r: MatchResult, snap: RegistrySnapshot) -> NewDecision:
    return NewDecision(id=new_id(), evacuee_id=ev.id, resident_id=r.resident_id, snapshot_id=snap.id,
                       decision=r.decision, score=r.probability, reasons=r.reasons, candidates=r.candidate_dicts(),
                       by_user="", at=utcnow())


def write_reconcile_csv(rows: list[ReconcileRow], out: Path) -> None:
    """ARCHITECTURE.md §5: UTF-8 with BOM, evacuee_id,resident_id,score,decision,reasons."""
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv_writer(f)
        w.writerow(["evacuee_id", "resident_id", "score", "decision", "reasons"])
        for r in rows:
            w.writerow([r.evacuee.external_key or r.evacuee.id, r.resident_id or "" if r.decision != "none" else "",
                        f"{r.score:.4f}", r.decision, r.reasons])


def staff_decide(session: Session, evacuee_id: str, decision: str, resident_id: str | None, *, by: str,
                 reasons: str = "") -> MatchDecision:
    """A staff member confirms a candidate, rejects one, or says the person is not a resident."""
    if decision not in ("confirmed", "rejected", "not_resident"):
        raise InvalidInput(f"unknown decision {decision!r}", "判定が正しくありません", "decision")
    if decision in ("confirmed", "rejected") and not resident_id:
        raise InvalidInput("a resident id (宛名番号) is needed", "宛名番号を指定してください", "resident_id")
    ev = session.get(Evacuee, evacuee_id)
    if ev is None:
        raise NotFound(f"no evacuee {evacuee_id}", "避難者が見つかりません")
    if decision == "confirmed" and resident_id:
        refuse_second_link(session, ev, resident_id)
    snap = newest_snapshot(session)
    d = MatchDecision(evacuee_id=ev.id, resident_id=resident_id if decision != "not_resident" else None,
                      snapshot_id=snap.id if snap else None, decision=decision, reasons=reasons or f"by staff {by}",
                      by_user=by)
    session.add(d)
    session.flush()
    journal.match_decided(session, d, snap.as_of.isoformat() if snap else None)
    if decision == "rejected":
        # the other candidates are still open: the engine decides again without the rejected one,
        # so the person stays in 照合確認 while a candidate worth showing is left
        match_now(session, [ev.id])
    return d


def refuse_second_link(session: Session, ev: Evacuee, resident_id: str) -> None:
    """Two people in the shelter cannot be one resident: the second link needs a merge first."""
    other_id = linked_elsewhere(session, {ev.id}).get(resident_id)
    if other_id is None or ev.status != "in_shelter":
        return
    other = session.get(Evacuee, other_id)
    name = (other.name_raw or other.name_kana_raw) if other else other_id
    raise Conflict(f"resident {resident_id} is already linked to evacuee {other_id} in this shelter; merge them first",
                   f"この住民はすでに在所中の「{name}」さんと照合されています。同じ方なら「統合」してください")


def match_roster_import(engine: Engine, import_id: str) -> dict[str, str]:
    """Match every evacuee one roster import registered (its own transaction, after the import's)."""
    with Session(engine) as s:
        ids = list(s.exec(select(Evacuee.id).where(Evacuee.roster_import_id == import_id)))
        out = match_now(s, ids)
        s.commit()
    return out



def cap_after_rejection(results: list[MatchResult], rejected: Mapping[str, Iterable[str]]) -> list[MatchResult]:
    """Once staff rejected a candidate for a person, the engine only proposes: no auto link.

    Why: without the rejected one, the runner-up takes the whole posterior and would link by
    itself, although a person just told us the engine's view of this evacuee was wrong."""
    for r in results:
        if r.decision == "auto" and rejected.get(r.key):
            r.decision = "review"
            r.reasons += "; a candidate was rejected by staff: a person decides"
    return results


def matcher_for(session: Session, snap: RegistrySnapshot) -> Matcher:
    """The cached engine for `snap`, built on a second engine when it is not cached yet.

    Why a second engine: the shelter engine has exactly one pooled connection, and the caller's
    session holds it for the transaction this match belongs to; the second engine has the same
    URL, so it fills the same process-wide cache entry that every later call (and search) reuses."""
    from app.db import sqlite_engine

    bind = session.get_bind()
    key = (str(bind.url), snap.id or 0)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    if bind.url.get_backend_name() != "sqlite" or not bind.url.database:
        return load_matcher(cast(Engine, bind), snap)
    other = sqlite_engine(bind.url.database)
    try:
        return load_matcher(other, snap)
    finally:
        other.dispose()


def linked_elsewhere(session: Session, exclude: set[str]) -> dict[str, str]:
    """Resident id → an in-shelter evacuee (not in `exclude`) whose latest decision links them.

    Passed to the engine as already taken: a second in-shelter registration of one resident
    never auto-links, it goes to review flagged as a possible duplicate."""
    rows = session.connection().execute(text(
        "SELECT d.evacuee_id, d.resident_id FROM matchdecision d JOIN evacuee e ON e.id = d.evacuee_id "
        "WHERE e.status = 'in_shelter' AND d.decision IN ('auto', 'confirmed') AND d.resident_id IS NOT NULL "
        "AND d.id = (SELECT d2.id FROM matchdecision d2 WHERE d2.evacuee_id = d.evacuee_id "
        "ORDER BY d2.at DESC, d2.id DESC LIMIT 1)"))
    return {rid: ev_id for ev_id, rid in rows if ev_id not in exclude}


def match_now(session: Session, evacuee_ids: Iterable[str]) -> dict[str, str]:
    """Match these evacuees against the newest snapshot now, inside the caller's transaction.

    Why at once: a person registered without a staff pick must still reach 照合確認 (review) or
    HQ's list (auto) without anyone running `anpi reconcile`. Staff decisions stay final; a
    resident staff rejected for the person is never proposed again. Returns evacuee id → the
    decision now in force (auto / review / none, or the staff decision left untouched)."""
    ids = list(dict.fromkeys(evacuee_ids))
    snap = newest_snapshot(session)
    if snap is None or not ids:
        return {}
    session.flush()
    matcher = matcher_for(session, snap)
    t = MatchDecision.__table__  # type: ignore[attr-defined]
    latest: dict[str, PreviousDecision] = {}
    for r in session.connection().execute(
            sa_select(t.c.evacuee_id, t.c.decision, t.c.resident_id, t.c.snapshot_id, t.c.by_user)
            .where(t.c.evacuee_id.in_(ids)).order_by(t.c.at, t.c.id)):
        latest[r[0]] = PreviousDecision(*r)
    out = {i: latest[i].decision for i in ids if i in latest and latest[i].decision in STAFF_FINAL}
    todo = [ev for ev in (session.get(Evacuee, i) for i in ids if i not in out) if ev is not None]
    if not todo:
        return out
    rejected: dict[str, set[str]] = {}
    for r in session.connection().execute(sa_select(t.c.evacuee_id, t.c.resident_id).where(
            t.c.evacuee_id.in_([e.id for e in todo]), t.c.decision == "rejected", t.c.resident_id.is_not(None))):
        rejected.setdefault(r[0], set()).add(r[1])
    taken = linked_elsewhere(session, {e.id for e in todo})
    with gc_paused():  # a roster import matches thousands at once: as `anpi reconcile` does
        pairs = score_in_parallel(matcher, [evacuee_query(e) for e in todo], rejected)
        results = cap_after_rejection(matcher.decide_all(pairs, taken=taken), rejected)
    new = []
    for ev, r in zip(todo, results, strict=True):
        out[ev.id] = r.decision
        prev = latest.get(ev.id)
        if prev is not None and (prev.decision, prev.resident_id, prev.snapshot_id) == (r.decision, r.resident_id, snap.id):
            continue
        new.append(engine_decision(ev, r, snap))
    if new:
        session.connection().execute(t.insert(), [d._asdict() for d in new])
        journal.matches_decided(session, cast("list[MatchDecision]", new), snap.as_of.isoformat())
    return out
