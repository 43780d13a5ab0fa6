"""安否照会 at the hub: the desk answers about anyone at any shelter of its municipality, with the
shelter's own consent matrix, and never about a 閲覧制限 person.

Real pieces throughout: two shelter laptops of 双葉町 (SQLite files driven through the shelter
services) sync over HTTP to a uvicorn hub on PostgreSQL (as a role that row-level security binds);
the desk asks through `POST /v1/hq/inquiries` with a desk account, HQ reads the log, and the CLI
(`anpi hub inquiry ask|list`) runs against the same database.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner

from app import hub_inquiry
from app.cli import app as anpi
from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.services.evacuees import transfer, update_evacuee
from app.services.inquiry_rules import SCRIPT_NO_INFORMATION, InquiryRequest
from app.services.reconcile import reconcile_all
from app.services.roster import register
from sync import client
from sync.canonical import canonical_json, sha256_hex
from sync.hub import audit, ingest, registry, store, tenants
from sync.hub.store import hub_inquiry as hub_inquiry_table, set_tenant
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, B, add_towns, app_shelter, enroll, hq, store_registry, typed_input
from tests.sync.helpers import ThreadedServer, no_sleep

runner = CliRunner()

ALL = frozenset(range(1, 12))  # ① … ⑪
BASIC = frozenset({1, 7, 8})  # ① 氏名, ⑦ other identifying information, ⑧ whether injured
NONE: frozenset[int] = frozenset()
#: issue 6 §2 as a table (not from the code): relationship → (deciding consent, {its value: items told})
TABLE = {
    "同居の親族": ("relatives", {None: ALL, True: ALL, False: NONE}),
    "その他の親族・職場": ("relatives", {None: ALL, True: ALL, False: NONE}),
    "知人": ("acquaintances", {None: BASIC, True: BASIC, False: NONE}),
    "その他": ("public", {None: NONE, True: BASIC, False: NONE}),
}
TRI = (None, True, False)
COMBOS = list(itertools.product(TRI, TRI, TRI))  # ⑫ ⑬ ⑭
SHELTER_A, SHELTER_B = "双葉中学校", "双葉町体育館"


def sync(sh: Any, http: httpx.Client) -> None:
    res = client.sync_once(sh.session, http=http, sleep=no_sleep)
    assert res.ok, res.as_dict()


def ask(http: httpx.Client, token: str, relationship: str = "同居の親族", **sought: Any) -> httpx.Response:
    body = {"inquirer_name": "双葉 太郎", "inquirer_address": "埼玉県加須市騎西1", "id_proof": "運転免許証",
            "relationship": relationship, **sought}
    return hq(http, token, "POST", "/v1/hq/inquiries", body)


def residents(town: Any, n: int, restricted: bool = False, skip: int = 0) -> list[dict[str, str]]:
    out = [p for p in town.residents if p["氏"] and p["名"] and p["生年月日"] and not p["英字氏名"]
           and bool(p["閲覧制限"]) == restricted]
    return out[skip:skip + n]


@pytest.fixture
def world(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=300, evacuees=10)
    store_registry(engine, key, a)
    desk_token = tenants.add_user(engine, A, "窓口 一郎", "desk")[1]
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        s1, s2 = app_shelter(tmp_path, SHELTER_A), app_shelter(tmp_path, SHELTER_B)
        for sh in (s1, s2):
            enroll(sh, engine, http, A, srv.url)
            pull_into_shelter(sh.engine, sh.session, http=http)  # both reconcile against 双葉町's registry
        yield {"app": app, "engine": engine, "key": key, "a": a, "b": b, "http": http, "url": srv.url,
               "s1": s1, "s2": s2, "desk": desk_token, "pg": pg_hub}
    engine.dispose()


def inquiry_rows(engine: Any, m: str) -> list[dict[str, Any]]:
    with engine.connect() as c:
        set_tenant(c, m)
        return [dict(r) for r in c.execute(select(hub_inquiry_table).where(
            hub_inquiry_table.c.municipality_code == m)).mappings()]


# --- the whole matrix at the hub -----------------------------------------------------------------

def test_relationship_by_consent_matrix_across_shelters(world) -> None:  # noqa: ANN001
    """27 people (every ⑫ ⑬ ⑭ combination), half at each shelter, each asked about by all four
    relationships through the hub: 108 answers, each exactly as the table says, each logged."""
    w = world
    people = residents(w["a"], len(COMBOS))
    ids: dict[tuple[Any, ...], str] = {}
    for i, (combo, p) in enumerate(zip(COMBOS, people)):
        sh = w["s1"] if i % 2 == 0 else w["s2"]
        with sh.session() as s:
            ev = register(s, typed_input(p, nationality="日本", identifying_info=f"眼鏡 {i}", injury="足のけが",
                                         injury_state="軽傷", current_location=f"2階 {i}号室",
                                         contact=f"090-0000-{i:04d}", consent_relatives=combo[0],
                                         consent_acquaintances=combo[1], consent_public=combo[2]),
                          by="受付", shelter_code=sh.name)
            s.commit()
            ids[combo] = ev.id
    for sh in (w["s1"], w["s2"]):
        sync(sh, w["http"])

    wrong, negatives = [], set()
    for (combo, p), relationship in itertools.product(zip(COMBOS, people), TABLE):
        consent, told = TABLE[relationship]
        value = dict(zip(("relatives", "acquaintances", "public"), combo))[consent]
        expected = told[value]
        r = ask(w["http"], w["desk"], relationship, sought_name=f"{p['氏']} {p['名']}", sought_birth=p["生年月日"])
        assert r.status_code == 200, r.text
        doc = r.json()
        got = {i["no"] for i in doc["items"]}
        if got != expected or doc["outcome"] != ("answered" if expected else "no_information"):
            wrong.append((relationship, combo, sorted(got), doc["outcome"]))
        if not expected:
            negatives.add(doc["answer_text"])
        else:
            assert [i["no"] for i in doc["items"]] == sorted(expected)  # read out in form order
        if expected == ALL:
            i = COMBOS.index(combo)
            vals = {it["no"]: it["value"] for it in doc["items"]}
            shelter = SHELTER_A if i % 2 == 0 else SHELTER_B
            assert vals[1] == f"{p['氏']} {p['名']}" and vals[5] == p["住所"]
            assert (vals[6], vals[7], vals[9], vals[11]) == ("日本", f"眼鏡 {i}", "足のけが、軽傷", f"090-0000-{i:04d}")
            assert vals[10] == f"{shelter}（2階 {i}号室）" and vals[8].startswith("該当する")
    assert wrong == []
    assert negatives == {SCRIPT_NO_INFORMATION}  # one wording for every negative answer

    # every inquiry is logged with its real outcome; the log is HQ's, not the desk's
    log = hq(w["http"], w["a"].hq_token, "GET", "/v1/hq/inquiries?limit=1000").json()["inquiries"]
    assert len(log) == 108 and {r["outcome"] for r in log} == {"answered", "refused"}
    assert {r["evacuee_id"] for r in log} == set(ids.values())
    assert all(r["by_user"] == "窓口 一郎" and r["inquirer"]["name"] == "双葉 太郎" for r in log)
    assert hq(w["http"], w["desk"], "GET", "/v1/hq/inquiries").status_code == 403
    refused = hq(w["http"], w["a"].hq_token, "GET", "/v1/hq/inquiries?outcome=refused&limit=1000").json()
    assert len(refused["inquiries"]) == sum(1 for c, rel in itertools.product(COMBOS, TABLE)
                                            if not TABLE[rel][1][dict(zip(("relatives", "acquaintances", "public"),
                                                                          c))[TABLE[rel][0]]])
    with w["engine"].connect() as c:
        assert audit.count(c, A, "inquiry") == 108 and audit.verify(c, A) is None


# --- 閲覧制限 -------------------------------------------------------------------------------------

def test_restricted_people_are_never_disclosed(world) -> None:  # noqa: ANN001
    w = world
    hidden = residents(w["a"], 1, restricted=True)[0]
    cared = residents(w["a"], 1, skip=40)[0]
    linked = residents(w["a"], 1, skip=41)[0]
    everyone_yes = dict(consent_relatives=True, consent_acquaintances=True, consent_public=True)
    with w["s1"].session() as s:
        e_hidden = register(s, typed_input(hidden, **everyone_yes), by="受付", shelter_code=SHELTER_A).id
        register(s, typed_input(cared, care_flags={"restricted": True}, **everyone_yes), by="受付",
                           shelter_code=SHELTER_A).id
        s.commit()
    with w["s2"].session() as s:
        e_linked = register(s, typed_input(linked, **everyone_yes), by="受付", shelter_code=SHELTER_B).id
        s.commit()
    rows = {r.evacuee.id: r for sh in (w["s1"], w["s2"]) for r in reconcile_all(sh.engine)}
    assert rows[e_hidden].decision == "auto" and rows[e_linked].decision == "auto"
    for sh in (w["s1"], w["s2"]):
        sync(sh, w["http"])

    def answer(p: dict[str, str], relationship: str = "同居の親族") -> dict[str, Any]:
        r = ask(w["http"], w["desk"], relationship, sought_name=f"{p['氏']} {p['名']}", sought_birth=p["生年月日"])
        assert r.status_code == 200, r.text
        return r.json()

    for rel in TABLE:  # withheld (linked to a flagged resident) and care.restricted: nothing, to anyone
        for p in (hidden, cared):
            doc = answer(p, rel)
            assert (doc["outcome"], doc["items"], doc["answer_text"]) == ("no_information", [], SCRIPT_NO_INFORMATION)
    assert answer(linked)["outcome"] == "answered"  # linked to an unflagged resident: answered

    # the link alone protects: even were the hub's withheld flag lost (a hub that applied the link
    # before it held its data key), the flagged resident behind the link silences the answer
    admin = create_engine(w["pg"].admin_url)
    with admin.begin() as c:
        c.execute(text("UPDATE hub_evacuee SET withheld = false WHERE evacuee_id = :e"), {"e": e_hidden})
    admin.dispose()
    assert answer(hidden)["outcome"] == "no_information"

    # without a data key the flag cannot be checked: every linked person is "no information" (fail closed)
    req = InquiryRequest(inquirer_name="双葉 太郎", inquirer_address="加須市", id_proof="運転免許証",
                         relationship="同居の親族", sought_name=f"{linked['氏']} {linked['名']}",
                         sought_birth=linked["生年月日"])
    assert hub_inquiry.answer_inquiry(w["engine"], None, A, req, by="窓口", actor="test").desk_outcome == "no_information"
    assert hub_inquiry.answer_inquiry(w["engine"], w["key"], A, req, by="窓口", actor="test").desk_outcome == "answered"

    # a namesake of a protected person: answering could answer about her, so nothing is said —
    # and the desk is not told that two people fit (that would reveal her)
    with w["s2"].session() as s:
        register(s, typed_input(hidden, address="双葉町新山1"), by="受付", shelter_code=SHELTER_B)
        s.commit()
    sync(w["s2"], w["http"])
    doc = answer(hidden)
    assert doc["outcome"] == "no_information" and not doc["needs_detail"]

    log = {(r["sought"]["name"], r["outcome"]) for r in
           hq(w["http"], w["a"].hq_token, "GET", "/v1/hq/inquiries?limit=100").json()["inquiries"]}
    assert (f"{hidden['氏']} {hidden['名']}", "restricted") in log and (f"{cared['氏']} {cared['名']}", "restricted") in log
    assert all(o == "restricted" for n, o in log if n == f"{hidden['氏']} {hidden['名']}")


# --- identification ----------------------------------------------------------------------------

def test_ambiguous_not_found_moved_and_old_laptops(world) -> None:  # noqa: ANN001
    w = world
    twin = {"氏": "佐々木", "名": "健", "氏カナ": "ササキ", "名カナ": "ケン", "生年月日": "1980-02-02", "性別": "1"}
    with w["s1"].session() as s:
        register(s, typed_input({**twin, "住所": "福島県双葉郡双葉町長塚1"}), by="受付", shelter_code=SHELTER_A)
        s.commit()
    with w["s2"].session() as s:
        e_other = register(s, typed_input({**twin, "住所": "福島県双葉郡双葉町新山2"}), by="受付",
                           shelter_code=SHELTER_B).id
        s.commit()
    # the same resident registered at shelter A, moved to shelter B and registered again there
    mover = residents(w["a"], 1, skip=60)[0]
    with w["s1"].session() as s:
        e_mover_a = register(s, typed_input(mover, injury="腰痛"), by="受付", shelter_code=SHELTER_A).id
        s.commit()
        transfer(s, e_mover_a, SHELTER_B, by="受付")
        s.commit()
    with w["s2"].session() as s:
        e_mover_b = register(s, typed_input(mover, current_location="体育館 東"), by="受付",
                             shelter_code=SHELTER_B).id
        s.commit()
    for sh in (w["s1"], w["s2"]):
        reconcile_all(sh.engine)
        sync(sh, w["http"])

    n_before = len(inquiry_rows(w["engine"], A))
    twin_name = "佐々木 健"
    r = ask(w["http"], w["desk"], sought_name=twin_name, sought_birth="S55.2.2").json()
    assert r["outcome"] == "needs_detail" and r["items"] == [] and r["answer_text"] == ""
    r = ask(w["http"], w["desk"], sought_name="ささき けん", sought_birth="S55.2.2", sought_address="双葉町新山").json()
    assert r["outcome"] == "answered" and {i["no"]: i["value"] for i in r["items"]}[10] == SHELTER_B
    r = ask(w["http"], w["desk"], sought_name=twin_name, sought_birth="S55.2.2", give_up=True).json()
    assert (r["outcome"], r["answer_text"]) == ("no_information", SCRIPT_NO_INFORMATION)
    r = ask(w["http"], w["desk"], sought_name="双葉 存在", sought_birth="1901-01-01").json()
    assert r["outcome"] == "no_information"
    # the mover is one person (linked to one resident), answered where they are now
    r = ask(w["http"], w["desk"], sought_name=f"{mover['氏']} {mover['名']}", sought_birth=mover["生年月日"]).json()
    assert r["outcome"] == "answered", r
    vals = {i["no"]: i["value"] for i in r["items"]}
    assert vals[10] == f"{SHELTER_B}（体育館 東）"

    # an edit at the shelter reaches the hub's answer (⑨ travels as an evacuee.updated)
    with w["s2"].session() as s:
        update_evacuee(s, e_other, {"injury": "骨折", "injury_state": "入院中", "contact": "0240-00-0000"}, by="受付")
        s.commit()
    sync(w["s2"], w["http"])
    r = ask(w["http"], w["desk"], sought_name=twin_name, sought_birth="S55.2.2", sought_address="双葉町新山").json()
    vals = {i["no"]: i["value"] for i in r["items"]}
    assert (vals[8][:4], vals[9], vals[11]) == ("該当する", "骨折、入院中", "0240-00-0000")

    # a registration from an older laptop (its event has no ⑥–⑪) is answered with what it has
    payload = canonical_json({"evacuee_id": "01OLDLAPTOP00000000000000A", "shelter_code": "OLD", "name": "古川 正",
                              "birth_date": "1950-05-05", "address": "福島県双葉郡双葉町大字両竹1", "v": 1,
                              "care": {}, "consents": {"relatives": True}})
    ingest.ingest(w["engine"], "O" * 26, [{
        "event_id": "01OLDEVENT0000000000000000", "device_id": "O" * 26, "epoch": 1, "seq": 1,
        "type": "evacuee.registered", "recorded_at": "2025-01-01T00:00:00+00:00", "payload": payload,
        "payload_sha256": sha256_hex(payload)}], municipality=A)
    r = ask(w["http"], w["desk"], sought_name="古川 正", sought_birth="S25.5.5").json()
    vals = {i["no"]: i["value"] for i in r["items"]}
    assert r["outcome"] == "answered" and vals[6] == vals[9] == "（記録なし）" and vals[8] == "申告なし"

    rows = inquiry_rows(w["engine"], A)
    assert len(rows) - n_before == 7  # every request, the one that only asked for detail too
    outcomes = sorted(r["outcome"] for r in rows[n_before:])
    assert outcomes == sorted(["ambiguous", "answered", "ambiguous", "not_found", "answered", "answered", "answered"])
    with w["engine"].connect() as c:
        assert audit.count(c, A, "inquiry_search") == 1 and audit.verify(c, A) is None
    assert e_mover_b


# --- the routes' edges: validation, roles, tenants --------------------------------------------------

def test_bad_requests_name_the_field_and_tenants_stay_apart(world) -> None:  # noqa: ANN001
    w = world
    p = residents(w["a"], 1, skip=80)[0]
    with w["s1"].session() as s:
        register(s, typed_input(p), by="受付", shelter_code=SHELTER_A)
        s.commit()
    sync(w["s1"], w["http"])
    r = hq(w["http"], w["desk"], "POST", "/v1/hq/inquiries", {"relationship": "同居の親族", "sought_name": "x"})
    assert r.status_code == 422  # a value the desk refuses (the one convention: 422 invalid_input)
    doc = r.json()
    assert doc["error"] == "invalid_input" and doc["field"] == "inquirer_name"
    assert "inquirer" in doc["detail"] and doc["detail_ja"] == "照会者の氏名を入力してください"
    r = ask(w["http"], w["desk"], "友人", sought_name="x", sought_birth="S45.3.1")
    assert r.status_code == 422 and r.json()["field"] == "relationship" and "関係" in r.json()["detail_ja"]
    r = ask(w["http"], w["desk"], sought_name="x")
    assert r.status_code == 422 and r.json()["field"] == "sought_birth" and "生年月日か住所" in r.json()["detail_ja"]
    # a body outside its schema (a list where text belongs, not an object) is malformed: 400, naming the field
    r = ask(w["http"], w["desk"], sought_name=["x"], sought_birth="S45.3.1")
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (400, "bad_request", "sought_name")
    r = w["http"].post("/v1/hq/inquiries", content=b"[1]", headers={"Authorization": f"Bearer {w['desk']}"})
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (400, "bad_request", "body")
    assert w["http"].post("/v1/hq/inquiries", json={}).status_code == 401
    assert inquiry_rows(w["engine"], A) == []  # nothing answered, nothing logged

    # 加須市's HQ asks about 双葉町's evacuee: its desk finds nobody, and the log is its own
    r = ask(w["http"], w["b"].hq_token, sought_name=f"{p['氏']} {p['名']}", sought_birth=p["生年月日"])
    assert r.json()["outcome"] == "no_information"
    assert [x["outcome"] for x in inquiry_rows(w["engine"], B)] == ["not_found"] and inquiry_rows(w["engine"], A) == []
    assert ask(w["http"], w["a"].hq_token, sought_name=f"{p['氏']} {p['名']}",
               sought_birth=p["生年月日"]).json()["outcome"] == "answered"


def test_cli_ask_and_list(world) -> None:  # noqa: ANN001
    w = world
    p = residents(w["a"], 1, skip=90)[0]
    with w["s2"].session() as s:
        register(s, typed_input(p, consent_acquaintances=False, injury="発熱"), by="受付", shelter_code=SHELTER_B)
        s.commit()
    sync(w["s2"], w["http"])
    env = {"ANPI_HUB_DATABASE_URL": w["pg"].url, "ANPI_HUB_DATA_KEY": w["key"].to_text(), "USER": "hq-op"}
    base = ["hub", "inquiry", "ask", "--municipality", A, "--inquirer-name", "双葉 花子", "--inquirer-address",
            "いわき市平1", "--id-proof", "license", "--name", f"{p['氏']} {p['名']}", "--birth", p["生年月日"],
            "--by", "電話窓口"]
    r = runner.invoke(anpi, [*base, "--relationship", "household", "--json"], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["outcome"] == "answered" and [i["no"] for i in doc["items"]] == list(range(1, 12))
    assert {i["no"]: i["value"] for i in doc["items"]}[9] == "発熱"
    r = runner.invoke(anpi, [*base, "--relationship", "知人"], env=env, catch_exceptions=False)
    assert r.exit_code == 0 and r.stdout.strip() == SCRIPT_NO_INFORMATION  # ⑬ refused
    r = runner.invoke(anpi, [*base, "--relationship", "neighbour"], env=env, catch_exceptions=False)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "--relationship" in r.stderr and "関係" in r.stderr
    r = runner.invoke(anpi, ["hub", "inquiry", "list", "--municipality", A, "--json"], env=env,
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["outcome"], x["relationship"], x["by_user"]) for x in rows] == [
        ("refused", "知人", "電話窓口"), ("answered", "同居の親族", "電話窓口")]
    r = runner.invoke(anpi, ["hub", "inquiry", "list", "--municipality", A], env=env, catch_exceptions=False)
    assert r.exit_code == 0 and "同意なし" in r.stdout and "①②③④⑤⑥⑦⑧⑨⑩⑪" in r.stdout
    with w["engine"].connect() as c:
        actions = [e["action"] for e in audit.entries(c, A)][:3]
    assert actions == ["inquiry.listed", "inquiry.listed", "inquiry"]


def test_a_protected_resident_of_another_town_is_not_disclosed_by_the_host(world, tmp_path: Path) -> None:  # noqa: ANN001
    """双葉町's protected resident at 加須市's shelter: the hub's cross-town matching knows she is
    protected at home; 加須市's desk, which only sees its own shelter's registration, says nothing."""
    from sync.hub import crossmatch

    w = world
    assert tenants.share(w["engine"], A, B, actor="test")
    kazo = app_shelter(tmp_path, "加須市民体育館")
    enroll(kazo, w["engine"], w["http"], B, w["url"])
    hidden, safe = residents(w["a"], 1, restricted=True)[0], residents(w["a"], 1, skip=100)[0]
    with kazo.session() as s:
        for p in (hidden, safe):
            register(s, typed_input(p, consent_relatives=True, consent_acquaintances=True, consent_public=True),
                     by="受付", shelter_code="KZ1")
        s.commit()
    sync(kazo, w["http"])
    crossmatch.run_pending(w["engine"], w["key"])
    for p, outcome in ((safe, "answered"), (hidden, "no_information")):
        r = ask(w["http"], w["b"].hq_token, "その他", sought_name=f"{p['氏']} {p['名']}", sought_birth=p["生年月日"])
        assert r.json()["outcome"] == outcome, (p, r.json())
    assert [x["outcome"] for x in inquiry_rows(w["engine"], B)] == ["answered", "restricted"]


# --- the linked resident's registry record as further evidence ---------------------------------------

def test_a_linked_registration_is_found_by_the_registry_record(world) -> None:  # noqa: ANN001
    """Typed in katakana without a date of birth (as rosters often are), linked by the laptop's staff to
    a resident: the inquirer's kanji name and date of birth are the registry's, and find them through
    the hub's person link and the municipality's backup; the same typing without a link finds nobody."""
    from app.services.reconcile import staff_decide

    w = world
    linked, unlinked, hidden = residents(w["a"], 1, skip=120)[0], residents(w["a"], 1, skip=121)[0], \
        residents(w["a"], 1, restricted=True)[0]
    ids = {}
    with w["s1"].session() as s:
        for tag, p in (("linked", linked), ("unlinked", unlinked), ("hidden", hidden)):
            ev = register(s, typed_input(p, name="", name_kana=f"{p['氏カナ']} {p['名カナ']}", birth_date="", address="",
                                         consent_relatives=True), by="受付", shelter_code=SHELTER_A)
            ids[tag] = ev.id
            if tag != "unlinked":
                staff_decide(s, ev.id, "confirmed", p["宛名番号"], by="受付")
        s.commit()
    sync(w["s1"], w["http"])

    def answer(p: dict[str, str], birth: str | None = None, **more: str) -> dict[str, Any]:
        r = ask(w["http"], w["desk"], sought_name=f"{p['氏']} {p['名']}", sought_birth=birth or p["生年月日"], **more)
        assert r.status_code == 200, r.text
        return r.json()

    doc = answer(linked)
    assert doc["outcome"] == "answered", doc
    vals = {i["no"]: i["value"] for i in doc["items"]}
    assert vals[2] == f"{linked['氏カナ']} {linked['名カナ']}" and vals[10] == SHELTER_A  # the registration's items
    assert answer(linked, sought_kana=f"{linked['氏カナ']}{linked['名カナ']}")["outcome"] == "answered"
    assert answer(unlinked)["outcome"] == "no_information"
    # a detail that contradicts the record rules the person out, whatever the link
    y, mo, d = (int(x) for x in linked["生年月日"].replace("/", "-").split("-"))
    assert answer(linked, f"{y + 1}-{mo}-{d}")["outcome"] == "no_information"
    assert answer(linked, sought_kana="アアア イイイ")["outcome"] == "no_information"
    # found through the link, a protected resident is still never disclosed
    doc = answer(hidden)
    assert (doc["outcome"], doc["items"], doc["needs_detail"]) == ("no_information", [], False)

    log = inquiry_rows_json(w)[::-1]  # oldest first
    assert [r["outcome"] for r in log] == ["answered", "answered", "not_found", "not_found", "not_found", "restricted"]
    assert {r["evacuee_id"] for r in log if r["outcome"] == "answered"} == {ids["linked"]}

    # without the data key the backup cannot be read: the registration as typed only (not found)
    req = InquiryRequest(inquirer_name="双葉 太郎", inquirer_address="加須市", id_proof="運転免許証",
                         relationship="同居の親族", sought_name=f"{linked['氏']} {linked['名']}",
                         sought_birth=linked["生年月日"])
    assert hub_inquiry.answer_inquiry(w["engine"], None, A, req, by="窓口", actor="test").outcome == "not_found"
    assert hub_inquiry.answer_inquiry(w["engine"], w["key"], A, req, by="窓口", actor="test").outcome == "answered"

    # the laptop withdraws the link (staff reject the candidate): the kana alone again, at the hub too
    with w["s1"].session() as s:
        staff_decide(s, ids["linked"], "rejected", linked["宛名番号"], by="受付")
        s.commit()
    sync(w["s1"], w["http"])
    assert answer(linked)["outcome"] == "no_information"


def inquiry_rows_json(w: dict[str, Any]) -> list[dict[str, Any]]:
    return hq(w["http"], w["a"].hq_token, "GET", "/v1/hq/inquiries?limit=1000").json()["inquiries"]


def test_an_age_is_read_against_the_day_of_registration(world) -> None:  # noqa: ANN001
    """"36歳" typed on a registration two years ago: the birth year is the one it meant then."""
    from datetime import date

    w = world
    year = date.today().year - 2
    born = year - 37  # 36 on 10 January: born in the year 37 years earlier, after 10 January
    row = {"name": "古川 健", "name_kana": "", "address": "", "birth_date": None, "birth_date_raw": "36歳",
           "registered_at": f"{year}-01-10T09:00:00+09:00"}
    assert hub_inquiry.row_facts(row).year_range == (born, born + 1)
    payload = canonical_json({"evacuee_id": "01AGEAGEAGE000000000000000", "shelter_code": "OLD", "name": "古川 健",
                              "birth_date_raw": "36歳", "registered_at": f"{year}-01-10T09:00:00+09:00",
                              "address": "福島県双葉郡双葉町大字両竹9", "v": 1, "care": {},
                              "consents": {"relatives": True}})
    ingest.ingest(w["engine"], "O" * 26, [{
        "event_id": "01AGEEVENT0000000000000000", "device_id": "O" * 26, "epoch": 1, "seq": 1,
        "type": "evacuee.registered", "recorded_at": f"{year}-01-10T00:00:00+00:00", "payload": payload,
        "payload_sha256": sha256_hex(payload)}], municipality=A)
    assert ask(w["http"], w["desk"], sought_name="古川 健", sought_birth=f"{born}-06-01").json()["outcome"] == "answered"
    assert ask(w["http"], w["desk"], sought_name="古川 健",
               sought_birth=f"{born + 2}-06-01").json()["outcome"] == "no_information"  # today's reading of 36歳


# --- the name index stays exact under change ------------------------------------------------------

def test_registrations_and_edits_after_a_cached_inquiry_are_found_at_once(world) -> None:  # noqa: ANN001
    """The desk finds candidates through a per-process index of name keys: an evacuee registered, or
    renamed by an edit, or linked to a resident after an inquiry built that index is found by the very
    next inquiry, an old name no longer finds the renamed one, and every registration whose name fits
    (judged on every row, as before the index) is among the candidates the indexed search considers."""
    from app.services.inquiry_rules import fit, parse_asked
    from app.services.reconcile import staff_decide

    w = world
    first, late, renamed, kana_only = residents(w["a"], 4, skip=140)

    def answer(p: dict[str, str], name: str | None = None) -> str:
        r = ask(w["http"], w["desk"], sought_name=name or f"{p['氏']} {p['名']}", sought_birth=p["生年月日"])
        assert r.status_code == 200, r.text
        return r.json()["outcome"]

    with w["s1"].session() as s:
        register(s, typed_input(first, consent_relatives=True), by="受付", shelter_code=SHELTER_A)
        s.commit()
    sync(w["s1"], w["http"])
    assert answer(first) == "answered"  # builds the index
    assert answer(late) == "no_information"  # not registered yet

    with w["s2"].session() as s:
        register(s, typed_input(late, consent_relatives=True), by="受付", shelter_code=SHELTER_B)
        e_renamed = register(s, typed_input(renamed, name="仮名 太郎", consent_relatives=True), by="受付",
                             shelter_code=SHELTER_B).id
        e_kana = register(s, typed_input(kana_only, name="", name_kana=f"{kana_only['氏カナ']} {kana_only['名カナ']}",
                                         birth_date="", address="", consent_relatives=True),
                          by="受付", shelter_code=SHELTER_B).id
        s.commit()
    sync(w["s2"], w["http"])
    assert answer(late) == "answered"  # registered after a cached inquiry: found by the next one
    assert answer(renamed) == "no_information"  # typed under another name so far
    assert answer(kana_only) == "no_information"  # kana only, no date of birth, no link yet

    with w["s2"].session() as s:
        update_evacuee(s, e_renamed, {"name": f"{renamed['氏']} {renamed['名']}"}, by="受付")
        staff_decide(s, e_kana, "confirmed", kana_only["宛名番号"], by="受付")
        s.commit()
    sync(w["s2"], w["http"])
    assert answer(renamed) == "answered"  # the edit reaches the very next inquiry
    assert answer(renamed, "仮名 太郎") == "no_information"  # and the old name no longer finds them
    assert answer(kana_only) == "answered"  # found through the new link's registry record

    # the indexed search misses no registration a scan of every row would fit
    with w["engine"].begin() as c:
        set_tenant(c, A)
        linked = hub_inquiry.linked_facts(c, A, w["key"])
        rows = [dict(r) for r in c.execute(select(*hub_inquiry._ROW_COLS).where(
            store.hub_evacuee.c.municipality_code == A, store.hub_evacuee.c.registered.is_(True))).mappings()]
        assert len(rows) >= 4
        for p in (first, late, renamed, kana_only):
            for name, kana in ((f"{p['氏']} {p['名']}", ""), ("", f"{p['氏カナ']} {p['名カナ']}")):
                asked = parse_asked(name, kana, p["生年月日"])
                scan = {r["evacuee_id"] for r in rows if fit(asked, hub_inquiry.row_facts(r), tuple(
                    f for f in (linked.get(r["evacuee_id"]),) if f is not None)) is not None}
                found = hub_inquiry.find_person(c, A, w["key"], name, kana, p["生年月日"])
                assert scan and scan <= set(found.candidates), (name, kana, scan, found)
