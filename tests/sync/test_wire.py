"""Issue 16: the compact wire format v2, old laptops still understood, resumption, priorities.

Real hub (PostgreSQL or SQLite), real HTTP (in-process ASGI for the fault plans, real sockets through
the shaping proxy for the cuts), real SQLite shelters.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.linkshaper import LinkShaper
from sync import bundles, client, crypto, events as ev, link, outbox, wire
from sync.errors import IngestError
from sync.hub import bundles as hub_bundles, server, store
from tests.sync.helpers import (
    ThreadedServer, append_events, enroll_shelter, faulty_client, hub_ids, make_shelter, random_events, sync,
)
from ulid import ULID


@pytest.fixture
def hub(hub_db_url: str):  # noqa: ANN201
    app = server.create_hub_app(hub_db_url)
    with TestClient(app, base_url="http://hub") as tc:
        yield app, tc
    app.state.engine.dispose()


def shelter(tmp_path: Path, app, tc, n: int, name: str = "s1", seed: int = 0):  # noqa: ANN001, ANN201
    sh = make_shelter(tmp_path, name)
    enroll_shelter(sh, app.state.engine, tc)
    if n:
        append_events(sh, random_events(random.Random(seed), sh, n))
    return sh


def test_v2_batch_round_trips_every_event_byte_for_byte(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, 120)
    with sh.session() as s:
        sent = [e.to_wire() for e in outbox.pending_events(s)]
    data = wire.encode_events(sent, {"laptop_time": 1.5})
    doc = wire.decode_batch(data)
    assert wire.expand_events(sent[0]["device_id"], doc["e"]) == sent and doc["laptop_time"] == 1.5
    assert len(data) * 4 < len(json.dumps({"events": sent}, ensure_ascii=False).encode())  # v1 is > 4x bigger
    res = sync(sh, tc)
    assert res.ok and res.wire == 2 and res.bytes_up > 0
    held = hub_ids(app.state.engine)
    assert held == sh.local_events()
    with app.state.engine.connect() as conn:  # stored exactly as the laptop wrote it (hash recomputed = same)
        rows = {r[0]: (r[1], r[2]) for r in conn.execute(store.hub_event.select().with_only_columns(
            store.hub_event.c.event_id, store.hub_event.c.payload, store.hub_event.c.payload_sha256))}
    assert all(rows[e["event_id"]] == (e["payload"], e["payload_sha256"]) for e in sent)


def test_v2_refusals(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, 10)
    with sh.session() as s:
        sent = [e.to_wire() for e in outbox.pending_events(s)]
        dev = outbox.get_device(s)
        key, device_id = crypto.signing_key_from_b64(dev.signing_key), dev.device_id
    data = wire.encode_events(sent)

    def post(body: bytes, signed: bytes | None = None):  # noqa: ANN202
        hdrs = crypto.sign_request(key, device_id, "POST", "/v1/push", signed if signed is not None else body,
                                   sh.clock()).as_dict()
        return tc.post("/v1/push", content=body, headers={**hdrs, "Content-Type": wire.BATCH_TYPE})

    tampered = data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]
    assert post(tampered, signed=data).json()["error"] == "bad_signature"  # the signature covers the compressed batch
    bad = post(wire.MAGIC + b"not zstd at all")
    assert bad.status_code == 422 and "cannot be read" in bad.json()["detail"]
    assert post(wire.MAGIC[:-1] + b"\x07" + data[len(wire.MAGIC):]).json()["detail"].startswith("batch uses a compression")
    assert hub_ids(app.state.engine) == {}
    ok = post(data)
    assert ok.headers["content-type"] == wire.REPLY_TYPE
    reply = wire.decode_reply(ok.content, sent)
    assert [r["status"] for r in reply["results"]] == ["held"] * 10
    with pytest.raises(IngestError):  # a reply about other events acknowledges nothing
        wire.decode_reply(ok.content, list(reversed(sent)))
    again = post(data)  # replayed content, fresh signature: idempotent
    assert wire.decode_reply(again.content, sent)["duplicates"] == 10


def test_laptop_of_the_previous_release_still_syncs(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, 80)
    res = sync(sh, tc, wire_version=1, batch_size=30)  # v1 JSON pushes, exactly what the old client sends
    assert res.ok and res.wire == 1
    assert hub_ids(app.state.engine) == sh.local_events()
    info = bundles.export_bundle(sh.session, tmp_path / "old.anpi", version=1)  # and an old-format bundle
    assert info.path.read_bytes().startswith(bundles.BUNDLE_MAGIC)
    assert hub_bundles.import_bundle(app.state.engine, info.path.read_bytes()).duplicates == 0  # nothing pending


def test_v2_bundle_is_eight_times_smaller_and_imports(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, 300)
    v1 = bundles.export_bundle(sh.session, tmp_path / "v1.anpi", version=1)
    v2 = bundles.export_bundle(sh.session, tmp_path / "v2.anpi")
    assert v2.size * 5 < v1.size, (v1.size, v2.size)
    out = hub_bundles.import_bundle_file(app.state.engine, v2.path, tmp_path / "r")
    assert out.new == 300
    assert bundles.import_receipt(sh.session, tmp_path / "r").pending == 0
    assert hub_ids(app.state.engine) == sh.local_events()


def test_lost_reply_is_recovered_by_a_probe_not_a_resend(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, 200)
    http, t = faulty_client(tc, ["ok", "drop_reply", "ok", "drop_reply"])  # /acks, push (lost reply), probe, push …
    res = sync(sh, http)
    assert res.ok, (res.as_dict(), t.log)
    assert res.pushed == 200 and res.resumed == 2  # the batches whose reply was lost were not sent again
    assert hub_ids(app.state.engine) == sh.local_events()


def test_urgent_first_and_typed_during_catch_up_goes_next(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, 0)
    backlog: list[ev.EventPayload] = []
    for i in range(150):  # certificates interleaved with registrations: urgent ones go first
        backlog += random_events(random.Random(i), sh, 2)
        backlog.append(ev.CertificateIssued(number=f"c-{i}", kind="risai", resident_id="R1", household_id="H1",
                                            issued_at="2026-03-20T10:00:00+09:00"))
    append_events(sh, backlog)
    late: dict[str, object] = {}

    def on_progress(p: client.SyncProgress) -> None:
        if p.phase != "push":
            return
        held = hub_ids(app.state.engine)
        if "id" not in late:  # after the first round trip a volunteer registers someone
            late["id"] = append_events(sh, [ev.EvacueeRegistered(evacuee_id=str(ULID()), shelter_code="s1", name="新規")])[0]
            late["certs_first_round"] = sum(1 for e in held if e in certs)
        elif "seen_after" not in late:
            late["seen_after"] = late["id"] in held
            late["pending_then"] = len(sh.local_events()) - len(held)

    with sh.session() as s:
        certs = {e.event_id for e in outbox.pending_events(s) if e.type == "certificate.issued"}
    res = sync(sh, tc, on_progress=on_progress)
    assert res.ok
    assert late["certs_first_round"] == 0  # the first round carried urgent events only
    assert late["seen_after"] is True and late["pending_then"] > 100  # next round trip, long before the backlog ended
    assert hub_ids(app.state.engine) == sh.local_events()
    with app.state.engine.connect() as conn:  # and the new evacuee was applied at once, ahead of its stream
        assert conn.execute(store.hub_evacuee.select().where(store.hub_evacuee.c.name == "新規")).first() is not None


def test_next_batch_orders_fresh_urgent_rest(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, 0)
    cert = ev.CertificateIssued(number="c-1", kind="risai", resident_id="R1", household_id="H1", issued_at="2026-03-20")
    reg = ev.EvacueeRegistered(evacuee_id=str(ULID()), shelter_code="s1", name="山田")
    ids = append_events(sh, [cert, reg])
    with sh.session() as s:
        mark = (outbox.get_device(s).epoch, outbox.get_device(s).last_seq)
    fresh = append_events(sh, [cert])
    with sh.session() as s:
        order = [e["event_id"] for e in link.next_batch(s, 10, mark, set())]
        assert order == [fresh[0], ids[1], ids[0]]
        assert [e["event_id"] for e in link.next_batch(s, 10, mark, {fresh[0]})] == [ids[1], ids[0]]


def test_push_survives_a_link_cut_every_two_seconds(tmp_path: Path) -> None:
    """Real sockets through the shaping proxy: 32 kbit/s, 300 ms round trips, a cut every 2 s."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    app = server.create_hub_app(url)
    with ThreadedServer(app) as srv, LinkShaper(srv.port, kbps=32, rtt_ms=300, cut_every=2.0, down_seconds=0.3) as link_:
        import httpx

        sh = make_shelter(tmp_path, "s1")
        with httpx.Client() as http:
            enroll_shelter(sh, app.state.engine, http, srv.url)
        append_events(sh, random_events(random.Random(3), sh, 400))
        runs = 0
        while runs < 10:
            res = client.sync_once(sh.session, link_.url, max_retries=8, backoff=0.2)
            runs += 1
            if res.ok:
                break
        assert res.ok, res.as_dict()
        assert link_.cuts >= 1
    assert hub_ids(app.state.engine) == sh.local_events()  # nothing lost, nothing doubled
    with sh.session() as s:
        assert outbox.get_cursor(s, link.LINK_BPS) > 0  # the link speed was measured
    app.state.engine.dispose()
