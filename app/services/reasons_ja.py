"""The engine's reasons (``family=exact variant 髙→高; birth=exact era-converted; town=same-address``)
as short Japanese phrases staff can read: 「氏が一致（異体字 髙→高）」「生年月日が一致（和暦から換算）」
「住所の番地まで一致」.

Why one module: the same reason string reaches the review queue, the intake candidates, a person's
page and 捜索依頼; if each screen translated on its own, one of them would show ``same-address``.
Every screen that shows a reason calls :func:`reason_parts` or :func:`reasons_text`. Anything we
do not recognise (a new engine reason, an evacuee id) is left out rather than shown in English:
the scores and the grade still tell staff how sure the engine is.
"""

from __future__ import annotations

import re
from typing import Any

FIELD_JA = {"family": "氏", "given": "名", "name": "氏名", "birth": "生年月日", "sex": "性別", "town": "住所",
            "alpha": "ローマ字氏名", "kana": "フリガナ", "kanji": "漢字", "address": "住所", "household": "家族"}
#: level → (short level, whether it speaks against the candidate)
_LEVEL: dict[str, tuple[str, bool]] = {
    "exact": ("一致", False), "agree": ("一致", False), "fuzzy": ("似ている", False),
    "different": ("違う", True), "reading": ("読みが一致", False), "devoiced": ("濁点の違いのみ", False),
    "romaji": ("ローマ字で一致", False), "romaji-fuzzy": ("ローマ字が似ている", False),
    "variant": ("入力違いの可能性", False), "kanji": ("漢字で一致", False), "kana": ("読みが一致", False),
    "alpha": ("英字氏名で一致", False),
}
_DATE_SLIP = {"day±1": "日が1日違い", "dm-swap": "月と日が逆", "year±1": "年が1年違い"}
_NOTE_WORD = {"variant": "異体字", "era-converted": "和暦から換算"}
#: whole reasons (or their start) that are not field=level pairs
_SENTENCES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^no candidate shares"), "台帳に候補なし"),
    (re.compile(r"^born after the registry snapshot"), "台帳の作成日より後の生年月日"),
    (re.compile(r"^not certain enough"), "確実とまでは言えない"),
    (re.compile(r"^contradicts:"), ""),  # the contradicting fields already read 「…が違う」
    (re.compile(r"^(runner-up )?p="), ""),
    (re.compile(r"^picked at intake by (.+)$"), "受付で職員が選択（{0}）"),
    (re.compile(r"^merged into \S+ by (.+)$"), "重複登録を統合（{0}）"),
    (re.compile(r"^(?:\S+: )?undo of \S+ by (.+)$"), "取り消し（{0}）"),
    (re.compile(r"^(?:confirmed|rejected|not_resident|review|\S+) by staff (.+)$"), "職員が判断（{0}）"),
    (re.compile(r"^by staff (.+)$"), "職員が判断（{0}）"),
    (re.compile(r"possible duplicate registration$"), "同じ住民に照合済みの方がいる（重複登録の可能性）"),
    (re.compile(r"^a candidate was rejected by staff"), "職員が候補を否定したため人が判断"),
    (re.compile(r"^both linked to resident"), "同じ住民に照合済み"),
    (re.compile(r"^linked at the host's shelter"), "受け入れ先の避難所で照合"),
]


def _level(field: str, level: str) -> tuple[str, bool]:
    """Short Japanese for one field's level, and whether it counts against the candidate."""
    if field == "town":
        return {"same-address": ("番地まで一致", False), "agree": ("町字が一致", False),
                "different": ("町字が違う", True)}.get(level, ("", False))
    if level in _LEVEL:
        return _LEVEL[level]
    m = re.fullmatch(r"variant\((.+)\)", level)
    if m:
        return "入力違いの可能性（" + _DATE_SLIP.get(m.group(1), "一部違い") + "）", False
    if level.endswith("-agrees"):
        return {"year": "生まれ年が一致", "age": "年齢が合う"}.get(level[:-7], "おおむね一致"), False
    if level.endswith("-different"):
        return {"year": "生まれ年が違う", "age": "年齢が合わない"}.get(level[:-10], "違う"), True
    m = re.fullmatch(r"same-household\((\d+) together\)", level)
    if m:
        return f"{m.group(1)}人で一緒に照合", False
    if "/" in level:  # e.g. exact/kanji-different, kanji-exact/kana-fuzzy
        kana_first = not level.startswith("kanji-")
        a, _, b = level.partition("/")
        a_ja = _LEVEL.get(a.removeprefix("kanji-").removeprefix("kana-"), ("違う", True))[0]
        b_ja = _LEVEL.get(b.removeprefix("kanji-").removeprefix("kana-"), ("違う", True))[0]
        kana_ja, kanji_ja = (a_ja, b_ja) if kana_first else (b_ja, a_ja)
        return f"読みは{kana_ja}・漢字は{kanji_ja}", False
    return "", False


def _phrase(field: str, level_ja: str) -> str:
    if field == "household":
        return "家族が" + level_ja
    if field == "town":
        return "住所の" + level_ja
    joiner = "の" if level_ja.startswith(("読み", "ローマ字が", "入力違い")) else "が"
    if level_ja.startswith(("生まれ年", "年齢")):
        return level_ja
    return FIELD_JA.get(field, "") + joiner + level_ja


def _note(note: str) -> str:
    words = [_NOTE_WORD.get(w, w) for w in note.split()]
    return " ".join(w for w in words if w and not re.search(r"[A-Za-z=]", w))


def _pair(part: str) -> dict[str, Any] | None:
    key, eq, rest = part.partition("=")
    if not eq or key not in FIELD_JA:
        return None
    level, _, note = rest.partition(" ")
    level_ja, bad = _level(key, level)
    if not level_ja:
        return None
    note_ja = _note(note)
    text = _phrase(key, level_ja) + (f"（{note_ja}）" if note_ja else "")
    return {"field": key, "field_ja": FIELD_JA[key], "level": level, "level_ja": level_ja, "note": note_ja,
            "bad": bad, "text": text}


def _sentence(part: str) -> dict[str, Any] | None:
    for pattern, ja in _SENTENCES:
        m = pattern.search(part)
        if m:
            if not ja:
                return None
            who = m.group(1) if m.groups() else ""
            text = ja.format(who)
            return {"field": "", "field_ja": "", "level": "", "level_ja": text, "note": "", "bad": False, "text": text}
    return None


def _split(reasons: str) -> list[str]:
    """Parts of a reason string; ``best candidate too weak (a; b)`` opens into its inner parts."""
    m = re.fullmatch(r"\s*best candidate too weak \((.*)\)\s*", reasons or "", re.S)
    if m:
        return ["__weak__", *_split(m.group(1))]
    return [p.strip() for p in (reasons or "").split(";") if p.strip()]


def reason_parts(reasons: str) -> list[dict[str, Any]]:
    """The reason string as rows: field_ja, level_ja, note, bad (speaks against) and text (one
    short phrase). Engine-internal numbers and unknown English are left out."""
    out: list[dict[str, Any]] = []
    for part in _split(reasons):
        if part == "__weak__":
            out.append({"field": "", "field_ja": "", "level": "", "level_ja": "一致する点が少ない", "note": "",
                        "bad": True, "text": "一致する点が少ない"})
            continue
        row = _pair(part) or _sentence(part)
        if row is not None and row["text"] not in {r["text"] for r in out}:
            out.append(row)
    return out


def reasons_text(reasons: str) -> str:
    """All phrases in one line, 「、」 between them (for tables and history rows)."""
    return "、".join(r["text"] for r in reason_parts(reasons))
