"""The registry held in memory for matching: columns, inverted indexes and value frequencies.

Why columns of interned strings instead of one object per resident: a 1,000,000-person registry
must fit beside the service on a small laptop. Surnames, given names, birth dates and towns
repeat a lot, so interning shares them; only identifiers are unique per person.

Why several small inverted indexes (blocks): a query is only compared with residents that share
at least one key with it (same full reading, same kanji, same birth date, same surname reading
and birth year, ...). No query ever loops over every resident.
"""

from __future__ import annotations

import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# A block bigger than this is too common to be useful on its own (e.g. everyone born on
# 1950-01-01 in a registry that used it as a placeholder); it is used only through a second key.
BLOCK_CAP = 400


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    """What the engine needs of one resident; the keys come from `matching.person.registry_keys`."""

    resident_id: str  # 宛名番号
    household_id: str  # 世帯番号
    family_kana: str  # loose kana key of the surname
    given_kana: str  # loose kana key of the given name
    family_kanji: str  # variant kanji key of the surname ("" when none)
    given_kanji: str
    alpha: str  # sorted alphabet-name tokens of foreign residents, space-joined
    birth: str  # ISO date, "" when unknown
    sex: str  # "M" | "F" | ""
    town: str  # 町字 key
    restricted: bool = False  # 閲覧制限: matched like anyone, but never disclosed outside HQ


class Postings:
    """key -> resident indexes: a plain int until a second resident shares the key, then a
    compact array of 4-byte ints (a Python list of ints would cost ~36 bytes per entry)."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[object, "int | array[int]"] = {}

    def add(self, key: object, idx: int) -> None:
        if not key:
            return
        cur = self._d.get(key)
        if cur is None:
            self._d[key] = idx
        elif isinstance(cur, int):
            self._d[key] = array("I", (cur, idx))
        else:
            cur.append(idx)

    def get(self, key: object) -> "list[int] | array[int]":
        cur = self._d.get(key) if key else None
        if cur is None:
            return []
        return [cur] if isinstance(cur, int) else cur

    def __len__(self) -> int:
        return len(self._d)


def _birth_year(iso: str) -> int | None:
    return int(iso[:4]) if len(iso) >= 4 and iso[:4].isdigit() else None


class RegistryIndex:
    """All residents of one snapshot, ready for candidate lookup and frequency-scaled scoring."""

    def __init__(self, records: Iterable[RegistryRecord]) -> None:
        self.resident_id: list[str] = []
        self.household_id: list[str] = []
        self.family_kana: list[str] = []
        self.given_kana: list[str] = []
        self.family_kanji: list[str] = []
        self.given_kanji: list[str] = []
        self.alpha: list[str] = []
        self.birth: list[str] = []
        self.sex: list[str] = []
        self.town: list[str] = []
        self.restricted: list[bool] = []
        self.by_id: dict[str, int] = {}
        # blocks
        self.by_full_kana = Postings()
        self.by_full_kanji = Postings()
        self.by_family = Postings()  # surname alone (kana or kanji): for partial input as staff type
        self.by_birth = Postings()
        self.by_family_year = Postings()
        self.by_given_year = Postings()
        self.by_alpha_token = Postings()
        self.by_household = Postings()
        # frequencies for u-probabilities (how common a value is in *this* registry)
        self.freq_family_kana: Counter[str] = Counter()
        self.freq_given_kana: Counter[str] = Counter()
        self.freq_family_kanji: Counter[str] = Counter()
        self.freq_given_kanji: Counter[str] = Counter()
        self.freq_birth: Counter[str] = Counter()
        self.freq_town: Counter[str] = Counter()
        self.freq_alpha_token: Counter[str] = Counter()
        for r in records:
            self._add(r)
        self.size = len(self.resident_id)
        self.known_births = max(1, sum(self.freq_birth.values()))
        self.known_towns = max(1, sum(self.freq_town.values()))

    def _add(self, r: RegistryRecord) -> None:
        i = len(self.resident_id)
        fk, gk = sys.intern(r.family_kana), sys.intern(r.given_kana)
        fj, gj = sys.intern(r.family_kanji), sys.intern(r.given_kanji)
        birth, town = sys.intern(r.birth), sys.intern(r.town)
        self.resident_id.append(r.resident_id)
        self.household_id.append(r.household_id)
        self.family_kana.append(fk)
        self.given_kana.append(gk)
        self.family_kanji.append(fj)
        self.given_kanji.append(gj)
        self.alpha.append(sys.intern(r.alpha) if r.alpha else "")
        self.birth.append(birth)
        self.sex.append(sys.intern(r.sex))
        self.town.append(town)
        self.restricted.append(r.restricted)
        self.by_id[r.resident_id] = i
        if fk or gk:
            self.by_full_kana.add(fk + gk, i)
        if fj or gj:
            self.by_full_kanji.add(fj + gj, i)
        self.by_family.add(fk, i)
        self.by_family.add(fj, i)
        self.by_birth.add(birth, i)
        year = _birth_year(birth)
        if year is not None:
            if fk:
                self.by_family_year.add((fk, year), i)
            if gk:
                self.by_given_year.add((gk, year), i)
        for tok in r.alpha.split():
            self.by_alpha_token.add(tok, i)
            self.freq_alpha_token[tok] += 1
        self.by_household.add(r.household_id, i)
        if fk:
            self.freq_family_kana[fk] += 1
        if gk:
            self.freq_given_kana[gk] += 1
        if fj:
            self.freq_family_kanji[fj] += 1
        if gj:
            self.freq_given_kanji[gj] += 1
        if birth:
            self.freq_birth[birth] += 1
        if town:
            self.freq_town[town] += 1

    def record(self, i: int) -> RegistryRecord:
        return RegistryRecord(
            self.resident_id[i], self.household_id[i], self.family_kana[i], self.given_kana[i],
            self.family_kanji[i], self.given_kanji[i], self.alpha[i], self.birth[i], self.sex[i], self.town[i],
            self.restricted[i],
        )

    def household_members(self, household_id: str) -> list[int]:
        return list(self.by_household.get(household_id))

    def records(self) -> Iterator[RegistryRecord]:
        for i in range(self.size):
            yield self.record(i)

    def surnames_kanji(self) -> set[str]:
        """Registered surnames, used to split names typed without a space."""
        return set(self.freq_family_kanji)

    def surnames_kana(self) -> set[str]:
        return set(self.freq_family_kana)
