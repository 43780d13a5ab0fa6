"""Shelter ⇄ hub over real loopback sockets through the fault-injecting TCP proxy."""
from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from sync import client, outbox
from sync.hub import server, store
from tests.sync.faultproxy import FaultProxy
from tests.sync.helpers import ThreadedServer, append_events, enroll_shelter, hub_ids, make_shelter, random_events

SCHEDULE = ["pass", "refuse", "cut_response:40", "pass", "delay:0.3", "cut_response:300", "reset", "blackhole",
            "pass", "cut_response:1", "refuse", "pass"]


@pytest.mark.slow
def test_sync_through_a_hostile_network(tmp_path: Path, hub_db_url: str) -> None:
    app = server.create_hub_app(hub_db_url)
    with ThreadedServer(app) as srv, FaultProxy(srv.port, SCHEDULE) as proxy:
        shelters = []
        for name in ("a", "b"):
            sh = make_shelter(tmp_path, name)
            with httpx.Client(base_url=srv.url) as direct:
                enroll_shelter(sh, app.state.engine, direct, base_url=srv.url)
            append_events(sh, random_events(random.Random(name), sh, 400))
            shelters.append(sh)
        results = []
        for sh in shelters:
            # a fresh connection per request, so every request meets the next fault
            with httpx.Client(timeout=2.0, limits=httpx.Limits(max_keepalive_connections=0)) as http:
                for _ in range(3):
                    res = client.sync_once(sh.session, proxy.url, http=http, batch_size=60, max_retries=6,
                                           backoff=0.02)
                    if res.ok:
                        break
                results.append(res)
        assert all(r.ok for r in results), [r.as_dict() for r in results]
        # the faults really happened: retried, or (wire v2) recovered by a probe without resending
        assert sum(r.retries + r.resumed for r in results) >= 5
        assert {"refuse", "reset", "blackhole"} <= {m.split(":")[0] for m in proxy.modes_used}
        held = hub_ids(app.state.engine)
        union = {}
        for sh in shelters:
            union.update(sh.local_events())
            with sh.session() as s:
                assert outbox.pending_count(s) == 0
            assert sh.integrity() == "ok"
        assert held == union and store.status(app.state.engine)["forks"] == 0
    app.state.engine.dispose()
