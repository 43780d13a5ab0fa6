"""What the services tell the outbox: one immutable event per change that the hub must learn.

Every function here is called inside the service's own transaction, so the change and its event
commit together or not at all (a power cut can never leave a registration the hub will not hear
of). Event shapes live in `sync.events`; this module only maps our rows onto them.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from app.models import Evacuee, HqConfirmation, MatchDecision, Shelter, StayEvent
from sync import events, outbox


def _full_name(ev: Evacuee) -> str:
    return ev.name_raw.strip() or " ".join(x for x in (ev.family_name, ev.given_name) if x)


def evacuee_registered(session: Session, ev: Evacuee, shelter: Shelter) -> None:
    outbox.append(session, _registered_event(ev, shelter))


def registrations(session: Session, arrivals: list[tuple[Evacuee, StayEvent]], shelter: Shelter) -> None:
    """One outbox batch for a chunk of a roster import: each evacuee's registration, then their
    check-in, in order (the same events `evacuee_registered` + `stay_recorded` write one by one)."""
    outbox.append_many(session, [e for ev, stay in arrivals for e in (_registered_event(ev, shelter), _stay_event(stay, None))])


def _registered_event(ev: Evacuee, shelter: Shelter) -> events.EvacueeRegistered:
    return events.EvacueeRegistered(
        evacuee_id=ev.id, shelter_code=shelter.code, external_key=ev.external_key or None,
        name=_full_name(ev) or None, name_kana=ev.name_kana or ev.name_kana_raw or None,
        birth_date_raw=ev.birth_raw or None, birth_date=ev.birth_date, sex=ev.sex or None,
        address=ev.address or ev.address_raw or None, phone=ev.phone_raw or None, household_key=ev.household_key or None,
        care=dict(ev.care_flags), registered_at=ev.created_at,
        consents={"relatives": ev.consent_relatives, "acquaintances": ev.consent_acquaintances,
                  "public": ev.consent_public},
        # ⑥–⑪ of 様式第1号, so the hub's 安否照会 desk can say what this shelter's desk would
        **{f: (getattr(ev, f) or "").strip() or None for f in events.EVACUEE_FORM_FIELDS},
    )


def stay_recorded(session: Session, stay: StayEvent, shelter_code: str | None = None) -> None:
    outbox.append(session, _stay_event(stay, shelter_code))


def _stay_event(stay: StayEvent, shelter_code: str | None) -> events.StayRecorded:
    return events.StayRecorded(
        stay_id=stay.id, evacuee_id=stay.evacuee_id, kind=stay.kind, at=stay.at,
        destination=stay.destination or None, shelter_code=shelter_code,
    )


def _match_event(d: MatchDecision, snapshot_as_of: str | None) -> events.MatchDecided:
    return events.MatchDecided(
        decision_id=d.id, evacuee_id=d.evacuee_id, resident_id=d.resident_id, decision=d.decision,
        at=d.at, snapshot_as_of=snapshot_as_of, score=d.score, reasons=d.reasons, by_user=d.by_user or None,
    )


def match_decided(session: Session, d: MatchDecision, snapshot_as_of: str | None) -> None:
    outbox.append(session, _match_event(d, snapshot_as_of))


def matches_decided(session: Session, decisions: list[MatchDecision], snapshot_as_of: str | None) -> None:
    """One outbox batch for a whole reconciliation run."""
    outbox.append_many(session, [_match_event(d, snapshot_as_of) for d in decisions])


def hq_recorded(session: Session, rec: HqConfirmation, municipality_code: str | None, snapshot_as_of: str | None) -> None:
    """HQ's record about a resident travels to the hub, whose safety list replays every laptop's."""
    outbox.append(session, events.HqRecorded(
        record_id=rec.id, resident_id=rec.resident_id, status=rec.status, at=rec.at, method=rec.method or None,
        note=rec.note or None, by_user=rec.by_user or None, municipality_code=municipality_code or None,
        snapshot_as_of=snapshot_as_of,
    ))


def pending_count(session: Session) -> int:
    return outbox.pending_count(session)


def pending_link(session: Session) -> dict:
    """Events and bytes waiting for the hub, and the time they take at the last measured link speed
    (``{"events", "urgent", "bytes", "link_kbps", "eta_seconds"}``; estimated from a sample)."""
    from sync import link

    return link.pending_summary(session, exact=False).as_dict()


def last_sync(session: Session) -> datetime | None:
    return outbox.last_sync(session)


#: a laptop clock further off than this (seconds) is worth a warning on the dashboard
CLOCK_WARN_SECONDS = 300


def sync_health(session: Session) -> dict:
    """Forked events, a hub epoch still to fetch, the clock offset measured at the last sync."""
    h = outbox.sync_health(session)
    at = h.pop("clock_measured_at")
    return h | {"clock_measured_at": at.isoformat() if at else None}


def _offset_ja(seconds: int) -> str:
    s = abs(seconds)
    if s >= 86400:
        amount = f"約{s / 86400:.1f}日"
    elif s >= 3600:
        amount = f"約{s / 3600:.1f}時間"
    else:
        amount = f"約{max(1, round(s / 60))}分"
    return f"{amount}{'遅れて' if seconds > 0 else '進んで'}"


def sync_warnings(session: Session) -> list[str]:
    """What staff must know about sending to HQ, in plain Japanese (no engine words, no commands)."""
    h = outbox.sync_health(session)
    out = []
    if h["forked"]:
        out.append(f"{h['forked']}件の記録が本部に届いていません。このパソコンのデータが別のパソコンにも"
                   "復元・コピーされているため、番号が重なりました。記録はこのパソコンに残っています。"
                   "本部に連絡して確認を依頼してください。")
    if h["hub_epoch_needed"]:
        out.append("バックアップから復元したデータです。ネットワークにつながったら本部と同期してください。")
    offset = h["clock_offset_seconds"]
    if offset is not None and abs(offset) > CLOCK_WARN_SECONDS:
        out.append(f"このパソコンの時計が本部より{_offset_ja(offset)}います。時計を合わせてください"
                   "（記録の順番は正しく送られます）。")
    return out
