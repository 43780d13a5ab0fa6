"""HQ's desk at the hub: the safety list with the shelter's statuses, HQ records typed on a laptop or
at the hub, the list's filters, and its files — never with a 閲覧制限 resident in them.

Real pieces: the hub as ``anpi hub serve`` composes it (``app.hub_app.create_app``: sync's hub + the
desks) under uvicorn on PostgreSQL as a role row-level security binds; a shelter laptop (SQLite, the
shelter services) enrolled over HTTP; HQ through the ``/v1/hq`` routes; CLI through typer.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import app as anpi
from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.services.anpi_list import record_hq_confirmation
from app.services.reconcile import reconcile_all
from app.services.roster import register
from sync import client
from sync.hub import audit, registry, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, B, Town, add_towns, app_shelter, enroll, hq, store_registry, typed_input
from tests.sync.helpers import Shelter, ThreadedServer, no_sleep

runner = CliRunner()
GHOST = "9999999999"  # a 宛名番号 nobody has
YOSHI = "𠮷"  # not in CP932


@dataclass
class Desk:
    engine: Any
    key: registry.DataKey
    a: Town
    b: Town
    url: str
    http: httpx.Client
    pg: PgHub
    laptop: Shelter
    restricted: list[dict[str, str]]  # 閲覧制限 residents of A (a whole household)
    yoshi: dict[str, str]  # A's resident whose family name holds 𠮷

    def env(self) -> dict[str, str]:
        return {"ANPI_HUB_DATABASE_URL": self.pg.url, "ANPI_HUB_DATA_KEY": self.key.to_text()}

    def people(self, n: int, skip: tuple[dict[str, str], ...] = ()) -> list[dict[str, str]]:
        """n plain residents of A (named, born, not 閲覧制限, not the 𠮷 one)."""
        bad = {p["宛名番号"] for p in (*self.restricted, self.yoshi, *skip)}
        return [p for p in self.a.residents if p["氏"] and p["名"] and p["生年月日"] and not p["英字氏名"]
                and not p["閲覧制限"] and p["宛名番号"] not in bad][:n]


def _mark(town: Town) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Make one household 閲覧制限 and give another resident 𠮷 — in the file the hub imports."""
    sizes: dict[str, int] = {}
    for p in town.residents:
        sizes[p["世帯番号"]] = sizes.get(p["世帯番号"], 0) + 1
    hh = next(p["世帯番号"] for p in town.residents[20:] if sizes[p["世帯番号"]] >= 2 and p["氏"] and not p["英字氏名"])
    restricted = [p for p in town.residents if p["世帯番号"] == hh]
    for p in restricted:
        p["閲覧制限"] = "1"
    yoshi = next(p for p in town.residents[40:] if p["氏"] and p["名"] and not p["英字氏名"] and p["世帯番号"] != hh)
    yoshi["氏"] = YOSHI + "田"
    with town.registry.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(town.residents[0]))
        w.writeheader()
        w.writerows(town.residents)
    return restricted, yoshi


@pytest.fixture
def desk(pg_hub: PgHub, tmp_path: Path) -> Iterator[Desk]:
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=200, evacuees=5)
    restricted, yoshi = _mark(a)
    store_registry(engine, key, a)
    store_registry(engine, key, b)
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        laptop = app_shelter(tmp_path, "双葉町立体育館")
        enroll(laptop, engine, http, A, srv.url)
        pull_into_shelter(laptop.engine, laptop.session, http=http)
        yield Desk(engine, key, a, b, srv.url, http, pg_hub, laptop, restricted, yoshi)
    engine.dispose()


def sync(d: Desk) -> None:
    res = client.sync_once(d.laptop.session, http=d.http, sleep=no_sleep)
    assert res.ok, res.as_dict()


def rows_of(d: Desk, query: str = "", token: str | None = None) -> dict[str, dict[str, Any]]:
    r = hq(d.http, token or d.a.hq_token, "GET", "/v1/hq/anpi-list?limit=10000" + (f"&{query}" if query else ""))
    assert r.status_code == 200, r.text
    return {row["resident_id"]: row for row in r.json()["rows"]}


def post(d: Desk, rid: str, body: Any, token: str | None = None) -> httpx.Response:
    return hq(d.http, token or d.a.hq_token, "POST", f"/v1/hq/anpi-list/{rid}/records", body)


