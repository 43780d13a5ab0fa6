"""sync_once over injected network faults; resumability; back-off bounds; background thread."""
from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text, update

from sync import client, outbox
from sync.hub import forks, server, store
from tests.sync.helpers import (connect_file,
    append_events, enroll_shelter, faulty_client, hub_ids, make_shelter, random_events, sync,
)


@pytest.fixture
def hub(pg_url: str):  # noqa: ANN201
    app = server.create_hub_app(pg_url)
    with TestClient(app, base_url="http://hub") as tc:
        yield app, tc
    app.state.engine.dispose()


def setup_shelter(tmp_path: Path, app, tc, name: str = "s1", n: int = 0, seed: int = 0):  # noqa: ANN001, ANN201
    sh = make_shelter(tmp_path, name)
    enroll_shelter(sh, app.state.engine, tc)
    if n:
        append_events(sh, random_events(random.Random(seed), sh, n))
    return sh


def assert_exactly_once(app, *shelters) -> None:  # noqa: ANN001
    held = hub_ids(app.state.engine)
    local = {}
    for sh in shelters:
        local.update(sh.local_events())
    assert held == local
    assert store.status(app.state.engine)["forks"] == 0


@pytest.mark.parametrize("plan", [
    ["ok", "drop_request", "ok"],
    ["ok", "drop_reply", "ok"],           # hub committed, reply lost: resend must be harmless
    ["ok", "error500", "error500", "ok"],
    ["ok", "duplicate", "ok"],            # same signed request twice: second refused as replay
    ["ok", "delay", "ok", "ok"],          # batch held back and delivered late, out of order
])
def test_sync_survives_faults_exactly_once(tmp_path: Path, hub, plan: list[str]) -> None:  # noqa: ANN001
    app, tc = hub
    sh = setup_shelter(tmp_path, app, tc, n=130, seed=len(plan))
    http, t = faulty_client(tc, plan)
    res = sync(sh, http, batch_size=25)
    assert res.ok, (res.as_dict(), t.log)
    t.release()  # the held-back batch arrives now, after everything else
    assert_exactly_once(app, sh)
    with sh.session() as s:
        assert outbox.pending_count(s) == 0 and outbox.last_sync(s) is not None


