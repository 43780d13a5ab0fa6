"""The normalisation contract the rest of Anpi codes against.

* :func:`registry_keys` turns one registry row into :class:`PersonKeys` (fixed fields, every key
  ``""`` when its source is missing).  It is called once per row for snapshots of a million rows,
  so it only uses the precomputed translate tables and a few regexes (no pykakasi: registry rows
  always carry kana).
* :func:`query_keys` turns what a volunteer typed for one evacuee into :class:`QueryKeys`, which
  keeps *alternatives* (name splits, candidate readings, romaji orders) because typed input is
  ambiguous; the scoring layer tries them against :class:`PersonKeys`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date

from .address import address_keys, town_key
from .dates import DateError, ParsedDate, parse_date
from .kana import devoice, join_loose, loose_from_strict, pre_skeleton, strict_key
from .kanji import exact_key, variant_from_exact
from .names import Script, script_of, split_full_name, split_with_surnames, tokens
from .readings import ReadingModel
from .romaji import alpha_tokens, romaji_skeleton, skeleton_from_pre, skeleton_from_strict
from .text import apply_gaiji, clean

__all__ = [
    "PersonKeys",
    "QueryKeys",
    "registry_keys",
    "query_keys",
    "parse_sex",
    "surname_keys",
]


@dataclass(frozen=True, slots=True)
class PersonKeys:
    """Match keys of one registry person; every key may be "" when its source is missing."""

    kanji_exact: str  # family+given exact key, no space
    kanji_variant: str
    family_variant: str
    given_variant: str
    kana_strict: str  # family+given
    kana_loose: str
    family_kana_loose: str
    given_kana_loose: str
    kana_devoiced: str
    romaji: str  # skeleton of family+given, from kana (or alpha name)
    alpha_tokens: str  # space-joined sorted tokens of alphabet name, "" if none
    birth: str  # ISO date or ""
    birth_year: int | None
    sex: str  # "M" | "F" | ""
    town: str  # town key or ""


_SEX = {
    "1": "M", "男": "M", "男性": "M", "M": "M", "MALE": "M", "MAN": "M", "おとこ": "M", "オトコ": "M",
    "2": "F", "女": "F", "女性": "F", "F": "F", "FEMALE": "F", "WOMAN": "F", "おんな": "F", "オンナ": "F",
}


def parse_sex(s: str | None) -> str:
    """1/男/M/m/male → "M", 2/女/F/f/female → "F", anything else (including 9 = 不明) → ""."""
    if not s:
        return ""
    hit = _SEX.get(s)
    if hit is not None:
        return hit
    return _SEX.get(clean(s).strip().upper(), "")


# Per-part caches for the registry import: a snapshot has a million rows but only thousands of
# distinct family and given names, so each part is normalised once.  Bounded by clearing.
_CACHE_LIMIT = 200_000
_KANJI_CACHE: dict[str, tuple[str, str]] = {}
_KANA_CACHE: dict[str, tuple[str, str, str]] = {}


def _kanji_part(s: str) -> tuple[str, str]:
    """(exact key, variant key) of one name part, cached."""
    hit = _KANJI_CACHE.get(s)
    if hit is None:
        e = exact_key(s)
        hit = (e, variant_from_exact(e))
        if len(_KANJI_CACHE) >= _CACHE_LIMIT:
            _KANJI_CACHE.clear()
        _KANJI_CACHE[s] = hit
    return hit


def _kana_part(s: str) -> tuple[str, str, str]:
    """(strict key, loose key, pre-skeleton) of one kana part, cached."""
    hit = _KANA_CACHE.get(s)
    if hit is None:
        k = strict_key(s)
        hit = (k, loose_from_strict(k), pre_skeleton(k))
        if len(_KANA_CACHE) >= _CACHE_LIMIT:
            _KANA_CACHE.clear()
        _KANA_CACHE[s] = hit
    return hit


def registry_keys(
    family: str,
    given: str,
    family_kana: str,
    given_kana: str,
    alpha_name: str,
    birth: date | None,
    sex: str,
    address: str,
    gaiji_map: Mapping[str, str] | None = None,
) -> PersonKeys:
    """Keys of one registry row.  Raw values are not changed; ``None`` is treated as "".

    ``gaiji_map`` resolves the municipality's private-use characters first; unmapped ones stay in
    the exact key and become the wildcard in variant keys.  Whole-name kana keys equal the keys
    of the concatenated kana (``loose_key(family_kana + given_kana)``): the per-part results are
    cached and joined with :func:`~matching.kana.join_loose`.
    """
    family = family or ""
    given = given or ""
    if gaiji_map:
        family = apply_gaiji(family, gaiji_map)
        given = apply_gaiji(given, gaiji_map)
    fe, fv = _kanji_part(family) if family else ("", "")
    ge, gv = _kanji_part(given) if given else ("", "")

    fk, fl, fp = _kana_part(family_kana) if family_kana else ("", "", "")
    gk, gl, gp = _kana_part(given_kana) if given_kana else ("", "", "")
    loose = join_loose(fl, gl)

    tokens_ = alpha_tokens(alpha_name) if alpha_name else []
    if fk or gk:
        romaji = skeleton_from_pre(join_loose(fp, gp))
    elif tokens_:
        romaji = romaji_skeleton(" ".join(tokens_))
    else:
        romaji = ""
    return PersonKeys(
        kanji_exact=fe + ge,
        kanji_variant=fv + gv,
        family_variant=fv,
        given_variant=gv,
        kana_strict=fk + gk,
        kana_loose=loose,
        family_kana_loose=fl,
        given_kana_loose=gl,
        kana_devoiced=devoice(loose),
        romaji=romaji,
        alpha_tokens=" ".join(sorted(tokens_)),
        birth=birth.isoformat() if birth else "",
        birth_year=birth.year if birth else None,
        sex=parse_sex(sex),
        town=(town_key(address) or "") if address else "",
    )


def stored_keys(
    family: str,
    given: str,
    family_kana: str,
    given_kana: str,
    alpha_name: str,
    address: str,
    gaiji_map: Mapping[str, str] | None = None,
) -> tuple[str, str, str, str, str, str, str]:
    """Only the keys the registry import stores for the matching index, in its column order:
    (family variant, given variant, family loose kana, given loose kana, alpha tokens, town, house).

    The same values as :func:`registry_keys` gives, without the whole-name keys the index
    derives itself: the import calls this a million times, so it does no more than it must.
    """
    if gaiji_map:
        family = apply_gaiji(family, gaiji_map)
        given = apply_gaiji(given, gaiji_map)
    fv = _kanji_part(family)[1] if family else ""
    gv = _kanji_part(given)[1] if given else ""
    fl = _kana_part(family_kana)[1] if family_kana else ""
    gl = _kana_part(given_kana)[1] if given_kana else ""
    alpha = " ".join(sorted(alpha_tokens(alpha_name))) if alpha_name else ""
    if not address:
        return fv, gv, fl, gl, alpha, "", ""
    town, house = address_keys(address)
    return fv, gv, fl, gl, alpha, town or "", house or ""


def surname_keys(family: str, family_kana: str = "") -> tuple[str, ...]:
    """The keys of one registry family name to put in the ``surnames`` collection of
    :func:`query_keys`: its variant key and its strict kana key (either may be missing).
    """
    out = []
    v = variant_from_exact(exact_key(family)) if family else ""
    if v:
        out.append(v)
    k = strict_key(family_kana) if family_kana else ""
    if k:
        out.append(k)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class QueryKeys:
    """Keys of one hand-typed evacuee, with alternatives where the input is ambiguous.

    ``splits``: (family, given) alternatives of the typed name, best first; the whole name as
    ``(name, "")`` is last when it could not be split for sure.  Kanji/mixed names are in
    exact-key form (cleaned, no spaces), kana names in strict-key form (katakana), latin names
    are the tokens as typed.
    ``variant_splits``: :func:`~matching.kanji.variant_key` of each split (kanji/mixed names).
    ``readings``: candidate katakana readings of family+given (strict keys), best first, from
    ``reading_source``: "name_kana" (the ふりがな column), "name" (the name itself is kana),
    "model" (a :class:`~matching.readings.ReadingModel`), or "" (none).
    ``kana_loose`` / ``kana_devoiced``: the looser keys of ``readings`` (deduplicated, in order).
    ``kana_splits``: (family, given) loose kana keys when the kana shows the split (a space, or
    a known surname prefix).
    ``romaji``: skeletons of family+given: from a latin name (each split order), else from the
    readings.
    ``alpha_tokens``: sorted, space-joined tokens of a latin name ("" otherwise).
    ``birth`` / ``birth_error``: the parsed date; an unreadable date gives kind "unknown" and the
    :class:`~matching.dates.DateError` message in ``birth_error``.
    """

    name: str
    script: Script
    splits: tuple[tuple[str, str], ...]
    kanji_exact: str
    kanji_variant: str
    variant_splits: tuple[tuple[str, str], ...]
    readings: tuple[str, ...]
    reading_source: str
    kana_loose: tuple[str, ...]
    kana_devoiced: tuple[str, ...]
    kana_splits: tuple[tuple[str, str], ...]
    romaji: tuple[str, ...]
    alpha_tokens: str
    birth: ParsedDate
    birth_error: str
    sex: str
    town: str


def _dedupe(items: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for x in items:
        if x and x not in seen:
            seen[x] = None
    return tuple(seen)


def _kana_splits(kana: str, surnames: Collection[str] | None) -> list[tuple[str, str]]:
    parts = tokens(kana)
    if len(parts) >= 2:
        f, g = strict_key(parts[0]), strict_key("".join(parts[1:]))
        return [(loose_from_strict(f), loose_from_strict(g))] if f and g else []
    if surnames:
        k = strict_key(kana)
        return [
            (loose_from_strict(f), loose_from_strict(g))
            for f, g in split_with_surnames(k, surnames)
            if g
        ]
    return []


def query_keys(
    name: str | None = "",
    name_kana: str | None = "",
    birth: str | None = "",
    sex: str | None = "",
    address: str | None = "",
    *,
    reading_model: ReadingModel | None = None,
    surnames: Collection[str] | None = None,
    today: date | None = None,
) -> QueryKeys:
    """Keys of an evacuee as typed by hand (roster row or the ``anpi match`` form).

    ``name`` may be kanji, kana or romaji in any order and spacing, or empty; ``name_kana`` any
    kana.  ``surnames`` (see :func:`surname_keys`) lets an unspaced name be split; without it an
    unspaced name stays whole.  ``reading_model`` supplies readings for a kanji-only name.
    Never raises on bad input.
    """
    text = clean(name or "").strip()
    script = script_of(text)

    # --- name splits -------------------------------------------------------------------------
    splits: list[tuple[str, str]] = []
    if script == "latin":
        splits = split_full_name(text)
    elif text:
        norm = strict_key if script == "kana" else exact_key
        spaced = split_full_name(text)
        if spaced and spaced[0][1]:
            splits = [(norm(f), norm(g)) for f, g in spaced]
        else:
            whole = norm(text)
            if surnames:
                # Surnames are variant keys (kanji) and strict keys (kana); both are the same
                # length as ``whole``, so a split position carries over.
                key = whole if script == "kana" else variant_from_exact(whole)
                splits = [(whole[: len(f)], whole[len(f):]) for f, _ in split_with_surnames(key, surnames)]
            else:
                splits = [(whole, "")]

    kanji_exact = kanji_variant = ""
    variant_splits: tuple[tuple[str, str], ...] = ()
    if script in ("kanji", "mixed"):
        kanji_exact = "".join(splits[0]) if splits else ""
        kanji_variant = variant_from_exact(kanji_exact)
        variant_splits = tuple((variant_from_exact(f), variant_from_exact(g)) for f, g in splits)

    # --- readings ----------------------------------------------------------------------------
    readings: list[str] = []
    source = ""
    kana_text = clean(name_kana or "").strip()
    kana_splits: list[tuple[str, str]] = []
    if kana_text and strict_key(kana_text):
        readings, source = [strict_key(kana_text)], "name_kana"
        kana_splits = _kana_splits(kana_text, surnames)
    elif script == "kana":
        readings, source = [strict_key(text)], "name"
        kana_splits = _kana_splits(text, surnames)
    elif script in ("kanji", "mixed") and reading_model is not None:
        for f, g in splits:
            readings.extend(reading_model.name_readings(f, g))
        readings = list(_dedupe(readings))[:8]
        source = "model" if readings else ""

    loose = _dedupe([loose_from_strict(r) for r in readings])
    devoiced = _dedupe([devoice(x) for x in loose])

    # --- romaji / alphabet ---------------------------------------------------------------------
    alpha = ""
    if script == "latin":
        romaji = _dedupe([romaji_skeleton(f + g) for f, g in splits])
        alpha = " ".join(sorted(alpha_tokens(text)))
    else:
        romaji = _dedupe([skeleton_from_strict(r) for r in readings])

    # --- birth, sex, address ---------------------------------------------------------------------
    birth_error = ""
    try:
        pd = parse_date(birth, today=today)
    except DateError as exc:
        pd = ParsedDate(birth or "", "unknown")
        birth_error = str(exc)

    return QueryKeys(
        name=text,
        script=script,
        splits=tuple(splits),
        kanji_exact=kanji_exact,
        kanji_variant=kanji_variant,
        variant_splits=variant_splits,
        readings=_dedupe(readings),
        reading_source=source,
        kana_loose=loose,
        kana_devoiced=devoiced,
        kana_splits=tuple(kana_splits),
        romaji=romaji,
        alpha_tokens=alpha,
        birth=pd,
        birth_error=birth_error,
        sex=parse_sex(sex),
        town=(town_key(address) or "") if address else "",
    )
