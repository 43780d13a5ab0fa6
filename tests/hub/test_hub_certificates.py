"""The certificate desk at the hub: issue from the registry backup or by the manual path, numbers that
never meet a laptop's, reissue / void (the hub's and the laptops' certificates), PDF read back with
pypdf, tenants kept apart, 閲覧制限 households handled as at the shelter.

All real: a uvicorn hub (app.hub_app, with the desks) on PostgreSQL as a role row-level security
binds, registry backups sealed with a data key, shelter laptops as SQLite files that enrol, pull the
registry and sync over HTTP; HQ and desk users call /v1/hq/certificates with bearer tokens.
"""
from __future__ import annotations

import io
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner

from app.cli import app as anpi
from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.services import certificates as certs
from sync import client
from sync.hub import audit, registry, store, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, A_NAME, B, Town, add_towns, app_shelter, enroll, hq, store_registry, typed_input
from tests.sync.helpers import ThreadedServer, no_sleep

CAUSE = "令和8年11月20日の地震"
HUB_NUMBER = re.compile(r"^(R|H)-U([0-9A-HJKMNP-TV-Z]{5})-(\d{6})-(\d{6})$")
LAPTOP_NUMBER = re.compile(r"^(R|H)-([0-9A-HJKMNP-TV-Z]{6})-(\d+)-(\d{6})$")
runner = CliRunner()


def squash(s: str) -> str:
    return "".join(s.split()).replace("\u3000", "")


def pdf_text(data: bytes) -> str:
    import pypdf

    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return squash("".join(p.extract_text() for p in reader.pages))


def wareki(iso: str) -> str:
    return certs.wareki(date.fromisoformat(iso))


@pytest.fixture
def desk(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=300, evacuees=5)
    a.desk_token = tenants.add_user(engine, A, "窓口-A", "desk")[1]  # type: ignore[attr-defined]
    store_registry(engine, key, a)
    store_registry(engine, key, b)
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        yield engine, key, a, b, srv.url, http, pg_hub
    engine.dispose()


def households(town: Town, *, restricted: bool = False, size: int = 2) -> list[list[dict[str, str]]]:
    """Households (head first) of at least `size` members, all printable as registered (no folding)."""
    by: dict[str, list[dict[str, str]]] = {}
    for p in town.residents:
        by.setdefault(p["世帯番号"], []).append(p)
    out = []
    for rows in by.values():
        if len(rows) < size or rows[0]["続柄"] != "世帯主" or any(p["英字氏名"] for p in rows):
            continue
        if any(bool(p["閲覧制限"]) for p in rows) != restricted:
            continue
        if certs.folded_characters("".join(p["氏"] + p["名"] + p["住所"] for p in rows)):
            continue
        out.append(rows)
    return out


def issue_body(p: dict[str, str], **kw: Any) -> dict[str, Any]:
    return {"resident_id": p["宛名番号"], "kind": "risai", "damage": "半壊", "cause": CAUSE, "in_person": True,
            "id_note": "運転免許証"} | kw