def test_bounded_retries_then_report_pending(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = setup_shelter(tmp_path, app, tc, n=10)
    http, t = faulty_client(tc, ["drop_request"] * 50)
    slept: list[float] = []
    res = client.sync_once(sh.session, http=http, max_retries=4, backoff=0.5, sleep=slept.append)
    assert not res.ok and res.pending == 10 and "unreachable after 5 attempts" in (res.error or "")
    assert len(slept) == 4 and all(b > a for a, b in zip(slept, slept[1:]))  # exponential
    with sh.session() as s:
        assert outbox.last_sync(s) is None
    assert sync(sh, tc).ok


def test_interrupted_sync_resumes_where_the_hub_says(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = setup_shelter(tmp_path, app, tc, n=300)
    http, _ = faulty_client(tc, ["ok", "ok", "ok"] + ["drop_reply"] * 10)
    res = sync(sh, http, batch_size=50, max_retries=1, wire_version=1)  # v2 probes instead: test_wire.py
    assert not res.ok and res.pending == 300 - 100  # /acks + 2 batches acked, 3rd reply lost
    # the hub holds batch 3 already; it is resent once (only the hub's comparison may mark it
    # delivered) and absorbed as duplicates, then the run continues from there
    res = sync(sh, tc, batch_size=50)
    assert res.ok and res.pushed == 300 - 100
    assert_exactly_once(app, sh)


def test_hub_restored_from_older_backup_gets_resent(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = setup_shelter(tmp_path, app, tc, n=40)
    assert sync(sh, tc).ok
    dev = sh.device()
    with app.state.engine.begin() as c:  # the hub lost everything after seq 25
        c.execute(delete(store.hub_event).where(store.hub_event.c.seq > 25))
        c.execute(update(store.hub_stream).values(contiguous_seq=25, max_seq=25))
    res = sync(sh, tc)
    assert res.ok and res.pushed == 15, res.as_dict()
    assert len(hub_ids(app.state.engine)) == 40 and dev.device_id


def test_pull_brings_other_shelters_arrivals(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    a = setup_shelter(tmp_path, app, tc, "a", n=30, seed=1)
    b = setup_shelter(tmp_path, app, tc, "b", n=20, seed=2)
    assert sync(a, tc).ok and sync(b, tc, batch_size=7).ok and sync(a, tc, batch_size=7).ok
    # every event of the other laptop, but an edit of only a phone number (kept at the hub, see
    # store.pull_feed), and no health or contact item in what arrived
    with app.state.engine.connect() as c:
        unserved = {r[0] for r in c.execute(select(store.hub_event.c.event_id, store.hub_event.c.type,
                                                   store.hub_event.c.payload, store.hub_event.c.payload_sha256))
                    if store.redact_for_feed(r[1], r[2], r[3]) is None}
    assert a.remote_ids() == set(b.local_events()) - unserved and b.remote_ids() == set(a.local_events()) - unserved
    with b.engine.connect() as c:
        assert not [p for (p,) in c.execute(text("select payload from remote_event")) if '"phone"' in p]
    with b.engine.connect() as c:
        names = {r[0] for r in c.execute(text("select shelter_name from remote_event"))}
    assert names == {"a"}


def test_restored_laptop_without_new_epoch_is_detected(tmp_path: Path, hub) -> None:  # noqa: ANN001
    """Someone restored a backup but forgot `start_new_epoch`: the hub answers the colliding
    events as forks (never acknowledged, kept pending, the run fails saying what to do), grants
    the laptop a new epoch so later events no longer collide, and once HQ applies the forks the
    laptop's next sync marks them delivered."""
    app, tc = hub
    sh = setup_shelter(tmp_path, app, tc, n=5, seed=3)
    backup = tmp_path / "backup.db"
    import shutil
    import sqlite3
    src, dst = connect_file(sh.path), connect_file(backup, like=sh.path)
    src.backup(dst)
    src.close(), dst.close()
    append_events(sh, random_events(random.Random(4), sh, 5))
    assert sync(sh, tc).ok  # hub now holds seq 1..10 of epoch 1
    sh.engine.dispose()
    shutil.copy(backup, sh.path)
    for suffix in ("-wal", "-shm"):
        Path(str(sh.path) + suffix).unlink(missing_ok=True)
    sh.reopen()
    append_events(sh, random_events(random.Random(5), sh, 3))  # seq 6..8 again, different content
    res = sync(sh, tc)
    assert res.epoch_bumped and len(res.forks) == 3
    assert not res.ok and res.pending == 3 and "ask HQ" in (res.error or "")
    assert store.status(app.state.engine)["forks"] == 3
    assert store.status(app.state.engine)["review_items"] >= 3
    append_events(sh, random_events(random.Random(6), sh, 2))
    assert sh.device().epoch == 2  # granted by the hub
    res = sync(sh, tc)
    assert not res.ok and res.pending == 3  # the forks stay pending until HQ applies them
    assert store.status(app.state.engine)["forks"] == 3  # no new collisions
    forks.apply_forks(app.state.engine, None, by="hq-test")
    assert store.status(app.state.engine)["review_items"] == 0
    assert sync(sh, tc).ok
    held = hub_ids(app.state.engine)
    assert all(eid in held and held[eid][3] == sha for eid, (_, _, _, sha) in sh.local_events().items())


def test_background_syncer(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = setup_shelter(tmp_path, app, tc, n=12)
    bg = client.BackgroundSyncer(sh.session, interval=0.05, http=tc)
    bg.start()
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not (bg.last_result and bg.last_result.ok):
            time.sleep(0.05)
        assert bg.last_result and bg.last_result.ok
        append_events(sh, random_events(random.Random(9), sh, 3))
        bg.trigger()
        deadline = time.time() + 20
        while time.time() < deadline:
            with sh.session() as s:
                if outbox.pending_count(s) == 0:
                    break
            time.sleep(0.05)
    finally:
        bg.stop()
    assert not bg.running
    assert_exactly_once(app, sh)


def test_background_syncer_idles_without_hub(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "offline")
    append_events(sh, random_events(random.Random(1), sh, 2))
    bg = client.BackgroundSyncer(sh.session, interval=0.01)
    bg.start()
    time.sleep(0.2)
    bg.stop()
    assert bg.runs == 0 and bg.last_error is None
