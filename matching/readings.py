"""Kanji → katakana readings, learned from the registry itself.

A name typed only in kanji (山田太郎, no ふりがな) must still be compared with the registry's kana.
Dictionary readings are poor for names (幸子 is さちこ, ゆきこ, こうこ …), but the registry holds
the answer for its own population: every row pairs kanji with kana.  :class:`ReadingModel`
counts, per kanji spelling (folded with :func:`~matching.kanji.variant_key`, so 髙橋 and 高橋 share
counts), which readings occur, and answers the most frequent first.  pykakasi is only the
fallback for spellings the registry does not have; it knows neither 髙 nor 﨑, which is why the
text is variant-folded before it is asked.  pykakasi takes about half a second to load, so it is
created on first use.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .kana import is_kana, strict_key
from .kanji import is_kanji_char, variant_key
from .text import GAIJI_WILDCARD

__all__ = ["ReadingModel"]


def _load_pykakasi() -> Any:
    """pykakasi's converter. Its dictionary is one large pickle: loaded with the cyclic garbage
    collector paused it takes a quarter of the time (measured: 0.24 s against 0.8 s)."""
    import pykakasi  # slow import and dictionary load: only when first needed

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return pykakasi.kakasi()  # type: ignore[no-untyped-call]
    finally:
        if was_enabled:
            gc.enable()


class ReadingModel:
    """Reading frequencies learned from (kanji, kana) pairs, with pykakasi as the fallback."""

    def __init__(self, *, use_pykakasi: bool = True) -> None:
        self._counts: dict[str, Counter[str]] = {}
        self._use_pykakasi = use_pykakasi
        self._kks: Any = None
        self._dict_cache: dict[str, str] = {}

    def __len__(self) -> int:
        """Number of distinct kanji spellings learned."""
        return len(self._counts)

    def learn(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Count readings: ``pairs`` are (family kanji, family kana) and/or (given, given kana).

        Pairs with an empty side, or whose "kanji" side is the reading itself written in kana
        (さくら, サクラ), teach nothing and are skipped.  Identical raw pairs are counted first and
        normalised once, so learning a million-row registry costs about one normalisation per
        distinct name.
        """
        counts = self._counts
        for (kanji, kana), n in Counter(pairs).items():
            if not kanji or not kana:
                continue
            k = variant_key(kanji)
            r = strict_key(kana)
            if not k or not r or is_kana(k):
                continue
            c = counts.get(k)
            if c is None:
                c = counts[k] = Counter()
            c[r] += n

    def learned(self, kanji: str) -> list[tuple[str, int]]:
        """Registry-learned (reading, count) pairs for a spelling, most frequent first."""
        c = self._counts.get(variant_key(kanji))
        if not c:
            return []
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))

    def dictionary_reading(self, kanji: str) -> str:
        """pykakasi's katakana reading of the variant-folded text, or "" if it cannot read all of it."""
        if not self._use_pykakasi:
            return ""
        folded = variant_key(kanji)
        if not folded or GAIJI_WILDCARD in folded:
            return ""
        cached = self._dict_cache.get(folded)
        if cached is not None:
            return cached
        if self._kks is None:
            self._kks = _load_pykakasi()
        parts = self._kks.convert(folded)
        reading = ""
        ok = True
        for p in parts:
            orig, kana = p.get("orig", ""), p.get("kana", "")
            if any(is_kanji_char(ch) for ch in orig) and (not kana or kana == orig):
                ok = False
                break
            reading += kana
        result = strict_key(reading) if ok else ""
        if len(self._dict_cache) < 100_000:
            self._dict_cache[folded] = result
        return result

    def readings(self, kanji: str, limit: int = 3) -> list[str]:
        """Up to ``limit`` katakana readings (strict keys): registry-learned by frequency first,
        then pykakasi's reading if it is not already among them.  Kana input is returned as is.
        """
        if limit <= 0 or not kanji:
            return []
        if is_kana(kanji):
            k = strict_key(kanji)
            return [k] if k else []
        out = [r for r, _ in self.learned(kanji)[:limit]]
        if not out:
            d = self.dictionary_reading(kanji)
            if d and d not in out:
                out.append(d)
        return out

    def name_readings(self, family: str, given: str, limit: int = 6) -> list[str]:
        """Readings of family+given (concatenated), combining each part's readings.

        Ordered by the sum of the two parts' ranks, so the pair of most frequent readings comes
        first.  With an empty ``given`` this is :meth:`readings` of ``family``.
        """
        if not given:
            return self.readings(family, limit)
        fr = self.readings(family, 3)
        gr = self.readings(given, 3)
        if not fr or not gr:
            return []
        combos = sorted(
            ((i + j, f + g) for i, f in enumerate(fr) for j, g in enumerate(gr)),
            key=lambda t: t[0],
        )
        out: list[str] = []
        for _, r in combos:
            if r not in out:
                out.append(r)
            if len(out) >= limit:
                break
        return out
