"""The registry held in memory for matching: columns, inverted indexes and value frequencies.

Why columns of interned strings instead of one object per resident: a 1,000,000-person registry
must fit beside the service on a small laptop. Surnames, given names, birth dates and towns
repeat a lot, so interning shares them; only identifiers are unique per person.

Why several small inverted indexes (blocks): a query is only compared with residents that share
at least one key with it (same full reading, same kanji, same birth date, same surname reading
and birth year, ...). No query ever loops over every resident.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from operator import add

from matching.romaji import kana_to_skeleton

# A block bigger than this is too common to be useful on its own (e.g. everyone born on
# 1950-01-01 in a registry that used it as a placeholder); it is used only through a second key.
BLOCK_CAP = 400

_CHUNK = 50_000  # records turned into columns at a time
_AS_IS = (0, 1, 6)  # resident id, household id, alpha: (nearly) unique, not worth interning
_INTERNED = (2, 3, 4, 5, 7, 8, 9, 11)


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
    house: str = ""  # 町字 + 番地・号 key ("" when the registered address has no number)

    def __iter__(self) -> Iterator[object]:
        """Field values in order, so a record and a database row tuple are interchangeable."""
        return (getattr(self, f) for f in self.__slots__)  # type: ignore[attr-defined]


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

    @classmethod
    def build(cls, keys: Iterable[object]) -> "Postings":
        p = cls()
        p.extend(keys)
        return p

    def extend(self, keys: Iterable[object]) -> None:
        """Add keys for residents 0, 1, 2, ... (inlined: this runs millions of times at start-up)."""
        d = self._d
        get = d.get
        for i, key in enumerate(keys):
            if not key:
                continue
            cur = get(key)
            if cur is None:
                d[key] = i
            elif cur.__class__ is int:
                d[key] = array("I", (cur, i))
            else:
                cur.append(i)

    def get(self, key: object) -> "list[int] | array[int]":
        cur = self._d.get(key) if key else None
        if cur is None:
            return []
        return [cur] if isinstance(cur, int) else cur

    def __len__(self) -> int:
        return len(self._d)


def _counts(values: list[str]) -> Counter[str]:
    c = Counter(values)
    c.pop("", None)
    return c


class RegistryIndex:
    """All residents of one snapshot, ready for candidate lookup and frequency-scaled scoring."""

    def __init__(self, records: Iterable[RegistryRecord | tuple]) -> None:
        """`records` may be RegistryRecord objects or plain tuples in the same field order
        (the service streams tuples straight from SQLite, which is much faster)."""
        cols: list[list] = [[] for _ in range(12)]
        pool: dict[str, str] = {}
        intern = pool.setdefault  # interning: one string object per distinct surname, date, town
        rows = iter(records)
        # Column by column, a chunk at a time: zip(*chunk) turns rows into columns and map()
        # interns them without a Python-level step per resident (the old per-row loop was a third
        # of building the index at 1 M).
        while chunk := list(islice(rows, _CHUNK)):
            columns = list(zip(*chunk))
            if len(columns) != 12:
                raise ValueError(f"a registry record has 12 fields, got {len(columns)}")
            for k in _AS_IS:
                cols[k].extend(columns[k])
            for k in _INTERNED:
                cols[k].extend(map(intern, columns[k], columns[k]))
            cols[10].extend(map(bool, columns[10]))
        (self.resident_id, self.household_id, self.family_kana, self.given_kana, self.family_kanji,
         self.given_kanji, self.alpha, self.birth, self.sex, self.town, self.restricted, self.house) = cols
        self.size = len(self.resident_id)
        fk, gk, fj, gj = self.family_kana, self.given_kana, self.family_kanji, self.given_kanji
        year_of = {b: int(b[:4]) if b else 0 for b in set(self.birth)}
        years = list(map(year_of.__getitem__, self.birth))
        # blocks
        self.by_full_kana = Postings.build(map(add, fk, gk))
        self.by_full_kanji = Postings.build(map(add, fj, gj))
        self.by_birth = Postings.build(self.birth)
        self.by_family_year = Postings.build((f, y) if f and y else None for f, y in zip(fk, years))
        self.by_given_year = Postings.build((g, y) if g and y else None for g, y in zip(gk, years))
        # names typed in romaji: skeletons of each distinct reading, computed once per reading
        skel: dict[str, str] = {}
        for part in set(fk) | set(gk):
            skel[part] = kana_to_skeleton(part) if part else ""
        self.by_skeleton = Postings.build(f"{skel[f]}|{skel[g]}" if f and g else None for f, g in zip(fk, gk))
        self.by_alpha_token = Postings()
        self.freq_alpha_token: Counter[str] = Counter()
        for i, a in enumerate(self.alpha):
            if a:
                for tok in a.split():
                    self.by_alpha_token.add(tok, i)
                    self.freq_alpha_token[tok] += 1
        # frequencies for u-probabilities (how common a value is in *this* registry)
        self.freq_family_kana = _counts(fk)
        self.freq_given_kana = _counts(gk)
        self.freq_family_kanji = _counts(fj)
        self.freq_given_kanji = _counts(gj)
        self.freq_birth = _counts(self.birth)
        self.freq_town = _counts(self.town)
        self.freq_house = _counts(self.house)
        self.known_births = max(1, sum(self.freq_birth.values()))
        self.known_towns = max(1, sum(self.freq_town.values()))
        self.known_houses = max(1, sum(self.freq_house.values()))

    @cached_property
    def by_family(self) -> Postings:
        """Surname alone (kana or kanji): for partial input while staff are still typing. Built on
        first use: a roster of full names never needs it, and it costs two million entries at 1 M."""
        p = Postings.build(self.family_kana)
        p.extend(self.family_kanji)
        return p
