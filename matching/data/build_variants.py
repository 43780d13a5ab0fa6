"""Build ``matching/data/variants_data.py``: the kanji variant (異体字) folding table.

Run from the repository root::

    python -m matching.data.build_variants          # rewrite the generated module
    python -m matching.data.build_variants --check  # exit 1 if the module is out of date
    python -m matching.data.build_variants --review # print every fold between two JIS X 0208 kanji

Source: the IPA MJ shrink map (MJ縮退マップ, 文字情報技術促進協議会, CC BY-SA 2.1 JP) as shipped in
``jntajis-python`` (``jntajis.mj_shrink_candidates``).  We use three of its four schemes:

* ``JIS_INCORPORATION_UCS_UNIFICATION_RULE`` (JIS包摂規準・UCS統合規則),
* ``MOJ_NOTICE_582`` (法務省告示582号別表第四: the 住基ネット 統一文字 reduction),
* ``MOJ_FAMILY_REGISTER_ACT_RELATED_NOTICE`` (法務省戸籍法関連通達・通知: 旧字/俗字 → 正字/通用字体).

``INFERENCE_BY_READING_AND_GLYPH`` (読み・字形による類推) is left out: it is a heuristic, and a
false kanji fold can mark the wrong person safe.

Why the table is generated and committed instead of built at import:

* scanning ~98,000 CJK code points through jntajis and ranking the targets costs ~0.3 s, which
  every process would pay;
* match decisions must be reproducible: a jntajis upgrade must not silently change which names
  fold, so a changed table shows up as a diff (and ``tests/matching`` checks it is current).

How a character's target is chosen (one target per character, so folding is a function):

1. Candidates come from the MJ map, minus :data:`DENY` (pairs of *different* characters that the
   map merges because one MJ glyph was once a miswritten form of the other: 玉→王, 書→昼, 着→著,
   師→帥, 功⇄切 …), plus :data:`EXTRA` (folds the map lacks, e.g. 斉→斎).
2. A candidate is only taken if it is at least as standard as the source: rank 0 JIS X 0208
   level 1, 1 level 2, 2 other JIS (CP932 vendor rows, JIS X 0213), 3 anything else.  This keeps
   the direction old form → new form (壽→寿, never 寿→壽, although the map lists both).
3. Among those, the best-ranked wins, ties going to the map's own order.
4. Chains are followed to the end (𠮟→叱…), and a cycle resolves to its most standard member
   (lowest rank, then lowest code point).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Code point ranges scanned: CJK Unified Ideographs with Extensions A–H, the compatibility blocks.
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2EBEF),
    (0x2EBF0, 0x2EE5F),
    (0x2F800, 0x2FA1F),
    (0x30000, 0x323AF),
)

#: Pairs (source, target) of the MJ map that fold two characters which are distinct in modern
#: use.  Most come from the 戸籍 誤字→正字 notices, where one MJ *glyph* of the source code point
#: was a miswriting of the target; at the level of Unicode text they would merge different names.
#: Reviewed by hand from ``--review`` output (every fold between two JIS X 0208 characters that
#: no second source — ja-itaiji or kyujipy — confirmed, plus a few that one did but are wrong for
#: names).
DENY: frozenset[tuple[str, str]] = frozenset(
    (a, b)
    for a, bs in {
        "玉": "王", "書": "昼晝", "着": "著", "師": "帥", "切": "功", "功": "切", "宍": "肉",
        "槁": "橋", "孩": "咳", "擱": "閣", "耒": "来", "个": "介", "傅": "傳伝", "誥": "詰",
        "逑": "述", "臙": "咽", "碚": "培", "唔": "吾", "兀": "尢", "尢": "尤", "慟": "恫",
        "燗": "爛", "瑪": "碼", "皀": "香", "舛": "升", "羝": "牴", "昜": "易", "敞": "敝",
        "攵": "文攴", "夂": "終", "剌": "刺", "亟": "丞", "乢": "蓋", "嚠": "瀏", "墸": "躇",
        "娚": "嫐嬲", "娼": "倡", "尓": "示", "屓": "負", "慱": "博", "抂": "狂", "楜": "胡",
        "樮": "橘", "穃": "榕", "鈩": "爐炉鑪", "冫": "冰", "勹": "包", "哥": "歌", "縲": "累",
        "揀": "柬", "秡": "祓", "閧": "巷",
    }.items()
    for b in bs
)

#: Folds the MJ map lacks or gives only in the less standard direction.  Each is a pair of
#: characters that registries and people use interchangeably *in names*.
EXTRA: tuple[tuple[str, str], ...] = (
    # 齋/齊/斎/斉: さいとう is written with all four; municipal systems treat them as variants.
    # (斉 "uniform" and 斎 "purification" are different words, but not different surnames.)
    ("斉", "斎"),
    ("齊", "斎"),
    ("齋", "斎"),
    # 尓 is a variant of 爾 (the map's other candidate, 示, is denied above).
    ("尓", "爾"),
    # 旧字体 → 新字体 pairs of the Jōyō / Jinmeiyō lists and the 2004 表外漢字字体表 forms that the
    # MJ map does not fold (cross-checked against kyujipy 0.6.8's kyujitai lists; its 書き換え
    # lists, such as 棲→栖 or 煉→錬, are word substitutions, not variants, and are not used).
    ("鬥", "闘"), ("亙", "亘"), ("凜", "凛"), ("晄", "晃"), ("麵", "麺"), ("麪", "麺"),
    ("籠", "篭"), ("堯", "尭"), ("巖", "巌"), ("摑", "掴"), ("檜", "桧"), ("禱", "祷"),
    ("穰", "穣"), ("簞", "箪"), ("遙", "遥"), ("啞", "唖"), ("噓", "嘘"), ("鷗", "鴎"),
    ("軀", "躯"), ("鶯", "鴬"), ("攪", "撹"), ("麴", "麹"), ("鹼", "鹸"), ("嚙", "噛"),
    ("繡", "繍"), ("蔣", "蒋"), ("醬", "醤"), ("搔", "掻"), ("屛", "屏"), ("幷", "并"),
    ("蠟", "蝋"), ("焰", "焔"), ("顚", "顛"), ("巔", "巓"), ("醱", "醗"), ("潑", "溌"),
    ("繫", "繋"), ("瀆", "涜"), ("儘", "侭"), ("藪", "薮"), ("蠅", "蝿"), ("驒", "騨"),
)


def rank(ch: str) -> int:
    """How standard a character is: 0 JIS level 1, 1 JIS level 2, 2 other JIS, 3 none."""
    try:
        b = ch.encode("cp932")
    except UnicodeEncodeError:
        try:
            ch.encode("euc_jis_2004")
        except UnicodeEncodeError:
            return 3
        return 2
    if len(b) != 2:
        return 3
    code = (b[0] << 8) | b[1]
    if 0x889F <= code <= 0x9872:
        return 0
    if 0x989F <= code <= 0xEAA4:
        return 1
    return 2  # NEC / IBM extension rows


def _candidates() -> dict[str, list[str]]:
    import jntajis

    combo = (
        jntajis.MJShrinkSchemeCombo.JIS_INCORPORATION_UCS_UNIFICATION_RULE
        | jntajis.MJShrinkSchemeCombo.MOJ_NOTICE_582
        | jntajis.MJShrinkSchemeCombo.MOJ_FAMILY_REGISTER_ACT_RELATED_NOTICE
    )
    out: dict[str, list[str]] = {}
    for lo, hi in CJK_RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            cands = [
                t
                for t in jntajis.mj_shrink_candidates(ch, combo, 20)
                if len(t) == 1 and t != ch and (ch, t) not in DENY
            ]
            if cands:
                out[ch] = cands
    for a, b in EXTRA:
        out[a] = [b] + [c for c in out.get(a, []) if c != b]
    return out


def build() -> dict[str, str]:
    """Return the final single-character fold table {source: representative}."""
    cands = _candidates()
    extra = dict(EXTRA)
    step: dict[str, str] = {}
    for ch, ts in cands.items():
        if ch in extra:
            step[ch] = extra[ch]
            continue
        r = rank(ch)
        allowed = [(rank(t), i, t) for i, t in enumerate(ts) if rank(t) <= r]
        if allowed:
            step[ch] = min(allowed)[2]

    def resolve(ch: str) -> str:
        seen: list[str] = [ch]
        cur = ch
        while cur in step:
            cur = step[cur]
            if cur in seen:  # cycle: choose its most standard member
                cyc = seen[seen.index(cur):]
                return min(cyc, key=lambda c: (rank(c), ord(c)))
            seen.append(cur)
        return cur

    table: dict[str, str] = {}
    for ch in step:
        rep = resolve(ch)
        if rep != ch:
            table[ch] = rep
    # The representative of a cycle must itself be a fixed point.
    for ch in list(table):
        rep = table[ch]
        while rep in table and table[rep] != rep:
            rep = table[rep]
        table[ch] = rep
    return {k: v for k, v in table.items() if k != v}


def render(table: dict[str, str]) -> str:
    import jntajis

    pairs = "".join(k + v for k, v in sorted(table.items(), key=lambda kv: ord(kv[0])))
    lines = [pairs[i : i + 64] for i in range(0, len(pairs), 64)]
    body = "\n".join(f'    "{line}"' for line in lines)
    return (
        '"""GENERATED by matching/data/build_variants.py — do not edit; edit DENY/EXTRA there.\n\n'
        "Kanji variant fold table: concatenated (source, representative) character pairs.\n"
        f"Derived from the MJ縮退マップ (IPA / 文字情報技術促進協議会, CC BY-SA 2.1 JP) via\n"
        f"jntajis-python {jntajis.__version__}.  {len(table)} pairs.\n"
        '"""\n\n'
        f"JNTAJIS_VERSION = {jntajis.__version__!r}\n"
        f"PAIR_COUNT = {len(table)}\n\n"
        f"PAIRS = (\n{body}\n)\n"
    )


OUT = Path(__file__).with_name("variants_data.py")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the generated module is stale")
    ap.add_argument("--review", action="store_true", help="print folds between two JIS X 0208 kanji")
    args = ap.parse_args(argv)
    table = build()
    if args.review:
        for k, v in sorted(table.items(), key=lambda kv: ord(kv[0])):
            if rank(k) <= 1 and rank(v) <= 1:
                print(f"{k}→{v}", end=" ")
        print()
        return 0
    text = render(table)
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print("matching/data/variants_data.py is out of date", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(table)} pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
