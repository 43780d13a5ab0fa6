"""The shelter roster as staff use it: list and filter, a person's history, 退所, 移動, edits.

Registration itself lives in `app.services.roster`; this module covers what happens after.
Every change appends a StayEvent (check-in, check-out, transfer) or an outbox event
(`evacuee.updated`, `consent.changed`) in the caller's transaction, so the hub hears of exactly
the changes that were committed. Nothing here commits; nothing here writes the audit log (the
faces do, because they know which screen showed what).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, select

from app.ids import utcnow
from app.models import Evacuee, MatchDecision, RegistrySnapshot, Resident, Shelter, StayEvent
from app.services import journal
from app.services.roster_checks import (  # noqa: F401 - re-exported for app/web/intake.py
    FIELD_LABEL_JA, MAX_LENGTH, check_lengths, too_long,
)
from app.services.errors import Conflict, InvalidInput, NotFound
from sync import events, outbox
from matching.disclosure import hidden_id, masked

#: 要配慮 flags on the intake form (key → label); "allergy_detail" holds the free text for アレルギー
CARE_FLAGS: dict[str, str] = {
    "elderly": "高齢", "disability": "障がい", "infant": "乳幼児", "pregnant": "妊産婦",
    "nursing_care": "要介護", "medical_device": "医療機器", "allergy": "アレルギー",
    "limited_japanese": "日本語が不自由",
}
STATUS_JA = {"in_shelter": "在所", "left": "退所", "transferred": "移動"}
STAY_JA = {"check_in": "入所", "check_out": "退所", "transfer": "移動"}
DECISION_JA = {"auto": "自動照合", "review": "要確認", "none": "該当なし", "confirmed": "確認済み",
               "rejected": "候補を否定", "not_resident": "住民でない"}
SEX_JA = {"M": "男", "F": "女", "": ""}

#: the fields of `EvacueeInput` that staff may edit after registration
EDITABLE = ("name", "name_kana", "birth_date", "sex", "address", "phone", "relationship", "nationality",
            "identifying_info", "injury", "injury_state", "current_location", "contact", "pets")
_RAW_ATTR = {"name": "name_raw", "name_kana": "name_kana_raw", "birth_date": "birth_raw", "sex": "sex_raw",
             "address": "address_raw", "phone": "phone_raw"}
#: our field → the `evacuee.updated` field the hub knows (sync.events.EVACUEE_FIELDS, and the 様式第1号
#: items ⑥–⑪ of EVACUEE_FORM_FIELDS that its 安否照会 desk reads out); 続柄 and pets stay at the shelter
_EVENT_FIELD = {"name": "name", "name_kana": "name_kana", "birth_date": "birth_date_raw", "sex": "sex",
                "address": "address", "phone": "phone", **{f: f for f in events.EVACUEE_FORM_FIELDS}}
CONSENTS = ("consent_relatives", "consent_acquaintances", "consent_public")


def _fold(s: str) -> str:
    """NFKC without spaces: what two spellings of one name have in common for the duplicate check."""
    return "".join(unicodedata.normalize("NFKC", s or "").split())


def full_name(ev: Evacuee) -> str:
    return ev.name_raw.strip() or " ".join(x for x in (ev.family_name, ev.given_name) if x)


def care_labels(flags: dict[str, Any]) -> list[str]:
    out = [label for key, label in CARE_FLAGS.items() if flags.get(key)]
    if flags.get("allergy") and flags.get("allergy_detail"):
        out[out.index("アレルギー")] = f"アレルギー({flags['allergy_detail']})"
    return out


def has_care(flags: dict[str, Any]) -> bool:
    return any(flags.get(k) for k in CARE_FLAGS)


def get_evacuee(session: Session, evacuee_id: str) -> Evacuee:
    ev = session.get(Evacuee, evacuee_id)
    if ev is None:
        raise NotFound(f"no evacuee {evacuee_id}", "避難者が見つかりません")
    return ev


def latest_decisions(session: Session, evacuee_ids: list[str] | None = None) -> dict[str, MatchDecision]:
    q = select(MatchDecision).order_by(MatchDecision.at, MatchDecision.id)
    if evacuee_ids is not None:
        if not evacuee_ids:
            return {}
        q = q.where(MatchDecision.evacuee_id.in_(evacuee_ids))  # type: ignore[attr-defined]
    return {d.evacuee_id: d for d in session.exec(q)}


# --- listing --------------------------------------------------------------------------------

@dataclass
class RosterFilter:
    q: str = ""  # name, kana, 受付番号 or phone, any part
    status: str = "in_shelter"  # in_shelter | left | transferred | all
    care: str = ""  # a CARE_FLAGS key, or "any"
    decision: str = ""  # latest match decision, e.g. review


def list_evacuees(session: Session, f: RosterFilter | None = None, *, limit: int = 500,
                  reveal_restricted: bool = False) -> list[Evacuee]:
    """The roster filtered; the text is searched the way `app.services.roster_search` folds names."""
    from app.services.roster_search import search

    f = f or RosterFilter()
    q = select(Evacuee)
    if f.status and f.status != "all":
        q = q.where(Evacuee.status == f.status)
    rows = list(session.exec(q.order_by(Evacuee.created_at, Evacuee.id)))
    if f.q.strip():
        rows = search(session, rows, f.q, reveal_restricted=reveal_restricted)
    if f.care:
        rows = [e for e in rows if (has_care(e.care_flags) if f.care == "any" else e.care_flags.get(f.care))]
    if f.decision:
        dec = latest_decisions(session, [e.id for e in rows])
        rows = [e for e in rows if (dec[e.id].decision if e.id in dec else "") == f.decision]
    return rows[:limit]


def _name_and_day(name: str, birth: str) -> date | None:
    """The day of birth when both a name and a full date were typed (duplicate checks need both)."""
    from matching.dates import DateError, parse_date

    if not name.strip() or not birth.strip():
        return None
    try:
        pd = parse_date(birth)
    except DateError:
        return None
    return pd.value if pd.kind == "day" else None


def _birth_range(ev_or_typed: Evacuee | str) -> tuple[date | None, int | None, int | None]:
    """(day, first year, last year) of a date of birth as registered or as typed ("72歳" → two years)."""
    from matching.dates import DateError, parse_date

    if isinstance(ev_or_typed, Evacuee):
        return ev_or_typed.birth_date, ev_or_typed.birth_year_min, ev_or_typed.birth_year_max
    try:
        pd = parse_date(ev_or_typed)
    except DateError:
        return None, None, None
    return pd.value, pd.year_min, pd.year_max


def _births_agree(a: tuple[date | None, int | None, int | None], b: tuple[date | None, int | None, int | None]) -> bool:
    """Two dates of birth that could be one person's: the same day, or overlapping years when one
    of them was given as an age or a year (「72歳」 and S29.3.21 are the same person)."""
    if a[0] and b[0]:
        return a[0] == b[0]
    if None in (a[1], a[2], b[1], b[2]):
        return False
    return a[1] <= b[2] and b[1] <= a[2]  # type: ignore[operator]


def find_duplicates(session: Session, name: str, birth: str, *, exclude: list[str] | None = None) -> list[Evacuee]:
    """Evacuees already in this shelter with the same name (kanji or kana) and a date of birth
    that could be the same (same day, or the same years when an age or a year was typed)."""
    from matching.kana import to_katakana

    if not name.strip() or not birth.strip():
        return []
    want_birth = _birth_range(birth)
    if want_birth[1] is None:
        return []
    want = _fold(name)
    want_kana = _fold(to_katakana(name))
    lo, hi = want_birth[1], want_birth[2]
    q = select(Evacuee).where(Evacuee.status == "in_shelter", Evacuee.birth_year_max >= lo,  # type: ignore[operator]
                              Evacuee.birth_year_min <= hi)  # type: ignore[operator]
    near = [ev for ev in session.exec(q)
            if not (exclude and ev.id in exclude) and _births_agree(want_birth, _birth_range(ev))]
    # a linked evacuee is also known by the registry's reading: 渡邉 稔 typed once, わたなべ みのる the next time
    dec = latest_decisions(session, [ev.id for ev in near])
    links = {ev_id: d.resident_id for ev_id, d in dec.items() if d.decision in ("auto", "confirmed") and d.resident_id}
    shown = resident_display(session, list(set(links.values())), reveal_restricted=True) if links else {}
    out = []
    for ev in near:
        names = {_fold(ev.name_raw), _fold(ev.family_name + ev.given_name)}
        kanas = {_fold(ev.name_kana), _fold(to_katakana(ev.name_kana_raw)), _fold(to_katakana(ev.name_raw))}
        reg = shown.get(links.get(ev.id) or "")
        if reg:
            names.add(_fold(reg["name"]))
            kanas.add(_fold(reg["name_kana"]))
        if want in names or (want_kana and want_kana in kanas - {""}):
            out.append(ev)
    return out


def registrations_of(session: Session, resident_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """Who is already registered as each of these residents: in this shelter (linked by the
    engine or by staff) and, from the hub feed, at other shelters. Shown on a candidate card
    before a second record of the same person is created; asked on every live search, so it
    reads only the rows naming these residents."""
    out: dict[str, list[dict[str, str]]] = {}
    if not resident_ids:
        return out
    marks = ",".join(f":r{n}" for n in range(len(resident_ids)))
    params = {f"r{n}": r for n, r in enumerate(resident_ids)}
    rows = session.connection().execute(text(
        "SELECT e.id, d.resident_id, e.name_raw, e.family_name, e.given_name FROM matchdecision d "
        "JOIN evacuee e ON e.id = d.evacuee_id "
        f"WHERE d.resident_id IN ({marks}) AND d.decision IN ('auto', 'confirmed') AND e.status = 'in_shelter' "
        "AND d.id = (SELECT d2.id FROM matchdecision d2 WHERE d2.evacuee_id = d.evacuee_id "
        "ORDER BY d2.at DESC, d2.id DESC LIMIT 1)"), params)
    for ev_id, rid, name_raw, fam, giv in rows:
        name = (name_raw or "").strip() or " ".join(x for x in (fam, giv) if x)
        out.setdefault(rid, []).append({"where": "here", "evacuee_id": ev_id, "name": name, "shelter_name": "この避難所"})
    for rid, shelter in _remote_links(session, marks, params):
        out.setdefault(rid, []).append({"where": "elsewhere", "evacuee_id": "", "name": "", "shelter_name": shelter})
    return out


def _remote_links(session: Session, marks: str, params: dict[str, str]) -> list[tuple[str, str]]:
    """(resident id, shelter name) of other shelters' evacuees whose latest pulled decision links them."""
    import json

    from sqlalchemy.exc import OperationalError

    try:
        named = [r[0] for r in session.connection().execute(text(
            "SELECT DISTINCT evacuee_id FROM remote_event WHERE type = 'match.decided' "
            f"AND json_extract(payload, '$.resident_id') IN ({marks})"), params)]
        latest: dict[str, tuple[str | None, str]] = {}
        ev_marks = ",".join(f":e{n}" for n in range(len(named)))
        rows = session.connection().execute(text(
            "SELECT evacuee_id, shelter_name, shelter_code, payload FROM remote_event WHERE type = 'match.decided' "
            f"AND evacuee_id IN ({ev_marks}) ORDER BY hub_seq"), {f"e{n}": e for n, e in enumerate(named)}) if named else []
        for ev_id, shelter_name, code, payload in rows:
            p = json.loads(payload)
            rid = p.get("resident_id") if p.get("decision") in ("auto", "confirmed") else None
            latest[ev_id] = (rid, shelter_name or code or "他の避難所")
        # and those no laptop decided for, which this laptop's engine linked as they were pulled
        for ev_id, rid, shelter in session.connection().execute(text(
                "SELECT m.evacuee_id, m.resident_id, COALESCE(r.shelter_name, r.shelter_code, '他の避難所') "
                "FROM remote_match m JOIN remote_event r ON r.evacuee_id = m.evacuee_id AND r.type = 'evacuee.registered' "
                f"WHERE m.decision = 'auto' AND m.resident_id IN ({marks}) AND NOT EXISTS (SELECT 1 FROM remote_event d "
                "WHERE d.evacuee_id = m.evacuee_id AND d.type = 'match.decided')"), params):
            latest.setdefault(ev_id, (rid, shelter))
    except (OperationalError, ValueError):
        return []
    wanted = set(params.values())
    return [(rid, name) for rid, name in latest.values() if rid in wanted]


