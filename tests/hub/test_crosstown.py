"""Evacuees across town lines (双葉町 → 加須市): matched at the hub against the home's registry under an
audited agreement; the home's HQ sees its resident safe in the other town's shelter; the host's
shelter learns "住民: 双葉町" and the basic four items, and nothing else — never for 閲覧制限 people.

Real pieces throughout: shelter laptops are SQLite files driven through the shelter services
(register, reconcile) and ``sync_once`` over HTTP to a uvicorn hub on PostgreSQL (as a role that
row-level security binds; composed as ``anpi hub serve`` runs it, ``app.hub_app.create_app``); HQ reads the hub's ``/v1/hq`` routes; exports go through the CLI.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app as anpi
from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.services.reconcile import reconcile_all
from app.services.roster import EvacueeInput, register
from sync import client
from sync.hub import audit, crossmatch, registry, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, A_NAME, B, B_NAME, add_towns, app_shelter, enroll, hq, store_registry
from tests.sync.helpers import ThreadedServer, no_sleep

runner = CliRunner()


def typed(p: dict[str, str], **over: str) -> EvacueeInput:
    """What a volunteer at the host's desk types for a home resident."""
    sex = {"1": "男", "2": "女"}.get(p["性別"], "")
    data = dict(name=f"{p['氏']} {p['名']}", name_kana=f"{p['氏カナ']} {p['名カナ']}", birth_date=p["生年月日"],
                sex=sex, address=p["住所"])
    data.update(over)
    return EvacueeInput(**data)


def sync(sh, http: httpx.Client) -> client.SyncResult:  # noqa: ANN001
    res = client.sync_once(sh.session, http=http, sleep=no_sleep)
    assert res.ok, res.as_dict()
    return res


@pytest.fixture
def towns(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)  # as `anpi hub serve` runs it (the list is app/'s)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=300, evacuees=10)
    store_registry(engine, key, a)
    store_registry(engine, key, b)
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        yield app, engine, key, a, b, srv.url, http, pg_hub
    engine.dispose()


def pick(town, n: int, restricted: bool = False) -> list[dict[str, str]]:  # noqa: ANN001
    out = [p for p in town.residents if p["氏"] and p["名"] and p["生年月日"] and bool(p["閲覧制限"]) == restricted
           and not p["英字氏名"]]
    return out[:n]


