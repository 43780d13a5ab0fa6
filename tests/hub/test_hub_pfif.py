"""PFIF at the hub, per municipality: Person Finder's own files import; sought people are linked to
the municipality's residents (its registry backup, the shelters' engine) and to evacuees a laptop
registered and synced over HTTP; staff decisions are append-only and reversible; the export holds
only evacuees who consented to publication (⑭) and never 閲覧制限 people; what it writes imports
elsewhere as the same persons and notes; another municipality sees nothing of it.

Real pieces throughout: uvicorn serving `app.hub_app` on PostgreSQL (as a role row-level security
binds), shelter laptops as SQLite files driven through the shelter services and `sync_once`, the
`anpi hub pfif` CLI.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from typer.testing import CliRunner

from app.cli import app as anpi
from app.db import open_shelter_db, session as db_session
from app.formats.pfif import PfifNote, PfifPerson, parse_pfif, person_from_json, note_from_json, write_pfif
from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.services.reconcile import reconcile_all, staff_decide
from app.services.roster import register, register_household
from sync import client
from sync.hub import audit, registry, tenants
from sync.hub.store import hub_sought_link, hub_sought_person
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, B, Town, add_towns, app_shelter, enroll, hq, store_registry, typed_input
from tests.sync.helpers import ThreadedServer, no_sleep

runner = CliRunner()
UTC = timezone.utc
_SHARED = Path(__file__).resolve().parents[3] / "shared" / "pfif"
SAMPLES = _SHARED if _SHARED.is_dir() else Path(__file__).resolve().parents[1] / "data" / "pfif"


@dataclass
class Hub:
    engine: Any
    key: registry.DataKey
    a: Town
    b: Town
    url: str
    http: httpx.Client
    pg: PgHub
    desk_token: str  # a desk-only account of A
    tmp: Path

    def env(self) -> dict[str, str]:
        return {"ANPI_HUB_DATABASE_URL": self.pg.url, "ANPI_HUB_DATA_KEY": self.key.to_text()}


@pytest.fixture
def hub(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=300, evacuees=10)
    store_registry(engine, key, a)
    store_registry(engine, key, b)
    desk = tenants.add_user(engine, A, f"desk-{A}", "desk")[1]
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        yield Hub(engine, key, a, b, srv.url, http, pg_hub, desk, tmp_path)
    engine.dispose()


def post_file(h: Hub, token: str, data: bytes, name: str) -> httpx.Response:
    return h.http.post(f"/v1/hq/pfif/import?name={name}", content=data, headers={"Authorization": f"Bearer {token}"})


def sought(h: Hub, token: str, **params: Any) -> list[dict[str, Any]]:
    r = h.http.get("/v1/hq/pfif/sought", params=params, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()["sought"]


def table_counts(h: Hub, m: str) -> tuple[int, int]:
    """Rows of one municipality, looked at behind the wall (superuser)."""
    eng = create_engine(h.pg.admin_url)
    try:
        with eng.connect() as c:
            return tuple(int(c.execute(select(func.count()).select_from(t).where(t.c.municipality_code == m))
                             .scalar_one()) for t in (hub_sought_person, hub_sought_link))  # type: ignore[return-value]
    finally:
        eng.dispose()


def sync(sh: Any, http: httpx.Client) -> None:
    res = client.sync_once(sh.session, http=http, sleep=no_sleep)
    assert res.ok, res.as_dict()


def pick(town: Town, n: int, restricted: bool = False) -> list[dict[str, str]]:
    return [p for p in town.residents if p["氏"] and p["名"] and p["生年月日"] and not p["英字氏名"]
            and bool(p["閲覧制限"]) == restricted][:n]


def as_sought(p: dict[str, str], rid: str, t: datetime) -> PfifPerson:
    """What a relative types into Person Finder about a resident."""
    return PfifPerson(rid, source_date=t, full_name=f"{p['氏']} {p['名']}", alternate_names=f"{p['氏カナ']} {p['名カナ']}",
                      sex={"1": "male", "2": "female"}[p["性別"]], date_of_birth=p["生年月日"], author_name="家族",
                      notes=[PfifNote(f"{rid}.n1", rid, author_name="家族", source_date=t, status="information_sought",
                                      text="連絡が取れません。")])


# ---- Person Finder's own files --------------------------------------------------------------------
def test_every_shared_sample_imports_at_the_hub(hub: Hub) -> None:
    h = hub
    # each sample alone, in a municipality of its own: the counts Person Finder itself would give
    alone = {"test.pfif-1.2.xml": (1, 4, 0, "is_note_author"), "test.pfif-1.4.xml": (1, 4, 0, "is_note_author"),
             "test.pfif-1.2-note.xml": (0, 2, 2, None), "test.pfif-1.2-believed-dead.xml": (0, 1, 1, None),
             "sample-import.csv": (1, 0, 0, "")}
    assert sorted(alone) == sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".xml", ".csv"))
    for i, (name, (persons, notes, orphans, status)) in enumerate(alone.items()):
        code = f"0{i + 1}100" + tenants.check_digit(f"0{i + 1}100")
        tenants.add_municipality(h.engine, code, f"試験町{i}")
        token = tenants.add_user(h.engine, code, f"hq-{code}", "hq")[1]
        r = post_file(h, token, (SAMPLES / name).read_bytes(), name)
        assert r.status_code == 200, r.text
        res = r.json()
        assert (res["persons"], res["persons_new"], res["notes"], res["notes_new"], res["notes_orphan"]) == (
            persons, persons, notes, notes, orphans), (name, res)
        listed = sought(h, token)
        assert len(listed) == persons  # a note about a person we do not hold is kept, not listed
        if status is not None:
            assert listed[0]["status"] == status and listed[0]["links"] == []
        if name == "sample-import.csv":
            assert (listed[0]["person_record_id"], listed[0]["name"], listed[0]["sex"]) == (
                "csv.test-source/1", "Test Person", "male")
            assert len(res["warnings"]) == 1 and "30 cells" in res["warnings"][0]
        elif persons:
            assert (listed[0]["person_record_id"], listed[0]["date_of_birth"], listed[0]["age"]) == (
                "test.google.com/person.21009", "1970-01", "35-45")
            assert len(listed[0]["notes"]) == 4

    # all of them, one after the other, in 双葉町: Person Finder's rules for records seen again
    tok = h.a.hq_token
    first = post_file(h, tok, (SAMPLES / "test.pfif-1.2.xml").read_bytes(), "test.pfif-1.2.xml").json()
    assert (first["persons_new"], first["notes_new"]) == (1, 4)
    again = post_file(h, tok, (SAMPLES / "test.pfif-1.4.xml").read_bytes(), "test.pfif-1.4.xml").json()
    assert (again["persons_unchanged"], again["notes_unchanged"], again["persons_new"], again["notes_new"]) == (1, 4, 0, 0)
    notes = post_file(h, tok, (SAMPLES / "test.pfif-1.2-note.xml").read_bytes(), "test.pfif-1.2-note.xml").json()
    assert (notes["notes_updated"], notes["notes_new"], notes["notes_orphan"]) == (2, 0, 1)
    dead = post_file(h, tok, (SAMPLES / "test.pfif-1.2-believed-dead.xml").read_bytes(), "dead.xml").json()
    assert (dead["notes_new"], dead["notes_orphan"]) == (1, 0)
    csv_ = post_file(h, tok, (SAMPLES / "sample-import.csv").read_bytes(), "sample-import.csv").json()
    assert csv_["persons_new"] == 1
    listed = {s["person_record_id"]: s for s in sought(h, tok)}
    assert sorted(listed) == ["csv.test-source/1", "test.google.com/person.21009"]
    p = listed["test.google.com/person.21009"]
    assert p["status"] == "believed_dead" and p["status_at"].startswith("2011-09-20T17:08:09")
    assert "test.google.com/note.31095" not in {n["note_record_id"] for n in p["notes"]}  # moved to person.21010
    assert table_counts(h, A) == (3, 0)  # person.21010 is held as a stub for the note about them
    # the same files again change nothing; a broken file stores nothing and names file, line, field
    before = table_counts(h, A)
    for name in alone:
        res = post_file(h, tok, (SAMPLES / name).read_bytes(), name).json()
        assert res["persons_new"] == res["persons_updated"] == res["notes_new"] == res["notes_updated"] == 0, name
    bad = post_file(h, tok, (SAMPLES / "test.pfif-1.4.xml").read_bytes()[:2000], "broken.xml")
    assert bad.status_code == 422 and bad.json()["problems"][0]["file"] == "broken.xml"
    assert bad.json()["problems"][0]["line"] > 0
    assert table_counts(h, A) == before
    with h.engine.connect() as c:
        assert audit.count(c, A, "pfif.imported") == 10
    # a desk account may import; 加須市 sees none of it
    assert post_file(h, h.desk_token, (SAMPLES / "test.pfif-1.4.xml").read_bytes(), "x.xml").status_code == 200
    assert sought(h, h.b.hq_token) == [] and table_counts(h, B) == (0, 0)


# ---- links: a resident in the registry backup, an evacuee registered at a laptop ------------------------
def test_sought_person_is_linked_to_resident_and_synced_evacuee_and_decisions_are_reversible(hub: Hub) -> None:
    h = hub
    person, other = pick(h.a, 2)
    laptop = app_shelter(h.tmp, "双葉町 体育館")
    enroll(laptop, h.engine, h.http, A, h.url)
    pull_into_shelter(laptop.engine, laptop.session, http=h.http)
    with laptop.session() as s:
        eid = register(s, typed_input(person, consent_public=True), by="staff", shelter_code="FB1").id
        s.commit()
    rows = {r.evacuee.id: r for r in reconcile_all(laptop.engine)}
    assert rows[eid].decision == "auto" and rows[eid].resident_id == person["宛名番号"]
    sync(laptop, h.http)

    t = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    f = write_pfif([as_sought(person, "pf.example.org/p1", t), as_sought(other, "pf.example.org/p2", t)])
    r = post_file(h, h.a.hq_token, f, "family.xml")
    assert r.status_code == 200, r.text
    assert r.json()["linked_auto"] >= 2
    by_rid = {s["person_record_id"]: s for s in sought(h, h.a.hq_token)}
    links = {(lk["target_kind"], lk["target_id"]): lk for lk in by_rid["pf.example.org/p1"]["links"]}
    res_link, ev_link = links[("resident", person["宛名番号"])], links[("evacuee", eid)]
    assert (res_link["decision"], res_link["engine"]) == ("suggested", "auto")
    assert res_link["target"]["name"] == f"{person['氏']}　{person['名']}" and res_link["target"]["address"] == person["住所"]
    assert (ev_link["engine"], ev_link["target"]["shelter_name"]) == ("auto", "双葉町 体育館")
    assert "both linked to resident" in ev_link["reasons"]
    p2_links = {(lk["target_kind"], lk["target_id"]) for lk in by_rid["pf.example.org/p2"]["links"]}
    assert p2_links == {("resident", other["宛名番号"])}  # not registered anywhere
    sid = by_rid["pf.example.org/p1"]["sought_id"]

    def decide(token: str, decision: str, kind: str = "evacuee", target: str = eid, s_id: str = sid) -> httpx.Response:
        return hq(h.http, token, "POST", f"/v1/hq/pfif/sought/{s_id}/links",
                  {"target_kind": kind, "target_id": target, "decision": decision})

    assert decide(h.desk_token, "confirmed").status_code == 200
    assert decide(h.desk_token, "confirmed").status_code == 409  # already
    assert decide(h.desk_token, "undo").json()["decision"] == "suggested"
    assert decide(h.desk_token, "undo").status_code == 409  # nothing left to undo
    assert decide(h.a.hq_token, "rejected").status_code == 200
    now_links = {s["person_record_id"]: s["links"] for s in sought(h, h.a.hq_token)}["pf.example.org/p1"]
    assert ("evacuee", eid) not in {(lk["target_kind"], lk["target_id"]) for lk in now_links}
    # a rejected link is never proposed again, not even after relinking
    r = runner.invoke(anpi, ["hub", "pfif", "sought", "--municipality", A, "--relink", "--json"], env=h.env(),
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    cli_rows = {x["person_record_id"]: x for x in json.loads(r.stdout)}
    assert [lk["target_kind"] for lk in cli_rows["pf.example.org/p1"]["links"]] == ["resident"]
    assert decide(h.a.hq_token, "undo").status_code == 200
    assert decide(h.a.hq_token, "confirmed").status_code == 200
    assert decide(h.a.hq_token, "confirmed", "resident", person["宛名番号"]).status_code == 200
    bad = decide(h.a.hq_token, "maybe")
    assert bad.status_code == 400 and "decision" in bad.json()["detail"]
    with h.engine.connect() as c:
        decided = [e for e in audit.entries(c, A, 100) if e["action"] == "pfif.link_decided"]
        assert len(decided) == 6 and decided[0]["detail"]["decision"] == "confirmed"
    eng = create_engine(h.pg.admin_url)
    with eng.connect() as c:  # append-only: every decision is a row
        kinds = [r[0] for r in c.execute(text(f"SELECT decision FROM {h.pg.schema}.hub_sought_link WHERE sought_id = "
                                              f":s AND target_kind = 'evacuee' ORDER BY at"), {"s": sid})]
    eng.dispose()
    assert kinds == ["suggested", "confirmed", "suggested", "rejected", "suggested", "confirmed"]

    # the export tells Person Finder: the sought person is alive, and which record is ours
    out = h.tmp / "a.xml"
    res = runner.invoke(anpi, ["hub", "pfif", "export", "--municipality", A, "--out", str(out), "--json"],
                        env=h.env(), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = parse_pfif(out.read_bytes(), out.name)
    ours = f"anpi.{A}.jp/{eid}"
    assert [p.person_record_id for p in doc.persons] == [ours]
    assert [(n.person_record_id, n.linked_person_record_id, n.status) for n in doc.notes] == [
        ("pf.example.org/p1", ours, "believed_alive")] * 2  # confirmed to the evacuee and to its resident
    # HQ's export command offers the same file as one of the list's formats
    via_list = h.tmp / "list.xml"
    res = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", "pfif",
                               "--out", str(via_list)], env=h.env(), catch_exceptions=False)
    assert res.exit_code == 0 and "as PFIF 1.4" in res.output, res.output
    assert [p.person_record_id for p in parse_pfif(via_list.read_bytes(), via_list.name).persons] == [ours]
    # a record seen again: an older copy changes nothing, a newer one updates it; a PFIF placeholder
    # (the source withdrew the record) hides it and the engine withdraws its links
    older = as_sought(other, "pf.example.org/p2", t - timedelta(days=1))
    older.full_name = "古い 名前"
    assert post_file(h, h.a.hq_token, write_pfif([older]), "old.xml").json()["persons_unchanged"] == 1
    newer = as_sought(other, "pf.example.org/p2", t + timedelta(days=1))
    newer.description = "眼鏡をかけています"
    assert post_file(h, h.a.hq_token, write_pfif([newer]), "new.xml").json()["persons_updated"] == 1
    p2 = {s["person_record_id"]: s for s in sought(h, h.a.hq_token)}["pf.example.org/p2"]
    assert (p2["name"], p2["description"], p2["source_file"]) == (f"{other['氏']} {other['名']}", "眼鏡をかけています",
                                                                  "new.xml")
    gone = PfifPerson("pf.example.org/p2", source_date=t + timedelta(days=2), expiry_date=t + timedelta(days=2))
    assert post_file(h, h.a.hq_token, write_pfif([gone]), "gone.xml").json()["persons_expired"] == 1
    assert [s["person_record_id"] for s in sought(h, h.a.hq_token)] == ["pf.example.org/p1"]
    expired = [s for s in sought(h, h.a.hq_token, include_expired=1) if s["person_record_id"] == "pf.example.org/p2"]
    assert expired[0]["expired"] is True and expired[0]["links"] == []

    # the other municipality: nothing seen, nothing decided, nothing exported (404 like an id that does not exist)
    assert sought(h, h.b.hq_token) == []
    nope = decide(h.b.hq_token, "rejected")
    ghost = decide(h.b.hq_token, "rejected", s_id="01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert nope.status_code == ghost.status_code == 404 and nope.json()["error"] == "not_found"
    # the same words, but for the id the caller sent: nothing tells that the other town's person exists
    assert nope.json() == {**ghost.json(), "detail": ghost.json()["detail"].replace("01HZZZZZZZZZZZZZZZZZZZZZZZ", sid)}
    b_out = h.http.get("/v1/hq/pfif/export", headers={"Authorization": f"Bearer {h.b.hq_token}"})
    assert b_out.status_code == 200 and parse_pfif(b_out.content, "b.xml").persons == []
    assert eid not in b_out.text and "pf.example.org" not in b_out.text


# ---- export: consent ⑭, 閲覧制限, round trip ---------------------------------------------------------------
def test_export_holds_only_consent_14_never_restricted_and_round_trips(hub: Hub) -> None:
    h = hub
    public, refused, unasked, mate_of = pick(h.a, 4)
    hidden = pick(h.a, 1, restricted=True)[0]
    laptop = app_shelter(h.tmp, "双葉町 公民館")
    enroll(laptop, h.engine, h.http, A, h.url)
    pull_into_shelter(laptop.engine, laptop.session, http=h.http)
    with laptop.session() as s:
        ids = {"public": register(s, typed_input(public, consent_public=True), by="staff", shelter_code="FB2").id,
               "refused": register(s, typed_input(refused, consent_public=False), by="staff", shelter_code="FB2").id,
               "unasked": register(s, typed_input(unasked), by="staff", shelter_code="FB2").id}
        # the 閲覧制限 resident and someone who arrived with her both said yes to ⑭
        victim, child = register_household(s, [typed_input(hidden, consent_public=True),
                                                typed_input(mate_of, consent_public=True)], by="staff",
                                           shelter_code="FB2")
        ids["hidden"], ids["child"] = victim.id, child.id
        s.commit()
    reconcile_all(laptop.engine)
    with laptop.session() as s:
        staff_decide(s, ids["hidden"], "confirmed", hidden["宛名番号"], by="staff")
        s.commit()
    from app.services import evacuees

    with laptop.session() as s:
        evacuees.check_out(s, ids["public"], by="staff", destination="親戚宅（いわき市）")
        s.commit()
    sync(laptop, h.http)

    # someone looks for the 閲覧制限 resident: HQ's desk sees no link to her, an admin does (flagged)
    t = datetime(2026, 11, 1, tzinfo=UTC)
    assert post_file(h, h.a.hq_token, write_pfif([as_sought(hidden, "pf.example.org/h", t)]), "h.xml").status_code == 200
    assert sought(h, h.a.hq_token)[0]["links"] == []
    admin_links = sought(h, h.a.admin_token)[0]["links"]
    assert {(lk["target_kind"], lk["restricted"]) for lk in admin_links} == {("resident", True), ("evacuee", True)}
    sid = sought(h, h.a.hq_token)[0]["sought_id"]
    for lk in admin_links:
        r = hq(h.http, h.a.hq_token, "POST", f"/v1/hq/pfif/sought/{sid}/links",
               {"target_kind": lk["target_kind"], "target_id": lk["target_id"], "decision": "confirmed"})
        assert r.status_code == 404  # as if there were no such link
        assert hidden["住所"] not in r.text

    # the export: only the evacuee who said yes to ⑭; never the 閲覧制限 one, nor who came with her
    assert h.http.get("/v1/hq/pfif/export", headers={"Authorization": f"Bearer {h.desk_token}"}).status_code == 403
    before = datetime.now(UTC).replace(microsecond=0)
    r = h.http.get("/v1/hq/pfif/export?expiry_days=30", headers={"Authorization": f"Bearer {h.a.hq_token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    raw = r.content
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4">')
    doc = parse_pfif(raw, "a.xml")
    assert [p.person_record_id for p in doc.persons] == [f"anpi.{A}.jp/{ids['public']}"]
    text_ = raw.decode("utf-8")
    for k in ("refused", "unasked", "hidden", "child"):
        assert ids[k] not in text_, k
    for absent in (hidden["氏"] + " " + hidden["名"], hidden["住所"], mate_of["氏"] + " " + mate_of["名"], "いわき市",
                   public["住所"], public["生年月日"], "pf.example.org/h"):
        assert absent not in text_, absent
    p = doc.persons[0]
    assert p.full_name == f"{public['氏']} {public['名']}" and p.alternate_names == f"{public['氏カナ']} {public['名カナ']}"
    assert p.expiry_date is not None and timedelta(days=29) < p.expiry_date - before < timedelta(days=31)
    assert [n.status for n in p.notes] == ["believed_alive", "believed_alive"] and "退所しました" in p.notes[1].text
    assert p.notes[1].last_known_location == ""  # where someone went is not published
    records = [x for q in doc.persons for x in (q, *q.notes)] + doc.notes
    dates = [x.entry_date for x in records]
    assert all(a < b for a, b in zip(dates, dates[1:])) and all(x.source_date <= x.entry_date for x in records)
    with h.engine.connect() as c:
        e = next(x for x in audit.entries(c, A, 50) if x["action"] == "export.pfif")
    assert (e["actor"], e["detail"]["persons"], e["detail"]["evacuees"]) == (f"hq:hq-{A}", 1, [ids["public"]])
    assert e["detail"]["protected"] == 2 and e["detail"]["no_consent"] == 2

    # round trip: what 双葉町 published imports in 加須市 (another hub tenant) and at a shelter as the same records
    f = h.tmp / "futaba.xml"
    f.write_bytes(raw)
    res = runner.invoke(anpi, ["hub", "pfif", "import", str(f), "--municipality", B, "--json"], env=h.env(),
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["persons_new"] == 1 and json.loads(res.stdout)["notes_new"] == 2
    eng = create_engine(h.pg.admin_url)
    with eng.connect() as c:
        stored = c.execute(text(f"SELECT record, notes FROM {h.pg.schema}.hub_sought_person "
                                "WHERE municipality_code = :m"), {"m": B}).all()
    eng.dispose()
    assert len(stored) == 1
    back = person_from_json(json.loads(stored[0][0]))
    back.notes = [note_from_json(n) for n in json.loads(stored[0][1])]
    assert back == doc.persons[0]  # every field of the person and of each note
    again = runner.invoke(anpi, ["hub", "pfif", "import", str(f), "--municipality", B, "--json"], env=h.env(),
                          catch_exceptions=False)
    assert json.loads(again.stdout)["persons_unchanged"] == 1 and json.loads(again.stdout)["notes_unchanged"] == 2
    shelter_db = h.tmp / "elsewhere.db"
    from app.services.pfif import import_pfif as shelter_import

    engine = open_shelter_db(shelter_db)
    with db_session(engine) as s:
        got = shelter_import(s, f, by_user="受付")
    engine.dispose()
    assert (got.persons_new, got.notes_new) == (1, 2)
    # `export_pfif` as `anpi hub export anpi-list --format pfif` calls it
    from app.hub_pfif import export_pfif

    out = export_pfif(h.engine, h.key, A, h.tmp / "lead.xml", by="operator:test")
    assert (out.persons, out.municipality_code, out.path) == (1, A, h.tmp / "lead.xml")
    assert parse_pfif((h.tmp / "lead.xml").read_bytes(), "lead.xml").persons[0].person_record_id == p.person_record_id
    # without the data key the backup's 閲覧制限 cannot be checked: nothing is published
    r = runner.invoke(anpi, ["hub", "pfif", "export", "--municipality", A, "--out", str(h.tmp / "nokey.xml")],
                      env={"ANPI_HUB_DATABASE_URL": h.pg.url, "ANPI_HUB_DATA_KEY": ""})
    assert r.exit_code == 1 and "data key" in r.output and not (h.tmp / "nokey.xml").exists()