def status_of(d: Desk, rid: str) -> str:
    return rows_of(d)[rid]["status"]


def shelter_in(d: Desk, people: list[dict[str, str]], care: dict[str, Any] | None = None) -> None:
    """Register residents at A's laptop, reconcile (links them) and sync."""
    with d.laptop.session() as s:
        for p in people:
            data = typed_input(p)
            if care:
                data.care_flags = dict(care)
            register(s, data, by="staff", shelter_code="FT1")
        s.commit()
    reconcile_all(d.laptop.engine)
    sync(d)


def test_laptop_and_hub_records_reach_the_hub_list(desk: Desk) -> None:
    d = desk
    p_shelter, p_phone, p_missing, p_typed, p_cli = d.people(5)
    rid = {k: p["宛名番号"] for k, p in (("shelter", p_shelter), ("phone", p_phone), ("missing", p_missing),
                                       ("typed", p_typed), ("cli", p_cli))}
    shelter_in(d, [p_shelter])
    # HQ's records typed on a laptop travel with the next sync
    with d.laptop.session() as s:
        record_hq_confirmation(s, rid["phone"], "confirmed_other", "電話", "本人と通話", by="本部 田中")
        record_hq_confirmation(s, rid["missing"], "missing", by="本部 田中")
        record_hq_confirmation(s, rid["missing"], "withdrawn", by="本部 田中")  # the laptop took it back
        s.commit()
    sync(d)
    rows = rows_of(d)
    phone = rows[rid["phone"]]
    assert (phone["status"], phone["status_ja"], phone["safe"]) == ("confirmed_other", "他の手段で確認", True)
    assert {k: phone["hq"][k] for k in ("method", "note", "by_user", "typed_at")} == {
        "method": "電話", "note": "本人と通話", "by_user": "本部 田中", "typed_at": "shelter"}
    assert (rows[rid["missing"]]["status"], rows[rid["missing"]]["status_ja"]) == ("unconfirmed", "未確認")
    there = rows[rid["shelter"]]
    assert (there["status_ja"], there["where"]["shelter_name"]) == ("避難所で確認", "双葉町立体育館")
    doc = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list?limit=1").json()
    assert doc["counts"]["confirmed_other"] == 1 and doc["counts"]["in_shelter"] == 1 and doc["safe"] == 2

    # typed at the hub: 行方不明 → 死亡 → withdrawn (行方不明 again) → withdrawn (未確認) → nothing left to withdraw
    r = post(d, rid["typed"], {"status": "missing", "note": "家族から連絡なし"})
    assert r.status_code == 200, r.text
    first = r.json()["record"]
    assert first["device_id"] is None and first["typed_at"] == "hub" and first["by_user"] == f"hq-{A}"
    assert status_of(d, rid["typed"]) == "missing"
    assert post(d, rid["typed"], {"status": "dead"}).status_code == 200
    assert rows_of(d)[rid["typed"]]["status_ja"] == "死亡"
    assert post(d, rid["typed"], {"status": "withdrawn"}).json()["record"]["withdrew"] is not None
    assert status_of(d, rid["typed"]) == "missing"
    assert post(d, rid["typed"], {"status": "withdrawn"}).status_code == 200
    assert status_of(d, rid["typed"]) == "unconfirmed"
    again = post(d, rid["typed"], {"status": "withdrawn"})
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    # 死亡 outranks a shelter stay; withdrawing it shows the stay again
    assert post(d, rid["shelter"], {"status": "dead"}).status_code == 200
    assert (status_of(d, rid["shelter"]), rows_of(d)[rid["shelter"]]["where"]) == ("dead", None)
    assert post(d, rid["shelter"], {"status": "withdrawn"}).status_code == 200
    assert status_of(d, rid["shelter"]) == "in_shelter"
    # the hub can take back a laptop's record; the history shows both, and which undid which
    w = post(d, rid["phone"], {"status": "withdrawn"}).json()["record"]
    assert status_of(d, rid["phone"]) == "unconfirmed"
    hist = hq(d.http, d.a.hq_token, "GET", f"/v1/hq/anpi-list/{rid['phone']}/records").json()
    assert [(x["status"], x["typed_at"]) for x in hist["records"]] == [("confirmed_other", "shelter"),
                                                                       ("withdrawn", "hub")]
    assert hist["records"][0]["undone_by"] == w["record_id"] and hist["in_force"] is None

    # bad input names its field; nothing is stored
    for body, field in (({"status": "confirmed_other"}, "method"), ({"status": "alive"}, "status"),
                        ({"status": "confirmed_other", "method": "fax"}, "method"),
                        ({"status": "missing", "note": "x" * 501}, "note"), ({"status": 3}, "status")):
        r = post(d, rid["typed"], body)
        assert r.status_code == 400 and r.json()["detail"].startswith(f"{field}:"), (body, r.text)
    empty = hq(d.http, d.a.hq_token, "POST", f"/v1/hq/anpi-list/{rid['typed']}/records")
    assert empty.status_code == 400 and empty.json()["detail"].startswith("status:")
    bad = d.http.post(f"/v1/hq/anpi-list/{rid['typed']}/records", content=b"{not json",
                      headers={"Authorization": f"Bearer {d.a.hq_token}"})
    assert bad.status_code == 400
    # another town's resident answers exactly like a 宛名番号 nobody has — both ways
    theirs, ghost = post(d, d.b.residents[0]["宛名番号"], {"status": "missing"}), post(d, GHOST, {"status": "missing"})
    assert (theirs.status_code, theirs.json()) == (ghost.status_code, ghost.json()) == (
        404, {"error": "not_found", "detail": "not found"})
    theirs = post(d, rid["typed"], {"status": "missing"}, token=d.b.hq_token)
    assert (theirs.status_code, theirs.json()) == (404, {"error": "not_found", "detail": "not found"})
    assert hq(d.http, d.b.hq_token, "GET", f"/v1/hq/anpi-list/{rid['phone']}/records").json()["records"] == []
    assert rid["typed"] not in rows_of(d, token=d.b.hq_token)
    # roles: a desk account may not record; no token, no answer
    _, desk_token = tenants.add_user(d.engine, A, "窓口", "desk")
    assert post(d, rid["typed"], {"status": "missing"}, token=desk_token).status_code == 403
    assert d.http.post(f"/v1/hq/anpi-list/{rid['typed']}/records", json={"status": "missing"}).status_code == 401

    # the CLI at the hub
    env = d.env()
    r = runner.invoke(anpi, ["hub", "hq", "confirm", rid["cli"], "--status", "confirmed_other", "--method", "visit",
                             "--note", "自宅で本人確認", "--by", "本部 佐藤", "--municipality", A], env=env)
    assert r.exit_code == 0 and "他の手段で確認" in r.stdout and "本部 佐藤" in r.stdout, r.output
    row = rows_of(d)[rid["cli"]]
    assert (row["status_ja"], row["hq"]["method"], row["hq"]["by_user"]) == ("他の手段で確認", "訪問", "本部 佐藤")
    r = runner.invoke(anpi, ["hub", "hq", "confirm", GHOST, "--status", "missing", "--by", "x", "--municipality", A],
                      env=env)
    assert r.exit_code == 1 and "not in the newest registry backup" in r.output
    r = runner.invoke(anpi, ["hub", "hq", "confirm", rid["cli"], "--status", "confirmed_other", "--by", "x",
                             "--municipality", A], env=env)
    assert r.exit_code == 1 and "--method" in r.output
    r = runner.invoke(anpi, ["hub", "hq", "history", rid["cli"], "--municipality", A], env=env)
    assert r.exit_code == 0 and r.stdout.startswith("*") and "他の手段で確認" in r.stdout, r.output

    # every record typed at the hub is in A's audit log (none in B's); the chain holds
    with d.engine.connect() as c:
        entries = [e for e in audit.entries(c, A, 500) if e["action"] == "hq.recorded"]
        assert len(entries) == 8 and audit.count(c, B, "hq.recorded") == 0
        operator = f"operator:{os.environ.get('USER') or 'unknown'} as 本部 佐藤"
        assert {e["actor"] for e in entries} == {f"hq:hq-{A}", operator}
        assert audit.verify(c, A) is None


