"""The Fellegi–Sunter model: how much each kind of agreement or disagreement is worth, in bits.

For every field we compare, a *level* (exact / variant / loose / fuzzy / different / missing) has
an m-probability (how often a true match shows that level) and a u-probability (how often two
different people show it). The weight is log2(m/u). Where a value's frequency is known, u is
the share of residents who have that value, so 佐藤 agreeing counts less than 東海林 agreeing.

The m-probabilities below come from the noise we expect in hand-typed shelter rosters (see
fixtures/README.md for the generator's noise model, which follows the same reasoning): they are
deliberately rounded and not fitted to one data set, so the engine stays general. They are not
re-estimated by EM on the data at hand (not implemented: the m side comes from the noise model
only, which keeps every decision reproducible); the u side is always this registry's own
frequencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


def bits(m: float, u: float) -> float:
    return math.log2(m / u)


@dataclass(frozen=True)
class Model:
    # names (per part: surname, given name)
    m_name_exact: float = 0.88  # reading or kanji identical after normalisation
    m_name_devoiced: float = 0.03  # ナカシマ / ナカジマ
    m_name_fuzzy: float = 0.05  # one typo
    u_name_fuzzy: float = 0.004
    m_name_diff: float = 0.04
    kanji_disagrees_with_reading: float = -3.0  # 伊藤 vs 伊東: same reading, maybe another family
    corroboration: float = 1.0  # reading and kanji both agree
    guessed_reading_agree: float = 2.0  # kanji differ, but our guessed reading agrees
    # alphabet names of foreign residents
    alpha_all_tokens: float = 18.0
    alpha_fuzzy: float = 8.0
    alpha_diff: float = -6.0
    # birth date
    m_birth_exact: float = 0.90
    m_birth_variant: float = 0.06  # day±1, day/month swap, era year off by one
    variant_share: float = 6.0  # how many neighbouring dates the variants cover
    m_birth_diff: float = 0.04
    m_year_agree: float = 0.95  # "78歳" or "1970年" consistent with the registered date
    m_year_diff: float = 0.05
    # sex
    m_sex_agree: float = 0.985
    m_sex_diff: float = 0.015
    # address (町字)
    m_town_agree: float = 0.75
    m_town_diff: float = 0.25
    m_house_agree: float = 0.6  # full address typed and equal to the registered one (番地・号 too)
    # household reasoning (evacuees who arrived together)
    household_support: float = 3.0
    household_against: float = -1.0
    # prior: share of evacuees who are residents of this registry
    p_resident: float = 0.85
    # u-probabilities are smoothed towards population-wide rates with this many pseudo-people, so
    # a small registry (a village, a test) does not take "3 of 6 residents are 高橋" as the truth
    pseudo_people: float = 1000.0
    p0_name: float = 1 / 3000  # share of people with one given surname or given name, typically
    p0_birth: float = 1 / (365 * 90)
    p0_town: float = 1 / 50
    p0_house: float = 1 / 20000
    # decisions
    auto_probability: float = 0.999
    review_probability: float = 0.02
    review_min_bits: float = 6.0

    def _u(self, freq: int, n: int, p0: float) -> float:
        k = self.pseudo_people
        return (max(freq, 1) + k * p0) / (n + k)

    def name_exact(self, freq: int, n: int) -> float:
        return bits(self.m_name_exact, self._u(freq, n, self.p0_name))

    def name_devoiced(self, freq: int, n: int) -> float:
        return bits(self.m_name_devoiced, min(1.0, 3 * self._u(freq, n, self.p0_name)))

    @property
    def name_fuzzy(self) -> float:
        return bits(self.m_name_fuzzy, self.u_name_fuzzy)

    def name_diff(self, n: int) -> float:
        return bits(self.m_name_diff, 1.0)

    def birth_exact(self, freq: int, known: int) -> float:
        return bits(self.m_birth_exact, self._u(freq, known, self.p0_birth))

    def birth_variant(self, freq: int, known: int) -> float:
        return bits(self.m_birth_variant, min(1.0, self.variant_share * self._u(freq, known, self.p0_birth)))

    @property
    def birth_diff(self) -> float:
        return bits(self.m_birth_diff, 0.99)

    def year_agree(self, span_years: int) -> float:
        return bits(self.m_year_agree, min(1.0, span_years / 90))

    @property
    def year_diff(self) -> float:
        return bits(self.m_year_diff, 0.97)

    @property
    def sex_agree(self) -> float:
        return bits(self.m_sex_agree, 0.5)

    @property
    def sex_diff(self) -> float:
        return bits(self.m_sex_diff, 0.5)

    def town_agree(self, freq: int, known: int) -> float:
        return bits(self.m_town_agree, self._u(freq, known, self.p0_town))

    def house_agree(self, freq: int, known: int) -> float:
        return bits(self.m_house_agree, self._u(freq, known, self.p0_house))

    @property
    def town_diff(self) -> float:
        return bits(self.m_town_diff, 0.95)

    def prior_bits(self, n: int) -> float:
        """log2 of the prior odds that one given resident is the evacuee."""
        return math.log2(self.p_resident / max(n, 1))

    def with_changes(self, **kw: float) -> "Model":
        return replace(self, **kw)


DEFAULT_MODEL = Model()
