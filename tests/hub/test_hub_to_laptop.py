"""What comes back from the hub to the laptops: HQ records typed on another laptop or at the hub, the
hub's void / reissue of a laptop's certificate, and a feed that keeps other laptops' evacuees'
health and contact items at the hub.

All real: a uvicorn hub (``app.hub_app``: sync's hub + the desks) on PostgreSQL as a role that
row-level security binds, two 双葉町 laptops as SQLite files that enrol, pull the registry backup and
sync over HTTP, HQ through ``/v1/hq`` with bearer tokens.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from sqlalchemy import func, select, text

from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.models import Certificate, CertificateEvent, HqConfirmation
from app.services import anpi_list as al, certificates as certs
from app.services.errors import Conflict
from app.services.evacuees import registered_elsewhere, update_evacuee
from app.services.roster import register
from app.services.shelters import current_shelter
from sync import client, events, outbox
from sync.canonical import canonical_json, sha256_hex
from sync.hub import registry, store, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, B, Town, add_towns, app_shelter, enroll, hq, store_registry, typed_input
from tests.sync.helpers import Shelter, ThreadedServer, no_sleep

CAUSE = "令和8年11月20日の地震"
PRIVATE = ("injury", "injury_state", "contact", "phone", "identifying_info", "current_location", "nationality")


@dataclass
class World:
    engine: Any
    key: registry.DataKey
    a: Town
    b: Town
    http: httpx.Client
    one: Shelter
    two: Shelter
    desk_token: str


@pytest.fixture
def world(pg_hub: PgHub, tmp_path: Path) -> Iterator[World]:
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=200, evacuees=5)
    store_registry(engine, key, a)
    store_registry(engine, key, b)
    desk_token = tenants.add_user(engine, A, "窓口 一郎", "desk")[1]
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        one, two = app_shelter(tmp_path, "双葉中学校"), app_shelter(tmp_path, "双葉町体育館")
        for sh, code in ((one, "FT1"), (two, "FT2")):
            enroll(sh, engine, http, A, srv.url)
            pull_into_shelter(sh.engine, sh.session, http=http)
            with sh.session() as s:  # the laptop knows its municipality (as a deployed shelter does)
                current_shelter(s, code, sh.name).municipality_code = A
                s.commit()
        yield World(engine, key, a, b, http, one, two, desk_token)
    engine.dispose()


def sync(sh: Shelter, http: httpx.Client) -> None:
    res = client.sync_once(sh.session, http=http, sleep=no_sleep)
    assert res.ok, res.as_dict()


def people(town: Town, n: int, skip: int = 0) -> list[dict[str, str]]:
    return [p for p in town.residents if p["氏"] and p["名"] and p["生年月日"] and not p["英字氏名"]
            and not p["閲覧制限"]][skip:skip + n]


def row(sh: Shelter, rid: str) -> al.AnpiRow:
    with sh.session() as s:
        return next(r for r in al.build_anpi_list(s).rows if r.resident_id == rid)


def hub_row(w: World, rid: str) -> dict[str, Any]:
    r = hq(w.http, w.a.hq_token, "GET", "/v1/hq/anpi-list?limit=10000")
    assert r.status_code == 200, r.text
    return next(x for x in r.json()["rows"] if x["resident_id"] == rid)


def remote_payloads(sh: Shelter, *types: str) -> list[dict[str, Any]]:
    with sh.engine.connect() as c:
        rows = c.execute(text("SELECT type, payload, payload_sha256 FROM remote_event ORDER BY hub_seq")).all()
    out = []
    for t, p, h in rows:
        assert sha256_hex(p) == h
        if not types or t in types:
            out.append(json.loads(p))
    return out


# --- HQ records everywhere --------------------------------------------------------------------------

def test_hq_records_typed_on_another_laptop_or_at_the_hub_show_on_every_laptop(world: World) -> None:
    w = world
    phoned, visited, typed_at_hub, misfiled = (p["宛名番号"] for p in people(w.a, 4))

    # laptop one records two people; laptop two sees them after both sync
    with w.one.session() as s:
        al.record_hq_confirmation(s, phoned, "confirmed_other", "電話", "本人と通話", by="本部 田中")
        al.record_hq_confirmation(s, visited, "missing", by="本部 田中")
        s.commit()
    assert row(w.two, phoned).status == "unconfirmed"
    sync(w.one, w.http)
    sync(w.two, w.http)
    r = row(w.two, phoned)
    assert (r.status, r.hq_method, r.hq_by, r.hq_note) == ("confirmed_other", "電話", "本部 田中", "本人と通話")
    assert r.hq_record_id and row(w.two, visited).status == "missing"
    with w.two.session() as s:
        assert s.execute(select(func.count()).select_from(HqConfirmation)).scalar_one() == 0  # nothing copied into its own table

    # laptop two withdraws laptop one's record: one replay (at, id) over both, everywhere
    with w.two.session() as s:
        rec = al.record_hq_confirmation(s, visited, "withdrawn", by="本部 佐藤")
        s.commit()
        assert [h.status for h in al.hq_history(s, visited)] == ["missing", "withdrawn"]
    assert row(w.two, visited).status == "unconfirmed"
    sync(w.two, w.http)
    sync(w.one, w.http)
    assert row(w.one, visited).status == "unconfirmed"
    assert hub_row(w, visited)["status"] == "unconfirmed"
    hist = hq(w.http, w.a.hq_token, "GET", f"/v1/hq/anpi-list/{visited}/records").json()["records"]
    assert [(h["status"], h["typed_at"]) for h in hist] == [("missing", "shelter"), ("withdrawn", "shelter")]
    assert hist[0]["undone_by"] == rec.id

    # typed at the hub: a notice of the same shape reaches both laptops
    r = hq(w.http, w.a.hq_token, "POST", f"/v1/hq/anpi-list/{typed_at_hub}/records",
           {"status": "dead", "note": "警察から連絡"})
    assert r.status_code == 200, r.text
    record_id = r.json()["record"]["record_id"]
    for sh in (w.one, w.two):
        sync(sh, w.http)
        got = row(sh, typed_at_hub)
        assert (got.status, got.hq_note, got.hq_record_id) == ("dead", "警察から連絡", record_id)
    notice = remote_payloads(w.one, "hq.recorded")[-1]
    assert notice["record_id"] == record_id and notice["municipality_code"] == A
    assert set(events.HqRecorded.from_dict(notice).to_dict()) == set(notice)  # a laptop event's shape
    # …and laptop one, withdrawing it, undoes the hub's record (at the hub too)
    with w.one.session() as s:
        al.record_hq_confirmation(s, typed_at_hub, "withdrawn", by="本部 田中")
        s.commit()
    sync(w.one, w.http)
    assert hub_row(w, typed_at_hub)["status"] == "unconfirmed" and row(w.one, typed_at_hub).status == "unconfirmed"

    # B's HQ types a record at the hub: nothing of it reaches A's laptops
    other = people(w.b, 1)[0]["宛名番号"]
    assert hq(w.http, w.b.hq_token, "POST", f"/v1/hq/anpi-list/{other}/records",
              {"status": "confirmed_other", "method": "電話"}).status_code == 200
    # a laptop's record naming another municipality's 宛名番号 is not replayed as ours
    with w.one.session() as s:
        outbox.append(s, events.HqRecorded(record_id="01MISFILED0000000000000000", resident_id=misfiled,
                                           status="dead", at="2026-11-21T00:00:00+00:00", municipality_code=B))
        s.commit()
    sync(w.one, w.http)
    sync(w.two, w.http)
    assert "01MISFILED0000000000000000" in {p["record_id"] for p in remote_payloads(w.two, "hq.recorded")}
    assert other not in {p["resident_id"] for p in remote_payloads(w.two, "hq.recorded")}
    assert row(w.two, misfiled).status == "unconfirmed"


# --- certificates voided / reissued at the hub ------------------------------------------------------

def test_hub_void_and_reissue_reach_the_issuing_laptop(world: World) -> None:
    w = world
    hh1, hh2 = people(w.a, 2, skip=10)
    with w.one.session() as s:
        voided = certs.issue(s, resident_id=hh1["宛名番号"], kind="risai", damage="全壊", cause=CAUSE,
                             in_person=True, by="避難所窓口").number
        reissued = certs.issue(s, resident_id=hh2["宛名番号"], kind="hisai", cause=CAUSE, in_person=True,
                               by="避難所窓口").number
        s.commit()
    sync(w.one, w.http)
    r = hq(w.http, w.desk_token, "POST", f"/v1/hq/certificates/{voided}/void", {"reason": "二重発行"})
    assert r.status_code == 200, r.text
    r = hq(w.http, w.desk_token, "POST", f"/v1/hq/certificates/{reissued}/reissue", {"reason": "紛失"})
    assert r.status_code == 200 and r.json()["reissue_count"] == 1

    with w.one.session() as s:  # before syncing the laptop knows nothing of it
        assert certs.get_certificate(s, voided).status == "issued"
        events_before = s.execute(select(func.count()).select_from(CertificateEvent)).scalar_one()
    sync(w.one, w.http)
    with w.one.session() as s:
        c = certs.get_certificate(s, voided)
        assert (c.status, c.void_reason, c.number) == ("void", "二重発行", voided)
        assert [(e.action, e.reason) for e in certs.history(s, voided)] == [("issue", ""), ("void", "二重発行")]
        assert certs.history(s, voided)[-1].by_user.startswith("本部")
        assert [x.number for x in certs.list_certificates(s, certs.CertificateFilter(status="void"))] == [voided]
        assert [x.number for x in certs.list_certificates(s, certs.CertificateFilter(status="issued"))] == [reissued]
        with pytest.raises(Conflict):
            certs.pdf(s, voided, by="避難所窓口")
        with pytest.raises(Conflict):
            certs.reissue(s, voided, by="避難所窓口")
        with pytest.raises(Conflict):
            certs.void(s, voided, "もう一度", by="避難所窓口")
        s.rollback()
        # the hub's reissue: same number, count and history from the hub; printable, marked 再発行
        c2 = certs.get_certificate(s, reissued)
        assert (c2.status, c2.reissue_count) == ("issued", 1)
        assert [e.action for e in certs.history(s, reissued)] == ["issue", "reissue"]
        assert certs.last_reissue_at(s, reissued) is not None
        assert certs.pdf(s, reissued, by="避難所窓口").startswith(b"%PDF-")
        # the laptop's own rows were not rewritten
        raw = s.execute(select(Certificate).where(Certificate.number == voided)).scalar_one()
        assert (raw.status, raw.void_reason) == ("issued", "")
        assert s.execute(select(func.count()).select_from(CertificateEvent)).scalar_one() == events_before
        # a later reissue here counts on from the hub's
        assert certs.reissue(s, reissued, by="避難所窓口", reason="汚損").reissue_count == 2
        # the household may now get a new certificate for the cause the hub voided
        assert certs.issue(s, resident_id=hh1["宛名番号"], kind="risai", damage="全壊", cause=CAUSE,
                           in_person=True, by="避難所窓口").number != voided
        s.commit()
    sync(w.one, w.http)
    assert hq(w.http, w.desk_token, "GET", f"/v1/hq/certificates/{reissued}").json()["reissue_count"] == 2

    # the laptop's desk screen shows it void (the hub's reason, in the history) and will not print it
    from app.services import accounts
    from tests.web.helpers import client_as, shelter_app

    with w.one.session() as s:
        accounts.add_user(s, "窓口", "desk", "3333")
        s.commit()
    for app in shelter_app(w.one.path):
        with client_as(app, "窓口") as web:
            page = web.get(f"/desk/certificates/{voided}")
            assert page.status_code == 200 and 'id="void-note"' in page.text and "二重発行" in page.text
            assert 'id="pdf-link"' not in page.text and "本部" in page.text
            assert web.get(f"/desk/certificates/{voided}/pdf").status_code == 409
            assert web.get(f"/desk/certificates/{voided}/print").status_code == 409
            listing = web.get("/desk/certificates", params={"status": "void"}).text
            assert voided in listing and reissued not in listing


# --- feed privacy ----------------------------------------------------------------------------------

def test_other_laptops_never_receive_health_and_contact_items(world: World) -> None:
    w = world
    p, q = people(w.a, 2, skip=20)
    with w.one.session() as s:
        ev = register(s, typed_input(p, nationality="日本", identifying_info="眼鏡", injury="足のけが",
                                     injury_state="軽傷", current_location="2階 3号室", contact="090-1111-2222",
                                     phone="0240-00-0000", consent_relatives=True),
                      by="受付", shelter_code="FT1")
        eid = ev.id
        s.commit()
        update_evacuee(s, eid, {"contact": "080-3333-4444"}, by="受付")  # only private: not forwarded
        update_evacuee(s, eid, {"address": "双葉町 仮設1", "injury": "骨折"}, by="受付")  # address travels
        s.commit()
    with w.two.session() as s:
        register(s, typed_input(q, injury="なし", contact="090-5555-6666"), by="受付", shelter_code="FT2")
        s.commit()
    sync(w.one, w.http)
    sync(w.two, w.http)
    sync(w.one, w.http)

    mine = remote_payloads(w.two)
    regs = [x for x in mine if x.get("evacuee_id") == eid]
    assert [set(PRIVATE) & set(x) for x in regs] == [set()] * len(regs)
    assert [set(PRIVATE) & set(x.get("changes") or {}) for x in regs] == [set()] * len(regs)
    updates = [x for x in regs if "changes" in x]
    assert [sorted(x["changes"]) for x in updates] == [["address"]]
    with w.two.engine.connect() as c:
        blob = " ".join(r[0] for r in c.execute(text("SELECT payload FROM remote_event")))
    for secret in ("足のけが", "軽傷", "2階 3号室", "090-1111-2222", "0240-00-0000", "080-3333-4444", "骨折", "眼鏡"):
        assert secret not in blob
    # …what laptop two uses still arrived: registered elsewhere (name, kana, birth), the stays
    with w.two.session() as s:
        found = registered_elsewhere(s, f"{p['氏']} {p['名']}", p["生年月日"])
        assert [f["shelter_code"] for f in found] == ["FT1"]
    # laptop one gets laptop two's evacuee without them too (both directions)
    assert not [x for x in remote_payloads(w.one, "evacuee.registered") if set(PRIVATE) & set(x)]

    # the hub keeps everything, and its 安否照会 desk still answers them
    with w.engine.connect() as c:
        store.set_tenant(c, A)
        held = [json.loads(r[0]) for r in c.execute(select(store.hub_event.c.payload).where(
            store.hub_event.c.municipality_code == A, store.hub_event.c.evacuee_id == eid))]
    assert any(x.get("injury") == "足のけが" for x in held)
    assert any((x.get("changes") or {}).get("contact") for x in held)
    r = hq(w.http, w.desk_token, "POST", "/v1/hq/inquiries", {
        "inquirer_name": "双葉 太郎", "inquirer_address": "埼玉県加須市騎西1", "id_proof": "運転免許証",
        "relationship": "同居の親族", "sought_name": f"{p['氏']} {p['名']}", "sought_birth": p["生年月日"]})
    assert r.status_code == 200, r.text
    items = {i["no"]: i["value"] for i in r.json()["items"]}
    assert "骨折" in items[9] and items[11] == "080-3333-4444" and items[6] == "日本"

    # the redacted payload is canonical JSON under its own hash
    reg = next(x for x in regs if "changes" not in x)
    with w.two.engine.connect() as c:
        raw, h = c.execute(text("SELECT payload, payload_sha256 FROM remote_event WHERE evacuee_id = :e AND "
                                "type = 'evacuee.registered'"), {"e": eid}).one()
    assert raw == canonical_json(reg) and h == sha256_hex(raw)


def test_redact_for_feed_rules() -> None:
    reg = canonical_json({"evacuee_id": "E1", "shelter_code": "FT1", "name": "山田 太郎", "phone": "090",
                          "injury": "x", "care": {"wheelchair": True}})
    out = store.redact_for_feed("evacuee.registered", reg, sha256_hex(reg))
    assert out is not None and json.loads(out[0]) == {"evacuee_id": "E1", "shelter_code": "FT1", "name": "山田 太郎",
                                                      "care": {"wheelchair": True}}
    assert out[1] == sha256_hex(out[0])
    only = canonical_json({"evacuee_id": "E1", "changes": {"contact": {"old": None, "new": "1"}}})
    assert store.redact_for_feed("evacuee.updated", only, sha256_hex(only)) is None
    clean = '{"evacuee_id":"E1","changes":{"name":{"old":"a","new":"b"}}}'
    assert store.redact_for_feed("evacuee.updated", clean, "h") == (clean, "h")  # untouched, byte for byte
    stay = canonical_json({"stay_id": "S", "evacuee_id": "E1", "kind": "check_in", "phone": "kept: not an evacuee form"})
    assert store.redact_for_feed("stay.recorded", stay, "h") == (stay, "h")
