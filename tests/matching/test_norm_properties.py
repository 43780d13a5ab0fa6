"""Property tests: normalisers never raise on arbitrary Unicode and are idempotent."""

from __future__ import annotations

import os
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching.address import normalize_address, town_key
from matching.dates import DateError, parse_date
from matching.kana import (
    devoiced_key,
    is_kana,
    join_loose,
    loose_key,
    pre_skeleton,
    strict_key,
    to_katakana,
)
from matching.kanji import exact_key, variant_key
from matching.names import script_of, split_full_name
from matching.person import query_keys, registry_keys
from matching.romaji import (
    _skeleton_from_strict_reference,
    alpha_token_similarity,
    alpha_tokens,
    kana_to_skeleton,
    romaji_skeleton,
    skeleton_from_strict,
)
from matching.text import clean

# MATCHING_HYPOTHESIS_EXAMPLES=5000 for a deeper run; the default keeps the suite fast.
SETTINGS = settings(
    max_examples=int(os.environ.get("MATCHING_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Characters that exercise the interesting paths, mixed into arbitrary Unicode.
JAPANESE = (
    "あいうえおかがきぎくぐけげこごさざしじすずせぜそぞただちぢつづってでとどなにぬねのはばぱひびぴふぶぷへべぺほぼぽ"
    "まみむめもゃやゅゆょよらりるれろゎわゐゑをんゔゝゞ"
    "アイウエオァィゥェォカガキギクグケゲコゴサザシジスズセゼソゾタダチヂツヅッテデトドナニヌネノハバパヒビピ"
    "フブプヘベペホボポマミムメモャヤュユョヨラリルレロヮワヰヱヲンヴヵヶヷヸヹヺー・ヽヾ"
    "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝﾞﾟｰｯｬｭｮ゛゜\u3099\u309a"
    "髙﨑嵜邉邊齋齊斎斉澤濱濵廣德𠮷國櫻眞惠壽龍高崎辺沢浜広徳吉国桜真恵寿竜佐々木之の乃ノヶケが霞関〓々〻"
    "\ue000\ue123\uf8ff\U000f0001\ufe00\U000e0100\u200b\ufeff\u3000 \t\n"
    "一二三四五六七八九十百千〇元年月日歳才丁目番地号第地割字大町村市区郡県都道府の-−ー－/."
    "0123456789０１２３４５６７８９SHTRMshtrm明大昭平令和成正治㍼㍻"
    "AEIOUKSTNHMYRWGZDBPJCFVLQXaeioukstnhmyrwgzdbpjcfvlqxŌōÔôŪū' ,"
)
texts = st.one_of(st.text(), st.text(alphabet=JAPANESE, max_size=24))
katakana = st.text(
    alphabet="アイウエオァィゥェォカガキクケコサシスセソタチツッテトナニヌネノハバパヒフヘホマミムメモャヤュユョヨラリルレロワヲンヴヵヶー",
    max_size=12,
)
romaji_text = st.text(alphabet="AEIOUKSTNHMYRWGZDBPJCFVLQXaeioukhstnmyŌōÔôŪū' -", max_size=20)


@SETTINGS
@given(texts)
def test_text_and_kanji_keys(s: str) -> None:
    c = clean(s)
    assert clean(c) == c
    e = exact_key(s)
    assert exact_key(e) == e
    v = variant_key(s)
    assert variant_key(v) == v
    assert variant_key(e) == v


@SETTINGS
@given(texts)
def test_kana_keys(s: str) -> None:
    k = to_katakana(s)
    assert to_katakana(k) == k
    st_ = strict_key(s)
    assert strict_key(st_) == st_
    lo = loose_key(s)
    assert loose_key(lo) == lo
    assert loose_key(st_) == lo
    dv = devoiced_key(s)
    assert devoiced_key(dv) == dv
    is_kana(s)


@SETTINGS
@given(texts)
def test_romaji_and_alpha(s: str) -> None:
    r = romaji_skeleton(s)
    assert romaji_skeleton(r) == r
    assert r == "" or r.isascii() and r.isupper() and r.isalpha()
    k = kana_to_skeleton(s)
    assert romaji_skeleton(k) == k
    toks = alpha_tokens(s)
    assert all(t.isascii() and t == t.upper() for t in toks)
    alpha_token_similarity(s, s[::-1])


@SETTINGS
@given(romaji_text)
def test_romaji_skeleton_idempotent_on_latin(s: str) -> None:
    r = romaji_skeleton(s)
    assert romaji_skeleton(r) == r


@SETTINGS
@given(katakana, katakana)
def test_fast_paths_equal_reference(a: str, b: str) -> None:
    k = strict_key(a + b)
    assert skeleton_from_strict(k) == _skeleton_from_strict_reference(k)
    assert join_loose(loose_key(a), loose_key(b)) == loose_key(a + b)
    assert join_loose(pre_skeleton(strict_key(a)), pre_skeleton(strict_key(b))) == pre_skeleton(k)


@SETTINGS
@given(texts)
def test_address(s: str) -> None:
    n = normalize_address(s)
    assert normalize_address(n) == n
    t = town_key.__wrapped__(s)
    assert t is None or (isinstance(t, str) and t)


@SETTINGS
@given(texts)
def test_names(s: str) -> None:
    assert script_of(s) in ("kanji", "kana", "latin", "mixed", "empty")
    for f, g in split_full_name(s):
        assert isinstance(f, str) and isinstance(g, str)


@SETTINGS
@given(
    st.one_of(
        st.none(),
        texts,
        st.from_regex(r"[SHRTM明大昭平令]?\d{1,4}[./年-]\d{1,2}[./月-]\d{1,2}日?", fullmatch=True),
    )
)
def test_parse_date_raises_only_date_error(s: str | None) -> None:
    try:
        pd = parse_date(s, today=date(2025, 6, 1))
    except DateError as exc:
        assert str(exc)
        return
    assert pd.kind in ("day", "year", "age", "unknown", "empty")
    if pd.kind == "day":
        assert pd.value is not None and pd.year_min == pd.year_max == pd.value.year
    # parsing the ISO form of a day gives the same day back
    if pd.kind == "day" and pd.value is not None:
        assert parse_date(pd.value.isoformat()).value == pd.value


@SETTINGS
@given(texts, texts, texts, texts, texts, texts)
def test_person_keys_never_raise(a: str, b: str, c: str, d: str, e: str, f: str) -> None:
    registry_keys(a, b, c, d, e, None, f, a + c)
    q = query_keys(a, b, c, d, e, today=date(2025, 6, 1))
    assert q.birth.kind in ("day", "year", "age", "unknown", "empty")