def test_filters_and_order_agree_with_the_file(desk: Desk, tmp_path: Path) -> None:
    d = desk
    people = d.people(6)
    shelter_in(d, people[:2])
    shelter_in(d, people[2:3], care={"elderly": True})
    assert post(d, people[3]["宛名番号"], {"status": "confirmed_other", "method": "電話"}).status_code == 200
    all_rows = rows_of(d)
    assert len(all_rows) == len(d.a.residents)

    # the JSON list and the CSV file (built by the shelter's build_rows) agree row for row
    out = tmp_path / "all.csv"
    r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", "csv", "--out", str(out)],
                      env=d.env())
    assert r.exit_code == 0, r.output
    with out.open(encoding="utf-8-sig") as fh:
        lines = list(csv.DictReader(fh))
    doc = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list?limit=10000").json()
    shown = [row for row in doc["rows"] if not row["restricted"]]
    assert [row["resident_id"] for row in shown] == [line["宛名番号"] for line in lines]
    assert [row["status_ja"] for row in shown] == [line["状態"] for line in lines]
    assert [row["town"] for row in shown] == [line["町字"] for line in lines]
    towns = [row["town"] for row in doc["rows"]]
    from app.services.anpi_towns import town_sort_key

    assert towns == sorted(towns, key=town_sort_key)  # street by street, 町字 in natural order (issue 14 item 8)
    assert all(row["town_label"] for row in doc["rows"])  # the registry's spelling, for the screen

    # 町字 (as typed, or a whole address), household, age band, 要配慮, status (code or label)
    town = all_rows[people[0]["宛名番号"]]["town"]
    for value in (town, people[0]["住所"]):
        got = rows_of(d, f"town={value}")
        assert got and {r["town"] for r in got.values()} == {town}
        assert set(got) == {k for k, v in all_rows.items() if v["town"] == town}
    bad = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list?town=存在しない町")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("town:")
    hh = people[0]["世帯番号"]
    assert set(rows_of(d, f"household={hh}")) == {p["宛名番号"] for p in d.a.residents if p["世帯番号"] == hh}
    today = date.today()
    born = {p["宛名番号"]: date.fromisoformat(p["生年月日"]) for p in d.a.residents if p["生年月日"]}
    old = {k for k, b in born.items() if today.year - b.year - ((today.month, today.day) < (b.month, b.day)) >= 75}
    assert set(rows_of(d, "age_band=75%2B")) == old
    bad = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list?age_band=80-90")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("age_band:")
    assert set(rows_of(d, "care=1")) == {people[2]["宛名番号"]}
    assert set(rows_of(d, "status=他の手段で確認")) == set(rows_of(d, "status=confirmed_other")) == {people[3]["宛名番号"]}
    assert set(rows_of(d, "status=safe")) == {p["宛名番号"] for p in people[:4]}
    assert set(rows_of(d, "status=in_shelter&care=1")) == {people[2]["宛名番号"]}
    bad = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list?status=無事")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("status:")
    # the same filters on the file
    out = tmp_path / "hh.csv"
    r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", "csv", "--out", str(out),
                             "--town", town, "--status", "safe"], env=d.env())
    assert r.exit_code == 0, r.output
    with out.open(encoding="utf-8-sig") as fh:
        assert {x["宛名番号"] for x in csv.DictReader(fh)} == set(rows_of(d, f"town={town}&status=safe"))
    r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", "csv", "--out", str(out),
                             "--age-band", "99+"], env=d.env())
    assert r.exit_code == 1 and "age band" in r.output


