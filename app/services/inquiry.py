"""安否照会 (safety inquiries): who may be told what about an evacuee, and the desk's log.

Someone at the desk asks whether a person is safe. What may be said follows the consents the
person gave at intake on the national form 様式第1号 (⑫ ⑬ ⑭) and the inquirer's relationship;
a person under 閲覧制限 (DV等支援措置) is never disclosed at all. The rule itself is one pure,
table-driven function (`disclosable_items`) so it can be read, reviewed and tested as a table.

Why "no information" looks the same whatever the reason: an abuser looking for a protected
person must not learn from the answer whether the person is here and protected, here and
refusing, or not here. The desk screen therefore shows one wording for every negative answer;
only the log (`Inquiry.outcome`, the audit entry) records the real reason, for auditors.

Choices where the national rules leave it open (documented because they decide disclosures):
- ⑫/⑬ None (not asked) means "not refused": relatives and acquaintances get their items.
  ⑭ None means "no consent": anyone else gets nothing. This mirrors the form's own wording
  (⑫ ⑬ are refusals of an answer that is given by default; ⑭ is an explicit consent).
- Each relationship is decided by its own consent only. An explicit refusal (⑫ False for a
  relative, ⑬ False for an acquaintance) is never widened by ⑭ True: a person who refused
  relatives may be hiding from one.
- 閲覧制限 is fail-closed: an evacuee counts as restricted when the resident linked by the
  newest decision (auto / confirmed) is flagged in *any* imported snapshot (a later backup whose
  vendor dropped the column must not lift a protection), and also while the newest decision is
  still "review" and any of its candidates is flagged.
- The person asked about must be identified, not guessed: the name (kanji, kana or romaji,
  compared with the matching engine's normalisation) must agree, nothing given may contradict
  the record, and the date of birth or the address must positively agree. Two or more such
  people, or only people whose record cannot confirm the detail given, make the desk ask for
  more detail. Whether the desk is asked for more detail depends only on people who are *not*
  restricted, so the prompt itself reveals nothing about a protected person; if a restricted
  person could be the one meant, the answer is "no information".
- Registrations pulled from other shelters (`evacuees.registered_elsewhere`) are not answered
  here: their 閲覧制限 status and injury items are not known on this laptop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlmodel import Session, select

from app.models import Evacuee, Inquiry, Resident, Shelter, StayEvent
from app.services import audit
from app.services.errors import InvalidInput, NotFound
from app.services.evacuees import SEX_JA, full_name, latest_decisions
from app.services.shelters import current_shelter
from matching.address import town_key, town_keys_compatible
from matching.dates import DateError, ParsedDate, parse_date
from matching.kana import loose_key, to_katakana
from matching.kanji import variant_key
from matching.names import script_of, tokens

# --- the rule -------------------------------------------------------------------------------

#: 様式第1号 items ① … ⑪ (number → label as printed on the form)
ITEMS: dict[int, str] = {
    1: "氏名",
    2: "フリガナ",
    3: "出生の年月日",
    4: "男女の別",
    5: "住所",
    6: "国籍",
    7: "①～⑥のほか個人を識別するための情報",
    8: "負傷（疾病）の該当",
    9: "負傷又は疾病の状況",
    10: "現在の居所",
    11: "連絡先その他必要情報",
}
CIRCLED = {n: chr(0x2460 + n - 1) for n in range(1, 21)}  # 1 → ①

ALL_ITEMS: tuple[int, ...] = tuple(range(1, 12))
BASIC_ITEMS: tuple[int, ...] = (1, 7, 8)  # 氏名, other identifying information, whether injured

RELATIONSHIPS: tuple[str, ...] = ("同居の親族", "その他の親族・職場", "知人", "その他")
ID_PROOFS: tuple[str, ...] = ("運転免許証", "マイナンバーカード", "健康保険証", "その他")

Outcome = Literal["answered", "refused", "restricted", "not_found", "ambiguous"]
OUTCOME_JA: dict[str, str] = {"answered": "回答した", "refused": "同意なし", "restricted": "閲覧制限",
                              "not_found": "該当者なし", "ambiguous": "特定できず"}


@dataclass(frozen=True)
class Consents:
    """様式第1号 ⑫ ⑬ ⑭ as recorded at intake: True / False / None (not asked)."""

    relatives: bool | None = None  # ⑫ 親族・同居者への回答
    acquaintances: bool | None = None  # ⑬ 知人への回答
    public: bool | None = None  # ⑭ 親族・同居者・知人以外の者への回答又は公表

    @classmethod
    def of(cls, ev: Evacuee) -> Consents:
        return cls(ev.consent_relatives, ev.consent_acquaintances, ev.consent_public)


@dataclass(frozen=True)
class Rule:
    items: tuple[int, ...]
    consent: str  # the Consents attribute that decides
    needs: Literal["not_refused", "explicit"]  # None passes "not_refused", only True passes "explicit"


#: relationship of the inquirer → what they may be told, and which consent decides it
RULES: dict[str, Rule] = {
    "同居の親族": Rule(ALL_ITEMS, "relatives", "not_refused"),
    "その他の親族・職場": Rule(ALL_ITEMS, "relatives", "not_refused"),
    "知人": Rule(BASIC_ITEMS, "acquaintances", "not_refused"),
    "その他": Rule(BASIC_ITEMS, "public", "explicit"),
}


@dataclass(frozen=True)
class Answer:
    outcome: Literal["answered", "refused", "restricted"]
    items: tuple[int, ...] = ()


def disclosable_items(relationship: str, consents: Consents, restricted: bool) -> Answer:
    """The 様式第1号 items an inquirer of this relationship may be told about this person."""
    rule = RULES.get(relationship)
    if rule is None:
        raise InvalidInput(f"unknown relationship {relationship!r} ({' / '.join(RELATIONSHIPS)})",
                           "照会者との関係を選んでください", "relationship")
    if restricted:
        return Answer("restricted")
    value = getattr(consents, rule.consent)
    allowed = value is not False if rule.needs == "not_refused" else value is True
    return Answer("answered", rule.items) if allowed else Answer("refused")


# --- what the desk reads aloud ----------------------------------------------------------------

SCRIPT_ANSWERED_HEAD = "お問い合わせの方について、お伝えできる安否情報は次のとおりです。"
SCRIPT_ANSWERED_TAIL = "これ以外のことはお答えできません。ご了承ください。"
SCRIPT_NO_INFORMATION = "お問い合わせの方について、お答えできる安否情報はありません。ご了承ください。"
NOT_RECORDED = "（記録なし）"


def answer_text(items: list[dict[str, Any]]) -> str:
    """The whole answer as shown (and stored): the script with one line per item."""
    if not items:
        return SCRIPT_NO_INFORMATION
    lines = [f"{CIRCLED[i['no']]} {i['label']}: {i['value']}" for i in items]
    return "\n".join([SCRIPT_ANSWERED_HEAD, *lines, SCRIPT_ANSWERED_TAIL])


def _birth_text(ev: Evacuee) -> str:
    if ev.birth_date is not None and ev.birth_kind == "day":
        d = ev.birth_date
        return f"{d.year}年{d.month}月{d.day}日"
    return ev.birth_raw.strip()


def _location_text(session: Session, ev: Evacuee) -> str:
    shelter = session.get(Shelter, ev.shelter_id)
    name = shelter.name if shelter else ""
    if ev.status == "in_shelter":
        where = ev.current_location.strip()
        return f"{name}（{where}）" if where else name
    last = session.exec(select(StayEvent).where(StayEvent.evacuee_id == ev.id)
                        .order_by(StayEvent.at.desc(), StayEvent.id.desc())).first()  # type: ignore[attr-defined]
    dest = last.destination.strip() if last else ""
    if ev.status == "transferred":
        return f"{dest}へ移動（{name}から）" if dest else f"{name}から移動"
    return f"{name}を退所（行き先: {dest}）" if dest else f"{name}を退所"


def item_values(session: Session, ev: Evacuee) -> dict[int, str]:
    """Every 様式第1号 item ① … ⑪ of an evacuee as the desk would say it ("" when not recorded).

    ⑦ has no field on the intake form yet, so it is always "not recorded"; ⑧ says only whether
    an injury or illness was declared (the details are ⑨, which acquaintances must not hear).
    """
    injured = bool(ev.injury.strip() or ev.injury_state.strip())
    state = "、".join(x for x in (ev.injury.strip(), ev.injury_state.strip()) if x)
    return {
        1: full_name(ev).strip(),
        2: (ev.name_kana or to_katakana(ev.name_kana_raw)).strip(),
        3: _birth_text(ev),
        4: SEX_JA.get(ev.sex, "") or "",
        5: (ev.address_raw or ev.address).strip(),
        6: ev.nationality.strip(),
        7: ev.identifying_info.strip(),
        8: "該当する（負傷・疾病あり）" if injured else "申告なし",
        9: state,
        10: _location_text(session, ev),
        11: (ev.contact or ev.phone_raw).strip(),
    }


def disclosed(session: Session, ev: Evacuee, items: Iterable[int]) -> list[dict[str, Any]]:
    values = item_values(session, ev)
    return [{"no": n, "label": ITEMS[n], "value": values[n] or NOT_RECORDED} for n in items]


# --- finding the person asked about ---------------------------------------------------------

def _name_keys(*texts: str) -> dict[str, set[str]]:
    """Comparable keys of a name by script: variant-folded kanji, loose kana, romaji tokens."""
    out: dict[str, set[str]] = {}
    for t in texts:
        t = (t or "").strip()
        if not t:
            continue
        script = script_of(t)
        if script == "kana":
            key, kind = loose_key(t), "kana"
        elif script == "latin":
            key, kind = " ".join(sorted(x.upper() for x in tokens(t))), "latin"
        elif script in ("kanji", "mixed"):
            key, kind = variant_key(t), "kanji"
        else:
            continue
        if key:
            out.setdefault(kind, set()).add(key)
    return out


def _evacuee_name_keys(ev: Evacuee) -> dict[str, set[str]]:
    return _name_keys(ev.name_raw, f"{ev.family_name} {ev.given_name}", ev.name_kana, to_katakana(ev.name_kana_raw))


def name_agrees(asked: dict[str, set[str]], ev_keys: dict[str, set[str]]) -> bool:
    """At least one script agrees and no script given on both sides disagrees."""
    shared = [k for k in asked if k in ev_keys]
    return bool(shared) and all(asked[k] & ev_keys[k] for k in shared)


Relation = Literal["agree", "differ", "none"]


def _year_range(ev: Evacuee) -> tuple[int, int] | None:
    if ev.birth_date is not None:
        return ev.birth_date.year, ev.birth_date.year
    if ev.birth_year_min is not None and ev.birth_year_max is not None:
        return ev.birth_year_min, ev.birth_year_max
    return None


def birth_relation(pd: ParsedDate | None, ev: Evacuee) -> Relation:
    """Does the date of birth given agree with the record (both must say something)?"""
    if pd is None or pd.kind in ("empty", "unknown"):
        return "none"
    if pd.kind == "day" and pd.value is not None:
        if ev.birth_date is not None and ev.birth_kind == "day":
            return "agree" if ev.birth_date in (pd.value, *pd.alternatives) else "differ"
        yr = _year_range(ev)
        if yr is None:
            return "none"
        return "agree" if yr[0] <= pd.value.year <= yr[1] else "differ"
    yr = _year_range(ev)
    if yr is None or pd.year_min is None or pd.year_max is None:
        return "none"
    return "agree" if pd.year_min <= yr[1] and yr[0] <= pd.year_max else "differ"


def address_relation(asked_town: str | None, ev: Evacuee) -> Relation:
    theirs = town_key(ev.address or ev.address_raw)
    if not asked_town or not theirs:
        return "none"
    if town_keys_compatible(asked_town, theirs):
        return "agree"
    # people asking often name only the 大字 (高田町) of a 字 address (高田町館ノ沖): that agrees too
    short, long_ = sorted((asked_town, theirs), key=len)
    return "agree" if len(short) >= 2 and long_.startswith(short) else "differ"


def restricted_evacuees(session: Session, evacuee_ids: list[str]) -> set[str]:
    """Which of these evacuees are 閲覧制限 (fail-closed, see the module notes)."""
    decisions = latest_decisions(session, evacuee_ids)
    wanted: dict[str, set[str]] = {}
    for ev_id, d in decisions.items():
        rids: set[str] = set()
        if d.decision in ("auto", "confirmed") and d.resident_id:
            rids.add(d.resident_id)
        elif d.decision == "review":
            rids |= {str(c.get("resident_id")) for c in (d.candidates or []) if c.get("resident_id")}
        if rids:
            wanted[ev_id] = rids
    all_rids = set().union(*wanted.values()) if wanted else set()
    if not all_rids:
        return set()
    flagged = set(session.exec(select(Resident.resident_id).where(
        Resident.resident_id.in_(sorted(all_rids)), Resident.restricted == True)))  # type: ignore[attr-defined]  # noqa: E712
    return {ev_id for ev_id, rids in wanted.items() if rids & flagged}


@dataclass
class Found:
    """What the search decided: `kind` one / none / restricted / ambiguous."""

    kind: Literal["one", "none", "restricted", "ambiguous"]
    evacuee: Evacuee | None = None
    candidates: list[str] = field(default_factory=list)  # every evacuee id considered (for the log)
    restricted: list[str] = field(default_factory=list)


def find_person(session: Session, name: str, kana: str = "", birth: str = "", address: str = "") -> Found:
    """The one evacuee the inquirer means, decided without guessing (see the module notes)."""
    asked = _name_keys(name, kana)
    if not asked:
        return Found("none")
    pd: ParsedDate | None = None
    if birth.strip():
        try:
            pd = parse_date(birth)
        except DateError as exc:
            raise InvalidInput(f"cannot read date of birth {birth!r}: {exc}", "生年月日を読み取れません: 例 S45.3.1",
                               "sought_birth") from exc
    asked_town = town_key(address) if address.strip() else None
    strong: list[Evacuee] = []
    weak: list[Evacuee] = []
    for ev in session.exec(select(Evacuee).order_by(Evacuee.created_at, Evacuee.id)):
        if not name_agrees(asked, _evacuee_name_keys(ev)):
            continue
        b, a = birth_relation(pd, ev), address_relation(asked_town, ev)
        if "differ" in (b, a):
            continue
        (strong if "agree" in (b, a) else weak).append(ev)
    everyone = [e.id for e in strong + weak]
    flagged = restricted_evacuees(session, everyone)
    open_strong = [e for e in strong if e.id not in flagged]
    open_weak = [e for e in weak if e.id not in flagged]
    restricted = [i for i in everyone if i in flagged]
    if len(open_strong) == 1:
        if restricted:  # a protected person could be the one meant: say nothing
            return Found("restricted", None, everyone, restricted)
        return Found("one", open_strong[0], everyone, restricted)
    if open_strong or open_weak:  # decided on unprotected people only, so the prompt reveals nothing
        return Found("ambiguous", None, everyone, restricted)
    if restricted:
        return Found("restricted", None, everyone, restricted)
    return Found("none", None, everyone, restricted)


# --- recording an inquiry -------------------------------------------------------------------

MAX_LEN = 200


@dataclass
class InquiryRequest:
    """The desk form: the inquirer (照会者) and the person asked about, as typed."""

    inquirer_name: str = ""
    inquirer_address: str = ""
    inquirer_phone: str = ""
    id_proof: str = ""
    id_proof_note: str = ""
    relationship: str = ""
    purpose: str = ""
    sought_name: str = ""
    sought_kana: str = ""
    sought_birth: str = ""
    sought_address: str = ""
    give_up: bool = False  # the inquirer can tell no more: record "no information" instead of asking again

    def stripped(self) -> InquiryRequest:
        return InquiryRequest(**{k: (v.strip() if isinstance(v, str) else v) for k, v in self.__dict__.items()})


def check_request(req: InquiryRequest) -> dict[str, str]:
    """Japanese messages keyed by field name; empty when the request can be answered."""
    r = req.stripped()
    errors: dict[str, str] = {}
    for k, v in r.__dict__.items():
        if isinstance(v, str) and len(v) > MAX_LEN:
            errors[k] = f"{MAX_LEN}文字以内で入力してください"
    if not r.inquirer_name:
        errors.setdefault("inquirer_name", "照会者の氏名を入力してください")
    if not r.inquirer_address:
        errors.setdefault("inquirer_address", "照会者の住所を入力してください")
    if r.id_proof not in ID_PROOFS:
        errors.setdefault("id_proof", "本人確認に使った書類を選んでください")
    elif r.id_proof == "その他" and not r.id_proof_note:
        errors.setdefault("id_proof_note", "確認した書類の名前を入力してください")
    if r.relationship not in RELATIONSHIPS:
        errors.setdefault("relationship", "お尋ねの方と照会者との関係を選んでください")
    if not r.sought_name and not r.sought_kana:
        errors.setdefault("sought_name", "お尋ねの方の氏名かフリガナを入力してください")
    birth_known = False
    if r.sought_birth:
        try:
            birth_known = parse_date(r.sought_birth).kind not in ("unknown", "empty")
        except DateError:
            errors.setdefault("sought_birth", "生年月日を読み取れません: 例 S45.3.1 / 1970-3-1 / 78歳")
            birth_known = True  # the message above is the one to show
    if not birth_known and not r.sought_address:
        errors.setdefault("sought_birth", "人違いを防ぐため、生年月日か住所のどちらかを伺ってください")
    return errors


@dataclass
class InquiryResult:
    """Either the recorded inquiry, or `needs_detail` (nothing recorded but the audit entry)."""

    inquiry: Inquiry | None
    needs_detail: bool = False


def _who(user: Any) -> str:
    return user if isinstance(user, str) else str(getattr(user, "name", "") or "")


def answer_inquiry(session: Session, req: InquiryRequest, *, user: Any, screen: str) -> InquiryResult:
    """Find the person, decide what may be said, and record the inquiry and its audit entry.

    Everything is added to the caller's transaction (the caller commits once, so the inquiry and
    its audit entry are stored together or not at all). When the person cannot be identified and
    the desk has not given up, nothing is answered: the desk is asked for more detail.
    """
    errors = check_request(req)
    if errors:
        fld, msg = next(iter(errors.items()))
        raise InvalidInput(f"inquiry field {fld} is missing or unreadable", msg, fld)
    r = req.stripped()
    found = find_person(session, r.sought_name, r.sought_kana, r.sought_birth, r.sought_address)
    sought = {"name": r.sought_name, "kana": r.sought_kana, "birth": r.sought_birth, "address": r.sought_address}
    if found.kind == "ambiguous" and not r.give_up:
        audit.record(session, user, "inquiry_search", screen, [f"evacuee:{i}" for i in found.candidates],
                     {"relationship": r.relationship, "outcome": "ambiguous", "sought": sought,
                      "candidates": len(found.candidates), "restricted": found.restricted})
        return InquiryResult(None, needs_detail=True)
    items: list[dict[str, Any]] = []
    evacuee_id: str | None = None
    if found.kind == "one" and found.evacuee is not None:
        ev = found.evacuee
        evacuee_id = ev.id
        ans = disclosable_items(r.relationship, Consents.of(ev), ev.id in found.restricted)
        outcome: str = ans.outcome
        items = disclosed(session, ev, ans.items)
    elif found.kind == "restricted":
        disclosable_items(r.relationship, Consents(), True)  # same validation path as an answer
        outcome = "restricted"
        evacuee_id = found.restricted[0] if len(found.restricted) == 1 else None
    elif found.kind == "ambiguous":
        outcome = "ambiguous"
    else:
        outcome = "not_found"
    shelter = current_shelter(session)
    inq = Inquiry(by_user=_who(user), shelter_id=shelter.id, inquirer_name=r.inquirer_name,
                  inquirer_address=r.inquirer_address, inquirer_phone=r.inquirer_phone, id_proof=r.id_proof,
                  id_proof_note=r.id_proof_note, relationship=r.relationship, purpose=r.purpose,
                  sought_name=r.sought_name, sought_kana=r.sought_kana, sought_birth=r.sought_birth,
                  sought_address=r.sought_address, evacuee_id=evacuee_id, items_disclosed=items,
                  outcome=outcome, answer_text=answer_text(items))
    session.add(inq)
    session.flush()
    # one shape for every outcome: auditors filter on detail.outcome, nobody else sees it
    audit.record(session, user, "inquiry", screen,
                 [f"inquiry:{inq.id}"] + [f"evacuee:{i}" for i in found.candidates],
                 {"inquiry_id": inq.id, "relationship": r.relationship, "outcome": outcome,
                  "evacuee_id": evacuee_id, "items": [i["no"] for i in items], "sought": sought,
                  "candidates": len(found.candidates), "restricted": found.restricted})
    return InquiryResult(inq)


# --- reading the log ------------------------------------------------------------------------

def get_inquiry(session: Session, inquiry_id: str) -> Inquiry:
    inq = session.get(Inquiry, inquiry_id)
    if inq is None:
        raise NotFound(f"no inquiry {inquiry_id}", "この照会の記録はありません")
    return inq


def list_inquiries(session: Session, *, outcome: str = "", limit: int = 500) -> list[Inquiry]:
    """Newest first; `outcome` narrows to one real outcome (answered, refused, …)."""
    q = select(Inquiry)
    if outcome:
        if outcome not in OUTCOME_JA:
            raise InvalidInput(f"unknown outcome {outcome!r}", "回答区分が正しくありません", "outcome")
        q = q.where(Inquiry.outcome == outcome)
    return list(session.exec(q.order_by(Inquiry.at.desc(), Inquiry.id.desc()).limit(limit)))  # type: ignore[attr-defined]