def test_issue_at_the_hub_pdf_carries_every_field(desk) -> None:  # noqa: ANN001
    engine, key, a, b, url, http, pg = desk
    head, wife, *rest = households(a, size=3)[0]
    # the applicant is the wife; nothing links her to a shelter: the desk must check ID in person
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(wife, in_person=False))
    assert r.status_code == 422 and r.json()["field"] == "identity", r.text
    assert "本人確認" in r.json()["detail_ja"] and "in person" in r.json()["detail"]

    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(wife))
    assert r.status_code == 201, r.text
    c = r.json()
    m = HUB_NUMBER.match(c["number"])
    assert m and m.group(3) == A and m.group(4) == "000001", c["number"]
    assert c["origin"] == "hub" and c["status"] == "issued" and c["identity"] == "in_person"
    assert (c["head_name"], c["head_address"], c["location"]) == (f"{head['氏']}　{head['名']}", head["住所"],
                                                                   head["住所"])
    assert [x["resident_id"] for x in c["members"]] == [p["宛名番号"] for p in (head, wife, *rest)]
    assert c["history"][0]["action"] == "issue" and c["history"][0]["by"] == "desk:窓口-A"

    r = hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{c['number']}/pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf", r.text
    t = pdf_text(r.content)
    issued = certs.wareki(certs.local_date(certs_dt(c["issued_at"])))
    expected = ["り災証明書", f"整理番号第{c['number']}号", "世帯主住所" + squash(head["住所"]),
                f"世帯主氏名{head['氏']}{head['名']}", "罹災原因" + CAUSE, "被災住家の所在地" + squash(head["住所"]),
                "住家の被害の程度", "■半壊", "世帯構成員", certs.CERTIFY_RISAI, issued, f"{A_NAME}長印"]
    expected += [f"{p['氏']}{p['名']}{p['続柄']}{wareki(p['生年月日'])}" for p in (head, wife, *rest)]
    for e in expected:
        assert e in t, (e, t)
    assert t.count("■") == 1 and t.count("□") == 5 and "再発行" not in t and "手動" not in t

    # a 被災証明書 carries no grade; the hub's numbers count on per kind
    r = hq(http, a.hq_token, "POST", "/v1/hq/certificates", issue_body(wife, kind="被災証明書", damage=""))
    assert r.status_code == 201, r.text
    h = r.json()["number"]
    assert h.startswith("H-") and h.endswith("-000001") and h.split("-")[1] == c["number"].split("-")[1]
    t = pdf_text(hq(http, a.hq_token, "GET", f"/v1/hq/certificates/{h}/pdf").content)
    assert "被災証明書" in t and "住家の被害の届出あり" in t and certs.CERTIFY_HISAI in t and "■" not in t

    # every action is in the municipality's hub audit log, and the chain holds
    with engine.connect() as conn:
        actions = [e["action"] for e in audit.entries(conn, A, 50)]
        assert audit.verify(conn, A) is None
    assert actions.count("certificate.issued") == 2 and actions.count("certificate.printed") == 2


def certs_dt(iso: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(iso)


def test_validation_errors_name_the_field(desk) -> None:  # noqa: ANN001
    engine, key, a, b, url, http, pg = desk
    p = households(a)[0][0]
    cases = [
        (issue_body(p, kind="certificate"), "kind"),
        (issue_body(p, damage=""), "damage"),
        (issue_body(p, damage="ほぼ全壊"), "damage"),
        (issue_body(p, kind="hisai"), "damage"),  # a 被災証明書 carries no grade
        (issue_body(p, cause=" "), "cause"),
        (issue_body(p, resident_id=""), "resident_id"),
        (issue_body(p, location="x" * 201), "location"),
        (issue_body(p, name="山田"), "name"),  # belongs to the manual path
        ({"manual": True, "kind": "risai", "damage": "全壊", "cause": CAUSE, "address": "双葉町1"}, "name"),
        ({"manual": True, "kind": "risai", "damage": "全壊", "cause": CAUSE, "name": "山田　一"}, "address"),
        ({"manual": True, "kind": "hisai", "cause": CAUSE, "name": "山田　一", "address": "双葉町1",
          "members": [{"name": "山田　花", "birth_date": "昭和99年"}]}, "members"),
    ]
    for body, field in cases:
        r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", body)
        assert r.status_code == 422, (body, r.text)
        doc = r.json()
        assert doc["error"] == "invalid_input" and doc["field"] == field, (body, doc)
        assert doc["detail"] and doc["detail_ja"] and doc["detail"] != doc["detail_ja"], doc
    # a body outside its schema is malformed (400, sync.hub.bodies), still naming the field
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(p, in_person="yes"))
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (400, "bad_request", "in_person"), r.text
    assert r.json()["detail"].startswith("in_person:") and r.json()["detail_ja"]
    r = http.post("/v1/hq/certificates", content=b"{not json", headers={"Authorization": f"Bearer {a.desk_token}"})
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (400, "bad_request", "body"), r.text
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(p, resident_id="0000000000"))
    assert r.status_code == 404 and "0000000000" in r.json()["detail_ja"]
    assert hq(http, a.desk_token, "GET", "/v1/hq/certificates").json()["certificates"] == []  # nothing was stored
    assert http.get("/v1/hq/certificates").status_code == 401


