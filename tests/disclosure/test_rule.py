"""The one 閲覧制限 rule as a table (`matching.disclosure`): what each caller learns about each person."""

from __future__ import annotations

import pytest

from matching.disclosure import (MASK, Caller, Facts, decide, hidden_id, household_facts, ignore_address, masked,
                                 spread)

DESK, HQ, FILE = Caller(), Caller(sees_restricted=True), Caller(publication=True)
HQ_FILE = Caller(sees_restricted=True, publication=True)
PLAIN, FLAGGED, FAMILY = Facts(), Facts(flagged=True), Facts(household_flagged=True)


@pytest.mark.parametrize("who, facts, listed, whereabouts, evidence, marked", [
    (DESK, PLAIN, True, True, True, False),
    (HQ, PLAIN, True, True, True, False),
    (FILE, PLAIN, True, True, True, False),
    (DESK, FLAGGED, True, False, False, False),
    (DESK, FAMILY, True, False, False, False),  # the household is protected like the person
    (HQ, FLAGGED, True, True, True, True),
    (HQ, FAMILY, True, True, True, True),
    (FILE, FLAGGED, False, False, False, False),
    (FILE, FAMILY, False, False, False, False),
    (HQ_FILE, FLAGGED, False, False, False, False),  # a file never holds them, whoever writes it
])
def test_decide(who: Caller, facts: Facts, listed: bool, whereabouts: bool, evidence: bool, marked: bool) -> None:
    s = decide(who, facts)
    assert (s.listed, s.whereabouts, s.address_evidence, s.marked) == (listed, whereabouts, evidence, marked)
    assert masked("米崎町2-1", s) == ("米崎町2-1" if whereabouts else MASK)
    assert hidden_id("H2", s) == ("H2" if whereabouts else "")


def test_households_spread_and_overlap() -> None:
    assert spread({"mother"}, [{"mother", "child"}, {"child", "friend"}, {"other"}]) == {"mother", "child", "friend"}
    f = household_facts(["mother", "child", "other"], {"mother"}, [{"mother", "child"}])
    assert f == {"mother": FLAGGED, "child": FAMILY, "other": PLAIN}


def test_the_engine_ignores_the_address_when_any_candidate_is_protected() -> None:
    assert ignore_address(DESK, [PLAIN, FAMILY])
    assert not ignore_address(DESK, [PLAIN, PLAIN])
    assert not ignore_address(HQ, [FLAGGED])