def test_cross_town_evacuee_is_found_and_only_the_basic_four_cross(towns, tmp_path: Path) -> None:  # noqa: ANN001
    app, engine, key, a, b, url, http, pg = towns
    assert tenants.share(engine, A, B, actor="test") is True
    assert tenants.share(engine, A, B, actor="test") is False  # already active

    kazo = app_shelter(tmp_path, "加須市民体育館")
    enroll(kazo, engine, http, B, url)
    pull_into_shelter(kazo.engine, kazo.session, http=http)  # the host's own registry, from the hub
    safe, unsure, hidden = pick(a, 3)[0], pick(a, 3)[1], pick(a, 1, restricted=True)[0]
    with kazo.session() as s:
        e_safe = register(s, typed(safe), by="staff", shelter_code="KZ1").id
        # same person, but the volunteer ticked the other sex: never automatic
        e_unsure = register(s, typed(unsure, sex="男" if unsure["性別"] == "2" else "女",
                                     address=""), by="staff", shelter_code="KZ1").id
        e_hidden = register(s, typed(hidden), by="staff", shelter_code="KZ1").id
        s.commit()
    rows = {r.evacuee.id: r for r in reconcile_all(kazo.engine)}
    assert {rows[e].decision for e in (e_safe, e_unsure, e_hidden)} == {"none"}  # not in 加須市's registry
    sync(kazo, http)
    crossmatch.run_pending(engine, key)

    # 双葉町's HQ: its residents are safe in 加須市's shelter
    r = hq(http, a.hq_token, "GET", "/v1/hq/anpi-list?status=safe")
    assert r.status_code == 200, r.text
    doc = r.json()
    found = {row["resident_id"]: row for row in doc["rows"]}
    assert set(found) == {safe["宛名番号"], hidden["宛名番号"]}
    w = found[safe["宛名番号"]]["where"]
    assert (w["municipality_code"], w["municipality_name"], w["shelter_name"]) == (B, B_NAME, "加須市民体育館")
    items = hq(http, a.hq_token, "GET", "/v1/hq/review").json()["items"]
    assert [(i["kind"], i["evacuee_id"]) for i in items] == [("cross_match", e_unsure)]
    assert items[0]["detail"]["candidates"][0]["resident_id"] == unsure["宛名番号"]
    assert "contradicts" in items[0]["detail"]["reasons"]
    # 加須市's HQ cannot see that item, nor resolve it (same answer as for an id that does not exist)
    assert hq(http, b.hq_token, "GET", "/v1/hq/review").json()["items"] == []
    nope = hq(http, b.hq_token, "POST", f"/v1/hq/review/{items[0]['item_id']}", {"decision": "confirmed"})
    ghost = hq(http, b.hq_token, "POST", "/v1/hq/review/01HZZZZZZZZZZZZZZZZZZZZZZZ", {"decision": "confirmed"})
    assert (nope.status_code, nope.json()) == (ghost.status_code, ghost.json()) == (404, {"error": "not_found",
                                                                                          "detail": "not found"})
    # 双葉町's staff confirm the candidate
    r = hq(http, a.hq_token, "POST", f"/v1/hq/review/{items[0]['item_id']}",
           {"decision": "confirmed", "resident_id": unsure["宛名番号"]})
    assert r.status_code == 200, r.text
    again = hq(http, a.hq_token, "POST", f"/v1/hq/review/{items[0]['item_id']}", {"decision": "confirmed"})
    assert again.status_code == 409
    assert hq(http, a.hq_token, "GET", "/v1/hq/status").json()["found_elsewhere"] == 3

    # the host's shelter learns "住民: 双葉町" and the basic four — and nothing of the 閲覧制限 person
    sync(kazo, http)
    with kazo.session() as s:
        n1, n2, n3 = (client.cross_town_notice(s, e) for e in (e_safe, e_unsure, e_hidden))
        payloads = [r[0] for r in s.exec(text("SELECT payload FROM remote_event"))]  # type: ignore[call-overload]
    assert n1 is not None and n1["label"] == f"住民: {A_NAME}" and n1["decision"] == "auto"
    assert set(n1) == {"evacuee_id", "home_municipality_code", "home_municipality_name", "label", "decision",
                       "resident"}
    assert n1["resident"] == {"name": f"{safe['氏']}　{safe['名']}", "birth_date": safe["生年月日"],
                              "sex": {"1": "男", "2": "女"}[safe["性別"]], "address": safe["住所"]}
    assert n2 is not None and n2["decision"] == "confirmed"
    assert n3 is None
    # …and the shelter's person page shows it: "住民: 双葉町" with the basic four items
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.services import accounts
    from tests.web.helpers import login

    with kazo.session() as s:
        accounts.add_user(s, "受付 花子", "staff", pin="2468")
        s.commit()
    shelter_app = create_app(kazo.path)
    with TestClient(shelter_app) as web:
        login(web, "受付 花子", "2468")
        page = web.get(f"/roster/{e_safe}").text
        assert f"住民: {A_NAME}" in page and safe["住所"] in page and f"{safe['氏']}　{safe['名']}" in page
        assert "住民: " not in web.get(f"/roster/{e_hidden}").text
    shelter_app.state.engine.dispose()
    blob = "\n".join(payloads)
    for p in a.residents:  # no 宛名番号 / 世帯番号 of the home ever reaches the host
        assert p["宛名番号"] not in blob and p["世帯番号"] not in blob
    assert hidden["住所"] not in blob and hidden["生年月日"] not in blob

    # 加須市's HQ sees the label on its evacuee list
    evs = {e["evacuee_id"]: e for e in hq(http, b.hq_token, "GET", "/v1/hq/evacuees").json()["evacuees"]}
    assert evs[e_safe]["resident_of"]["label"] == f"住民: {A_NAME}" and evs[e_hidden]["resident_of"] is None

    # every disclosure is audited in the home's log; the chain holds
    with engine.connect() as c:
        assert audit.count(c, A, "crossmatch.disclosed") == 3
        assert audit.count(c, A, "share.granted") == 1 and audit.count(c, B, "share.granted") == 1
        assert audit.verify(c, A) is None and audit.verify(c, B) is None

    # the host's laptop moves the person on: the home's view follows
    from app.services.evacuees import check_out

    with kazo.session() as s:
        check_out(s, e_safe, by="staff", destination="親戚宅")
        s.commit()
    sync(kazo, http)
    row = next(x for x in hq(http, a.hq_token, "GET", "/v1/hq/found-elsewhere").json()["found"]
               if x["evacuee_id"] == e_safe)
    assert row["status"] == "left"

    # exports: 双葉町's list shows them safe in 加須市; 加須市's list has none of 双葉町's residents
    env = {"ANPI_HUB_DATABASE_URL": pg.url, "ANPI_HUB_DATA_KEY": key.to_text()}
    out_a, out_b = tmp_path / "futaba.csv", tmp_path / "kazo.xlsx"
    r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", "csv", "--out",
                             str(out_a)], env=env, catch_exceptions=False)
    assert r.exit_code == 0 and "confirmed safe" in r.stdout, r.output
    with out_a.open(encoding="utf-8-sig") as fh:
        lines = {row["宛名番号"]: row for row in csv.DictReader(fh)}
    assert hidden["宛名番号"] not in lines  # 閲覧制限 never in a file
    assert lines[unsure["宛名番号"]]["状態"] == "避難所で確認" and B_NAME in lines[unsure["宛名番号"]]["避難所"]
    assert lines[safe["宛名番号"]]["状態"] == "退所"
    assert len(lines) == sum(1 for p in a.residents if not p["閲覧制限"])
    r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", B, "--format", "xlsx", "--out",
                             str(out_b)], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    import openpyxl

    wb = openpyxl.load_workbook(out_b, read_only=True)
    cells = {str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c}
    assert not cells & {p["宛名番号"] for p in a.residents}
    assert {p["宛名番号"] for p in b.residents if not p["閲覧制限"]} <= cells
    with engine.connect() as c:
        assert audit.count(c, A, "export.anpi_list") == 1 and audit.count(c, B, "export.anpi_list") == 1