def _text_of_pdf(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def test_files_never_hold_a_restricted_resident(desk: Desk, tmp_path: Path) -> None:
    """閲覧制限: in HQ's internal JSON (marked), in no file — whatever the filters, format or route —
    even when the person is in a shelter and HQ recorded them."""
    d = desk
    hidden = d.restricted[0]
    hid = hidden["宛名番号"]
    shelter_in(d, [hidden])
    assert post(d, d.restricted[1]["宛名番号"], {"status": "confirmed_other", "method": "訪問"}).status_code == 200
    internal = rows_of(d)
    assert internal[hid]["restricted"] is True and internal[hid]["status"] == "in_shelter"
    secrets = {p["宛名番号"] for p in d.restricted} | {p["氏"] + p["名"] for p in d.restricted} \
        | {f"{p['氏']} {p['名']}" for p in d.restricted}
    visible = {p["宛名番号"] for p in d.a.residents if not p["閲覧制限"]}
    hh = hidden["世帯番号"]
    exports = 0

    def download(query: str) -> httpx.Response:
        nonlocal exports
        r = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list/export?" + query)
        assert r.status_code == 200, r.text
        exports += 1
        return r

    # CSV, UTF-8 with BOM: everyone else; the household filter that targets them still leaves them out
    for query, want in (("format=csv", visible), (f"format=csv&household={hh}", set()),
                        ("format=csv&status=in_shelter", set())):
        r = download(query)
        assert r.content.startswith(b"\xef\xbb\xbf") and r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"].startswith(f'attachment; filename="anpi-list-{A}-')
        text = r.content.decode("utf-8-sig")
        assert not any(s in text for s in secrets), query
        assert {x["宛名番号"] for x in csv.DictReader(io.StringIO(text))} == want
        assert int(r.headers["X-Anpi-Restricted-Excluded"]) == (len(d.restricted) if query == "format=csv"
                                                                else 1 if "status" in query else len(d.restricted))
    # CP932: 𠮷 is replaced (never dropped) and listed in the report
    r = download("format=csv&encoding=cp932")
    text = r.content.decode("cp932")
    assert int(r.headers["X-Anpi-Replacements"]) >= 1 and YOSHI not in text
    line = next(x for x in csv.DictReader(io.StringIO(text)) if x["宛名番号"] == d.yoshi["宛名番号"])
    assert line["氏名"].endswith(d.yoshi["名"]) and YOSHI not in line["氏名"]
    assert not any(s in text for s in secrets)
    rep = download("format=csv&encoding=cp932&report=1").content.decode("utf-8-sig")
    assert YOSHI in rep and d.yoshi["宛名番号"] in rep
    # xlsx and PDF
    import openpyxl

    r = download("format=xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    cells = {str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c}
    assert visible <= cells and not any(s in c for c in cells for s in secrets)
    r = download(f"format=pdf&household={hh}")
    assert r.content.startswith(b"%PDF") and r.headers["content-type"] == "application/pdf"
    pdf = _text_of_pdf(r.content).replace(" ", "").replace("\u3000", "")
    assert hid not in pdf and hidden["氏"] + hidden["名"] not in pdf and "閲覧制限" in pdf
    # bad options name the field
    for query, field in (("format=docx", "format"), ("format=csv&encoding=euc-jp", "encoding")):
        bad = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list/export?" + query)
        assert bad.status_code == 400 and bad.json()["detail"].startswith(f"{field}:"), bad.text
    _, desk_token = tenants.add_user(d.engine, A, "窓口", "desk")
    assert hq(d.http, desk_token, "GET", "/v1/hq/anpi-list/export?format=csv").status_code == 403

    # the CLI's files: csv (cp932, with the report beside it), xlsx, pdf
    env = d.env()
    out = tmp_path / "list-cp932.csv"
    r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", "csv",
                             "--encoding", "cp932", "--out", str(out)], env=env)
    assert r.exit_code == 0 and "characters could not be written" in r.output and "閲覧制限" in r.stdout, r.output
    report = out.with_name(out.stem + ".replacements.csv")
    assert YOSHI in report.read_text(encoding="utf-8-sig")
    summary = out.with_name(out.stem + ".summary.txt").read_text(encoding="utf-8-sig")
    assert not any(s in out.read_bytes().decode("cp932") + summary for s in secrets)
    for fmt in ("xlsx", "pdf"):
        out = tmp_path / f"list.{fmt}"
        r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", fmt, "--out", str(out)],
                          env=env)
        assert r.exit_code == 0, r.output
        if fmt == "pdf":
            pdf = _text_of_pdf(out.read_bytes()).replace(" ", "").replace("\u3000", "")
            assert not any(s.replace(" ", "") in pdf for s in secrets)
            assert d.people(1)[0]["宛名番号"] in pdf
        else:
            wb = openpyxl.load_workbook(out, read_only=True)
            cells = {str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c}
            assert not any(s in c for c in cells for s in secrets)
    r = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", "pdf", "--encoding",
                             "cp932", "--out", str(tmp_path / "x.pdf")], env=env)
    assert r.exit_code == 1 and "--encoding applies to csv only" in r.output

    # every file is audited in A's log, with the route or command, the filters and its residents
    with d.engine.connect() as c:
        entries = [e for e in audit.entries(c, A, 500) if e["action"] == "export.anpi_list"]
        assert len(entries) == exports + 3
        assert all(hid not in e["detail"]["residents"] for e in entries)
        routes = {e["detail"]["route"] for e in entries}
        assert routes == {"GET /v1/hq/anpi-list/export", "cli: anpi hub export anpi-list"}
        assert audit.count(c, B, "export.anpi_list") == 0 and audit.verify(c, A) is None


