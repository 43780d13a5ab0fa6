"""閲覧制限 at the hub, one rule (`sync.hub.restricted`) for the feed, 安否照会, PFIF and certificates.

Issue 6's review found the four desks deciding it four ways; these reproduce what leaked:
(1a) the PFIF export published one registration of a person whose other registration was
care-restricted; (1b) an evacuee confirmed-linked to another town's flagged resident was published
and forwarded by the feed; (1c) without a data key a laptop's certificate read as not restricted;
(1d) a masked certificate still named the issuing shelter, device and identity note; (1e) the
certificate list's text search matched a restricted household's address; (1f) the PFIF import
answer counted links the desk may not see. And the one rule agrees with 安否照会's.

Real pieces: PostgreSQL as a role row-level security binds, the hub's own apply (`apply_events`),
uvicorn serving the hub, a shelter laptop (SQLite) that issues and syncs over HTTP.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from app import hub_certificates as hc, hub_pfif
from app.formats.pfif import PfifPerson, write_pfif
from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.services import certificates as certs
from sync import client
from sync.hub import registry, restricted, tenants
from sync.hub.apply import apply_events
from sync.hub.store import WireEvent, hub_cross_link, hub_evacuee, new_row_id, set_tenant, utcnow
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, B, add_towns, app_shelter, enroll, hq, store_registry
from tests.sync.helpers import ThreadedServer, no_sleep

UTC = timezone.utc
CAUSE = "令和8年11月20日の地震"
PUBLIC = {"relatives": True, "acquaintances": True, "public": True}


@pytest.fixture
def world(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=300, evacuees=5)
    store_registry(engine, key, a)
    store_registry(engine, key, b)
    a.desk_token = tenants.add_user(engine, A, "窓口-A", "desk")[1]  # type: ignore[attr-defined]
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        yield {"engine": engine, "key": key, "a": a, "b": b, "http": http, "url": srv.url, "pg": pg_hub,
               "tmp": tmp_path}
    engine.dispose()


def people(town: Any, flagged: bool) -> list[dict[str, str]]:
    """Residents (flagged 閲覧制限 or not); unflagged ones with a full name and date of birth."""
    return [p for p in town.residents if bool(p["閲覧制限"]) == flagged and (flagged or p["氏"] and p["名"] and p["生年月日"])]


_seq = iter(range(1, 10_000))


def ev(kind: str, **data: Any) -> WireEvent:
    n = next(_seq)
    return WireEvent(new_row_id(), "D" * 26, 1, n, kind, utcnow().isoformat(), "{}", "", data)


def register(eid: str, name: str, *, care: Any = None, consents: Any = None, household_key: str | None = None) -> WireEvent:
    return ev("evacuee.registered", evacuee_id=eid, shelter_code="FB1", name=name, name_kana="", sex="F",
              address="", birth_date=None, care=care or {}, consents=consents or PUBLIC, household_key=household_key,
              registered_at=utcnow().isoformat())


def decide(eid: str, rid: str, decision: str = "confirmed", town: str | None = None) -> WireEvent:
    return ev("match.decided", decision_id=new_row_id(), evacuee_id=eid, resident_id=rid, municipality_code=town,
              decision=decision, at=utcnow().isoformat(), by_user="staff")


def apply(engine: Any, events: list[WireEvent], m: str = A) -> None:
    with engine.begin() as conn:
        set_tenant(conn, m)
        apply_events(conn, events, now=utcnow(), municipality=m)


def unwithhold(w: dict[str, Any]) -> None:
    """Look behind the feed's sticky flag: the rule itself must protect (a hub that applied the link
    before it held its data key never withheld it)."""
    admin = create_engine(w["pg"].admin_url)
    with admin.begin() as c:
        c.execute(text("UPDATE hub_evacuee SET withheld = false"))
    admin.dispose()


def mixed(w: dict[str, Any]) -> dict[str, str]:
    """Evacuees of 双葉町 covering every way to be (or not be) protected; returns name → evacuee id."""
    a_ok, a_bad = people(w["a"], False), people(w["a"], True)
    b_ok, b_bad = people(w["b"], False), people(w["b"], True)
    ids = {k: new_row_id() for k in ("plain", "linked_ok", "linked_bad", "same_a", "same_b", "broken_care",
                                     "care_list", "review_bad", "review_ok", "other_bad", "other_ok", "cross",
                                     "mate", "unlinked")}
    events = [register(ids[k], k) for k in ids if k not in ("same_b", "care_list", "mate")]
    events += [register(ids["same_b"], "same_b", care={"restricted": True}),
               register(ids["care_list"], "care_list", care=["restricted"]),
               register(ids["mate"], "mate", household_key="HK-1")]
    events += [decide(ids["linked_ok"], a_ok[0]["宛名番号"]), decide(ids["linked_bad"], a_bad[0]["宛名番号"], "auto"),
               decide(ids["same_a"], a_ok[1]["宛名番号"]), decide(ids["same_b"], a_ok[1]["宛名番号"]),
               decide(ids["review_bad"], a_bad[-1]["宛名番号"], "review"),
               decide(ids["review_ok"], a_ok[2]["宛名番号"], "review"),
               decide(ids["other_bad"], b_bad[0]["宛名番号"], town=B), decide(ids["other_ok"], b_ok[0]["宛名番号"], town=B)]
    apply(w["engine"], events)
    # the PFIF household widening: "mate" registered together with "linked_bad"
    with w["engine"].begin() as c:
        set_tenant(c, A)
        c.execute(hub_evacuee.update().where(hub_evacuee.c.municipality_code == A, hub_evacuee.c.evacuee_id.in_(
            [ids["mate"], ids["linked_bad"]])).values(household_key="HK-1"))
        c.execute(hub_evacuee.update().where(hub_evacuee.c.municipality_code == A,
                                             hub_evacuee.c.evacuee_id == ids["broken_care"]).values(care="{broken"))
    # 加須市 (home) found "cross" to be one of its protected residents at 双葉町's shelter
    assert tenants.share(w["engine"], B, A, actor="test")
    with w["engine"].begin() as c:
        set_tenant(c, B)
        c.execute(hub_cross_link.insert().values(municipality_code=B, host_code=A, evacuee_id=ids["cross"],
                                                 resident_id=b_bad[-1]["宛名番号"], decision="confirmed", linked=True,
                                                 rejected="[]", restricted=True, updated_at=utcnow()))
    return ids


PROTECTED = {"linked_bad", "same_a", "same_b", "broken_care", "care_list", "review_bad", "other_bad", "cross"}


def test_one_rule_protects_exactly_these_and_fails_closed(world) -> None:  # noqa: ANN001
    w = world
    ids = mixed(w)
    unwithhold(w)
    name = {v: k for k, v in ids.items()}
    with w["engine"].connect() as c:
        got = restricted.protected_evacuees(c, A, w["key"])
        assert {name[e] for e in got} == PROTECTED
        # asked about one registration, the answer still counts the person's other one (1a)
        assert restricted.protected_evacuees(c, A, w["key"], [ids["same_a"]]) == {ids["same_a"]}
        assert restricted.protected_evacuees(c, A, w["key"], [ids["plain"], ids["other_bad"]]) == {ids["other_bad"]}
        # without the data key: both towns' backups flag people, so every link protects
        nokey = restricted.protected_evacuees(c, A, None)
        assert {name[e] for e in nokey} == PROTECTED | {"linked_ok", "review_ok", "other_ok"}
        # residents: flagged in any backup; without the key, all of a town that flags anyone
        rid_bad, rid_ok = people(w["a"], True)[0]["宛名番号"], people(w["a"], False)[0]["宛名番号"]
        assert restricted.protected_residents(c, A, w["key"], [rid_bad, rid_ok]) == {rid_bad}
        assert restricted.protected_residents(c, A, None, [rid_bad, rid_ok]) == {rid_bad, rid_ok}
        # publication widens to whoever registered together with a protected person
        pub = restricted.protected_for_publication(c, A, w["key"], None)
        assert {name[e] for e in pub} == PROTECTED | {"mate"}


def test_feed_withholds_by_the_one_rule(world) -> None:  # noqa: ANN001
    """(1b) and (1a) for the feed: apply withholds the evacuee linked to 加須市's flagged resident and
    both registrations of the person one of whose registrations is care-restricted."""
    w = world
    ids = mixed(w)
    with w["engine"].connect() as c:
        set_tenant(c, A)
        held = {e for (e,) in c.execute(select(hub_evacuee.c.evacuee_id).where(
            hub_evacuee.c.municipality_code == A, hub_evacuee.c.withheld.is_(True))).all()}
    name = {v: k for k, v in ids.items()}
    assert {"other_bad", "same_a", "same_b", "linked_bad", "review_bad", "care_list"} <= {name[e] for e in held}
    assert not {"plain", "linked_ok", "other_ok", "review_ok", "unlinked"} & {name[e] for e in held}


def test_pfif_export_never_publishes_a_protected_person(world) -> None:  # noqa: ANN001
    """(1a) registration EA consented to publication, EB of the same person is care-restricted;
    (1b) an evacuee confirmed-linked to 加須市's flagged resident. Neither is published, even were
    the feed's withheld flag lost."""
    w = world
    ids = mixed(w)
    unwithhold(w)
    doc, res = hub_pfif.build_export(w["engine"], w["key"], A)
    published = {p.person_record_id.rsplit("/", 1)[1] for p in doc.persons}
    name = {v: k for k, v in ids.items()}
    assert {name[e] for e in published} == {"plain", "linked_ok", "other_ok", "review_ok", "unlinked"}
    assert res.protected == len(PROTECTED | {"mate"})