def test_no_agreement_no_matching_and_unshare_stops_it(towns, tmp_path: Path) -> None:  # noqa: ANN001
    app, engine, key, a, b, url, http, pg = towns
    kazo = app_shelter(tmp_path, "kazo")
    enroll(kazo, engine, http, B, url)
    first, second = pick(a, 2)
    with kazo.session() as s:
        register(s, typed(first), by="staff", shelter_code="KZ1")
        s.commit()
    sync(kazo, http)
    crossmatch.run_pending(engine, key)
    assert hq(http, a.hq_token, "GET", "/v1/hq/anpi-list?status=safe").json()["total"] == 0
    tenants.share(engine, A, B)  # the agreement looks at the evacuees already there (address names 双葉町)
    crossmatch.run_pending(engine, key)
    assert hq(http, a.hq_token, "GET", "/v1/hq/anpi-list?status=safe").json()["total"] == 1
    assert tenants.unshare(engine, A, B) is True and tenants.unshare(engine, A, B) is False
    with kazo.session() as s:
        register(s, typed(second), by="staff", shelter_code="KZ1")
        s.commit()
    sync(kazo, http)
    crossmatch.run_pending(engine, key)
    assert hq(http, a.hq_token, "GET", "/v1/hq/anpi-list?status=safe").json()["total"] == 1
    shares = hq(http, b.hq_token, "GET", "/v1/hq/shares").json()["shares"]
    assert [(x["home"], x["host"], x["status"]) for x in shares] == [(A, B, "revoked")]
    with engine.connect() as c:
        assert audit.count(c, A, "share.revoked") == 1