def test_reissue_and_void_rules(desk) -> None:  # noqa: ANN001
    engine, key, a, b, url, http, pg = desk
    head = households(a)[1][0]
    n = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(head)).json()["number"]
    # one valid certificate per household, kind and cause
    dup = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(head, damage="全壊"))
    assert dup.status_code == 409 and n in dup.json()["detail"]

    r = hq(http, a.desk_token, "POST", f"/v1/hq/certificates/{n.lower()}/reissue", {"reason": "紛失"})
    assert r.status_code == 200, r.text
    assert r.json()["number"] == n and r.json()["reissue_count"] == 1
    t = pdf_text(hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{n}/pdf").content)
    assert "【再発行】第1回" in t and f"整理番号第{n}号" in t

    r = hq(http, a.desk_token, "POST", f"/v1/hq/certificates/{n}/void", {})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = hq(http, a.desk_token, "POST", f"/v1/hq/certificates/{n}/void", {"reason": "誤発行"})
    assert r.status_code == 200 and r.json()["status"] == "void" and r.json()["void_reason"] == "誤発行"
    for method, path, body in (("POST", f"/v1/hq/certificates/{n}/void", {"reason": "again"}),
                               ("POST", f"/v1/hq/certificates/{n}/reissue", {}),
                               ("GET", f"/v1/hq/certificates/{n}/pdf", None)):
        r = hq(http, a.desk_token, method, path, body)
        assert r.status_code == 409, (path, r.text)
    detail = hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{n}").json()
    assert [(h["action"], h["reason"]) for h in detail["history"]] == [("issue", ""), ("reissue", "紛失"),
                                                                        ("void", "誤発行")]
    # once void, the household may be issued a new one (a new number)
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(head, damage="全壊"))
    assert r.status_code == 201 and r.json()["number"].endswith("-000002")
    listed = hq(http, a.desk_token, "GET", "/v1/hq/certificates?status=void").json()["certificates"]
    assert [c["number"] for c in listed] == [n]
    listed = hq(http, a.desk_token, "GET", f"/v1/hq/certificates?resident={head['宛名番号']}").json()
    assert listed["count"] == 2
    with engine.connect() as conn:
        actions = [e["action"] for e in audit.entries(conn, A, 50)]
    assert {"certificate.reissued", "certificate.voided", "certificate.listed", "certificate.viewed"} <= set(actions)


def test_manual_path_is_marked(desk) -> None:  # noqa: ANN001
    engine, key, a, b, url, http, pg = desk
    body = {"manual": True, "kind": "risai", "damage": "大規模半壊", "cause": CAUSE, "name": "浜野　一郎",
            "address": "福島県双葉郡双葉町大字長塚字町西1番地", "note": "転入届の処理前",
            "members": [{"name": "浜野　一郎", "relationship": "世帯主", "birth_date": "昭和40年1月2日"},
                        "浜野　花子, 妻, 1968-04-05"]}
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["manual"] and c["identity"] == "manual" and c["resident_id"] == "" and HUB_NUMBER.match(c["number"])
    t = pdf_text(hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{c['number']}/pdf").content)
    for e in ("【手動】申請者の申告による", certs.MANUAL_NOTE + "（転入届の処理前）", "世帯主氏名浜野一郎",
              "世帯主住所福島県双葉郡双葉町大字長塚字町西1番地", "■大規模半壊", "浜野一郎世帯主昭和40年1月2日",
              "浜野花子妻昭和43年4月5日"):
        assert e in t, (e, t)
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates",
           body | {"resident_id": households(a)[0][0]["宛名番号"]})
    assert r.status_code == 422 and r.json()["field"] == "resident_id"
    assert [x["number"] for x in hq(http, a.desk_token, "GET", "/v1/hq/certificates?q=浜野").json()["certificates"]] \
        == [c["number"]]