def test_hq_picks_the_value_of_a_field_conflict(desk: Desk) -> None:
    """Two staff changed the same phone number from the same old value: HQ chooses one at the hub."""
    from sqlalchemy import select

    from sync import events as sev, outbox
    from sync.hub.store import hub_evacuee, set_tenant

    d = desk
    p = d.people(1)[0]
    with d.laptop.session() as s:
        data = typed_input(p, phone="0240-00-0000")
        eid = register(s, data, by="staff", shelter_code="FT1").id
        for new, at in (("090-1111-1111", "2025-04-01T10:00:00+00:00"),
                        ("080-2222-2222", "2025-04-01T10:05:00+00:00")):  # both edited the number they saw
            outbox.append(s, sev.EvacueeUpdated(evacuee_id=eid, at=at, by_user="staff",
                                                changes={"phone": {"old": "0240-00-0000", "new": new}}))
        s.commit()
    sync(d)
    items = [i for i in hq(d.http, d.a.hq_token, "GET", "/v1/hq/review").json()["items"]
             if i["kind"] == "field_conflict"]
    assert [(i["evacuee_id"], i["field"]) for i in items] == [(eid, "phone")]
    item = items[0]
    older = next(c for c in item["detail"] if c["value"] == "090-1111-1111")
    path = f"/v1/hq/review/{item['item_id']}"
    # B's HQ: the same answer as for an id that does not exist; a made-up event id is refused
    theirs = hq(d.http, d.b.hq_token, "POST", path, {"decision": "value", "event_id": older["event_id"]})
    assert (theirs.status_code, theirs.json()) == (404, {"error": "not_found", "detail": "not found"})
    assert hq(d.http, d.a.hq_token, "POST", path, {"decision": "value", "event_id": "nope"}).status_code == 409
    r = hq(d.http, d.a.hq_token, "POST", path, {"decision": "value", "event_id": older["event_id"]})
    assert r.status_code == 200 and r.json()["value"] == "090-1111-1111", r.text
    assert hq(d.http, d.a.hq_token, "GET", f"/v1/hq/evacuees/{eid}").json()["phone"] == "090-1111-1111"
    assert [i for i in hq(d.http, d.a.hq_token, "GET", "/v1/hq/review").json()["items"]
            if i["kind"] == "field_conflict"] == []
    again = hq(d.http, d.a.hq_token, "POST", path, {"decision": "value", "event_id": older["event_id"]})
    assert again.status_code == 409
    with d.engine.connect() as c:
        entry = next(e for e in audit.entries(c, A) if e["action"] == "review.resolved")
        assert entry["actor"] == f"hq:hq-{A}" and entry["detail"]["event_id"] == older["event_id"]
        set_tenant(c, A)
        phone = c.execute(select(hub_evacuee.c.phone).where(hub_evacuee.c.evacuee_id == eid)).scalar()
        assert phone == "090-1111-1111"