GRADE_JA = {"auto": "ほぼ確実", "review": "要確認", "weak": "可能性低い"}


def candidate_grade(probability: float, reasons: str) -> str:
    """The engine's grade of one candidate, as the desk should weigh it.

    auto: what the engine would link by itself (posterior ≥ 0.999, nothing contradicts);
    review: worth a person's look; weak: below the engine's review level — picking it needs a
    second, explicit confirmation."""
    from matching.model import DEFAULT_MODEL

    contradicts = any(p["bad"] for p in reason_parts(reasons))
    if probability >= DEFAULT_MODEL.auto_probability and not contradicts:
        return "auto"
    if probability >= DEFAULT_MODEL.review_probability:
        return "review"
    return "weak"


def grade_candidates(cands: list[dict[str, Any]]) -> bool:
    """Add grade, grade_ja and reason_parts to candidate dicts; True when the top two are tied
    (nothing may then be preselected: a person has to choose)."""
    for c in cands:
        c["reason_parts"] = reason_parts(str(c.get("reasons", "")))
        c["grade"] = candidate_grade(float(c.get("probability") or 0), str(c.get("reasons", "")))
        c["grade_ja"] = GRADE_JA[c["grade"]]
    if len(cands) < 2:
        return False
    p1, p2 = float(cands[0].get("probability") or 0), float(cands[1].get("probability") or 0)
    return p1 - p2 < 0.5