def test_concurrent_issues_take_distinct_gap_free_numbers(desk) -> None:  # noqa: ANN001
    """Several desks at once: the tenant's write lock hands out 1…n, never one number twice."""
    from concurrent.futures import ThreadPoolExecutor

    engine, key, a, b, url, http, pg = desk
    tokens = [a.desk_token, a.hq_token, a.admin_token] * 3

    def one(i: int) -> str:
        body = {"manual": True, "kind": "hisai", "cause": CAUSE, "name": f"申請　{i}", "address": f"双葉町{i}"}
        r = hq(http, tokens[i], "POST", "/v1/hq/certificates", body)
        assert r.status_code == 201, r.text
        return r.json()["number"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        numbers = list(pool.map(one, range(len(tokens))))
    assert sorted(int(n.rsplit("-", 1)[1]) for n in numbers) == list(range(1, len(tokens) + 1))
    assert len({n.rsplit("-", 1)[0] for n in numbers}) == 1


def test_another_municipality_answers_404(desk) -> None:  # noqa: ANN001
    engine, key, a, b, url, http, pg = desk
    n = hq(http, a.hq_token, "POST", "/v1/hq/certificates", issue_body(households(a)[0][0])).json()["number"]
    ghost = n[:-6] + "999999"
    for method, path, body in (("GET", "/v1/hq/certificates/{}", None), ("GET", "/v1/hq/certificates/{}/pdf", None),
                               ("POST", "/v1/hq/certificates/{}/reissue", {}),
                               ("POST", "/v1/hq/certificates/{}/void", {"reason": "x"})):
        theirs = hq(http, b.hq_token, method, path.format(n), body)
        nothing = hq(http, b.hq_token, method, path.format(ghost), body)
        assert theirs.status_code == nothing.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"] == "not_found"
        assert theirs.json()["detail"].replace(n, "N") == nothing.json()["detail"].replace(ghost, "N")
    assert hq(http, b.hq_token, "GET", "/v1/hq/certificates").json()["certificates"] == []
    # 加須市 cannot issue to 双葉町's residents either: they are not in its registry backup
    r = hq(http, b.hq_token, "POST", "/v1/hq/certificates", issue_body(households(a)[0][0]))
    assert r.status_code == 404
    # behind the wall, the row is there — and untouched
    admin = create_engine(pg.admin_url)
    with admin.connect() as conn:
        rows = conn.execute(text("SELECT municipality_code, status FROM hub_certificate")).all()
    admin.dispose()
    assert rows == [(A, "issued")]


def test_restricted_household_is_for_hq_only(desk) -> None:  # noqa: ANN001
    """The shelter's rule (app.services.certificates.refuse_restricted): a desk user may neither issue
    nor print a 閲覧制限 household's certificate, and never sees its address; HQ and admin may."""
    engine, key, a, b, url, http, pg = desk
    rows = households(a, restricted=True, size=1)
    assert rows, "the fixture town has 閲覧制限 households"
    p = rows[0][0]
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(p))
    assert r.status_code == 403 and "閲覧制限" in r.json()["detail_ja"], r.text
    assert hq(http, a.desk_token, "GET", "/v1/hq/certificates").json()["count"] == 0
    r = hq(http, a.hq_token, "POST", "/v1/hq/certificates", issue_body(p))
    assert r.status_code == 201 and r.json()["restricted"] is True and r.json()["head_address"] == p["住所"]
    n = r.json()["number"]
    seen = hq(http, a.desk_token, "GET", "/v1/hq/certificates").json()["certificates"]
    assert [(c["number"], c["head_address"], c["location"]) for c in seen] == [(n, "（閲覧制限）", "（閲覧制限）")]
    one = hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{n}")
    assert one.status_code == 200 and p["住所"] not in one.text
    for method, path in (("GET", f"/v1/hq/certificates/{n}/pdf"), ("POST", f"/v1/hq/certificates/{n}/reissue")):
        r = hq(http, a.desk_token, method, path, {} if method == "POST" else None)
        assert r.status_code == 403 and p["住所"] not in r.text, (path, r.text)
    t = pdf_text(hq(http, a.hq_token, "GET", f"/v1/hq/certificates/{n}/pdf").content)
    assert squash(p["住所"]) in t
    admin_pdf = hq(http, a.admin_token, "GET", f"/v1/hq/certificates/{n}/pdf")
    assert admin_pdf.status_code == 200
    # voiding discloses nothing: the desk may do it (with a reason)
    r = hq(http, a.desk_token, "POST", f"/v1/hq/certificates/{n}/void", {"reason": "本人からの取下げ"})
    assert r.status_code == 200 and r.json()["status"] == "void" and p["住所"] not in r.text