def test_a_change_shows_on_the_next_request_after_a_cached_list(desk: Desk) -> None:
    """HQ's list is kept a short while (paging costs one build), yet a new stay event or HQ record of
    the municipality shows on the very next request — and a cached page is the same as a fresh one."""
    from app import hub_export
    from app.services.evacuees import check_out

    d = desk
    p_stay, p_rec = d.people(2)
    rid_stay, rid_rec = p_stay["宛名番号"], p_rec["宛名番号"]
    hub_export.clear_list_cache()
    first = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list?limit=50&offset=50")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert len(hub_export._built) == 1
    built = next(iter(hub_export._built.values())).hub
    again = hq(d.http, d.a.hq_token, "GET", "/v1/hq/anpi-list?limit=50&offset=50")
    assert again.content == first.content  # served from the kept list, byte for byte
    assert next(iter(hub_export._built.values())).hub is built
    # the JSON the route writes is JSONResponse's rendering of list_json
    from starlette.responses import JSONResponse
    assert JSONResponse(hub_export.list_json(d.engine, d.key, A, limit=50, offset=50)).body == first.content
    assert status_of(d, rid_stay) == status_of(d, rid_rec) == "unconfirmed"

    # an HQ record typed at the hub: the very next request
    assert post(d, rid_rec, {"status": "missing"}).status_code == 200
    assert status_of(d, rid_rec) == "missing"
    # a laptop's registration (with its match decision) and then its check-out, each after one sync
    shelter_in(d, [p_stay])
    assert status_of(d, rid_stay) == "in_shelter"
    with d.laptop.session() as s:
        ev = rows_of(d)[rid_stay]["where"]["evacuee_id"]
        check_out(s, ev, by="staff", destination="親戚宅")
        s.commit()
    sync(d)
    row = rows_of(d)[rid_stay]
    assert (row["status"], row["where"]["destination"]) == ("left", "親戚宅")
    # an HQ record typed on the laptop, after the list was read (and kept)
    assert rows_of(d, "status=safe").keys() == {rid_stay}
    with d.laptop.session() as s:
        record_hq_confirmation(s, rid_rec, "confirmed_other", "電話", by="本部 田中")
        s.commit()
    sync(d)
    assert rows_of(d, "status=safe").keys() == {rid_stay, rid_rec}
    # a withdrawal at the hub undoes it at once; filters read the same on a kept list (label → code)
    assert post(d, rid_rec, {"status": "withdrawn"}).status_code == 200
    for q in ("status=行方不明", "status=missing"):
        doc = hq(d.http, d.a.hq_token, "GET", f"/v1/hq/anpi-list?{q}").json()
        assert doc["filters"]["status"] == "missing" and [r["resident_id"] for r in doc["rows"]] == [rid_rec]
    # another municipality's list is its own
    assert rid_rec not in rows_of(d, token=d.b.hq_token)