def test_local_link_at_the_host_withdraws_the_cross_town_link(towns, tmp_path: Path) -> None:  # noqa: ANN001
    """The host's own staff say the person is *their* resident: the engine's link elsewhere goes."""
    from app.services.reconcile import staff_decide

    app, engine, key, a, b, url, http, pg = towns
    tenants.share(engine, A, B)
    kazo = app_shelter(tmp_path, "kazo")
    enroll(kazo, engine, http, B, url)
    pull_into_shelter(kazo.engine, kazo.session, http=http)
    person, local = pick(a, 1)[0], pick(b, 1)[0]
    with kazo.session() as s:
        eid = register(s, typed(person), by="staff", shelter_code="KZ1").id
        s.commit()
    reconcile_all(kazo.engine)
    sync(kazo, http)
    crossmatch.run_pending(engine, key)
    assert hq(http, a.hq_token, "GET", "/v1/hq/status").json()["found_elsewhere"] == 1
    with kazo.session() as s:
        staff_decide(s, eid, "confirmed", local["宛名番号"], by="staff")
        s.commit()
    sync(kazo, http)
    crossmatch.run_pending(engine, key)
    assert hq(http, a.hq_token, "GET", "/v1/hq/status").json()["found_elsewhere"] == 0
    sync(kazo, http)
    with kazo.session() as s:
        assert client.cross_town_notice(s, eid) is None  # withdrawn at the host too


def test_a_weak_namesake_bothers_no_home(towns, tmp_path: Path) -> None:  # noqa: ANN001
    """An evacuee who gave only a surname and a birth year (no address): several residents of a
    sharing home fit equally well.  The engine would put a coin-flip candidate up for review; a
    home whose name the evacuee never mentioned is not bothered with it (REVIEW_FLOOR)."""
    from ulid import ULID

    from matching.query import Query
    from sync import events as sev, outbox

    app, engine, key, a, b, url, http, pg = towns
    hx = crossmatch.home_index(engine, key, A)
    assert hx is not None
    weak = None
    for p in a.residents:
        if p["氏カナ"] and p["生年月日"]:
            r = hx.matcher.match(Query(name_kana=p["氏カナ"], birth=p["生年月日"][:4] + "年"))
            if r.decision == "review" and r.probability < crossmatch.REVIEW_FLOOR:
                weak = p
                break
    assert weak is not None
    tenants.share(engine, A, B)
    kazo = app_shelter(tmp_path, "kazo")
    enroll(kazo, engine, http, B, url)
    with kazo.session() as s:
        eid = register(s, typed(weak, name="", name_kana=weak["氏カナ"], birth_date=weak["生年月日"][:4] + "年",
                                address="", sex=""), by="staff", shelter_code="KZ1").id
        # the host's laptop found nobody (it holds no registry in this test)
        outbox.append(s, sev.MatchDecided(decision_id=str(ULID()), evacuee_id=eid, resident_id=None,
                                          decision="none", at="2025-04-01T00:00:00+00:00"))
        s.commit()
    sync(kazo, http)
    crossmatch.run_pending(engine, key)
    assert crossmatch.pending_jobs(engine) == 0  # looked at …
    items = hq(http, a.hq_token, "GET", "/v1/hq/review").json()["items"]
    assert items == [], json.dumps([i["detail"]["reasons"] for i in items], ensure_ascii=False)  # … nobody bothered
    assert hq(http, a.hq_token, "GET", "/v1/hq/found-elsewhere").json()["found"] == []
