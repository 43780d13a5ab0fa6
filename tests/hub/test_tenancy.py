"""Tenants on one hub: keys that shard, codes that are checked, defaults that are safe, and the
second wall — PostgreSQL row-level security that holds even the role owning the tables."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from sync import events as ev
from sync.errors import TenantError
from sync.hub import ingest, store, tenants
from tests.hub.conftest import HUB_ROLE, PgHub
from tests.hub.helpers import A, A_NAME, B, B_NAME
from tests.sync.test_hub_store import wire


def test_every_hub_table_is_keyed_by_municipality() -> None:
    """What lets a national deployment distribute every table by municipality_code (Citus)."""
    for table in store.metadata.sorted_tables:
        pk = [c.name for c in table.primary_key.columns]
        assert pk[0] == "municipality_code", (table.name, pk)
        for cons in table.constraints:
            cols = [c.name for c in getattr(cons, "columns", [])]
            if cols and cons.__class__.__name__ == "UniqueConstraint":
                assert "municipality_code" in cols, (table.name, cols)
    assert set(store.metadata.tables) - {t.name for t in store.TENANT_TABLES} == {"hub_municipality"}


def test_municipality_codes_and_enrolment_defaults(tmp_path: Path) -> None:
    engine = store.open_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    # no municipality yet: the implicit tenant, exactly as before municipalities existed
    assert store.create_enrolment(engine, "x").municipality_code == store.IMPLICIT_TENANT
    with pytest.raises(TenantError, match="check digit should be 9"):
        tenants.add_municipality(engine, "075461", A_NAME)
    with pytest.raises(TenantError, match="6 digits"):
        tenants.add_municipality(engine, "7546", A_NAME)
    with pytest.raises(TenantError, match="prefecture"):
        tenants.add_municipality(engine, "000000", "x")
    tenants.add_municipality(engine, A, A_NAME)
    with pytest.raises(TenantError, match="already exists"):
        tenants.add_municipality(engine, A, "別名")
    assert store.create_enrolment(engine, "y").municipality_code == A  # the only one
    tenants.add_municipality(engine, B, B_NAME)
    with pytest.raises(TenantError, match="serves 2 municipalities"):
        store.create_enrolment(engine, "z")
    with pytest.raises(TenantError, match="unknown municipality 131016"):
        store.create_enrolment(engine, "z", "131016")
    assert store.create_enrolment(engine, "z", B).municipality_code == B
    assert {d["name"]: d["municipality_code"] for d in store.list_devices(engine)} == {
        "x": store.IMPLICIT_TENANT, "y": A, "z": B}
    assert [d["name"] for d in store.list_devices(engine, B)] == ["z"]
    with pytest.raises(TenantError, match="different"):
        tenants.share(engine, A, A)
    engine.dispose()


def _fill_two_tenants(engine) -> None:  # noqa: ANN001
    tenants.add_municipality(engine, A, A_NAME)
    tenants.add_municipality(engine, B, B_NAME)
    for m, dev in ((A, "A" * 26), (B, "B" * 26)):
        batch = [wire(dev, 1, i, ev.EvacueeRegistered(evacuee_id=f"{m}-E{i}", shelter_code=f"S{m}", name=f"{m}の人"))
                 for i in range(1, 4)]
        batch.append(wire(dev, 1, 4, ev.MatchDecided(decision_id=f"{m}-D", evacuee_id=f"{m}-E1", resident_id="R1",
                                                     decision="auto", at="2025-01-01T00:00")))
        ingest.ingest(engine, dev, batch, municipality=m)
        tenants.add_user(engine, m, f"hq-{m}", "hq")


def test_row_level_security_binds_the_owning_role(pg_hub: PgHub) -> None:
    engine = store.open_hub_engine(pg_hub.url)
    _fill_two_tenants(engine)
    with engine.connect() as c:
        who = c.execute(text("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                             "WHERE rolname = current_user")).one()
        assert tuple(who) == (HUB_ROLE, False, False)
        flags = {r[0]: (r[1], r[2], r[3]) for r in c.execute(text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) "
            "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"))}
    for t in store.TENANT_TABLES:
        assert flags[t.name] == (True, True, HUB_ROLE), t.name  # ENABLE + FORCE, and the hub role owns it

    admin = create_engine(pg_hub.admin_url)
    with admin.connect() as c:  # behind the wall: both tenants' rows are there
        assert c.execute(text("SELECT count(*) FROM hub_event")).scalar() == 8

    raw = create_engine(pg_hub.url)
    with raw.connect() as c:
        # a query without the tenant setting sees nothing, on every tenant table
        for t in store.TENANT_TABLES:
            n = c.execute(text(f"SELECT count(*) FROM {t.name} WHERE municipality_code <> ''")).scalar()
            assert n == 0, t.name
        # even with the setting left behind by an earlier transaction on the same connection
        c.execute(text("SELECT set_config('anpi.municipality', :m, true)"), {"m": A})
        assert c.execute(text("SELECT count(*) FROM hub_event")).scalar() == 4
        c.commit()
        assert c.execute(text("SELECT count(*) FROM hub_event")).scalar() == 0
        c.commit()
        c.execute(text("SELECT set_config('anpi.municipality', :m, true)"), {"m": A})
        assert set(c.execute(text("SELECT DISTINCT municipality_code FROM hub_evacuee")).scalars()) == {A}
        assert c.execute(text("SELECT count(*) FROM hub_evacuee WHERE municipality_code = :b"), {"b": B}).scalar() == 0
        assert c.execute(text("SELECT count(*) FROM hub_user")).scalar() == 1
        # writing into the other tenant is refused by the policy, not just filtered
        with pytest.raises(DBAPIError, match="row-level security"):
            c.execute(text("INSERT INTO hub_stay (municipality_code, stay_id, evacuee_id, kind, at, event_id, "
                           "device_id) VALUES (:b, 'X', 'E', 'check_in', 'now', 'e', 'd')"), {"b": B})
        c.rollback()
        c.execute(text("SELECT set_config('anpi.municipality', :m, true)"), {"m": A})
        n = c.execute(text("UPDATE hub_evacuee SET name = 'x' WHERE municipality_code = :b"), {"b": B}).rowcount
        assert n == 0
        c.rollback()
        # an HQ token lookup shows only the row whose token hash the transaction states
        c.execute(text("SELECT set_config('anpi.token', 'not-a-hash', true)"))
        assert c.execute(text("SELECT count(*) FROM hub_user")).scalar() == 0
        c.rollback()
    for e in (engine, admin, raw):
        e.dispose()


def test_hub_wide_status_and_per_municipality_status(pg_hub: PgHub) -> None:
    engine = store.open_hub_engine(pg_hub.url)
    _fill_two_tenants(engine)
    total, a = store.status(engine), store.status(engine, A)
    assert (total["events"], total["evacuees"]) == (8, 6)
    assert (a["events"], a["evacuees"], a["people"]) == (4, 3, 3)
    assert len(store.held_events(engine)) == 8
    engine.dispose()


def test_feed_is_scoped_to_the_municipality_and_withholds_restricted(tmp_path: Path) -> None:
    engine = store.open_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    tenants.add_municipality(engine, A, A_NAME)
    tenants.add_municipality(engine, B, B_NAME)
    a1, a2, b1 = "A1" * 13, "A2" * 13, "B1" * 13
    ingest.ingest(engine, a1, [wire(a1, 1, 1, ev.EvacueeRegistered(evacuee_id="EA1", shelter_code="S1", name="山田")),
                              wire(a1, 1, 2, ev.EvacueeRegistered(evacuee_id="EA2", shelter_code="S1", name="秘密",
                                                                  extra={"restricted": True})),
                              wire(a1, 1, 3, ev.StayRecorded(stay_id="ST", evacuee_id="EA2", kind="check_out",
                                                             at="2025-01-01T00:00"))], municipality=A)
    ingest.ingest(engine, b1, [wire(b1, 1, 1, ev.EvacueeRegistered(evacuee_id="EB1", shelter_code="S9", name="鈴木"))],
                 municipality=B)
    feed = store.pull_feed(engine, a2, 0, municipality=A)
    assert [e["event_id"] for e in feed["events"]] == [wire(a1, 1, 1, ev.EvacueeRegistered(
        evacuee_id="EA1", shelter_code="S1"))["event_id"]]  # not the 閲覧制限 person, not B's
    assert feed["next"] == 3
    assert store.pull_feed(engine, a1, 0, municipality=A)["events"] == []  # own events are not echoed
    assert [e["device_id"] for e in store.pull_feed(engine, "B2" * 13, 0, municipality=B)["events"]] == [b1]
    # each municipality numbers its own feed
    assert store.pull_feed(engine, "B2" * 13, 0, municipality=B)["next"] == 1
    engine.dispose()


def test_many_tenants_ingest_in_parallel_without_mixing(pg_hub: PgHub) -> None:
    """Per-municipality locks: concurrent pushes of different towns; each feed stays gap-free."""
    from concurrent.futures import ThreadPoolExecutor

    engine = store.open_hub_engine(pg_hub.url)
    codes = ["011002", "012025", "013030", "014036"]
    for i, code in enumerate(codes):
        tenants.add_municipality(engine, code, f"町{i}")

    def push(args: tuple[str, int]) -> None:
        code, k = args
        dev = f"{code}D{k}".ljust(26, "x")
        rng = random.Random(k)
        for s in range(1, 31, 10):
            ingest.ingest(engine, dev, [wire(dev, 1, q, ev.EvacueeRegistered(
                evacuee_id=f"{dev[:10]}{q}", shelter_code=code, name=str(rng.random()))) for q in range(s, s + 10)],
                municipality=code)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(push, [(c, k) for c in codes for k in range(3)]))
    with engine.connect() as c:
        for code in codes:
            store.set_tenant(c, code)
            seqs = sorted(c.execute(text("SELECT hub_seq FROM hub_event")).scalars())
            assert seqs == list(range(1, 91)), code
    assert inspect(engine).has_table("hub_event")
    engine.dispose()


def test_evacuee_linked_to_a_restricted_resident_is_withheld(tmp_path: Path) -> None:
    """閲覧制限: once a shelter links an evacuee to a flagged resident, other shelters stop getting them."""
    from sync.hub import registry

    engine = store.open_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    key = registry.DataKey.generate()
    registry.attach_data_key(engine, key)
    tenants.add_municipality(engine, A, A_NAME)
    fields = registry.RECORD_FIELDS

    def rec(rid: str, restricted: bool) -> tuple:
        d = dict.fromkeys(fields, "") | {"resident_id": rid, "family_name": "山田", "given_name": "花子",
                                         "birth_date": "1980-01-01", "sex": "F", "restricted": restricted}
        return tuple(d[f] for f in fields)

    registry.store_snapshot(engine, key, A, data=b"x", source_file="r.csv",
                            sha256="2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
                            as_of="2025-03-01", encoding="utf-8", profile="anpi", options={},
                            records=[rec("R1", False), rec("R2", True)], gaiji={}, imported_by="t")
    a1, a2 = "A1" * 13, "A2" * 13
    reg = [wire(a1, 1, i + 1, ev.EvacueeRegistered(evacuee_id=e, shelter_code="S1", name="山田 花子"))
           for i, e in enumerate(("E1", "E2"))]
    ingest.ingest(engine, a1, reg, municipality=A)
    assert len(store.pull_feed(engine, a2, 0, municipality=A)["events"]) == 2
    ingest.ingest(engine, a1, [wire(a1, 1, 3, ev.MatchDecided(decision_id="D1", evacuee_id="E1", resident_id="R1",
                                                             decision="auto", at="2025-01-01T00:00")),
                              wire(a1, 1, 4, ev.MatchDecided(decision_id="D2", evacuee_id="E2", resident_id="R2",
                                                             decision="confirmed", at="2025-01-01T00:00"))],
                 municipality=A)
    feed = store.pull_feed(engine, a2, 0, municipality=A)["events"]
    got = {json.loads(e["payload"])["evacuee_id"] for e in feed if e["type"] != "evacuee.retracted"}
    assert got == {"E1"}
    # E2's registration was served before the link: the other laptops are told to drop it
    assert [json.loads(e["payload"])["evacuee_id"] for e in feed if e["type"] == "evacuee.retracted"] == ["E2"]
    with engine.connect() as c:
        store.set_tenant(c, A)
        dump = " ".join(str(r) for r in c.execute(text("SELECT * FROM hub_restricted")).all())
    assert "'R2'" not in dump  # only keyed MACs are stored (a random row id may contain the letters R2)
    engine.dispose()
