"""Hub store on PostgreSQL and SQLite: idempotent ingest, forks, gaps, feed, apply rules."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sync import events as ev
from sync.canonical import canonical_json, sha256_hex
from sync.errors import IngestError
from sync.hub import ingest, store


def wire(device: str, epoch: int, seq: int, e: Any, event_id: str | None = None) -> dict[str, Any]:
    payload = canonical_json(e.to_dict())
    return {"event_id": event_id or f"{device[:4]}{epoch:02d}{seq:020d}", "device_id": device, "epoch": epoch,
            "seq": seq, "type": e.type, "recorded_at": "2025-01-01T00:00:00+00:00", "payload": payload,
            "payload_sha256": sha256_hex(payload)}


def reg(eid: str, shelter: str = "S1", **kw: Any) -> ev.EvacueeRegistered:
    return ev.EvacueeRegistered(evacuee_id=eid, shelter_code=shelter, name="山田", phone="090", **kw)


@pytest.fixture
def hub(hub_db_url: str):  # noqa: ANN201
    engine = store.open_hub_engine(hub_db_url)
    store.hub_identity(engine)
    yield engine
    engine.dispose()


DEV_A, DEV_B = "A" * 26, "B" * 26


def test_ingest_is_idempotent_and_acks_gap_free(hub) -> None:  # noqa: ANN001
    batch = [wire(DEV_A, 1, i, reg(f"E{i}")) for i in range(1, 6)]
    r1 = ingest.ingest(hub, DEV_A, batch)
    assert (r1.stored, r1.duplicates, r1.acks[0].seq) == (5, 0, 5)
    r2 = ingest.ingest(hub, DEV_A, batch + batch[:2])  # replayed + duplicated inside the batch
    assert (r2.stored, r2.duplicates, r2.acks[0].seq) == (0, 7, 5)
    assert store.status(hub)["events"] == 5 and store.status(hub)["evacuees"] == 5


def test_out_of_order_batches_wait_for_the_gap(hub) -> None:  # noqa: ANN001
    b1 = [wire(DEV_A, 1, i, reg(f"E{i}")) for i in range(1, 4)]
    b2 = [wire(DEV_A, 1, i, reg(f"E{i}")) for i in range(4, 7)]
    r = ingest.ingest(hub, DEV_A, b2)
    assert r.acks[0].seq == 0 and r.acks[0].max_seq == 6 and r.applied == 0
    # issue 16: a new evacuee's registration sent ahead of its backlog is visible at once (the stream's
    # watermark and every other event still wait for the gap)
    assert store.status(hub)["evacuees"] == 3
    r = ingest.ingest(hub, DEV_A, b1)
    assert r.acks[0].seq == 6 and r.applied == 6
    assert store.status(hub)["evacuees"] == 6
    hub_seqs = sorted(int(x) for x in _col(hub, store.hub_event.c.hub_seq))
    assert hub_seqs == list(range(1, 7))


def _col(engine, col) -> list:  # noqa: ANN001
    with engine.connect() as c:
        return [r[0] for r in c.execute(select(col))]


def test_fork_is_kept_apart_and_never_overwrites(hub) -> None:  # noqa: ANN001
    original = wire(DEV_A, 1, 1, reg("E1"))
    ingest.ingest(hub, DEV_A, [original])
    forged = wire(DEV_A, 1, 1, reg("E1", shelter="OTHER"), event_id="X" * 26)
    r = ingest.ingest(hub, DEV_A, [forged])
    assert r.stored == 0 and len(r.forks) == 1 and r.forks[0]["held_event_id"] == original["event_id"]
    ingest.ingest(hub, DEV_A, [forged])  # the same fork again is not counted twice
    assert store.status(hub)["forks"] == 1
    held = store.held_events(hub)
    assert held == [(DEV_A, 1, 1, original["event_id"], original["payload_sha256"])]
    with hub.connect() as c:
        f = c.execute(select(store.hub_fork)).mappings().one()
    assert json.loads(f["incoming_payload"])["shelter_code"] == "OTHER"


def test_bad_batches_are_refused_whole(hub) -> None:  # noqa: ANN001
    good = wire(DEV_A, 1, 1, reg("E1"))
    bad_hash = dict(wire(DEV_A, 1, 2, reg("E2")), payload_sha256="0" * 64)
    with pytest.raises(IngestError, match="SHA-256"):
        ingest.ingest(hub, DEV_A, [good, bad_hash])
    with pytest.raises(IngestError, match="belongs to device"):
        ingest.ingest(hub, DEV_A, [wire(DEV_B, 1, 1, reg("E3"))])
    with pytest.raises(IngestError, match="epoch/seq"):
        ingest.ingest(hub, DEV_A, [dict(good, seq=0)])
    assert store.status(hub)["events"] == 0


def test_feed_excludes_own_events_and_pages_in_hub_order(hub) -> None:  # noqa: ANN001
    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, i, reg(f"A{i}")) for i in range(1, 4)])
    ingest.ingest(hub, DEV_B, [wire(DEV_B, 1, i, reg(f"B{i}")) for i in range(1, 4)])
    page = store.pull_feed(hub, DEV_A, 0, limit=4)
    assert [e["device_id"] for e in page["events"]] == [DEV_B]
    assert page["next"] == 4 and page["more"]
    page2 = store.pull_feed(hub, DEV_A, page["next"], limit=4)
    assert [e["seq"] for e in page2["events"]] == [2, 3] and not page2["more"]
    assert store.pull_feed(hub, DEV_B, 0)["events"][0]["device_id"] == DEV_A


def test_cross_shelter_links_people_and_trail_reversibly(hub) -> None:  # noqa: ANN001
    a = [wire(DEV_A, 1, 1, reg("EA", "S1")),
         wire(DEV_A, 1, 2, ev.StayRecorded(stay_id="SA", evacuee_id="EA", kind="check_in", at="2025-01-01T01:00")),
         wire(DEV_A, 1, 3, ev.MatchDecided(decision_id="DA", evacuee_id="EA", resident_id="000123", decision="auto",
                                           at="2025-01-01T02:00")),
         wire(DEV_A, 1, 4, ev.StayRecorded(stay_id="SA2", evacuee_id="EA", kind="transfer", destination="S2",
                                           at="2025-01-02T01:00"))]
    b = [wire(DEV_B, 1, 1, reg("EB", "S2")),
         wire(DEV_B, 1, 2, ev.StayRecorded(stay_id="SB", evacuee_id="EB", kind="check_in", at="2025-01-02T03:00")),
         wire(DEV_B, 1, 3, ev.MatchDecided(decision_id="DB", evacuee_id="EB", resident_id="000123",
                                           decision="confirmed", at="2025-01-02T04:00"))]
    ingest.ingest(hub, DEV_B, b)  # arrival order differs from real time: must not matter
    ingest.ingest(hub, DEV_A, a)
    s = store.status(hub)
    assert (s["evacuees"], s["people"]) == (2, 1)
    trail = store.movement_trail(hub, "000123")
    assert [t["stay_id"] for t in trail] == ["SA", "SA2", "SB"]
    # staff at S2 reject the match: the link is revoked (a row keeps the history), not deleted
    ingest.ingest(hub, DEV_B, [wire(DEV_B, 1, 4, ev.MatchDecided(
        decision_id="DB2", evacuee_id="EB", resident_id="000123", decision="rejected", at="2025-01-03T00:00"))])
    assert store.status(hub)["people"] == 2
    with hub.connect() as c:
        links = c.execute(select(store.hub_person_link).order_by(store.hub_person_link.c.link_id)).mappings().all()
    assert len(links) == 2 and sum(1 for link in links if link["revoked_at"] is None) == 1
    with hub.connect() as c:
        statuses = dict(c.execute(select(store.hub_evacuee.c.evacuee_id, store.hub_evacuee.c.status)).all())
    assert statuses == {"EA": "transferred", "EB": "in_shelter"}


def test_concurrent_field_edits_keep_both_values_and_raise_review(hub) -> None:  # noqa: ANN001
    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, 1, reg("E1"))])
    # sequential edit from another device (it saw "090"): applied, no conflict
    ingest.ingest(hub, DEV_B, [wire(DEV_B, 1, 1, ev.EvacueeUpdated(
        evacuee_id="E1", changes={"phone": {"old": "090", "new": "080"}}, at="2025-01-02T00:00"))])
    assert store.status(hub)["review_items"] == 0
    # two devices both edit from "080" without seeing each other
    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, 2, ev.EvacueeUpdated(
        evacuee_id="E1", changes={"phone": {"old": "080", "new": "070-A"}}, at="2025-01-03T00:00"))])
    ingest.ingest(hub, DEV_B, [wire(DEV_B, 1, 2, ev.EvacueeUpdated(
        evacuee_id="E1", changes={"phone": {"old": "080", "new": "070-B"}}, at="2025-01-03T00:01"))])
    assert store.status(hub)["review_items"] == 1
    with hub.connect() as c:
        item = c.execute(select(store.hub_review_item)).mappings().one()
        vals = [v["value"] for v in json.loads(item["candidates"])]
        phone = c.execute(select(store.hub_evacuee.c.phone)).scalar_one()
        history = c.execute(select(store.hub_evacuee_value.c.new)).scalars().all()
    assert sorted(vals) == ["070-A", "070-B"]
    assert phone == "070-B"  # shown value: the later write by (time, event id) — order-independent
    assert {json.loads(h) for h in history} == {"080", "070-A", "070-B"}


def test_update_before_registration_from_other_stream(hub) -> None:  # noqa: ANN001
    ingest.ingest(hub, DEV_B, [wire(DEV_B, 1, 1, ev.EvacueeUpdated(
        evacuee_id="E9", changes={"phone": {"new": "011"}}, at="2025-01-05T00:00"))])
    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, 1, reg("E9"))])
    with hub.connect() as c:
        row = c.execute(select(store.hub_evacuee)).mappings().one()
    assert row["registered"] and row["phone"] == "011" and row["name"] == "山田"


def test_certificates_void_wins_regardless_of_order(hub) -> None:  # noqa: ANN001
    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, 1, ev.CertificateVoided(number="N1", reason="typo"))])
    ingest.ingest(hub, DEV_B, [wire(DEV_B, 1, 1, ev.CertificateIssued(number="N1", kind="risai", resident_id="R",
                                                                   household_id="H"))])
    with hub.connect() as c:
        row = c.execute(select(store.hub_certificate)).mappings().one()
    assert row["status"] == "voided" and row["kind"] == "risai"


def test_postgres_url_is_rewritten_for_psycopg3() -> None:
    assert store.normalise_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalise_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_hub_identity_is_created_once(hub_db_url: str, tmp_path: Path) -> None:
    e1 = store.open_hub_engine(hub_db_url)
    e2 = store.open_hub_engine(hub_db_url)
    a, b = store.hub_identity(e1), store.hub_identity(e2)
    assert a.hub_id == b.hub_id and a.sign_public_b64 == b.sign_public_b64 and a.box_public_b64 == b.box_public_b64
    e1.dispose()
    e2.dispose()


def test_forks_are_answered_per_event_and_never_in_the_watermark(hub) -> None:  # noqa: ANN001
    """A laptop of an older version marks everything up to ``acks[].seq`` delivered: that
    watermark stops below the first open fork; newer laptops read the per-event answers."""
    from sync.hub import forks

    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, i, reg(f"E{i}")) for i in range(1, 5)])
    theirs = [wire(DEV_A, 1, i, reg(f"C{i}"), event_id=f"C{i:025d}") for i in range(3, 7)]  # a copy's 3..6
    r = ingest.ingest(hub, DEV_A, theirs)
    assert [x["status"] for x in r.results] == ["fork", "fork", "held", "held"]
    ack = r.acks[0].as_dict()
    assert ack == {"epoch": 1, "seq": 2, "max_seq": 6, "held_seq": 6}
    assert store.status(hub)["review_items"] == 2
    granted = forks.grant_epoch(hub, DEV_A, current=1, reason="fork")
    assert granted == 2 and forks.grant_epoch(hub, DEV_A, current=1, reason="fork") == 3  # never twice
    done = forks.apply_forks(hub, None, by="hq")
    assert len(done) == 2 and {d["epoch"] for d in done} == {4}
    assert store.status(hub)["review_items"] == 0 and store.status(hub)["evacuees"] == 4 + 4
    r = ingest.ingest(hub, DEV_A, theirs)  # the copy pushes them again: now they are stored
    assert [x["status"] for x in r.results] == ["applied", "applied", "held", "held"]
    assert r.acks[0].seq == 6
    assert sorted(x[3] for x in store.held_events(hub)).count("C" + "3".zfill(25)) == 1


def test_stays_follow_the_laptops_sequence_not_its_clock(hub) -> None:  # noqa: ANN001
    """One laptop checks a person in, its clock is reset two days back, it checks them out: gone.
    Another laptop two days behind checks out someone checked in elsewhere: gone too (its times
    are corrected by the offset measured at its sync)."""
    def stay(sid: str, eid: str, kind: str, at: str) -> ev.StayRecorded:
        return ev.StayRecorded(stay_id=sid, evacuee_id=eid, kind=kind, at=at, shelter_code="S1")

    now = "2025-06-10T12:00:00+00:00"
    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, 1, reg("P1")), wire(DEV_A, 1, 2, reg("P2")),
                              wire(DEV_A, 1, 3, stay("S1", "P1", "check_in", now)),
                              wire(DEV_A, 1, 4, stay("S2", "P2", "check_in", now))], clock_offset=0.0)
    ingest.ingest(hub, DEV_A, [wire(DEV_A, 1, 5, stay("S3", "P1", "check_out", "2025-06-08T12:05:00+00:00"))],
                 clock_offset=2 * 86400.0)
    ingest.ingest(hub, DEV_B, [wire(DEV_B, 1, 1, stay("S4", "P2", "check_out", "2025-06-08T12:06:00+00:00"))],
                 clock_offset=2 * 86400.0)
    with hub.connect() as c:
        got = dict(c.execute(select(store.hub_evacuee.c.evacuee_id, store.hub_evacuee.c.status)).all())
        shown = dict(c.execute(select(store.hub_stay.c.stay_id, store.hub_stay.c.at)).all())
    assert got == {"P1": "left", "P2": "left"}
    assert shown["S3"].startswith("2025-06-08")  # the laptop's own time, for display