def sync(sh: Any, http: httpx.Client) -> None:
    res = client.sync_once(sh.session, http=http, sleep=no_sleep)
    assert res.ok, res.as_dict()


def test_numbers_never_collide_with_laptops(desk, tmp_path: Path) -> None:  # noqa: ANN001
    """A laptop issues and syncs; the hub issues for the same municipality; both are listed, the
    numbers differ in their prefix by construction; the hub can reprint, reissue and void the
    laptop's certificate (its content travels sealed to the hub); a resident linked by the
    shelter's matching needs no in-person check at the hub."""
    from app.services.reconcile import reconcile_all
    from app.services.roster import register

    engine, key, a, b, url, http, pg = desk
    sh = app_shelter(tmp_path, "双葉町体育館")
    enroll(sh, engine, http, A, url)
    pull_into_shelter(sh.engine, sh.session, http=http)
    hh1, hh2, hh3 = households(a)[:3]
    with sh.session() as s:
        lap1 = certs.issue(s, resident_id=hh1[0]["宛名番号"], kind="risai", damage="全壊", cause=CAUSE,
                           in_person=True, by="避難所窓口").number
        lap2 = certs.issue(s, resident_id=hh2[0]["宛名番号"], kind="risai", damage="半壊", cause=CAUSE,
                           in_person=True, by="避難所窓口").number
        certs.void(s, lap2, "記載誤り", by="避難所窓口")
        ev = register(s, typed_input(hh3[1]), by="staff", shelter_code="FT1").id
        s.commit()
    assert LAPTOP_NUMBER.match(lap1) and lap1.endswith("-000001")
    decisions = {r.evacuee.id: r.decision for r in reconcile_all(sh.engine)}
    assert decisions[ev] in ("auto", "confirmed")
    sync(sh, http)

    # the same household cannot get a second one for the same cause at the hub either
    dup = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(hh1[1], damage="全壊"))
    assert dup.status_code == 409 and lap1 in dup.json()["detail"]
    # linked by the shelter's matching: no in-person check needed
    r = hq(http, a.desk_token, "POST", "/v1/hq/certificates", issue_body(hh3[1], in_person=False))
    assert r.status_code == 201, r.text
    hub1 = r.json()["number"]
    assert r.json()["identity"] == f"match_{decisions[ev]}"
    assert hub1.endswith("-000001")  # the hub's own sequence also starts at 1 …
    assert hub1.split("-")[1] != lap1.split("-")[1] and hub1.split("-")[1].startswith("U")  # … under its own prefix
    assert certs.short_device_id(sh.device().device_id) == lap1.split("-")[1]

    listed = hq(http, a.desk_token, "GET", "/v1/hq/certificates").json()["certificates"]
    by_number = {c["number"]: c for c in listed}
    assert set(by_number) == {lap1, lap2, hub1}
    assert (by_number[lap1]["origin"], by_number[lap1]["shelter_name"], by_number[lap1]["status"]) == \
        ("laptop", "双葉町体育館", "issued")
    assert (by_number[lap2]["status"], by_number[lap2]["void_reason"]) == ("void", "記載誤り")
    assert by_number[hub1]["origin"] == "hub"
    assert by_number[lap1]["head_name"] == f"{hh1[0]['氏']}　{hh1[0]['名']}" and by_number[lap1]["content_known"]
    assert [c["number"] for c in hq(http, a.desk_token, "GET", "/v1/hq/certificates?origin=laptop&status=issued")
            .json()["certificates"]] == [lap1]

    # the other laptops of the town receive the event, but not what it printed (sealed to the hub)
    with engine.connect() as conn:
        store.set_tenant(conn, A)
        payloads = [json.loads(p) for (p,) in conn.execute(select(store.hub_event.c.payload).where(
            store.hub_event.c.type == "certificate.issued"))]
    assert payloads and all("sealed" in p and hh1[0]["住所"] not in json.dumps(p, ensure_ascii=False)
                            for p in payloads)

    # HQ reprints and reissues the laptop's certificate; the number stays
    t = pdf_text(hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{lap1}/pdf").content)
    assert f"整理番号第{lap1}号" in t and f"世帯主氏名{hh1[0]['氏']}{hh1[0]['名']}" in t and "■全壊" in t
    r = hq(http, a.desk_token, "POST", f"/v1/hq/certificates/{lap1}/reissue", {"reason": "紛失"})
    assert r.status_code == 200 and r.json()["reissue_count"] == 1 and r.json()["number"] == lap1
    assert [(h["action"], h["where"]) for h in r.json()["history"]] == [("issue", "laptop"), ("reissue", "hub")]
    assert "【再発行】第1回" in pdf_text(hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{lap1}/pdf").content)
    r = hq(http, a.desk_token, "POST", f"/v1/hq/certificates/{lap1}/void", {"reason": "二重発行"})
    assert r.status_code == 200 and r.json()["status"] == "void"
    assert hq(http, a.desk_token, "POST", f"/v1/hq/certificates/{lap2}/void", {"reason": "x"}).status_code == 409

    # a laptop event arriving later never un-voids it at the hub
    with sh.session() as s:
        certs.reissue(s, lap1, by="避難所窓口", reason="再交付")
        s.commit()
    sync(sh, http)
    after = hq(http, a.desk_token, "GET", f"/v1/hq/certificates/{lap1}").json()
    assert after["status"] == "void" and after["void_reason"] == "二重発行"
    assert [(h["action"], h["where"]) for h in after["history"]][-1] == ("reissue", "laptop")


def test_cli(desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    engine, key, a, b, url, http, pg = desk
    monkeypatch.setenv(registry.DATA_KEY_ENV, key.to_text())
    monkeypatch.setenv("ANPI_HUB_DATABASE_URL", pg.url)
    head = households(a)[2][0]
    out = tmp_path / "c.pdf"
    res = runner.invoke(anpi, ["hub", "certificate", "issue", "--municipality", A, "--resident-id", head["宛名番号"],
                               "--kind", "risai", "--damage", "準半壊", "--cause", CAUSE, "--in-person",
                               "--out", str(out)])
    assert res.exit_code == 0, res.output
    number = res.stdout.strip().splitlines()[0]
    assert HUB_NUMBER.match(number) and "■準半壊" in pdf_text(out.read_bytes())
    res = runner.invoke(anpi, ["hub", "certificate", "issue", "--municipality", A, "--resident-id", head["宛名番号"],
                               "--kind", "risai", "--cause", CAUSE, "--in-person"])
    assert res.exit_code == 1 and "damage" in res.output
    res = runner.invoke(anpi, ["hub", "certificate", "issue", "--municipality", A, "--manual", "--kind", "hisai",
                               "--cause", CAUSE, "--name", "浜野　一郎", "--address", "双葉町1",
                               "--member", "浜野　花子,妻,S43.4.5"])
    assert res.exit_code == 0, res.output
    manual = res.stdout.strip()
    res = runner.invoke(anpi, ["hub", "certificate", "list", "--municipality", A, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["number"] for r in rows} == {number, manual} and {r["origin"] for r in rows} == {"hub"}
    res = runner.invoke(anpi, ["hub", "certificate", "reissue", number, "--municipality", A, "--reason", "紛失"])
    assert res.exit_code == 0 and "reissue 1" in res.output, res.output
    res = runner.invoke(anpi, ["hub", "certificate", "pdf", number, "--municipality", A, "--out", str(out)])
    assert res.exit_code == 0 and "【再発行】第1回" in pdf_text(out.read_bytes()), res.output
    res = runner.invoke(anpi, ["hub", "certificate", "void", number, "--municipality", A])
    assert res.exit_code == 1 and "reason" in res.output
    res = runner.invoke(anpi, ["hub", "certificate", "void", number, "--municipality", A, "--reason", "誤発行"])
    assert res.exit_code == 0 and "void: 誤発行" in res.output
    res = runner.invoke(anpi, ["hub", "certificate", "pdf", number, "--municipality", A, "--out", str(out)])
    assert res.exit_code == 1 and "void" in res.output
    # another municipality's number is not found from there
    res = runner.invoke(anpi, ["hub", "certificate", "void", manual, "--municipality", B, "--reason", "x"])
    assert res.exit_code == 1 and "no certificate" in res.output