def test_pfif_import_counts_only_links_the_caller_may_see(world) -> None:  # noqa: ANN001
    """(1f) someone looks for a 閲覧制限 resident: the desk's answer counts no link; an admin's does."""
    w = world
    p = people(w["a"], True)[0]
    t = datetime(2026, 11, 1, tzinfo=UTC)
    rec = PfifPerson("pf.example.org/h1", source_date=t, full_name=f"{p['氏']} {p['名']}",
                     alternate_names=f"{p['氏カナ']} {p['名カナ']}", sex={"1": "male", "2": "female"}[p["性別"]],
                     date_of_birth=p["生年月日"], author_name="家族")
    data = write_pfif([rec])

    def post(token: str) -> dict[str, Any]:
        r = w["http"].post("/v1/hq/pfif/import?name=h.xml", content=data, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return r.json()

    desk = post(w["a"].desk_token)
    assert (desk["linked_auto"], desk["linked_review"]) == (0, 0) and desk["link_rows"] >= 1
    admin = post(w["a"].admin_token)
    assert admin["linked_auto"] + admin["linked_review"] >= 1


def sync(sh: Any, http: httpx.Client) -> None:
    res = client.sync_once(sh.session, http=http, sleep=no_sleep)
    assert res.ok, res.as_dict()


def test_laptop_certificate_of_a_restricted_household(world) -> None:  # noqa: ANN001
    """(1c) a laptop's certificate for a 閲覧制限 household is restricted at the hub — with the key,
    and without it (fail closed); (1d) the desk sees neither its address nor the shelter, device or
    identity note that issued it; (1e) the desk's text search never matches its address."""
    w = world
    engine, http, a = w["engine"], w["http"], w["a"]
    sh = app_shelter(w["tmp"], "双葉町体育館")
    enroll(sh, engine, http, A, w["url"])
    pull_into_shelter(sh.engine, sh.session, http=http)
    hidden = people(a, True)[0]
    flagged_hh = {p["世帯番号"] for p in people(a, True)}
    open_ = next(p for p in people(a, False) if p["世帯番号"] not in flagged_hh)
    with sh.session() as s:
        bad = certs.issue(s, resident_id=hidden["宛名番号"], kind="hisai", cause=CAUSE, in_person=True,
                          by="避難所窓口").number
        good = certs.issue(s, resident_id=open_["宛名番号"], kind="hisai", cause=CAUSE, in_person=True,
                           by="避難所窓口").number
        s.commit()
    sync(sh, http)

    by = {c.number: c for c in hc.list_certificates(engine, w["key"], A, by=None)}
    assert by[bad].restricted and not by[good].restricted and by[bad].head_address == hidden["住所"]
    nokey = {c.number: c for c in hc.list_certificates(engine, None, A, by=None)}
    assert nokey[bad].restricted and nokey[good].restricted  # 双葉町's backups flag people: fail closed
    shown = nokey[bad].as_dict(reveal_restricted=False, with_history=True)
    assert hidden["住所"] not in json.dumps(shown, ensure_ascii=False)

    r = hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{bad}")
    assert r.status_code == 200
    one = r.json()
    assert one["restricted"] is True and one["head_address"] == hc.MASKED
    assert one["shelter_name"] == hc.MASKED and one["device_id"] is None
    assert one["history"] and all("device_id" not in h for h in one["history"])
    for leak in (hidden["住所"], "双葉町体育館", sh.device().device_id):
        assert leak not in r.text, leak
    full = hq(http, a.hq_token, "GET", f"/v1/hq/certificates/{bad}").json()
    assert full["head_address"] == hidden["住所"] and full["shelter_name"] == "双葉町体育館"
    assert full["device_id"] == sh.device().device_id
    # the identity note (it may name the other town's shelter that matched the applicant) is masked too
    r = hq(http, a.hq_token, "POST", "/v1/hq/certificates", {
        "resident_id": hidden["宛名番号"], "kind": "risai", "damage": "半壊", "cause": CAUSE, "in_person": True,
        "id_note": "運転免許証"})
    assert r.status_code == 201, r.text
    hub_no = r.json()["number"]
    one = hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{hub_no}")
    assert one.json()["identity_note"] == hc.MASKED and "運転免許証" not in one.text
    assert hq(http, a.hq_token, "GET", f"/v1/hq/certificates/{hub_no}").json()["identity_note"] == "運転免許証"

    q = hidden["住所"][-6:]
    desk_hits = hq(http, a.desk_token, "GET", "/v1/hq/certificates", None).json()["certificates"]
    assert {c["number"] for c in desk_hits} == {bad, good, hub_no}
    r = http.get("/v1/hq/certificates", params={"q": q}, headers={"Authorization": f"Bearer {a.desk_token}"})
    assert bad not in {c["number"] for c in r.json()["certificates"]}
    r = http.get("/v1/hq/certificates", params={"q": q}, headers={"Authorization": f"Bearer {a.hq_token}"})
    assert bad in {c["number"] for c in r.json()["certificates"]}
    # the desk still finds it by number or 宛名番号 (neither says where the household is)
    r = http.get("/v1/hq/certificates", params={"q": hidden["宛名番号"]},
                 headers={"Authorization": f"Bearer {a.desk_token}"})
    assert set(c["number"] for c in r.json()["certificates"]) == {bad, hub_no}
