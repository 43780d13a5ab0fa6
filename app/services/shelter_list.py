"""The municipality's shelter list (避難所一覧, like Sahana Eden's shelter registry): name, code,
capacity and current population, so a 移動 (transfer) picks a real shelter instead of a name typed
by hand (第2中, 第二中学校, 二中 … would be three places on HQ's list).

Where the rows come from: this laptop's own shelter (its population counted from the roster), the
shelters the hub's feed has told us about when the laptop is enrolled (`refresh_from_hub`: every
shelter that pushed events, with the people currently registered there), and what an administrator
adds on the 避難所 screen or with `anpi shelter add`. Nothing here commits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from app.ids import utcnow
from app.models import Evacuee, ShelterRecord
from app.services.errors import InvalidInput, NotFound
from app.services.shelters import current_shelter

OTHER = "__other__"  # the 「その他」 choice of the transfer form
SOURCE_JA = {"own": "この避難所", "hub": "本部から", "admin": "手入力"}
MAX_NAME = 100


@dataclass
class ShelterView:
    """One row as screens show it."""

    code: str
    name: str
    capacity: int | None
    population: int | None
    source: str
    own: bool = False
    address: str = ""
    active: bool = True

    @property
    def source_ja(self) -> str:
        return SOURCE_JA.get(self.source, self.source)

    @property
    def room(self) -> str:
        """「空き 12人」 / 「満員」 / "" when the capacity is unknown."""
        if self.capacity is None or self.population is None:
            return ""
        left = self.capacity - self.population
        return f"空き {left}人" if left > 0 else "満員"


def _int(value: str | int | None, field: str, label: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{field} must be a whole number", f"{label}は数字で入力してください", field) from None
    if n < 0 or n > 1_000_000:
        raise InvalidInput(f"{field} out of range", f"{label}は0以上の数で入力してください", field)
    return n


def _check(code: str, name: str) -> tuple[str, str]:
    code, name = code.strip(), name.strip()
    if not name:
        raise InvalidInput("name is required", "避難所名を入力してください", "name")
    if len(name) > MAX_NAME or len(code) > 40:
        raise InvalidInput("too long", f"避難所名は{MAX_NAME}文字まで、コードは40文字までです", "name" if len(name) > MAX_NAME else "code")
    if not code:
        raise InvalidInput("code is required", "避難所コードを入力してください", "code")
    return code, name


def save(session: Session, *, code: str, name: str, capacity: str | int | None = None,
         population: str | int | None = None, address: str = "", source: str = "admin",
         active: bool = True, replace: bool = True) -> ShelterRecord:
    """Add a shelter, or change the one with this code (`replace=False`: a code in use is refused)."""
    code, name = _check(code, name)
    cap, pop = _int(capacity, "capacity", "定員"), _int(population, "population", "現在の人数")
    row = session.exec(select(ShelterRecord).where(ShelterRecord.code == code)).first()
    if row is not None and not replace:
        raise InvalidInput(f"shelter code {code} exists", f"避難所コード {code} はすでに登録されています", "code")
    if row is None:
        row = ShelterRecord(code=code, name=name)
    row.name, row.capacity, row.address, row.active, row.updated_at = name, cap, address.strip(), active, utcnow()
    if pop is not None or source == "admin":
        row.population = pop
    if row.source != "own":
        row.source = source
    session.add(row)
    session.flush()
    return row


def _own_population(session: Session, shelter_id: str) -> int:
    return int(session.exec(select(func.count()).select_from(Evacuee).where(
        Evacuee.status == "in_shelter", Evacuee.shelter_id == shelter_id)).one())


def ensure_own(session: Session) -> ShelterRecord:
    """This laptop's shelter in the list (created from the `shelter` row on first use)."""
    own = current_shelter(session)
    row = session.exec(select(ShelterRecord).where(ShelterRecord.code == own.code)).first()
    if row is None:
        row = ShelterRecord(code=own.code, name=own.name, source="own")
        session.add(row)
        session.flush()
    return row


