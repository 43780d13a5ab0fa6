"""Laptops that know several hub URLs (sync/failover.py): real hubs over loopback HTTP, no clusters.

The PostgreSQL side (standby refusing writes, kill -9 and promotion, point-in-time restore) is in
tests/hub/test_failover.py (slow).  Here: the list handed out at enrolment and its MAC, a dead
first URL skipped, and the one-URL behaviour kept exactly as before.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from sync import client, crypto, failover, outbox
from sync.errors import EnrollmentError, HubUnavailable
from sync.hub import store
from sync.hub.server import create_hub_app
from tests.sync.helpers import ThreadedServer, append_events, free_port, hub_ids, make_shelter, random_events


def test_urls_of_puts_the_chosen_url_first_once() -> None:
    listed = json.dumps(["http://a/", "http://b", "http://c"])
    assert failover.urls_of("http://b/", listed) == ["http://b", "http://a", "http://c"]
    assert failover.urls_of("http://x", None) == ["http://x"]
    assert failover.urls_of(None, "not json") == []


def test_enrolment_hands_out_the_list_and_a_dead_hub_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here: a hub node that is down
    engine = store.open_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    port = free_port()
    live = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("ANPI_HUB_URLS", f"{dead},{live}")
    with ThreadedServer(create_hub_app("", engine=engine), port=port):
        sh = make_shelter(tmp_path, "s1")
        client.enroll(sh.session, live, store.create_enrolment(engine, "s1").code, "s1")
        with sh.session() as s:
            dev = outbox.get_device(s)
            assert dev is not None and dev.hub_url == live and json.loads(dev.hub_urls or "") == [live, dead]
        append_events(sh, random_events(random.Random(3), sh, 120))
        res = client.sync_once(sh.session, dead, batch_size=50, backoff=0.01)  # the dead node first
        assert res.ok and res.hub_url == live and res.acknowledged == 120 and res.retries >= 1
        assert set(hub_ids(engine)) == set(sh.local_events())
        append_events(sh, random_events(random.Random(4), sh, 10))  # next sync: the live hub first
        res = client.sync_once(sh.session, dead, batch_size=50, backoff=0.01)
        assert res.ok and res.hub_url == live and res.retries == 0 and res.acknowledged == 10


def test_a_tampered_url_list_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A man in the middle who swaps the list for his own hub cannot make the MAC."""
    engine = store.open_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    port = free_port()
    live = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("ANPI_HUB_URLS", live)

    def tamper(resp: httpx.Response) -> None:
        resp.read()
        doc = resp.json()
        if "hub_urls" in doc:
            doc["hub_urls"] = ["http://evil.example"]
            resp._content = json.dumps(doc).encode()

    with ThreadedServer(create_hub_app("", engine=engine), port=port), \
            httpx.Client(event_hooks={"response": [tamper]}) as http:
        sh = make_shelter(tmp_path, "s1")
        with pytest.raises(EnrollmentError, match="hub URL list is not authenticated"):
            client.enroll(sh.session, live, store.create_enrolment(engine, "s1").code, "s1", http=http)
        with sh.session() as s:
            dev = outbox.get_device(s)
            assert dev is not None and dev.hub_id is None and dev.hub_urls is None


def test_one_url_fails_as_before(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "s1")
    dead = f"http://127.0.0.1:{free_port()}"
    key = crypto.new_signing_key()
    fc = failover.FailoverClient([dead], lambda u, r: client.HubClient(u, "d", key, max_retries=r,
                                                                        sleep=lambda _: None), max_retries=2)
    with pytest.raises(HubUnavailable, match=f"hub {dead} unreachable after 3 attempts"):
        fc.request("GET", "/healthz")
    fc.close()
    sh.engine.dispose()