# --- one person ----------------------------------------------------------------------------

@dataclass
class EvacueeDetail:
    evacuee: Evacuee
    stays: list[StayEvent]
    decisions: list[MatchDecision]
    household: list[Evacuee]
    shelter: Shelter | None
    resident: dict[str, Any] | None = None  # the linked registry record (display fields), if any
    #: the hub found this person in another municipality's registry (住民: ○○町): its label and
    #: the basic four items (氏名, 生年月日, 性別, 住所) — nothing else of that registry reaches us
    other_town: dict[str, Any] | None = None


def evacuee_detail(session: Session, evacuee_id: str, *, reveal_restricted: bool = False) -> EvacueeDetail:
    ev = get_evacuee(session, evacuee_id)
    stays = list(session.exec(select(StayEvent).where(StayEvent.evacuee_id == ev.id).order_by(StayEvent.at, StayEvent.id)))
    decisions = list(session.exec(select(MatchDecision).where(MatchDecision.evacuee_id == ev.id)
                                  .order_by(MatchDecision.at, MatchDecision.id)))
    household = []
    if ev.household_key:
        household = list(session.exec(select(Evacuee).where(Evacuee.household_key == ev.household_key, Evacuee.id != ev.id)
                                      .order_by(Evacuee.created_at)))
    resident = None
    last = decisions[-1] if decisions else None
    if last and last.decision in ("auto", "confirmed") and last.resident_id:
        shown = resident_display(session, [last.resident_id], reveal_restricted=reveal_restricted)
        resident = shown.get(last.resident_id)
    from sync.client import cross_town_notice

    return EvacueeDetail(ev, stays, decisions, household, session.get(Shelter, ev.shelter_id), resident,
                         cross_town_notice(session, ev.id))


