"""Issue 12 item 1 (address oracle) and item 3 (the household) in search, `anpi match` and review."""

from __future__ import annotations

import json

import pytest

from tests.disclosure.conftest import MOTHER_ADDR, register_child
from tests.web.helpers import client_as

#: from far to exactly right: the attacker's walk towards the flagged mother's address
ADDRESSES = ["", "岩手県陸前高田市高田町1", "岩手県陸前高田市米崎町", "岩手県陸前高田市米崎町2", "岩手県陸前高田市米崎町2-5",
             MOTHER_ADDR, "米崎町2-1"]


def _flagged_view(result: dict, rid: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    cands = result["candidates"]
    pos = next(i for i, c in enumerate(cands) if c["resident_id"] == rid)
    return pos, cands[pos]


@pytest.mark.parametrize("role", ["佐藤", "窓口"])
def test_search_output_for_a_flagged_candidate_does_not_depend_on_the_address(app, role: str) -> None:  # type: ignore[no-untyped-def]
    c = client_as(app, role)
    seen = set()
    for addr in ADDRESSES:
        r = c.get("/api/search", params={"name": "山崎 花", "birth": "1999-12-31", "address": addr})
        assert r.status_code == 200
        res = r.json()
        pos, cand = _flagged_view(res, "1004")
        assert cand["address"] == "（閲覧制限）" and cand["household_id"] == ""
        seen.add(json.dumps({"pos": pos, "cand": cand, "top": [res["decision"], res["probability"], res["reasons"]]},
                            sort_keys=True, ensure_ascii=False))
    assert len(seen) == 1, seen


def test_hq_still_gets_the_address_evidence(app) -> None:  # type: ignore[no-untyped-def]
    c = client_as(app, "本部")
    far = c.get("/api/search", params={"name": "山崎 花", "birth": "1999-12-31", "address": "高田町1"}).json()
    near = c.get("/api/search", params={"name": "山崎 花", "birth": "1999-12-31", "address": MOTHER_ADDR}).json()
    assert _flagged_view(far, "1004")[1]["reasons"] != _flagged_view(near, "1004")[1]["reasons"]
    assert _flagged_view(near, "1004")[1]["address"] == MOTHER_ADDR


def test_flagged_mothers_child_shows_no_address_or_household_in_search(app) -> None:  # type: ignore[no-untyped-def]
    c = client_as(app, "佐藤")
    seen = set()
    for addr in ADDRESSES:
        res = c.get("/api/search", params={"name": "山崎 陽", "birth": "2015-04-01", "address": addr}).json()
        pos, cand = _flagged_view(res, "1009")
        assert cand["address"] == "（閲覧制限）" and cand["household_id"] == ""
        seen.add(json.dumps([pos, cand], sort_keys=True, ensure_ascii=False))
    assert len(seen) == 1
    hq = client_as(app, "本部").get("/api/search", params={"name": "山崎 陽", "birth": "2015-04-01"}).json()
    assert _flagged_view(hq, "1009")[1]["household_id"] == "H2"


def test_anpi_match_cli_is_blind_to_the_address_of_a_flagged_candidate(family_shelter) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import Cli

    cli = Cli(family_shelter.db_path)
    outs = set()
    for addr in ADDRESSES:
        args = ["match", "--name", "山崎 花", "--birth", "1999-12-31", "--json"] + (["--address", addr] if addr else [])
        res = cli.json(*args)
        pos, cand = _flagged_view(res, "1004")  # type: ignore[arg-type]
        assert cand["address"] == "（閲覧制限）"
        outs.add(json.dumps([pos, cand], sort_keys=True, ensure_ascii=False))
    assert len(outs) == 1


def test_review_of_a_protected_candidate_does_not_depend_on_the_typed_address(app) -> None:  # type: ignore[no-untyped-def]
    """Registrations whose review candidate is the child: staff could type guesses as the address at
    intake; the review answer for the protected candidate is the same whatever the address."""
    from sqlmodel import Session

    from app.services import evacuees as ev_svc
    from app.services.reconcile import reconcile_all
    from app.services.roster import EvacueeInput, register

    ids = []
    with Session(app.state.engine, expire_on_commit=False) as s:
        for addr in ("岩手県陸前高田市高田町1", "岩手県陸前高田市米崎町2", MOTHER_ADDR):
            ids.append(register(s, EvacueeInput(name="山崎 陽", address=addr), by="佐藤").id)
        s.commit()
    reconcile_all(app.state.engine)
    seen = set()
    with Session(app.state.engine) as s:
        for eid in ids:
            item = ev_svc.review_item(s, eid, reveal_restricted=False)
            assert item is not None
            pos, cand = _flagged_view({"candidates": item.candidates}, "1009")
            assert cand["address"] == "（閲覧制限）" and cand["household_id"] == ""
            seen.add(json.dumps([pos, cand], sort_keys=True, ensure_ascii=False))
    assert len(seen) == 1, seen


def test_child_linked_at_intake_is_protected(app) -> None:  # type: ignore[no-untyped-def]
    register_child(app)
    c = client_as(app, "佐藤")
    res = c.get("/api/search", params={"name": "山崎 陽", "birth": "2015-04-01"}).json()
    assert _flagged_view(res, "1009")[1]["address"] == "（閲覧制限）"


@pytest.mark.parametrize("name, birth", [("山崎 花", "1999-12-31"), ("山崎 陽", ""), ("高橋 京子", "S47.11.3"),
                                         ("佐々木 健", ""), ("渡辺 稔", "S30.5.5")])
def test_reusing_the_scores_without_the_address_equals_scoring_again(app, name: str, birth: str) -> None:  # type: ignore[no-untyped-def]
    """`Matcher.without_address` (what the blind search uses) gives exactly what a fresh query
    without the address gives: same candidates, weights, probabilities, reasons, decision."""
    from matching.query import Query
    from app.services.reconcile import current_matcher

    matcher, _snap = current_matcher(app.state.engine)

    def view(cands):  # type: ignore[no-untyped-def]
        return [(c.resident_id, c.weight, c.probability, c.reasons(), c.contradictions) for c in cands]

    fresh_pq = matcher.prepare(Query(name=name, birth=birth))
    fresh = matcher.scored(fresh_pq)
    for addr in ADDRESSES[1:]:
        reused = matcher.without_address(matcher.scored(matcher.prepare(Query(name=name, birth=birth, address=addr))))
        assert view(reused) == view(fresh)
        a, b = matcher.decide(fresh_pq, reused), matcher.decide(fresh_pq, fresh)
        assert (a.decision, a.resident_id, a.probability, a.reasons) == (b.decision, b.resident_id, b.probability, b.reasons)
