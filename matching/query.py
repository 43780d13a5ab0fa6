"""Turning what a person typed about an evacuee into the keys the engine compares.

A name may arrive in kanji, kana or romaji, in either order, with or without a space; so a query
becomes several *name forms* (alternatives), and the score of a candidate is that of the best
form. Nothing here guesses a single truth: every plausible reading is kept and weighed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

from matching import address as address_mod
from matching import dates, kana, kanji, names, romaji
from matching.person import parse_sex
from matching.readings import ReadingModel

MAX_READINGS = 2  # guessed readings per name part (kanji-only input)


@dataclass
class Query:
    """An evacuee (or a person at the desk) as typed; every field may be empty."""

    name: str = ""
    name_kana: str = ""
    birth: str = ""
    sex: str = ""
    address: str = ""
    key: str = ""  # the caller's identifier (evacuee id), returned untouched
    household_key: str = ""  # evacuees who arrived together share it


@dataclass(frozen=True)
class NameForm:
    """One way of reading the typed name. Empty family/given parts mean "split unknown"."""

    family_kana: str = ""
    given_kana: str = ""
    full_kana: str = ""
    family_kanji: str = ""
    given_kanji: str = ""
    full_kanji: str = ""
    kanji_exact: str = ""
    skeleton_family: str = ""  # romaji skeletons (typed in latin letters)
    skeleton_given: str = ""
    kana_guessed: bool = False  # readings guessed from kanji, not typed
    source: str = ""


@dataclass
class PreparedQuery:
    query: Query
    forms: list[NameForm]
    alpha: str = ""  # sorted alphabet tokens, for foreign residents
    birth: dates.ParsedDate | None = None
    birth_iso: str = ""
    birth_variants: list[tuple[str, str]] = field(default_factory=list)  # (iso, label)
    year_min: int | None = None
    year_max: int | None = None
    sex: str = ""
    town: str = ""
    house: str = ""
    birth_error: str = ""

    @property
    def has_name(self) -> bool:
        return bool(self.forms or self.alpha)


@dataclass
class QueryContext:
    """What the registry teaches us about names: surnames for splitting, learned readings."""

    readings: ReadingModel | None = None
    surnames_kanji: Collection[str] = ()
    today: date | None = None


def _kana_forms(text: str, source: str, guessed: bool = False) -> list[NameForm]:
    kat = kana.to_katakana(text)
    parts = kat.split()
    full = kana.loose_key(kat)
    if not full:
        return []
    if len(parts) >= 2:
        fam, giv = kana.loose_key(parts[0]), kana.loose_key("".join(parts[1:]))
        return [NameForm(family_kana=fam, given_kana=giv, full_kana=full, kana_guessed=guessed, source=source)]
    return [NameForm(full_kana=full, kana_guessed=guessed, source=source)]


def _kanji_forms(text: str, ctx: QueryContext) -> list[NameForm]:
    splits = names.split_full_name(text)
    whole = kanji.variant_key(text)
    exact = kanji.exact_key(text)
    forms: list[NameForm] = []
    if splits and splits[0][1]:
        pairs = splits[:1]
    else:
        pairs = [p for p in names.split_with_surnames(text.replace(" ", "").replace("\u3000", ""), ctx.surnames_kanji) if p[1]][:3]
    for fam, giv in pairs:
        forms.append(NameForm(family_kanji=kanji.variant_key(fam), given_kanji=kanji.variant_key(giv),
                              full_kanji=whole, kanji_exact=exact, source="kanji"))
    if not forms:
        forms.append(NameForm(full_kanji=whole, kanji_exact=exact, source="kanji"))
    return forms


def _reading_forms(forms: list[NameForm], text: str, ctx: QueryContext) -> list[NameForm]:
    """Kanji typed without kana: attach readings learned from the registry (pykakasi last)."""
    if ctx.readings is None:
        return forms
    out: list[NameForm] = []
    for f in forms:
        if f.family_kanji and f.given_kanji:
            fams = ctx.readings.readings(f.family_kanji, limit=MAX_READINGS)
            givs = ctx.readings.readings(f.given_kanji, limit=MAX_READINGS)
            for rf in fams or [""]:
                for rg in givs or [""]:
                    fk, gk = kana.loose_key(rf), kana.loose_key(rg)
                    out.append(NameForm(family_kana=fk, given_kana=gk, full_kana=fk + gk,
                                        family_kanji=f.family_kanji, given_kanji=f.given_kanji,
                                        full_kanji=f.full_kanji, kanji_exact=f.kanji_exact,
                                        kana_guessed=True, source="kanji+reading"))
        else:
            for r in ctx.readings.readings(f.full_kanji, limit=MAX_READINGS) or [""]:
                out.append(NameForm(full_kana=kana.loose_key(r), full_kanji=f.full_kanji, kanji_exact=f.kanji_exact,
                                    kana_guessed=True, source="kanji+reading"))
    return out or forms


def _latin_forms(text: str) -> list[NameForm]:
    tokens = romaji.alpha_tokens(text)
    if not tokens:
        return []
    if len(tokens) >= 2:
        a, b = romaji.romaji_skeleton(tokens[0]), romaji.romaji_skeleton(" ".join(tokens[1:]))
        z, y = romaji.romaji_skeleton(tokens[-1]), romaji.romaji_skeleton(" ".join(tokens[:-1]))
        return [NameForm(skeleton_family=a, skeleton_given=b, source="romaji"),
                NameForm(skeleton_family=z, skeleton_given=y, source="romaji-swapped")]
    return [NameForm(skeleton_family=romaji.romaji_skeleton(tokens[0]), source="romaji")]


def prepare(q: Query, ctx: QueryContext | None = None) -> PreparedQuery:
    ctx = ctx or QueryContext()
    forms: list[NameForm] = []
    alpha = ""
    typed_kana = q.name_kana.strip()
    name = q.name.strip()
    script = names.script_of(name) if name else "empty"
    kanji_forms: list[NameForm] = []
    if script in ("kanji", "mixed"):
        kanji_forms = _kanji_forms(name, ctx)
    elif script == "kana":
        forms += _kana_forms(name, "kana")
    elif script == "latin":
        forms += _latin_forms(name)
        alpha = " ".join(sorted(romaji.alpha_tokens(name)))
    if typed_kana:
        kana_forms = _kana_forms(typed_kana, "kana")
        if kanji_forms:
            # pair the typed reading with each kanji split: both are the same name
            for kf in kanji_forms:
                for rf in kana_forms:
                    forms.append(NameForm(
                        family_kana=rf.family_kana, given_kana=rf.given_kana, full_kana=rf.full_kana,
                        family_kanji=kf.family_kanji, given_kanji=kf.given_kanji, full_kanji=kf.full_kanji,
                        kanji_exact=kf.kanji_exact, source="kanji+kana"))
        else:
            forms += kana_forms
    elif kanji_forms:
        forms += _reading_forms(kanji_forms, name, ctx)
    pq = PreparedQuery(query=q, forms=forms, alpha=alpha, sex=parse_sex(q.sex),
                       town=address_mod.town_key(q.address) or "" if q.address else "",
                       house=address_mod.house_key(q.address) or "" if q.address else "")
    try:
        pd = dates.parse_date(q.birth, today=ctx.today)
    except dates.DateError as exc:
        pq.birth_error = str(exc)
        return pq
    pq.birth = pd
    if pd.kind == "day" and pd.value is not None:
        pq.birth_iso = pd.value.isoformat()
        seen = {pq.birth_iso}
        extra = [(d, "era-alternative") for d in getattr(pd, "alternatives", ())]
        for d, label in [*dates.date_variants(pd.value), *extra]:
            iso = d.isoformat()
            if iso not in seen:
                seen.add(iso)
                pq.birth_variants.append((iso, label))
    if pd.year_min is not None:
        pq.year_min, pq.year_max = pd.year_min, pd.year_max
    return pq