def _shelter_code(session: Session, ev: Evacuee) -> str | None:
    sh = session.get(Shelter, ev.shelter_id)
    return sh.code if sh else None


def _stay(session: Session, ev: Evacuee, kind: str, destination: str, by: str) -> StayEvent:
    stay = StayEvent(evacuee_id=ev.id, kind=kind, destination=destination.strip(), by_user=by)
    session.add(stay)
    ev.updated_at = utcnow()
    session.add(ev)
    session.flush()
    journal.stay_recorded(session, stay, _shelter_code(session, ev))
    return stay


def check_out(session: Session, evacuee_id: str, *, by: str, destination: str = "") -> StayEvent:
    """退所: the person left the shelter (destination optional: 自宅, 親族宅 …)."""
    ev = get_evacuee(session, evacuee_id)
    if ev.status != "in_shelter":
        raise Conflict(f"evacuee {ev.id} is not in the shelter ({ev.status})", "この方は在所していません")
    ev.status = "left"
    return _stay(session, ev, "check_out", destination, by)


def transfer(session: Session, evacuee_id: str, destination: str, *, by: str) -> StayEvent:
    """移動: the person moved to another shelter or a named place (required)."""
    if not destination.strip():
        raise InvalidInput("a destination is needed for a transfer", "移動先を入力してください", "destination")
    ev = get_evacuee(session, evacuee_id)
    if ev.status != "in_shelter":
        raise Conflict(f"evacuee {ev.id} is not in the shelter ({ev.status})", "この方は在所していません")
    ev.status = "transferred"
    return _stay(session, ev, "transfer", destination, by)


