"""安否照会 rules without storage: the one implementation the shelter's desk and the hub's desk share.

Everything here is pure (no session, no SQL): the consent matrix (`disclosable_items`), how the
person asked about is identified (`parse_asked`, `fit`, `decide`), what each 様式第1号 item says
(`item_values`), the script read aloud, the checks on the desk form, and the shape of the audit
entry. `app.services.inquiry` applies them to a shelter's SQLite rows, `app.hub_inquiry` to the
hub's rows of every shelter of a municipality; the policy notes are in `app.services.inquiry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from app.services.errors import InvalidInput
from app.services.evacuees import SEX_JA
from matching.address import town_key, town_keys_compatible
from matching.dates import DateError, ParsedDate, parse_date
from matching.kana import loose_key
from matching.kanji import variant_key
from matching.names import script_of, tokens
from matching.text import apply_gaiji

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
CONSENT_KEYS = ("relatives", "acquaintances", "public")


@dataclass(frozen=True)
class Consents:
    """様式第1号 ⑫ ⑬ ⑭ as recorded at intake: True / False / None (not asked)."""

    relatives: bool | None = None  # ⑫ 親族・同居者への回答
    acquaintances: bool | None = None  # ⑬ 知人への回答
    public: bool | None = None  # ⑭ 親族・同居者・知人以外の者への回答又は公表

    @classmethod
    def of(cls, ev: Any) -> Consents:
        """From a shelter's Evacuee (its consent_* columns)."""
        return cls(ev.consent_relatives, ev.consent_acquaintances, ev.consent_public)

    @classmethod
    def from_json(cls, data: Any) -> Consents:
        """From the `consents` object events carry. Fail-closed: a value that is neither a
        boolean nor null (a damaged or unknown payload) counts as a refusal, never as "not asked"."""
        d = data if isinstance(data, Mapping) else {}
        if not isinstance(data, Mapping) and data not in (None, ""):
            return cls(False, False, False)

        def one(k: str) -> bool | None:
            v = d.get(k)
            return v if v is None or isinstance(v, bool) else False
        return cls(*(one(k) for k in CONSENT_KEYS))

    @classmethod
    def strictest(cls, many: Iterable[Consents]) -> Consents:
        """One person registered more than once (moved between shelters): any refusal wins, else
        any consent, else "not asked"."""
        many = list(many)

        def one(k: str) -> bool | None:
            vals = [getattr(c, k) for c in many]
            return False if False in vals else (True if True in vals else None)
        return cls(*(one(k) for k in CONSENT_KEYS))


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


def answer_for(kind: str, relationship: str, consents: Consents | None) -> tuple[str, tuple[int, ...]]:
    """(real outcome, items to read out) for what the search found (`decide`'s kind)."""
    if kind == "one" and consents is not None:
        ans = disclosable_items(relationship, consents, False)
        return ans.outcome, ans.items
    disclosable_items(relationship, Consents(), True)  # the same validation path as an answer
    return {"restricted": "restricted", "ambiguous": "ambiguous"}.get(kind, "not_found"), ()


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


def birth_text(day: date | None, raw: str) -> str:
    """③ as said aloud: the full date when one is known, else what was typed (昭和45年頃 …)."""
    if day is not None:
        return f"{day.year}年{day.month}月{day.day}日"
    return (raw or "").strip()


def location_text(status: str, shelter: str, where: str, destination: str) -> str:
    """⑩: the shelter (and the place inside it) while there; where to, once left or moved."""
    shelter, where, dest = (shelter or "").strip(), (where or "").strip(), (destination or "").strip()
    if status in ("in_shelter", "", None):
        return f"{shelter}（{where}）" if where else shelter
    if status == "transferred":
        return f"{dest}へ移動（{shelter}から）" if dest else f"{shelter}から移動"
    return f"{shelter}を退所（行き先: {dest}）" if dest else f"{shelter}を退所"


@dataclass(frozen=True)
class ItemSource:
    """What one registration says, as text, whichever table it came from."""

    name: str = ""
    kana: str = ""
    birth: str = ""  # birth_text(…)
    sex: str = ""  # M | F | ""
    address: str = ""
    nationality: str = ""
    identifying_info: str = ""
    injury: str = ""
    injury_state: str = ""
    location: str = ""  # location_text(…)
    contact: str = ""


