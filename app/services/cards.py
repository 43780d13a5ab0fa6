"""避難者カード: one card per person (a household prints one page per member), as a PDF.

What a card may show is the one 閲覧制限 rule's answer for an output that leaves the building
(`disclosure.CALLER_PUBLICATION`): the card goes home in a pocket and may be lost. A person who is
not listed there (flagged, or in a flagged person's household) still gets a card — it is theirs —
but a *blind* one: no shelter name on paper, and a QR code with neither the shelter code nor the
sealed basic four items, so a found card tells nobody where they are.

Every printing is audited by the caller (face) with the evacuees it printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from app.formats.card_pdf import CardFace, render_cards_pdf
from app.models import Evacuee, Shelter
from app.services import card_keys, disclosure
from app.services.evacuees import SEX_JA, full_name, get_evacuee

SIZES = ("a6", "label62")


@dataclass(frozen=True)
class PrintedCards:
    pdf: bytes
    evacuee_ids: list[str]
    blind: list[str]  # cards printed without shelter or sealed items (閲覧制限 rule)
    key_scope: str  # municipality | local


def basic_four(ev: Evacuee) -> dict[str, str]:
    """The items another shelter may prefill from (sealed in the QR, never readable on it)."""
    return {"name": full_name(ev), "name_kana": ev.name_kana or ev.name_kana_raw,
            "birth_date": ev.birth_date.isoformat() if ev.birth_date else ev.birth_raw, "sex": ev.sex}


def registration_number(ev: Evacuee) -> str:
    """The number on the card: the desk's 受付番号 when one was written, else the record id."""
    return ev.external_key or ev.id


def card_faces(session: Session, evacuee_ids: list[str], *, prefill: bool = True) -> tuple[list[CardFace], list[str], str]:
    """(faces, blind ids, key scope): what each card shows, decided by the one rule."""
    key = card_keys.issuing_key(session)
    prot = disclosure.protected(session)
    faces, blind = [], []
    for eid in dict.fromkeys(evacuee_ids):
        ev = get_evacuee(session, eid)
        shown = disclosure.shown_evacuee(disclosure.CALLER_PUBLICATION, prot, ev.id)
        sh = session.get(Shelter, ev.shelter_id)
        if shown.listed:
            sealed = {**basic_four(ev), "shelter_name": sh.name if sh else ""} if prefill else None
            qr = card_keys.encode(key, ev.id, sh.code if sh else "", sealed)
            shelter_name = sh.name if sh else ""
        else:
            qr = card_keys.encode(key, ev.id, "", None)
            shelter_name = ""
            blind.append(ev.id)
        faces.append(CardFace(name=full_name(ev) or ev.name_kana_raw, name_kana=ev.name_kana or ev.name_kana_raw,
                              shelter_name=shelter_name, number=registration_number(ev), qr_text=qr,
                              sex=SEX_JA.get(ev.sex, "")))
    return faces, blind, key.scope


def print_cards(session: Session, evacuee_ids: list[str], *, size: str = "a6", prefill: bool = True) -> PrintedCards:
    """The cards of these evacuees as one PDF (a page each). Flushes a new local key if one was made."""
    from app.services.errors import InvalidInput

    if size not in SIZES:
        raise InvalidInput(f"card size must be one of {', '.join(SIZES)}", "カードの大きさは A6 か 62mm ラベルです", "size")
    if not evacuee_ids:
        raise InvalidInput("no evacuee given", "印刷する方を選んでください", "evacuee_id")
    faces, blind, scope = card_faces(session, evacuee_ids, prefill=prefill)
    return PrintedCards(render_cards_pdf(faces, size=size), [f.qr_text.split(":")[2] for f in faces], blind, scope)