def test_presorted_residents_build_the_same_list(tmp_path: Path) -> None:
    """The hub sorts a snapshot's residents once (``sort_residents``); ``build_rows`` given them keeps
    the same rows, order, counts and errors as from the plain, shuffled records."""
    import random
    from dataclasses import asdict, replace

    from app.services.anpi_list import AnpiFilter, ResidentRecord, ShelterStay, build_rows, sort_residents
    from app.services.errors import InvalidInput
    from matching.address import town_key
    from tests.hub.helpers import A_NAME, A_PREFIX, make_town

    t = make_town(tmp_path, A, A_NAME, A_PREFIX, residents=400, evacuees=5)
    people = [ResidentRecord(p["宛名番号"], p["世帯番号"], p["続柄"], p["氏"], p["名"], p["氏カナ"], p["名カナ"], p["英字氏名"],
                             date.fromisoformat(p["生年月日"]) if p["生年月日"] else None, p["生年月日"],
                             {"男": "M", "女": "F"}.get(p["性別"], p["性別"]), p["住所"],
                             town_key(p["住所"]) or "" if p["住所"] else "", bool(p["閲覧制限"])) for p in t.residents]
    people[3] = replace(people[3], address="", town="")  # one with no 町字
    random.Random(7).shuffle(people)
    stays = {people[0].resident_id: [ShelterStay("体育館", "in_shelter", care=("高齢者",), evacuee_id="E1")]}
    towns = sorted({p.town for p in people if p.town})
    pre = sort_residents(people)
    for f in (AnpiFilter(), AnpiFilter(towns=(towns[0],)), AnpiFilter(towns=(towns[-1], towns[1], "（町字なし）")),
              AnpiFilter(towns=(people[5].address,)), AnpiFilter(household=people[9].household_id),
              AnpiFilter(status="safe"), AnpiFilter(care_only=True), AnpiFilter(age_band="75+", towns=(towns[2],))):
        plain = build_rows(people, stays, {}, filters=replace(f), today=date(2025, 4, 1), include_restricted=True)
        fast = build_rows(pre, stays, {}, filters=replace(f), today=date(2025, 4, 1), include_restricted=True)
        assert [asdict(r) for r in fast.rows] == [asdict(r) for r in plain.rows], f
        assert (fast.counts, list(fast.town_counts.items()), fast.total_residents, fast.restricted_excluded) == \
            (plain.counts, list(plain.town_counts.items()), plain.total_residents, plain.restricted_excluded)
    with pytest.raises(InvalidInput):
        build_rows(pre, stays, {}, filters=AnpiFilter(towns=(towns[0], "存在しない町")))