def hub_shelters(session: Session) -> dict[str, tuple[str, int]]:
    """shelter code → (name, people registered there now), from the events pulled from the hub."""
    try:
        rows = session.execute(text(
            "SELECT type, payload, shelter_code, shelter_name, evacuee_id FROM remote_event "
            "WHERE type IN ('evacuee.registered', 'stay.recorded') AND shelter_code IS NOT NULL ORDER BY hub_seq")).all()
    except OperationalError:  # a database made before sync existed
        return {}
    names: dict[str, str] = {}
    where: dict[str, tuple[str, bool]] = {}  # evacuee → (shelter code, in the shelter)
    for etype, payload, code, name, ev_id in rows:
        names[code] = name or names.get(code) or code
        try:
            p = json.loads(payload)
        except ValueError:
            continue
        ev_id = ev_id or p.get("evacuee_id")
        if not ev_id:
            continue
        if etype == "evacuee.registered":
            where[ev_id] = (code, True)
        elif p.get("kind") in ("check_out", "transfer", "check_in"):
            where[ev_id] = (code, p.get("kind") == "check_in")
    counts = {c: 0 for c in names}
    for code, inside in where.values():
        if inside:
            counts[code] = counts.get(code, 0) + 1
    return {c: (names.get(c, c), counts.get(c, 0)) for c in names}


def _hub_directory(session: Session) -> dict[str, tuple[str, int]]:
    """What the hub listed at the last sync (GET /v1/shelters → remote_shelter): enrolled laptops."""
    try:
        rows = session.execute(text("SELECT code, name, population FROM remote_shelter")).all()
    except OperationalError:  # a database made before the hub listed shelters
        return {}
    return {code: (name, population or 0) for code, name, population in rows}


def refresh_from_hub(session: Session) -> int:
    """Add or update the shelters the hub lists and its feed names (not this laptop's own); returns how many."""
    from sync import outbox

    own = current_shelter(session)
    device = outbox.get_device(session)
    mine = {own.code, device.device_id if device is not None else ""}
    n = 0
    for code, (name, people) in (hub_shelters(session) | _hub_directory(session)).items():
        if code in mine:
            continue
        row = session.exec(select(ShelterRecord).where(ShelterRecord.code == code)).first()
        if row is None:
            row = ShelterRecord(code=code, name=name, source="hub")
        elif row.source == "hub":
            row.name = name
        row.population, row.updated_at = people, utcnow()
        session.add(row)
        n += 1
    session.flush()
    return n


def list_shelters(session: Session, *, include_inactive: bool = False) -> list[ShelterView]:
    """Every listed shelter, this one first, then by name; this one's population from the roster."""
    own = current_shelter(session)
    ensure_own(session)
    refresh_from_hub(session)
    out = []
    for r in session.exec(select(ShelterRecord).order_by(ShelterRecord.name)):
        if not r.active and not include_inactive:
            continue
        mine = r.code == own.code
        out.append(ShelterView(r.code, r.name, r.capacity, _own_population(session, own.id) if mine else r.population,
                               r.source, mine, r.address, r.active))
    out.sort(key=lambda v: (not v.own, v.name))
    return out


def get(session: Session, code: str) -> ShelterRecord:
    row = session.exec(select(ShelterRecord).where(ShelterRecord.code == code)).first()
    if row is None:
        raise NotFound(f"no shelter {code}", "その避難所は一覧にありません")
    return row


def destination_for(session: Session, choice: str, other_text: str) -> str:
    """The 移動先 a transfer records: a listed shelter's name, or the text typed beside 「その他」."""
    choice, other_text = (choice or "").strip(), (other_text or "").strip()
    if choice == OTHER or (not choice and other_text):
        if not other_text:
            raise InvalidInput("other destination is empty", "「その他」の移動先を入力してください", "destination_other")
        if len(other_text) > MAX_NAME:
            raise InvalidInput("destination too long", f"移動先は{MAX_NAME}文字までです", "destination_other")
        return other_text
    if not choice:
        raise InvalidInput("destination is required", "移動先を選んでください", "destination")
    row = session.exec(select(ShelterRecord).where(ShelterRecord.code == choice)).first() or \
        session.exec(select(ShelterRecord).where(ShelterRecord.name == choice)).first()
    if row is None:  # a client that still sends a typed name (the JSON API, an old page): kept as typed
        return destination_for(session, OTHER, choice)
    if row.code == current_shelter(session).code:
        raise InvalidInput("transfer to itself", "いまいる避難所へは移動できません", "destination")
    return row.name
