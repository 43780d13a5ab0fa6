"""Judging one typed roster row: which cells can be read, what to flag, and who the person is.

Why a module of its own: `app.services.roster` moves rows into the database in chunks; the
decisions about a single row (is this date readable, is this consent a yes, is this the same
person as someone already registered) are pure functions, tested on their own and shared by
the intake form and the file import.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.services.errors import InvalidInput
from matching.dates import DateError, parse_date
from matching.kana import strict_key, to_katakana
from matching.kanji import variant_key
from matching.names import script_of, split_full_name
from matching.person import parse_sex

KNOWN_SEX = frozenset({"", "不明", "不詳", "?", "？"})
CONSENT_FIELDS = ("consent_relatives", "consent_acquaintances", "consent_public")
# 様式第1号 item of each consent column, for the staff's flag text
CONSENT_ITEM = {"consent_relatives": "⑫親族・同居者への回答", "consent_acquaintances": "⑬知人への回答",
                "consent_public": "⑭公表"}
_CONSENT_YES = frozenset({"同意", "同意する", "はい", "1", "○", "〇", "◯", "yes", "y", "true", "可", "有"})
_CONSENT_NO = frozenset({"不同意", "同意しない", "いいえ", "0", "×", "✕", "✖", "x", "no", "n", "false", "不可", "否"})


@dataclass
class CellFlag:
    """One cell that could not be read; the value is stored exactly as typed beside it."""

    field: str  # roster field (EvacueeInput attribute)
    value: str
    reason: str  # English
    reason_ja: str


def parse_consent(text: str) -> tuple[bool | None, bool]:
    """(consent, readable). Empty means not asked (None, readable); an unknown word is None too,
    which the disclosure rules treat as 未確認, and the caller flags it."""
    key = unicodedata.normalize("NFKC", text).strip().lower()
    if not key:
        return None, True
    if key in _CONSENT_YES or text.strip() in _CONSENT_YES:
        return True, True
    if key in _CONSENT_NO or text.strip() in _CONSENT_NO:
        return False, True
    return None, False


_MONTH = re.compile(r"month (\d+) is not valid")
_DAY = re.compile(r"day (\d+) is not valid")


def date_reason_ja(message: str) -> str:
    """The DateError in the words a volunteer would use (「13月はありません」)."""
    if m := _MONTH.search(message):
        return f"{m.group(1)}月はありません"
    if m := _DAY.search(message):
        return f"{m.group(1)}日はその月にありません"
    if "age" in message:
        return "年齢として読めません"
    if "era" in message or "year" in message:
        return "年（元号の年）が読めません"
    return "生年月日として読めません"


def lenient_birth(text: str, today: date) -> tuple[dict[str, Any], CellFlag | None]:
    """Parsed birth columns; an unreadable or future date is kept only as typed (kind unknown)."""
    unknown = {"birth_date": None, "birth_kind": "unknown", "birth_year_min": None, "birth_year_max": None}
    try:
        pd = parse_date(text, today=today)
    except DateError as exc:
        return unknown, CellFlag("birth_date", text, f"cannot read date of birth {text!r}: {exc}",
                                 f"{date_reason_ja(str(exc))}（入力のまま保存しました）")
    if pd.value is not None and pd.value > today:
        return unknown, CellFlag("birth_date", text, f"date of birth {text!r} is in the future",
                                 "生年月日が未来の日付です（入力のまま保存しました）")
    return {"birth_date": pd.value, "birth_kind": pd.kind, "birth_year_min": pd.year_min,
            "birth_year_max": pd.year_max}, None


def lenient_sex(text: str) -> tuple[str, CellFlag | None]:
    sex = parse_sex(text)
    if not sex and text.strip() not in KNOWN_SEX:
        return "", CellFlag("sex", text, f"unknown sex {text!r} (男/女, M/F, 1/2)",
                            "性別を読み取れません（男・女のどちらか確認してください）")
    return sex, None


def consent_flags(values: dict[str, str]) -> tuple[dict[str, bool | None], list[CellFlag]]:
    """The three consents (⑫ ⑬ ⑭) from their typed cells, and a flag for each unreadable one."""
    out: dict[str, bool | None] = {}
    flags: list[CellFlag] = []
    for fld in CONSENT_FIELDS:
        typed = values.get(fld, "")
        value, readable = parse_consent(typed)
        out[fld] = value
        if not readable:
            flags.append(CellFlag(fld, typed, f"consent {typed!r} is not one of 同意/不同意/はい/いいえ/1/0/○/×",
                                  f"{CONSENT_ITEM[fld]}の同意が読めません（未確認として登録しました）"))
    return out, flags


# --- the same person -----------------------------------------------------------------------------

def birth_key(parsed: date | None) -> str:
    """What two registrations must share to be one person: the day of birth. Ages, years, empty
    and unreadable cells are too vague (three rows of 山田 太郎 with a garbled date may be three
    people), so those rows are never merged by person."""
    return parsed.isoformat() if parsed is not None else ""


def name_keys(name: str, kana: str) -> set[str]:
    """Normalised forms of a typed name and reading (old kanji folded, kana in one script, no
    spaces, romaji tokens in any order), so 髙橋 一郎 / 高橋一郎 and たかはし / ﾀｶﾊｼ agree."""
    keys: set[str] = set()
    name = name.strip()
    if name:
        script = script_of(name)
        if script == "latin":
            toks = sorted(t.lower() for pair in split_full_name(name)[:1] for t in pair if t)
            if toks:
                keys.add("a:" + " ".join(toks))
        elif script == "kana":
            keys.add("k:" + strict_key(to_katakana(name)))
        else:
            keys.add("n:" + variant_key(name))
    if kana.strip():
        keys.add("k:" + strict_key(to_katakana(kana.strip())))
    return {k for k in keys if len(k) > 2}


def person_keys(name: str, kana: str, birth: date | None) -> set[str]:
    """Keys under which two rows are the same person (none without a day of birth)."""
    b = birth_key(birth)
    if not b:
        return set()
    return {f"{k}|{b}" for k in name_keys(name, kana)}


#: the longest value each typed field may hold (a 200-character name broke the roster table)
MAX_LENGTH: dict[str, int] = {
    "name": 60, "name_kana": 60, "birth_date": 20, "sex": 10, "address": 120, "phone": 40, "contact": 60,
    "relationship": 20, "nationality": 30, "identifying_info": 200, "injury": 100, "injury_state": 100,
    "current_location": 60, "pets": 60, "allergy_detail": 100,
}
FIELD_LABEL_JA = {"name": "氏名", "name_kana": "フリガナ", "birth_date": "生年月日", "sex": "性別", "address": "住所",
                  "phone": "電話番号", "contact": "連絡先", "relationship": "続柄", "nationality": "国籍",
                  "identifying_info": "その他の識別情報", "injury": "負傷・疾病", "injury_state": "負傷・疾病の状況",
                  "current_location": "現在の居所", "pets": "ペット", "allergy_detail": "アレルギーの内容"}


def too_long(values: dict[str, Any]) -> dict[str, str]:
    """Field → Japanese message for every value longer than MAX_LENGTH allows."""
    out = {}
    for k, limit in MAX_LENGTH.items():
        v = values.get(k)
        if isinstance(v, str) and len(v.strip()) > limit:
            out[k] = f"{FIELD_LABEL_JA[k]}は{limit}文字以内で入力してください（いま{len(v.strip())}文字）"
    return out


def check_lengths(values: dict[str, Any]) -> None:
    """Raise InvalidInput naming the first field that is too long."""
    bad = too_long(values)
    if bad:
        k = next(iter(bad))
        raise InvalidInput(f"{k} is longer than {MAX_LENGTH[k]} characters", bad[k], k)