def item_values(src: ItemSource) -> dict[int, str]:
    """Every 様式第1号 item ① … ⑪ as the desk would say it ("" when not recorded).

    ⑧ says only whether an injury or illness was declared (the details are ⑨, which
    acquaintances must not hear).
    """
    injury, state = (src.injury or "").strip(), (src.injury_state or "").strip()
    return {
        1: (src.name or "").strip(),
        2: (src.kana or "").strip(),
        3: (src.birth or "").strip(),
        4: SEX_JA.get(src.sex or "", ""),
        5: (src.address or "").strip(),
        6: (src.nationality or "").strip(),
        7: (src.identifying_info or "").strip(),
        8: "該当する（負傷・疾病あり）" if injury or state else "申告なし",
        9: "、".join(x for x in (injury, state) if x),
        10: (src.location or "").strip(),
        11: (src.contact or "").strip(),
    }


def disclosed_items(values: Mapping[int, str], items: Iterable[int]) -> list[dict[str, Any]]:
    return [{"no": n, "label": ITEMS[n], "value": values[n] or NOT_RECORDED} for n in items]


# --- finding the person asked about ---------------------------------------------------------

def name_keys(*texts: str) -> dict[str, set[str]]:
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


def name_key_pairs(names: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """`name_keys`' result as (script, key) pairs: what an index of names is keyed by.

    `name_agrees` needs at least one script whose keys intersect, so a record whose pairs share
    none with the asked name's pairs can never agree: looking the asked pairs up in an index finds
    every record that might (a superset; `fit` then decides as before)."""
    return {(kind, k) for kind, keys in names.items() for k in keys}


def name_agrees(asked: dict[str, set[str]], theirs: dict[str, set[str]]) -> bool:
    """At least one script agrees and no script given on both sides disagrees."""
    shared = [k for k in asked if k in theirs]
    return bool(shared) and all(asked[k] & theirs[k] for k in shared)


@dataclass(frozen=True)
class PersonFacts:
    """What a registration says that can identify its person."""

    names: dict[str, set[str]]
    birth_day: date | None = None  # a full date of birth, when one was given
    year_range: tuple[int, int] | None = None  # years of birth the record allows
    address: str = ""


def facts_from_birth(names: dict[str, set[str]], address: str, *, day: date | None = None, raw: str = "",
                     year_min: int | None = None, year_max: int | None = None,
                     today: date | None = None) -> PersonFacts:
    """PersonFacts from a full date, or else a year range, or else the date as typed (和暦, 78歳 …).

    `today` is the day the date was typed (the registration's date): an age ("36歳") or a two-digit
    era year means something only against that day. Read against the day of the inquiry, an age typed
    months ago misses the birth year after a birthday and the person is wrongly "not found"."""
    if day is None and year_min is None and raw.strip():
        try:
            pd = parse_date(raw, today=today)
        except DateError:
            pd = None
        if pd is not None and pd.kind == "day" and pd.value is not None:
            day = pd.value
        elif pd is not None and pd.year_min is not None and pd.year_max is not None:
            year_min, year_max = pd.year_min, pd.year_max
    years = (day.year, day.year) if day is not None else (
        (year_min, year_max) if year_min is not None and year_max is not None else None)
    return PersonFacts(names, day, years, address or "")


Relation = Literal["agree", "differ", "none"]


def birth_relation(pd: ParsedDate | None, f: PersonFacts) -> Relation:
    """Does the date of birth given agree with the record (both must say something)?"""
    if pd is None or pd.kind in ("empty", "unknown"):
        return "none"
    if pd.kind == "day" and pd.value is not None:
        if f.birth_day is not None:
            return "agree" if f.birth_day in (pd.value, *pd.alternatives) else "differ"
        if f.year_range is None:
            return "none"
        return "agree" if f.year_range[0] <= pd.value.year <= f.year_range[1] else "differ"
    if f.year_range is None or pd.year_min is None or pd.year_max is None:
        return "none"
    return "agree" if pd.year_min <= f.year_range[1] and f.year_range[0] <= pd.year_max else "differ"


def address_relation(asked_town: str | None, f: PersonFacts) -> Relation:
    theirs = town_key(f.address)
    if not asked_town or not theirs:
        return "none"
    if town_keys_compatible(asked_town, theirs):
        return "agree"
    # people asking often name only the 大字 (高田町) of a 字 address (高田町館ノ沖): that agrees too
    short, long_ = sorted((asked_town, theirs), key=len)
    return "agree" if len(short) >= 2 and long_.startswith(short) else "differ"


@dataclass(frozen=True)
class Asked:
    """The person asked about, as comparable keys."""

    names: dict[str, set[str]]
    birth: ParsedDate | None
    town: str | None


def parse_asked(name: str, kana: str = "", birth: str = "", address: str = "") -> Asked:
    pd: ParsedDate | None = None
    if birth.strip():
        try:
            pd = parse_date(birth)
        except DateError as exc:
            raise InvalidInput(f"cannot read date of birth {birth!r}: {exc}", "生年月日を読み取れません: 例 S45.3.1",
                               "sought_birth") from exc
    return Asked(name_keys(name, kana), pd, town_key(address) if address.strip() else None)


def resident_facts(*, family: str, given: str, family_kana: str = "", given_kana: str = "", alpha: str = "",
                   birth_day: date | None = None, birth_raw: str = "", address: str = "",
                   as_of: date | None = None, gaiji: Mapping[str, str] | None = None) -> PersonFacts:
    """PersonFacts of a registry record (住民基本台帳): its kanji name (gaiji resolved with the
    municipality's map), its reading, its 英字氏名, its date of birth and its address.

    Used as *further evidence* for an evacuee the laptop or the hub linked to this resident (see
    `fit`): the roster often has the name in kana, romaji or another kanji, or no date of birth, while
    the registry has all of them."""
    kanji = f"{family} {given}".strip()
    if gaiji:
        kanji = apply_gaiji(kanji, gaiji)
    names = name_keys(kanji, f"{family_kana} {given_kana}".strip(), alpha)
    return facts_from_birth(names, address, day=birth_day, raw="" if birth_day else birth_raw, today=as_of)


def _either(relations: Iterable[Relation]) -> Relation:
    """One detail against several sources about the same person: it agrees when any source agrees;
    it contradicts only when some source contradicts it and none agrees; else nothing is said."""
    seen = set(relations)
    return "agree" if "agree" in seen else ("differ" if "differ" in seen else "none")


def fit(asked: Asked, f: PersonFacts, linked: Sequence[PersonFacts] = ()) -> Literal["strong", "weak"] | None:
    """"strong": the name agrees, nothing contradicts and birth or address positively agrees;
    "weak": the name agrees and nothing contradicts, but nothing confirms; None: not this person.

    `linked` are the registry facts of the resident the evacuee was linked to (an auto / confirmed
    match decision; at the hub an active person link): further evidence about the same person. The
    name agrees when it agrees with the registration as typed *or* with the linked record; a date of
    birth or an address agrees when it agrees with either; a detail rules the person out when it
    contradicts every source that records it (typed 1980 and registry 1970: asked 1970 still agrees,
    asked 1990 rules out). The link is a decision someone (or the engine, confidently) made, so its
    record is the same person's; an evacuee with no link is judged on what was typed only."""
    sources = (f, *linked)
    if not any(name_agrees(asked.names, s.names) for s in sources):
        return None
    b = _either(birth_relation(asked.birth, s) for s in sources)
    a = _either(address_relation(asked.town, s) for s in sources)
    if "differ" in (b, a):
        return None
    return "strong" if "agree" in (b, a) else "weak"


Kind = Literal["one", "none", "restricted", "ambiguous"]


def decide(strong: Sequence[str], weak: Sequence[str], flagged: set[str]) -> tuple[Kind, str | None, list[str]]:
    """(kind, the one person meant or None, the restricted ones among those considered).

    Whether to ask for more detail is decided on unprotected people only, so the prompt reveals
    nothing about a protected one; if a protected person could be the one meant, nothing is said.
    """
    everyone = [*strong, *weak]
    open_strong = [x for x in strong if x not in flagged]
    open_weak = [x for x in weak if x not in flagged]
    restricted = [x for x in everyone if x in flagged]
    if len(open_strong) == 1:
        if restricted:
            return "restricted", None, restricted
        return "one", open_strong[0], restricted
    if open_strong or open_weak:
        return "ambiguous", None, restricted
    if restricted:
        return "restricted", None, restricted
    return "none", None, restricted


# --- the desk form --------------------------------------------------------------------------

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

    def sought(self) -> dict[str, str]:
        return {"name": self.sought_name, "kana": self.sought_kana, "birth": self.sought_birth,
                "address": self.sought_address}


def request_errors(req: InquiryRequest) -> dict[str, tuple[str, str]]:
    """(English, Japanese) messages keyed by field name; empty when the request can be answered."""
    r = req.stripped()
    errors: dict[str, tuple[str, str]] = {}
    for k, v in r.__dict__.items():
        if isinstance(v, str) and len(v) > MAX_LEN:
            errors[k] = (f"{k} is longer than {MAX_LEN} characters", f"{MAX_LEN}文字以内で入力してください")
    if not r.inquirer_name:
        errors.setdefault("inquirer_name", ("the inquirer's name is required", "照会者の氏名を入力してください"))
    if not r.inquirer_address:
        errors.setdefault("inquirer_address", ("the inquirer's address is required", "照会者の住所を入力してください"))
    if r.id_proof not in ID_PROOFS:
        errors.setdefault("id_proof", (f"id_proof must be one of {' / '.join(ID_PROOFS)}",
                                       "本人確認に使った書類を選んでください"))
    elif r.id_proof == "その他" and not r.id_proof_note:
        errors.setdefault("id_proof_note", ("name the document checked (id_proof_note)",
                                            "確認した書類の名前を入力してください"))
    if r.relationship not in RELATIONSHIPS:
        errors.setdefault("relationship", (f"relationship must be one of {' / '.join(RELATIONSHIPS)}",
                                           "お尋ねの方と照会者との関係を選んでください"))
    if not r.sought_name and not r.sought_kana:
        errors.setdefault("sought_name", ("the name (or kana) of the person asked about is required",
                                          "お尋ねの方の氏名かフリガナを入力してください"))
    birth_known = False
    if r.sought_birth:
        try:
            birth_known = parse_date(r.sought_birth).kind not in ("unknown", "empty")
        except DateError:
            errors.setdefault("sought_birth", (f"cannot read the date of birth {r.sought_birth!r}",
                                               "生年月日を読み取れません: 例 S45.3.1 / 1970-3-1 / 78歳"))
            birth_known = True  # the message above is the one to show
    if not birth_known and not r.sought_address:
        errors.setdefault("sought_birth", ("give the date of birth or the address of the person asked about, "
                                           "so the wrong person is not answered about",
                                           "人違いを防ぐため、生年月日か住所のどちらかを伺ってください"))
    return errors


def check_request(req: InquiryRequest) -> dict[str, str]:
    """Japanese messages keyed by field name (for the desk screen); empty when answerable."""
    return {k: ja for k, (_en, ja) in request_errors(req).items()}


def require_valid(req: InquiryRequest) -> InquiryRequest:
    """The stripped request, or InvalidInput naming the first bad field (English and Japanese)."""
    errors = request_errors(req)
    if errors:
        fld, (en, ja) = next(iter(errors.items()))
        raise InvalidInput(f"{fld}: {en}", ja, fld)
    return req.stripped()


def log_detail(*, inquiry_id: str | None, r: InquiryRequest, outcome: str, evacuee_id: str | None,
               items: list[dict[str, Any]], candidates: Sequence[str], restricted: Sequence[str]) -> dict[str, Any]:
    """The audit entry of an answered inquiry: one shape for every outcome, at the shelter and the hub
    (auditors filter on `outcome`; nobody at the desk sees it)."""
    return {"inquiry_id": inquiry_id, "relationship": r.relationship, "outcome": outcome, "evacuee_id": evacuee_id,
            "items": [i["no"] for i in items], "sought": r.sought(), "candidates": len(candidates),
            "restricted": list(restricted)}


def search_detail(r: InquiryRequest, candidates: Sequence[str], restricted: Sequence[str]) -> dict[str, Any]:
    """The audit entry of a search that made the desk ask for more detail (nothing was answered)."""
    return {"relationship": r.relationship, "outcome": "ambiguous", "sought": r.sought(),
            "candidates": len(candidates), "restricted": list(restricted)}
