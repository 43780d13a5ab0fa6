"""The reconciliation engine: candidates → scores → posterior → decision, one evacuee or many.

Why a posterior and not a raw score threshold: the same name-and-birthday agreement means less
in a registry of 1,000,000 than in one of 60,000, and two near-identical candidates (twins, a
father and son with one name) must split the probability between them. The posterior
P(candidate is the person) = odds / (1 + Σ odds), with prior odds p_resident / N per resident,
gives both for free: `auto` needs P ≥ 0.999 and no contradicting field.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from rapidfuzz.distance import Levenshtein

from matching.model import DEFAULT_MODEL, Model
from matching.query import PreparedQuery, Query, QueryContext, prepare
from matching.readings import ReadingModel
from matching.registry_index import BLOCK_CAP, RegistryIndex
from matching.score import Candidate, FieldScore, Scorer

TOP_K = 5
EXACT_BIRTH_BLOCK = 60
YEAR_BLOCK_CAP = 60  # "佐藤 + 1950" is too common to be worth scoring whole
KEEP = 12  # candidates kept per query after scoring


@dataclass
class MatchResult:
    """A decision about one query, with the candidates a person would want to see."""

    key: str
    decision: str  # auto | review | none
    resident_id: str | None
    probability: float
    reasons: str
    candidates: list[Candidate] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def candidate_dicts(self, limit: int = TOP_K) -> list[dict[str, object]]:
        return [{"resident_id": c.resident_id, "household_id": c.household_id, "probability": round(c.probability, 6),
                 "weight": round(c.weight, 2), "reasons": c.reasons()} for c in self.candidates[:limit]]


def _posterior(cands: list[Candidate], prior_bits: float) -> None:
    """Fill `probability` in place; stable for large weights."""
    if not cands:
        return
    los = [c.weight + prior_bits for c in cands]
    top = max(los + [0.0])
    denom = 2.0 ** (0.0 - top) + sum(2.0 ** (lo - top) for lo in los)
    for c, lo in zip(cands, los):
        c.probability = 2.0 ** (lo - top) / denom


class Matcher:
    """One registry snapshot, indexed, with a model; reusable for every query."""

    def __init__(self, index: RegistryIndex, *, model: Model = DEFAULT_MODEL, readings: ReadingModel | None = None,
                 as_of: date | None = None, today: date | None = None) -> None:
        self.ix = index
        self.model = model
        self.as_of = as_of
        self.scorer = Scorer(index, model)
        self.ctx = QueryContext(readings=readings, surnames_kanji=index.freq_family_kanji.keys(), today=today)
        self.prior_bits = model.prior_bits(index.size)

    @classmethod
    def learn_readings(cls, index: RegistryIndex) -> ReadingModel:
        """Kanji → reading counts from the registry's own pairs (pykakasi only as a fallback)."""
        rm = ReadingModel()
        rm.learn(zip(index.family_kanji, index.family_kana))
        rm.learn(zip(index.given_kanji, index.given_kana))
        return rm

    # --- candidates ---------------------------------------------------------------------------
    def _years(self, pq: PreparedQuery) -> list[int]:
        if pq.birth_iso:
            return [int(pq.birth_iso[:4])]  # a mistyped year is covered by the birth-date variants
        if pq.year_min is not None and pq.year_max is not None and pq.year_max - pq.year_min <= 3:
            return list(range(pq.year_min, pq.year_max + 1))
        return []

    def candidate_indexes(self, pq: PreparedQuery) -> set[int]:
        ix = self.ix
        found: set[int] = set()

        def take(block: Sequence[int]) -> None:
            if len(block) <= BLOCK_CAP:
                found.update(block)

        def take_similar(block: Sequence[int], other: list[str], want: str) -> None:
            """Members of a name-part + year block whose *other* name part is within two edits of
            what was typed: the block exists to forgive a slip in that part, nothing more."""
            if len(block) > YEAR_BLOCK_CAP:
                return
            if not want:
                found.update(block)
                return
            found.update(i for i in block if Levenshtein.distance(other[i], want, score_cutoff=2) <= 2)

        years = self._years(pq)
        name_parts: set[str] = set()
        for f in pq.forms:
            take(ix.by_full_kana.get(f.full_kana))
            take(ix.by_full_kanji.get(f.full_kanji))
            if not (f.given_kana or f.given_kanji or f.skeleton_given):
                # only a surname so far (staff still typing): its block, when small enough
                take(ix.by_family.get(f.family_kana or f.full_kana))
                take(ix.by_family.get(f.family_kanji or f.full_kanji))
            fams = ([(f.family_kana, f.given_kana)] if f.family_kana
                    else [(p, f.full_kana[len(p):]) for p in self._surname_prefixes(f.full_kana)])
            for y in years:  # one name part plus the year: finds people whose other part was mistyped
                for fk, rest in fams:
                    take_similar(ix.by_family_year.get((fk, y)), ix.given_kana, rest)
                if f.given_kana:
                    take_similar(ix.by_given_year.get((f.given_kana, y)), ix.family_kana, f.family_kana)
            if f.skeleton_family and f.skeleton_given:
                take(ix.by_skeleton.get(f"{f.skeleton_family}|{f.skeleton_given}"))
            name_parts.update(x for x in (f.family_kana, f.given_kana, f.family_kanji, f.given_kanji) if x)
        for tok in pq.alpha.split():
            take(ix.by_alpha_token.get(tok))
        if pq.birth_iso:
            # The exact date's block is taken whole while it is small (a name typed beyond
            # recognition still finds its person); the tired-typist variants, and any large
            # block, only with a second key: a shared surname or given name.
            for n, iso in enumerate([pq.birth_iso, *(v for v, _ in pq.birth_variants)]):
                block = ix.by_birth.get(iso)
                if n == 0 and len(block) <= EXACT_BIRTH_BLOCK:
                    found.update(block)
                elif name_parts and len(block) <= BLOCK_CAP * 10:
                    fk, gk, fj, gj = ix.family_kana, ix.given_kana, ix.family_kanji, ix.given_kanji
                    found.update(i for i in block if fk[i] in name_parts or gk[i] in name_parts
                                 or fj[i] in name_parts or gj[i] in name_parts)
        return found

    def _surname_prefixes(self, full_kana: str) -> list[str]:
        if not full_kana:
            return []
        freq = self.ix.freq_family_kana
        return [full_kana[:n] for n in range(1, min(len(full_kana), 8)) if full_kana[:n] in freq]

    # --- one query --------------------------------------------------------------------------
    def prepare(self, q: Query) -> PreparedQuery:
        return prepare(q, self.ctx)

    def scored(self, pq: PreparedQuery, exclude: Iterable[str] = ()) -> list[Candidate]:
        excluded = set(exclude)
        cands = self.scorer.score_many(pq, self.candidate_indexes(pq))
        cands = [c for c in cands if c.resident_id not in excluded]
        cands.sort(key=lambda c: (-c.weight, c.resident_id))
        _posterior(cands, self.prior_bits)
        return cands

    def without_address(self, cands: list[Candidate]) -> list[Candidate]:
        """These candidates (from :meth:`scored`) as a query without its address scores them —
        exactly what :meth:`scored` gives for it: the address never chooses candidates and only the
        town field depends on it, so the other fields' scores are reused
        (`matching.disclosure.ignore_address`: the answer about a protected candidate may not
        depend on the address)."""
        missing = FieldScore("town", "missing", 0.0)  # what Scorer._town says without an address
        out = []
        for c in cands:
            *name_fields, b, sx, _town = c.fields
            out.append(Candidate(c.index, c.resident_id, c.household_id,
                                 c.name_weight + (0 + b.weight + sx.weight + missing.weight),
                                 [*name_fields, b, sx, missing], contradictions=list(c.contradictions),
                                 name_weight=c.name_weight))
        out.sort(key=lambda c: (-c.weight, c.resident_id))
        _posterior(out, self.prior_bits)
        return out

    def search(self, q: Query, limit: int = 10) -> list[Candidate]:
        """Ranked candidates with reasons, for the staff UI's live search."""
        return self.scored(self.prepare(q))[:limit]

    def decide(self, pq: PreparedQuery, cands: list[Candidate]) -> MatchResult:
        q = pq.query
        m = self.model
        if not cands:
            return MatchResult(q.key, "none", None, 0.0, "no candidate shares a name or birth date key")
        top = cands[0]
        reasons = top.reasons()
        if pq.birth_iso and self.as_of and pq.birth_iso > self.as_of.isoformat():
            return MatchResult(q.key, "none", None, 0.0, f"born after the registry snapshot ({self.as_of})", cands[:TOP_K])
        name_ok = all(top.level(p) not in ("different", "missing") for p in ("family", "given")) or top.level("alpha") == "exact"
        # Without any birth information a name alone must be backed by the address (町字) before
        # a link can be automatic: a namesake visitor is the danger here.
        if top.level("birth") == "missing" and top.level("town") not in ("agree", "same-address"):
            name_ok = False
        needed = m.auto_probability
        runner = cands[1].probability if len(cands) > 1 else 0.0
        summary = f"{reasons}; p={top.probability:.4f}" + (f"; runner-up p={runner:.4f}" if len(cands) > 1 else "")
        if top.probability >= needed and not top.contradictions and name_ok:
            return MatchResult(q.key, "auto", top.resident_id, top.probability, summary, cands[:TOP_K])
        if top.probability >= m.review_probability or top.weight + self.prior_bits >= -m.review_min_bits or (
                name_ok and not top.contradictions):
            why = ""
            if top.contradictions:
                why = f"; contradicts: {','.join(top.contradictions)}"
            elif top.probability < needed:
                why = "; not certain enough"
            return MatchResult(q.key, "review", top.resident_id, top.probability, summary + why, cands[:TOP_K])
        return MatchResult(q.key, "none", None, top.probability, f"best candidate too weak ({reasons})", cands[:TOP_K])

    def match(self, q: Query, exclude: Iterable[str] = ()) -> MatchResult:
        pq = self.prepare(q)
        return self.decide(pq, self.scored(pq, exclude))

    # --- many queries -----------------------------------------------------------------------
    def reconcile(self, queries: list[Query], *, rejected: Mapping[str, Iterable[str]] | None = None,
                  taken: Mapping[str, str] | None = None) -> list[MatchResult]:
        """Decide every query jointly: households support each other, no resident is taken twice.

        `rejected`: query key → resident ids staff rejected for it (never proposed again).
        `taken`: resident id → query key already confirmed by staff (not auto-linked to anyone else).
        """
        return self.decide_all(self.score_all(queries, rejected=rejected), taken=taken)

    def score_all(self, queries: list[Query], *, rejected: Mapping[str, Iterable[str]] | None = None
                  ) -> list[tuple[PreparedQuery, list[Candidate]]]:
        """The per-query half of :meth:`reconcile`: independent for each query, so a caller may
        split the queries between processes and concatenate the results in order."""
        return _score_with(self, rejected or {}, queries)

    def decide_all(self, pairs: list[tuple[PreparedQuery, list[Candidate]]], *,
                   taken: Mapping[str, str] | None = None) -> list[MatchResult]:
        """The joint half of :meth:`reconcile`: households, decisions, no double links."""
        taken = dict(taken or {})
        prepared, scored = [p for p, _ in pairs], [c for _, c in pairs]
        self._household_support(prepared, scored)
        results = [self.decide(pq, c) for pq, c in zip(prepared, scored)]
        self._no_double_links(results, taken)
        return results

    def _group_key(self, pq: PreparedQuery) -> str:
        if pq.query.household_key:
            return "h:" + pq.query.household_key
        fam = next((f.family_kana or f.family_kanji for f in pq.forms if f.family_kana or f.family_kanji), "")
        if fam and pq.town:
            return f"s:{fam}:{pq.town}"
        return ""

    def _household_support(self, prepared: list[PreparedQuery], scored: list[list[Candidate]]) -> None:
        """Members who arrived together and point at one registry household lift each other."""
        groups: dict[str, list[int]] = defaultdict(list)
        for n, pq in enumerate(prepared):
            g = self._group_key(pq)
            if g:
                groups[g].append(n)
        m = self.model
        for members in groups.values():
            if len(members) < 2:
                continue
            votes: Counter[str] = Counter()
            for n in members:
                cands = scored[n]
                if cands and cands[0].probability >= 0.5 and cands[0].household_id:
                    votes[cands[0].household_id] += 1
            if not votes:
                continue
            household, count = votes.most_common(1)[0]
            if count < 2:
                continue
            for n in members:
                changed = False
                for c in scored[n]:
                    own_vote = scored[n][0] is c and c.probability >= 0.5 and c.household_id == household
                    supporters = count - (1 if own_vote else 0)
                    if c.household_id == household and supporters >= 1:
                        c.weight += m.household_support
                        c.fields.append(FieldScore("household", f"same-household({supporters + 1} together)", m.household_support))
                        changed = True
                    elif c.household_id and c.household_id != household:
                        c.weight += m.household_against
                        changed = True
                if changed:
                    scored[n].sort(key=lambda c: (-c.weight, c.resident_id))
                    _posterior(scored[n], self.prior_bits)

    @staticmethod
    def _no_double_links(results: list[MatchResult], taken: dict[str, str]) -> None:
        """Two evacuees never auto-link to one resident: both go to review, flagged."""
        autos: dict[str, list[MatchResult]] = defaultdict(list)
        for r in results:
            if r.decision == "auto" and r.resident_id:
                autos[r.resident_id].append(r)
        for rid, rs in autos.items():
            if rid in taken:
                for r in rs:
                    r.decision = "review"
                    r.flags.append("possible-duplicate")
                    r.reasons += f"; resident already confirmed for evacuee {taken[rid]}: possible duplicate registration"
            elif len(rs) > 1:
                others = ",".join(r.key for r in rs)
                for r in rs:
                    r.decision = "review"
                    r.flags.append("possible-duplicate")
                    r.reasons += f"; same resident as evacuees {others}: possible duplicate registration"


def _score_with(m: Matcher, rejected: Mapping[str, Iterable[str]],
                queries: list[Query]) -> list[tuple[PreparedQuery, list[Candidate]]]:
    """Prepare and score; keeps the strongest candidates only (the tail no longer moves the
    posterior, and household reasoning only ever looks at the top)."""
    out = []
    for q in queries:
        pq = m.prepare(q)
        out.append((pq, m.scored(pq, rejected.get(q.key, ()))[:KEEP]))
    return out
