"""Real processes on loopback: a uvicorn hub and shelter CLIs, killed at the worst moments.

- the hub is ``kill -9``-equivalent terminated (``os._exit`` via ``ANPI_HUB_CRASH_AFTER_COMMIT``)
  right after committing a batch and before replying;
- a shelter dies after the hub committed its batch but before recording the ack
  (``ANPI_SYNC_CRASH_AFTER_PUSH``), and another is SIGKILLed at a random moment mid-sync;
- two shelters sync concurrently against the restarted hub.
Afterwards: every event exactly once on the hub, nothing pending, ``PRAGMA integrity_check`` ok.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sync.hub import store
from tests.sync.helpers import Shelter, append_events, free_port, hub_ids, make_app_shelter, random_events

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def env(**extra: str) -> dict[str, str]:
    # no ANPI_* settings leak in, except the passphrase that opens the (encrypted) shelter databases
    e = {k: v for k, v in os.environ.items() if not k.startswith("ANPI_") or k == "ANPI_PASSPHRASE"}
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli_sync", *args], cwd=ROOT, env=env(**extra),
                          capture_output=True, text=True, timeout=180)


def cli_bg(*args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app.cli_sync", *args], cwd=ROOT, env=env(**extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class HubProcess:
    def __init__(self, db_url: str, port: int, **extra: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync.hub", "--database-url", db_url, "--port", str(port)],
            cwd=ROOT, env=env(**extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"hub did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def setup_shelters(tmp_path: Path, db_url: str, hub: HubProcess, n_events: int) -> list[Shelter]:
    shelters = []
    for name in ("daini-chu", "hinan-a"):
        sh = make_app_shelter(tmp_path, name)
        append_events(sh, random_events(random.Random(name), sh, n_events))
        sh.engine.dispose()  # the CLI process owns the file from here
        r = cli("hub", "enroll", name, "--json", "--database-url", db_url)
        assert r.returncode == 0, r.stderr
        code = json.loads(r.stdout)["code"]
        r = cli("--db", str(sh.path), "enroll", "--hub", hub.url, "--code", code, "--shelter-name", name)
        assert r.returncode == 0, r.stderr
        shelters.append(sh)
    return shelters


def check_exactly_once(db_url: str, shelters: list[Shelter]) -> None:
    engine = store.open_hub_engine(db_url)
    try:
        held = hub_ids(engine)
        union: dict = {}
        for sh in shelters:
            sh.reopen()
            assert sh.integrity() == "ok"
            local = sh.local_events()
            union.update(local)
            assert sh.acked_ids() == set(local), f"{sh.name}: not everything acknowledged"
            sh.engine.dispose()
        assert held == union
        st = store.status(engine)
        assert st["forks"] == 0 and st["events"] == len(union)
        with engine.connect() as c:
            n = c.exec_driver_sql("select count(*), count(distinct event_id), max(hub_seq) from hub_event").one()
        assert n[0] == n[1] == n[2] == len(union)
    finally:
        engine.dispose()


def test_hub_killed_between_commit_and_reply(tmp_path: Path, pg_url: str) -> None:
    port = free_port()
    hub = HubProcess(pg_url, port, ANPI_HUB_CRASH_AFTER_COMMIT="2")
    try:
        a, b = setup_shelters(tmp_path, pg_url, hub, 1300)
        r = cli("--db", str(a.path), "sync", "--batch-size", "200", "--retries", "1")
        assert r.returncode == 1 and "still pending" in r.stderr, (r.stdout, r.stderr)
        assert hub.proc.wait(10) == 86  # died right after its 2nd commit
        engine = store.open_hub_engine(pg_url)
        assert store.status(engine)["events"] == 400  # both batches durable...
        engine.dispose()
        a.reopen()
        assert len(a.acked_ids()) == 200  # ...but the laptop only heard about the first
        a.engine.dispose()
    finally:
        hub.stop()
    hub = HubProcess(pg_url, port)
    try:
        pa = cli_bg("--db", str(a.path), "sync", "--batch-size", "150")
        pb = cli_bg("--db", str(b.path), "sync", "--batch-size", "150")
        for p in (pa, pb):
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, (out, err)
        check_exactly_once(pg_url, [a, b])
    finally:
        hub.stop()


def test_shelter_killed_mid_batch(tmp_path: Path, pg_url: str) -> None:
    hub = HubProcess(pg_url, free_port())
    try:
        a, b = setup_shelters(tmp_path, pg_url, hub, 2500)
        # a: dies after the hub committed batch 3, before its own ack commit
        r = cli("--db", str(a.path), "sync", "--batch-size", "100", ANPI_SYNC_CRASH_AFTER_PUSH="3")
        assert r.returncode == 87, (r.stdout, r.stderr)
        a.reopen()
        assert len(a.acked_ids()) == 200
        a.engine.dispose()
        # b: SIGKILL at a random moment while batches fly
        p = cli_bg("--db", str(b.path), "sync", "--batch-size", "50")
        time.sleep(random.uniform(0.8, 1.6))
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        for sh in (a, b):
            r = cli("--db", str(sh.path), "sync")
            assert r.returncode == 0, (r.stdout, r.stderr)
        check_exactly_once(pg_url, [a, b])
        engine = store.open_hub_engine(pg_url)
        assert store.status(engine)["devices"] == 2
        engine.dispose()
    finally:
        hub.stop()
