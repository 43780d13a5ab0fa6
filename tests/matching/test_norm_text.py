"""matching.text: NFKC, variation selectors, gaiji."""

from __future__ import annotations

import unicodedata

from matching.text import (
    GAIJI_WILDCARD,
    apply_gaiji,
    clean,
    gaiji_to_wildcard,
    has_gaiji,
    is_gaiji,
    nfkc,
    strip_variation_selectors,
)


def test_nfkc_keeps_the_kanji_variants_we_want_to_see() -> None:
    # U+FA11 﨑 sits in the compatibility block but is a unified ideograph: no decomposition.
    assert unicodedata.decomposition("\ufa11") == ""
    assert nfkc("山\ufa11") == "山\ufa11"
    # 髙 (U+9AD9) and 𠮷 (U+20BB7) are ordinary unified ideographs.
    assert nfkc("髙橋") == "髙橋"
    assert nfkc("𠮷田") == "𠮷田"


def test_nfkc_folds_canonical_compatibility_ideographs_and_widths() -> None:
    assert nfkc("\ufa19") == "\u795e"  # 神 compatibility → unified (canonically equivalent)
    assert nfkc("ＡＢＣ１２３") == "ABC123"
    assert nfkc("ｶﾞﾊﾟｳﾞ") == "ガパヴ"
    assert nfkc("㍼") == "昭和"
    assert nfkc("\u3000") == " "


def test_variation_selectors_are_stripped() -> None:
    assert strip_variation_selectors("葛\U000e0100城") == "葛城"
    assert strip_variation_selectors("辻\ufe00") == "辻"
    assert strip_variation_selectors("a\u200bb\ufeff") == "ab"
    assert strip_variation_selectors("高橋") == "高橋"
    assert clean("葛\U000e0101ＡＢ") == "葛AB"


def test_is_gaiji_ranges() -> None:
    assert is_gaiji("\ue000") and is_gaiji("\uf8ff")
    assert is_gaiji("\U000f0000") and is_gaiji("\U0010fffd")
    assert not is_gaiji("\udfff" if False else "高")
    assert not is_gaiji("\uf900")  # compatibility ideographs are not private use
    assert not is_gaiji("ab")
    assert has_gaiji("山\ue001") and not has_gaiji("山田") and not has_gaiji("")


def test_apply_gaiji_replaces_only_mapped_characters() -> None:
    m = {"\ue000": "𠮷", "U+E001": "髙"}
    assert apply_gaiji("\ue000田", m) == "𠮷田"
    assert apply_gaiji("\ue001橋", m) == "髙橋"  # U+XXXX notation from the gaiji CSV
    assert apply_gaiji("\ue002田", m) == "\ue002田"  # unmapped: kept
    raw = "\ue000田"
    apply_gaiji(raw, m)
    assert raw == "\ue000田"  # never mutates (str is immutable, but no hidden state either)
    assert apply_gaiji("山田", m) == "山田"
    assert apply_gaiji("\ue000", {}) == "\ue000"


def test_gaiji_to_wildcard() -> None:
    assert gaiji_to_wildcard("\ue123田") == GAIJI_WILDCARD + "田"
    assert gaiji_to_wildcard("〓田") == GAIJI_WILDCARD + "田"
    assert gaiji_to_wildcard("山田") == "山田"
