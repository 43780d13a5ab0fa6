"""The hub on a PostgreSQL primary + synchronous standby, for real: clusters made with initdb and
``pg_basebackup -R`` in temp directories (bench/pgcluster.py), hubs as processes, laptops pushing
with the real sync client over HTTP.

- kill -9 of the primary's postmaster mid-ingest, standby promoted (its hub takes the writes): nothing
  acknowledged is lost, nothing stored twice, every laptop converges (bench/hub_failover.py, smaller);
- a hub on a standby refuses writes with ``hub_read_only`` and laptops move on to the next URL;
  ``anpi hub status --json`` tells primary from standby, synchronous acks, lag, archived WAL;
- ``anpi hub backup`` + the WAL archive restore a fresh cluster to just before a destructive
  mistake; the hub starts on it and laptops continue (what the restore lost is resent).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from sqlalchemy import text

from bench import hub_failover as hf
from bench import pgcluster as pc
from bench.processes import stop
from sync import client, crypto, outbox
from sync.canonical import canonical_bytes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _need_server_tools() -> None:
    try:
        pc.pg_bin("initdb"), pc.pg_bin("pg_basebackup")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"!!! PostgreSQL server tools missing — failover tests SKIPPED: {exc}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("!!! runuser missing: cannot start clusters as the postgres user")


@pytest.fixture
def pair() -> Iterator[hf.Pair]:
    _need_server_tools()
    root = pc.workdir("anpi-test-failover-")
    p = None
    try:
        p = hf.start_pair(root)
        yield p
    finally:
        pc.destroy(root, [p.primary, p.standby] if p else [])


def anpi(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANPI_") or k == "ANPI_PASSPHRASE"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_primary_killed_mid_ingest_nothing_acknowledged_lost() -> None:
    _need_server_tools()
    r = hf.run(shelters=6, events=30, throughput_events=0, rounds=0, threads=4)
    assert r["primary_acks_synchronous"] is True
    assert r["acknowledged_before_failover"] > 0 and r["acknowledged_lost"] == 0
    assert r["duplicates"] == 0 and r["hub_holds_exactly_the_laptops_events"]
    assert r["laptops_converged"] == 6 and r["events_acknowledged"] == 6 * 31
    # the failover time target (≤ 30 s) is measured by bench/hub_failover.py, not asserted here: a
    # loaded CI machine must not turn a correct failover into a failure
    assert r["failover_seconds"] is not None
    assert r["new_primary_role"] == "primary" and r["new_primary_acks_synchronous"] is False


def test_standby_hub_refuses_writes_laptop_moves_on(pair: hf.Pair, tmp_path: Path) -> None:
    ports = (pc.free_port(), pc.free_port())
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    hubs = [hf.start_hub(pair.hub_url_of(pair.primary), ports[0], urls)]
    try:
        hubs.append(hf.start_hub(pair.hub_url_of(pair.standby), ports[1], urls))
        engine = hf.store.open_hub_engine(pair.hub_url_of(pair.primary), pool_size=1)
        lap = hf.enrol_laptops(tmp_path, 1, engine, urls[0])[0]
        engine.dispose()
        with lap.session() as s:
            dev = outbox.get_device(s)
            assert dev is not None and json.loads(dev.hub_urls or "[]") == urls  # handed out at enrolment
            key, device_id = crypto.signing_key_from_b64(dev.signing_key), dev.device_id
        hf.add_events(lap, 30)
        # the standby's hub says why it refuses, so the laptop moves on at once
        body = canonical_bytes({"events": [], "laptop_time": time.time()})
        hdrs = crypto.sign_request(key, device_id, "POST", "/v1/push", body, time.time()).as_dict()
        resp = httpx.post(urls[1] + "/v1/push", content=body, headers={**hdrs, "Content-Type": "application/json"})
        assert resp.status_code == 503 and resp.json()["error"] == "hub_read_only"
        res = client.sync_once(lap.session, urls[1], pull=False, backoff=0.05)  # standby first
        assert res.ok and res.hub_url == urls[0] and res.acknowledged == 30
        pair.primary.sql("SELECT pg_switch_wal()")
        assert hf.wait_for(lambda: bool(pair.primary.sql("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]), 30)
        st = json.loads(anpi("hub", "status", "--json", "--database-url", pair.hub_url_of(pair.primary)).stdout)
        repl = st["replication"]
        assert st["events"] == 30 and repl["role"] == "primary" and repl["acks_synchronous"] is True
        assert repl["standbys"][0]["name"] == hf.STANDBY and repl["standbys"][0]["sync_state"] == "sync"
        assert repl["last_archived_wal"] and repl["replication_lag_bytes"] is not None
        st = json.loads(anpi("hub", "status", "--json", "--database-url", pair.hub_url_of(pair.standby)).stdout)
        assert st["events"] == 30 and st["replication"]["role"] == "standby"
        assert st["replication"]["acks_synchronous"] is False and "replication_lag_seconds" in st["replication"]
        lap.engine.dispose()
    finally:
        for h in hubs:
            stop(h)


def _latest_sha(engine: object, code: str) -> str:
    from sync.hub import registry, store

    with engine.connect() as conn:  # type: ignore[attr-defined]
        store.set_tenant(conn, code)
        snap = registry.latest_snapshot(conn, code)
    assert snap is not None
    return snap.sha256


def test_point_in_time_restore_before_a_wrong_registry_import(pair: hf.Pair, tmp_path: Path) -> None:
    from sync.hub import registry, store, tenants
    from tests.hub.helpers import A, A_NAME, B, B_NAME, A_PREFIX, B_PREFIX, make_town, store_registry

    port = pc.free_port()
    url = f"http://127.0.0.1:{port}"
    hubs = [hf.start_hub(pair.hub_url_of(pair.primary), port, [url])]
    try:
        engine = store.open_hub_engine(pair.hub_url_of(pair.primary), pool_size=2)
        key = registry.DataKey.generate()
        town_a = make_town(tmp_path, A, A_NAME, A_PREFIX, residents=60, evacuees=5, seed="a")
        town_b = make_town(tmp_path, B, B_NAME, B_PREFIX, residents=60, evacuees=5, seed="b")
        tenants.add_municipality(engine, A, A_NAME)
        right = store_registry(engine, key, town_a).sha256
        laptops = hf.enrol_laptops(tmp_path, 2, engine, url)

        def push(n: int) -> None:
            for lap in laptops:
                hf.add_events(lap, n)
                assert hf.sync_until_done(lap, time.time() + 60, 50)

        push(20)
        backup = tmp_path / "backup"
        r = anpi("hub", "backup", "--out", str(backup), "--database-url", pair.primary.url("anpi"))
        assert r.returncode == 0, r.stderr
        push(20)
        before_mistake = set().union(*(lap.event_ids(acked_only=True) for lap in laptops))
        target = pair.primary.sql("SELECT clock_timestamp()")[0][0].isoformat()
        time.sleep(0.3)
        push(10)  # acknowledged after the target: the restore loses them, the laptops resend them
        reader, writer = laptops
        assert _pull(reader, url).feed_restarted is False
        cursor_before = _pull_cursor(reader)
        assert _remote_ids(reader) == writer.event_ids()  # it pulled past the restore point
        town_b.code = A  # the mistake: another town's registry imported as this town's
        assert store_registry(engine, key, town_b).sha256 != right and _latest_sha(engine, A) != right
        engine.dispose()
        seg = pair.primary.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        assert hf.wait_for(lambda: (pair.primary.sql("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
                                    or "") >= seg, 30)
        stop(hubs.pop())

        data = pc.Cluster(pair.root / "restored", pc.free_port())
        r = anpi("hub", "restore", "--backup", str(backup), "--wal-archive", str(pair.archive), "--data-dir",
                 str(data.data), "--target-time", target, "--port", str(data.port))
        assert r.returncode == 0, r.stderr
        pc.start_restored(data)
        try:
            restored = store.open_hub_engine(data.url("anpi", hf.HUB_ROLE), pool_size=1)
            assert _latest_sha(restored, A) == right  # the state of that moment: the right registry
            held, dupes, _ = hf.hub_counts(data.url("anpi", hf.HUB_ROLE))
            assert held == before_mistake and dupes == 0
            restored_max = data.sql("SELECT max(hub_seq) FROM hub_event", "anpi")[0][0]
            assert cursor_before > restored_max  # the reader pulled items the restored hub will number again
            restored.dispose()
            url2 = f"http://127.0.0.1:{pc.free_port()}"
            hubs.append(hf.start_hub(data.url("anpi", hf.HUB_ROLE), int(url2.rsplit(":", 1)[1]), [url2]))
            for lap in laptops:  # laptops continue: the 10 lost per laptop are resent, new ones pushed
                hf.add_events(lap, 5)
                assert hf.sync_until_done(lap, time.time() + 60, 50, url2)
            held, dupes, forks = hf.hub_counts(data.url("anpi", hf.HUB_ROLE))
            union = set().union(*(lap.event_ids() for lap in laptops))
            assert held == union and len(union) == 2 * 55 and dupes == 0 and forks == 0
            assert all(lap.pending() == 0 for lap in laptops)
            # the reader's cursor is past what the restored hub numbered before its first new item, and
            # it still receives every feed item written after the restore, each exactly once
            assert data.sql("SELECT max(hub_seq) FROM hub_event", "anpi")[0][0] > cursor_before
            first = _pull(reader, url2)
            assert first.ok and first.feed_restarted, first.as_dict()
            assert _remote_ids(reader) == writer.event_ids() and len(writer.event_ids()) == 55
            assert _remote_rows(reader) == 55  # nothing stored twice (the resent 10 came back renumbered)
            hf.add_events(writer, 4)
            assert hf.sync_until_done(writer, time.time() + 60, 50, url2)
            again = _pull(reader, url2)
            assert again.ok and not again.feed_restarted and again.pulled == 4
            assert _remote_ids(reader) == writer.event_ids() and _remote_rows(reader) == 59
        finally:
            pc.stop(data, "immediate")
        for lap in laptops:
            lap.engine.dispose()
    finally:
        for h in hubs:
            stop(h)


def _pull(lap: hf.Laptop, url: str) -> client.SyncResult:
    """One sync of ``lap`` that pulls the feed (the drill's pushes leave pulling out)."""
    return client.sync_once(lap.session, url, batch_size=20, max_retries=2, backoff=0.2, timeout=10)


def _pull_cursor(lap: hf.Laptop) -> int:
    with lap.engine.connect() as c:
        return int(c.execute(text("SELECT max(value) FROM sync_cursor WHERE name LIKE 'pull/%'")).scalar_one())


def _remote_ids(lap: hf.Laptop) -> set[str]:
    with lap.engine.connect() as c:
        return {r[0] for r in c.execute(text("SELECT event_id FROM remote_event"))}


def _remote_rows(lap: hf.Laptop) -> int:
    with lap.engine.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM remote_event")).scalar_one())
