"""Roster search the way a volunteer types: シミズ finds しみず みちお, shimizu finds 清水, 渡邉 finds
渡辺, and the registry names of the resident a person is linked to (清水 美智雄) find the evacuee.

Why not SQL LIKE: the roster keeps names as typed (hiragana, katakana, old kanji forms, romaji),
and a literal search misses the person standing at the desk. The engine's own keys
(`matching.kana.loose_key`, `matching.kanji.variant_key`, `matching.romaji` skeletons) fold the
spellings the engine already treats as one; a shelter holds hundreds to a few thousand people, so
the fold runs in Python over the status-filtered rows.

Disclosure: the registry names of a 閲覧制限 resident are searched only for callers who may see
閲覧制限 people; otherwise a registry name would reveal who is linked to a protected record.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlmodel import Session, select

from app.models import Evacuee, MatchDecision, RegistrySnapshot, Resident
from matching.kana import is_kana, loose_key
from matching.kanji import variant_key
from matching.romaji import kana_to_skeleton, romaji_skeleton


@dataclass(frozen=True)
class SearchKey:
    """The forms of what was typed that are worth comparing (empty when not applicable)."""

    plain: str  # NFKC, no spaces, lower case: 受付番号, phone, any literal part
    kana: str  # loose reading key when the text is kana
    kanji: str  # variant-folded kanji
    romaji: str  # skeleton when the text is latin letters

    @classmethod
    def of(cls, text: str) -> SearchKey:
        plain = "".join(unicodedata.normalize("NFKC", text or "").split()).lower()
        latin = bool(plain) and all(c.isascii() for c in plain) and any(c.isalpha() for c in plain)
        kana = loose_key(text) if plain and is_kana(plain.replace("・", "")) else ""
        kanji = variant_key(text) if any(unicodedata.name(c, "").startswith("CJK") for c in plain) else ""
        return cls(plain, kana, kanji, romaji_skeleton(text) if latin else "")


@lru_cache(maxsize=1)
def _readings():  # type: ignore[no-untyped-def]
    """pykakasi readings for kanji names typed without kana (loaded once, on the first such search)."""
    from matching.readings import ReadingModel

    return ReadingModel(use_pykakasi=True)


@lru_cache(maxsize=65536)
def _reading_of(kanji: str) -> str:
    try:
        return _readings().dictionary_reading(kanji)
    except Exception:  # noqa: BLE001 - a missing reading only means one fewer way to find a person
        return ""


@dataclass
class NameForms:
    """What one person (or one registry record) can be found by."""

    plain: set[str]
    kana: set[str]
    kanji: set[str]
    romaji: set[str]

    @classmethod
    def build(cls, names: Iterable[str], kana_names: Iterable[str], *, guess_reading: bool = False) -> NameForms:
        names = [n for n in names if n]
        kana_names = [k for k in kana_names if k]
        plain = {"".join(unicodedata.normalize("NFKC", n).split()).lower() for n in [*names, *kana_names]}
        kana = {loose_key(k) for k in kana_names} | {loose_key(n) for n in names if is_kana(n.replace(" ", ""))}
        if guess_reading and not kana:
            kana = {loose_key(r) for r in (_reading_of(variant_key(n)) for n in names) if r}
        kanji = {variant_key(n) for n in names}
        romaji = {kana_to_skeleton(k) for k in [*kana_names, *(n for n in names if is_kana(n.replace(" ", "")))]}
        romaji |= {romaji_skeleton(n) for n in names if n.isascii()}
        return cls(plain - {""}, kana - {""}, kanji - {""}, romaji - {""})

    def found_by(self, key: SearchKey) -> bool:
        return (any(key.plain in p for p in self.plain)
                or bool(key.kana) and any(key.kana in k for k in self.kana)
                or bool(key.kanji) and any(key.kanji in k for k in self.kanji)
                or bool(key.romaji) and any(key.romaji in r for r in self.romaji))


def evacuee_forms(ev: Evacuee) -> NameForms:
    names = [ev.name_raw, f"{ev.family_name}{ev.given_name}"]
    return NameForms.build(names, [ev.name_kana_raw, ev.name_kana], guess_reading=True)


def linked_residents(session: Session, evacuee_ids: list[str], *, reveal_restricted: bool) -> dict[str, Resident]:
    """evacuee id → the registry record it is linked to (auto or confirmed), newest snapshot."""
    snap = session.exec(select(RegistrySnapshot).order_by(RegistrySnapshot.id.desc())).first()  # type: ignore[union-attr]
    if snap is None or not evacuee_ids:
        return {}
    latest: dict[str, MatchDecision] = {}
    for d in session.exec(select(MatchDecision).order_by(MatchDecision.at, MatchDecision.id)):
        latest[d.evacuee_id] = d
    links = {e: d.resident_id for e, d in latest.items()
             if e in set(evacuee_ids) and d.decision in ("auto", "confirmed") and d.resident_id}
    if not links:
        return {}
    rows = session.exec(select(Resident).where(Resident.snapshot_id == snap.id,
                                               Resident.resident_id.in_(set(links.values()))))  # type: ignore[attr-defined]
    by_rid = {r.resident_id: r for r in rows if reveal_restricted or not r.restricted}
    return {e: by_rid[rid] for e, rid in links.items() if rid in by_rid}


def resident_forms(r: Resident) -> NameForms:
    return NameForms.build([f"{r.family_name} {r.given_name}".strip(), r.alpha_name],
                           [f"{r.family_name_kana} {r.given_name_kana}".strip()])


def search(session: Session, people: list[Evacuee], text: str, *, reveal_restricted: bool = False) -> list[Evacuee]:
    """The people (in their order) whose name, reading, romaji, 受付番号, phone or linked registry
    name contains what was typed, in any of the spellings the engine treats as one."""
    key = SearchKey.of(text)
    if not key.plain:
        return people
    linked = linked_residents(session, [e.id for e in people], reveal_restricted=reveal_restricted)
    out = []
    for ev in people:
        literal = "".join(unicodedata.normalize("NFKC", f"{ev.external_key}|{ev.phone_raw}|{ev.contact}").split()).lower()
        if key.plain in literal or evacuee_forms(ev).found_by(key) or (
                ev.id in linked and resident_forms(linked[ev.id]).found_by(key)):
            out.append(ev)
    return out


@lru_cache(maxsize=65536)
def _record_forms(name: str, kana: str, alpha: str) -> NameForms:
    return NameForms.build([name, alpha], [kana])


def name_matches(key: SearchKey, record: Any) -> bool:
    """Whether a registry record (anything with family/given names, their kana and alpha_name, e.g.
    `anpi_list.ResidentRecord`) is found by `key`: the 安否確認 list's name search."""
    forms = _record_forms(f"{record.family_name} {record.given_name}".strip(),
                          f"{record.family_name_kana} {record.given_name_kana}".strip(), record.alpha_name or "")
    return forms.found_by(key)