def check_in(session: Session, evacuee_id: str, *, by: str) -> StayEvent:
    """再入所: a person who left comes back (a new registration is not needed)."""
    ev = get_evacuee(session, evacuee_id)
    if ev.status == "in_shelter":
        raise Conflict(f"evacuee {ev.id} is already in the shelter", "この方はすでに在所しています")
    ev.status = "in_shelter"
    sh = session.get(Shelter, ev.shelter_id)
    return _stay(session, ev, "check_in", sh.name if sh else "", by)


def update_evacuee(session: Session, evacuee_id: str, changes: dict[str, Any], *, by: str,
                   seen: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Edit typed fields, care flags and consents; returns {field: {old, new}} of what changed.

    `seen` holds the values the staff member saw when the form was opened: they travel to the hub
    as "old", which is how it tells a sequential edit from a concurrent one on another laptop.
    Name, kana, date of birth and sex are re-parsed; bad input raises InvalidInput naming the field.
    """
    from app.services.roster import EvacueeInput, parse_evacuee

    ev = get_evacuee(session, evacuee_id)
    seen = seen or {}
    current = {k: getattr(ev, _RAW_ATTR.get(k, k)) for k in EDITABLE}
    unknown = set(changes) - set(EDITABLE) - {"care_flags", *CONSENTS}
    if unknown:
        raise InvalidInput(f"cannot edit {', '.join(sorted(unknown))}", "変更できない項目です", sorted(unknown)[0])
    typed = {k: ("" if changes.get(k, current[k]) is None else str(changes.get(k, current[k]))) for k in EDITABLE}
    diff: dict[str, dict[str, Any]] = {}
    for k in EDITABLE:
        if typed[k] != (current[k] or ""):
            diff[k] = {"old": seen.get(k, current[k]), "new": typed[k]}
    if any(k in diff for k in ("name", "name_kana", "birth_date", "sex")):
        parsed, errors = parse_evacuee(EvacueeInput(name=typed["name"], name_kana=typed["name_kana"],
                                                    birth_date=typed["birth_date"], sex=typed["sex"]))
        if errors:
            e = errors[0]
            raise InvalidInput(e.message, e.message_ja, e.field)
        for attr, value in parsed.items():
            setattr(ev, attr, value)
    for k in diff:
        setattr(ev, _RAW_ATTR.get(k, k), typed[k])
    check_lengths({k: typed[k] for k in diff})
    if "care_flags" in changes and dict(changes["care_flags"] or {}) != dict(ev.care_flags or {}):
        diff["care_flags"] = {"old": seen.get("care_flags", dict(ev.care_flags or {})), "new": dict(changes["care_flags"] or {})}
        ev.care_flags = dict(changes["care_flags"] or {})
    consent_diff = {}
    for k in CONSENTS:
        if k in changes and changes[k] != getattr(ev, k):
            consent_diff[k] = {"old": seen.get(k, getattr(ev, k)), "new": changes[k]}
            setattr(ev, k, changes[k])
    if not diff and not consent_diff:
        return {}
    ev.updated_at = utcnow()
    session.add(ev)
    session.flush()
    hub_changes = {_EVENT_FIELD[k]: v for k, v in diff.items() if k in _EVENT_FIELD}
    if "birth_date" in diff:
        hub_changes["birth_date"] = {"old": None, "new": ev.birth_date.isoformat() if ev.birth_date else None}
    if "care_flags" in diff:
        hub_changes["care"] = diff["care_flags"]
    if hub_changes:
        outbox.append(session, events.EvacueeUpdated(evacuee_id=ev.id, changes=hub_changes, at=ev.updated_at,
                                                     by_user=by or None))
    if any(k in diff for k in ("name", "name_kana", "birth_date", "sex", "address")):
        from app.services.reconcile import match_now

        match_now(session, [ev.id])  # what the engine sees changed: decide again (staff decisions stay)
    if consent_diff:
        outbox.append(session, events.ConsentChanged(
            evacuee_id=ev.id, at=ev.updated_at, by_user=by or None,
            consents={"relatives": ev.consent_relatives, "acquaintances": ev.consent_acquaintances,
                      "public": ev.consent_public}))
    return {**diff, **consent_diff}


# --- registry display and the review queue --------------------------------------------------

def newest_snapshot(session: Session) -> RegistrySnapshot | None:
    return session.exec(select(RegistrySnapshot).order_by(RegistrySnapshot.as_of.desc(),  # type: ignore[attr-defined]
                                                          RegistrySnapshot.id.desc())).first()  # type: ignore[union-attr]


def resident_display(session: Session, resident_ids: list[str], *, reveal_restricted: bool,
                     snapshot_id: int | None = None) -> dict[str, dict[str, Any]]:
    """Display fields of residents in the newest snapshot; 閲覧制限 hides address and household."""
    if not resident_ids:
        return {}
    if snapshot_id is None:
        snap = newest_snapshot(session)
        if snap is None:
            return {}
        snapshot_id = snap.id
    from app.services import disclosure

    who = disclosure.caller(sees_restricted=reveal_restricted)
    prot = disclosure.protected(session)
    out = {}
    for r in session.exec(select(Resident).where(Resident.snapshot_id == snapshot_id,
                                                 Resident.resident_id.in_(resident_ids))):  # type: ignore[attr-defined]
        shown = disclosure.shown_resident(who, prot, r.resident_id)
        out[r.resident_id] = {
            "resident_id": r.resident_id,
            "name": f"{r.family_name} {r.given_name}".strip(),
            "name_kana": f"{r.family_name_kana} {r.given_name_kana}".strip(),
            "alpha_name": r.alpha_name,
            "birth_date": r.birth_date.isoformat() if r.birth_date else None,
            "birth_raw": r.birth_raw,
            "sex": r.sex,
            "address": masked(r.address, shown),
            "household_id": hidden_id(r.household_id, shown),
            "relationship": r.relationship,
            "restricted": shown.protected,
            "address_evidence": shown.address_evidence,
        }
    return out


def blind_candidates(session: Session, ev: Evacuee, stored: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The evacuee's candidates scored without the typed address: what a caller who may not use a
    protected candidate's address sees (the rule's ``address_evidence``), like the search does —
    the stored ones carry levels, weights and an order the address moved. Without the engine at
    hand (not built in this process), the stored ones lose every address-dependent part instead."""
    from dataclasses import replace

    from app.services.reconcile import cached_matcher, evacuee_query

    snap = newest_snapshot(session)
    matcher = cached_matcher(session.get_bind(), snap) if snap is not None else None
    if matcher is not None:
        return [dict(c) for c in matcher.match(replace(evacuee_query(ev), address="")).candidate_dicts(limit)]
    out = []
    for c in sorted(stored, key=lambda c: str(c.get("resident_id"))):
        parts = [p.strip() for p in str(c.get("reasons", "")).split(";") if p.strip() and not p.strip().startswith("town=")]
        out.append({**c, "reasons": "; ".join(parts), "weight": None, "probability": None})
    return out


def reason_parts(reasons: str) -> list[dict[str, Any]]:
    """The engine's reasons as Japanese rows (see app.services.reasons_ja, the one translator)."""
    from app.services.reasons_ja import reason_parts as _parts

    return _parts(reasons)


def review_queue(session: Session) -> list[Evacuee]:
    """Evacuees whose newest decision is "review", oldest registration first."""
    dec = latest_decisions(session)
    ids = [ev_id for ev_id, d in dec.items() if d.decision == "review"]
    if not ids:
        return []
    return list(session.exec(select(Evacuee).where(Evacuee.id.in_(ids))  # type: ignore[attr-defined]
                             .order_by(Evacuee.created_at, Evacuee.id)))


@dataclass
class ReviewItem:
    evacuee: Evacuee
    decision: MatchDecision
    candidates: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    total: int = 0
    tied: bool = False  # the top two are close: no candidate is preselected


def review_item(session: Session, evacuee_id: str | None = None, *, reveal_restricted: bool = False,
                limit: int = 3) -> ReviewItem | None:
    """One queue item (the first, or the named one) beside its top candidates with display fields."""
    queue = review_queue(session)
    if not queue:
        return None
    pos = 0
    if evacuee_id:
        pos = next((i for i, e in enumerate(queue) if e.id == evacuee_id), -1)
        if pos < 0:
            raise NotFound(f"evacuee {evacuee_id} is not waiting for review", "この方は照合確認待ちではありません")
    ev = queue[pos]
    d = latest_decisions(session, [ev.id])[ev.id]
    cands = [dict(c) for c in (d.candidates or [])[:limit]]
    shown = resident_display(session, [str(c.get("resident_id")) for c in cands], reveal_restricted=reveal_restricted)
    if any(not v.get("address_evidence", True) for v in shown.values()):
        cands = blind_candidates(session, ev, cands, limit)
        shown = resident_display(session, [str(c.get("resident_id")) for c in cands], reveal_restricted=reveal_restricted)
    for c in cands:
        c.update(shown.get(str(c.get("resident_id")), {"name": "（台帳にありません）"}))
        c.pop("address_evidence", None)
    tied = grade_candidates(cands)
    known = registrations_of(session, [str(c.get("resident_id")) for c in cands])
    for c in cands:
        c["registered"] = [x for x in known.get(str(c.get("resident_id")), []) if x["evacuee_id"] != ev.id]
        if c["grade"] == "auto" and c["registered"]:
            c["grade"], c["grade_ja"] = "review", GRADE_JA["review"]  # someone here is already this resident
    return ReviewItem(ev, d, cands, pos + 1, len(queue), tied)


# --- dashboard numbers ----------------------------------------------------------------------

def local_day_bounds(today: date | None = None) -> tuple[datetime, datetime]:
    """Start and end of the laptop's local day, as aware UTC times."""
    now_local = datetime.now().astimezone()
    day = today or now_local.date()
    start_local = datetime.combine(day, datetime.min.time()).replace(tzinfo=now_local.tzinfo)
    start = start_local.astimezone(timezone.utc)
    return start, start + timedelta(days=1)


def day_counts(session: Session, today: date | None = None) -> dict[str, int]:
    """Arrivals (check-ins) and departures (check-outs and transfers) today, and 要配慮者 in the shelter."""
    start, end = local_day_bounds(today)
    rows = session.exec(select(StayEvent.kind, func.count()).where(StayEvent.at >= start, StayEvent.at < end)
                        .group_by(StayEvent.kind))
    by_kind = dict(rows.all())
    care = sum(1 for flags in session.exec(select(Evacuee.care_flags).where(Evacuee.status == "in_shelter"))
               if has_care(flags or {}))
    return {"arrivals": by_kind.get("check_in", 0), "departures": by_kind.get("check_out", 0) + by_kind.get("transfer", 0),
            "care": care}


def other_shelters(session: Session, own_id: str | None = None) -> list[str]:
    """Names for the 移動 destination list: other shelters this laptop has heard of."""
    return [s.name for s in session.exec(select(Shelter).order_by(Shelter.name)) if s.id != own_id]


# --- export ---------------------------------------------------------------------------------

EXPORT_HEADER = ["受付番号", "氏名", "フリガナ", "生年月日", "性別", "住所", "連絡先", "続柄", "世帯", "状態",
                 "要配慮", "照合", "宛名番号", "登録日時"]


def exportable(session: Session, evacuees: list[Evacuee]) -> list[Evacuee]:
    """The registrations a file may hold: the one 閲覧制限 rule leaves protected people (flagged, or in
    a flagged person's registry or intake household) out of every file, whoever exports it."""
    from app.services import disclosure

    prot = disclosure.protected(session)
    return [e for e in evacuees if disclosure.shown_evacuee(disclosure.CALLER_PUBLICATION, prot, e.id).listed]


def export_rows(session: Session, evacuees: list[Evacuee]) -> list[list[str]]:
    dec = latest_decisions(session, [e.id for e in evacuees])
    out = []
    for e in evacuees:
        d = dec.get(e.id)
        out.append([e.external_key, full_name(e), e.name_kana or e.name_kana_raw,
                    e.birth_date.isoformat() if e.birth_date else e.birth_raw, SEX_JA.get(e.sex, e.sex_raw),
                    e.address_raw, e.contact or e.phone_raw, e.relationship, e.household_key,
                    STATUS_JA.get(e.status, e.status), "・".join(care_labels(e.care_flags or {})),
                    DECISION_JA.get(d.decision, d.decision) if d else "",
                    (d.resident_id or "") if d and d.decision in ("auto", "confirmed") else "",
                    e.created_at.isoformat(timespec="minutes")])
    return out


def registered_elsewhere(session: Session, name: str, birth: str) -> list[dict[str, str]]:
    """People with this name and date of birth whom *other* shelters registered, as pulled from
    the hub ("already registered at 第二中学校"): evacuees move, and the desk should know."""
    from matching.kana import to_katakana

    day = _name_and_day(name, birth)
    if day is None:
        return []
    want = {_fold(name), _fold(to_katakana(name))}
    rows = session.exec(text(  # type: ignore[call-overload]
        "SELECT shelter_code, shelter_name, json_extract(payload, '$.name'), json_extract(payload, '$.name_kana'), "
        "json_extract(payload, '$.registered_at'), evacuee_id FROM remote_event "
        "WHERE type = 'evacuee.registered' AND json_extract(payload, '$.birth_date') = :birth ORDER BY hub_seq"
    ).bindparams(birth=day.isoformat()))
    from app.services import disclosure

    gone = disclosure.retracted(session)
    out = []
    for code, shelter_name, rname, rkana, at, eid in rows:
        if eid in gone:  # the one rule, applied at the hub: withdrawn
            continue
        names = {_fold(rname or ""), _fold(to_katakana(rkana or "")), _fold(to_katakana(rname or ""))}
        if want & (names - {""}):
            out.append({"shelter_code": code or "", "shelter_name": shelter_name or code or "",
                        "registered_at": at or ""})
    return out
