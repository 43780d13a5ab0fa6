"""閲覧制限 (DV等支援措置): the ONE rule for what a caller may learn about a person and their household.

Why one rule: the shelter and the hub used to re-decide this at every face (search, 安否照会,
certificates, PFIF, feed, exports) and the copies drifted — an address oracle in search, a flagged
head of household on a certificate, a child's registration that told where the flagged mother is.
Every output now gathers the *facts* (is this person flagged, does their household hold a flagged
member) and asks these functions what may be shown. No I/O here: the shelter (``app.services.
disclosure``) and the hub (``sync.hub.restricted``) read their own databases and call the same
functions, so both answer the same question the same way.

**Protected** — a person is protected when they are flagged (the registry's 閲覧制限, a care flag,
a link or pending review naming a flagged resident, a hub withholding), or when their household
holds a flagged member: the registry household (世帯番号) or the people who registered together at
intake (household key). A child's record would otherwise say where the mother is.

**Callers** — ``Caller(sees_restricted=True)`` is HQ's internal view (roles holding the
"restricted" permission, the operator at the shelter's own CLI): everything, marked. Anyone else
sees a protected person only where the person must be findable for the desk's own work (search
candidates, review, sought links) and then without address, 世帯番号, shelter or anything the engine
derived from them. ``publication=True`` is any output that leaves HQ's screen — files (CSV, xlsx,
PDF, PFIF), the feed to other laptops, 安否照会 answers: a protected person is never in it, whoever
asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MASK = "（閲覧制限）"


@dataclass(frozen=True)
class Caller:
    """Who is asking, as far as 閲覧制限 is concerned."""

    sees_restricted: bool = False  # HQ's internal view ("restricted" permission)
    publication: bool = False  # the answer leaves the internal view (file, feed, 安否照会 answer)


@dataclass(frozen=True)
class Facts:
    """What is known about one person (gathered by the shelter or the hub from its own data)."""

    flagged: bool = False  # the person themself is 閲覧制限 (or cannot be told apart: fail closed)
    household_flagged: bool = False  # someone in their registry or intake household is flagged


@dataclass(frozen=True)
class Shown:
    """What the caller may learn about one person."""

    listed: bool = True  # the person may appear in the output at all
    whereabouts: bool = True  # address, 世帯番号, shelter, device, certificate details
    address_evidence: bool = True  # the engine may use the address (levels, weights, ordering)
    marked: bool = False  # shown with a 閲覧制限 mark (only in the internal view)
    protected: bool = False


def is_protected(facts: Facts) -> bool:
    """Flagged, or living / registered with someone flagged: over-protecting is the safe error."""
    return facts.flagged or facts.household_flagged


def decide(caller: Caller, facts: Facts) -> Shown:
    """What ``caller`` may learn about a person with these facts (the module notes)."""
    if not is_protected(facts):
        return Shown()
    if caller.publication:
        return Shown(listed=False, whereabouts=False, address_evidence=False, protected=True)
    if caller.sees_restricted:
        return Shown(marked=True, protected=True)
    return Shown(whereabouts=False, address_evidence=False, protected=True)


def masked(value: str, shown: Shown) -> str:
    """An address (or any whereabouts text) as the caller may see it."""
    return value if shown.whereabouts else MASK


def hidden_id(value: str, shown: Shown) -> str:
    """A 世帯番号 (or shelter / device id) as the caller may see it: empty when not allowed."""
    return value if shown.whereabouts else ""


def ignore_address(caller: Caller, candidate_facts: Iterable[Facts]) -> bool:
    """Whether the engine must score this query without the typed address.

    For a caller who may not see whereabouts, nothing the engine says about a protected candidate
    may depend on the address: not its level, weight, probability, nor its place in the ordering
    (which moves with every other candidate's address score). The candidate set is found from
    names and birth dates only, so deciding this from it reveals nothing about the address; when
    any candidate is protected the address is left out of the whole query."""
    if caller.sees_restricted and not caller.publication:
        return False
    return any(is_protected(f) for f in candidate_facts)


def spread(protected: Iterable[str], groups: Iterable[Iterable[str]]) -> set[str]:
    """Any protected member protects its whole group (households, one person's registrations);
    repeated until nothing changes, because groups overlap."""
    sets = [set(g) for g in groups]
    sets = [g for g in sets if g]
    out = set(protected)
    changed = True
    while changed:
        changed = False
        for g in sets:
            if g & out and not g <= out:
                out |= g
                changed = True
    return out


def household_facts(ids: Iterable[str], flagged: Iterable[str],
                    groups: Iterable[Iterable[str]]) -> dict[str, Facts]:
    """Facts for each of ``ids`` given who is flagged and the households (groups of ids)."""
    flagged = set(flagged)
    widened = spread(flagged, groups)
    return {i: Facts(flagged=i in flagged, household_flagged=i in widened and i not in flagged) for i in ids}


def households(member_of: Mapping[str, str]) -> list[set[str]]:
    """Groups of ids from id → household key (empty keys form no group)."""
    out: dict[str, set[str]] = {}
    for i, hh in member_of.items():
        if hh:
            out.setdefault(hh, set()).add(i)
    return list(out.values())


__all__ = ["MASK", "Caller", "Facts", "Shown", "decide", "hidden_id", "household_facts", "households",
           "ignore_address", "is_protected", "masked", "spread"]
