"""A scanned 避難者カード at the desk: who it is, and the one keystroke that follows.

The desk's scan field receives the QR text (a USB scanner types it, then Enter; or the camera
decoder fills it in). `look_up` says what the card means *here*:

- ``checkin``  — registered at this shelter and gone (退所 / 移動): one key re-checks them in;
- ``present``  — already here: nothing to do;
- ``arrive``   — registered at another shelter: one key registers them here from the card's sealed
  basic four items (or what the hub's feed already told us), and a CardArrival row keeps the
  movement trail (which card, which shelter it came from);
- ``intake``   — a genuine card with nothing to prefill (a blind 閲覧制限 card, or a card of a
  person the feed withdrew): the desk registers them by hand.

`confirm` verifies the text again (a client never passes an evacuee id of its choosing) and does
the action. Other shelters' records come only through the one rule: what the hub withdrew
(`disclosure.retracted`) is never used to prefill. Nothing here commits or audits (the faces do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import text as sql
from sqlmodel import Session, select

from app.models import CardArrival, Evacuee, Shelter
from app.services import card_keys, disclosure, evacuees
from app.services.errors import Conflict, InvalidInput

ACTION_JA = {"checkin": "再入所", "arrive": "この避難所で受け入れる", "present": "在所中", "intake": "受付で登録"}


@dataclass
class ScanResult:
    action: str  # checkin | present | arrive | intake
    card: card_keys.CardText
    evacuee: Evacuee | None = None  # the registration here, when there is one
    items: dict[str, str] = field(default_factory=dict)  # basic four to register from (arrive)
    origin_shelter: str = ""  # name (or code) of the shelter that issued the card
    duplicates: list[Evacuee] = field(default_factory=list)

    @property
    def message_ja(self) -> str:
        if self.action == "checkin":
            return "この避難所に登録されている方です。Enter で再入所します"
        if self.action == "present":
            return "この方はすでにこの避難所に在所しています"
        if self.action == "arrive":
            where = f"{self.origin_shelter}で" if self.origin_shelter else "他の避難所で"
            return f"{where}登録された方です。Enter でこの避難所に受け入れます（移動の記録を残します）"
        return "本物のカードですが、登録内容を読み取れません。受付の画面で登録してください"


def _local(session: Session, evacuee_id: str) -> Evacuee | None:
    ev = session.get(Evacuee, evacuee_id)
    if ev is not None:
        return ev
    arrival = session.exec(select(CardArrival).where(CardArrival.origin_evacuee_id == evacuee_id)
                           .order_by(CardArrival.at.desc())).first()  # type: ignore[attr-defined]
    return session.get(Evacuee, arrival.evacuee_id) if arrival else None


def _shelter_name(session: Session, code: str) -> str:
    if not code:
        return ""
    from app.models import ShelterRecord

    for model in (Shelter, ShelterRecord):
        row = session.exec(select(model).where(model.code == code)).first()  # type: ignore[attr-defined]
        if row is not None:
            return row.name
    return code


def _from_feed(session: Session, evacuee_id: str) -> dict[str, str]:
    """The basic four of another shelter's registration as pulled from the hub (withdrawn: nothing)."""
    if evacuee_id in disclosure.retracted(session):
        return {}
    row = session.connection().execute(sql(
        "SELECT payload FROM remote_event WHERE type = 'evacuee.registered' AND evacuee_id = :e "
        "ORDER BY hub_seq DESC LIMIT 1"), {"e": evacuee_id}).first()
    if row is None:
        return {}
    p = json.loads(row[0])
    return {"name": p.get("name") or "", "name_kana": p.get("name_kana") or "",
            "birth_date": p.get("birth_date") or p.get("birth_date_raw") or "", "sex": p.get("sex") or ""}


def look_up(session: Session, text: str) -> ScanResult:
    """What the card means at this shelter (module notes); CardRefused for a forged one."""
    card = card_keys.verify(session, text)
    ev = _local(session, card.evacuee_id)
    if ev is not None:
        return ScanResult("present" if ev.status == "in_shelter" else "checkin", card, ev)
    if card.evacuee_id in disclosure.retracted(session):
        # the hub withdrew this person under the 閲覧制限 rule after the card was printed: its sealed
        # items are not used, and nothing says where they came from
        return ScanResult("intake", card)
    items = card.basic or _from_feed(session, card.evacuee_id)
    origin = card.shelter_name or _shelter_name(session, card.shelter_code)
    if not any((items or {}).get(k) for k in ("name", "name_kana")):
        return ScanResult("intake", card, origin_shelter=origin)
    dups = evacuees.find_duplicates(session, items.get("name") or items.get("name_kana", ""), items.get("birth_date", ""))
    return ScanResult("arrive", card, items=items, origin_shelter=origin, duplicates=dups)


def confirm(session: Session, text: str, *, by: str, allow_duplicate: bool = False) -> tuple[ScanResult, Evacuee]:
    """Do the scan's action (re-check-in, or register here from the card); returns the person here."""
    from app.services.reconcile import match_now
    from app.services.roster import EvacueeInput, register

    res = look_up(session, text)
    if res.action == "checkin":
        assert res.evacuee is not None
        evacuees.check_in(session, res.evacuee.id, by=by)
        return res, res.evacuee
    if res.action == "present":
        raise Conflict(f"evacuee {res.evacuee.id if res.evacuee else ''} is already here", res.message_ja)
    if res.action == "intake":
        raise InvalidInput("the card carries nothing to register from", res.message_ja, "card")
    if res.duplicates and not allow_duplicate:
        raise Conflict("someone with this name and birth date is already here",
                       "同じ氏名・生年月日の方がすでに在所しています。名簿で確かめてください")
    it = res.items
    ev = register(session, EvacueeInput(name=it.get("name", ""), name_kana=it.get("name_kana", ""),
                                        birth_date=it.get("birth_date", ""), sex=it.get("sex", "")), by=by)
    session.add(CardArrival(evacuee_id=ev.id, origin_evacuee_id=res.card.evacuee_id,
                            origin_shelter=res.card.shelter_code, origin_shelter_name=res.origin_shelter,
                            key_id=res.card.key_id, by_user=by))
    session.flush()
    match_now(session, [ev.id])
    return res, ev


def arrivals_of(session: Session, evacuee_id: str) -> list[CardArrival]:
    """The movement trail a card brought: where this registration came from (person page)."""
    return list(session.exec(select(CardArrival).where(CardArrival.evacuee_id == evacuee_id).order_by(CardArrival.at)))
