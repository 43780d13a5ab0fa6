"""Issue 16: the registry pull compressed, sealed once, in hashed chunks that survive a dropping link."""
from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from bench.linkshaper import LinkShaper
from sync import client
from sync.errors import HubRejected
from sync.hub import registry, registry_pull, server, store, tenants
from tests.hub.helpers import A, A_NAME, A_PREFIX, make_town, store_registry
from tests.sync.helpers import ThreadedServer, make_shelter


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    key = registry.DataKey.generate()
    app = server.create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", data_key=key)
    tenants.add_municipality(app.state.engine, A, A_NAME)
    town = make_town(tmp_path, A, A_NAME, A_PREFIX, residents=600, evacuees=5)
    store_registry(app.state.engine, key, town)
    with ThreadedServer(app) as srv:
        sh = make_shelter(tmp_path, "laptop")
        slot = store.create_enrolment(app.state.engine, "laptop", A)
        with httpx.Client() as http:
            client.enroll(sh.session, srv.url, slot.code, "laptop", http=http)
        yield app, srv, sh, town
    app.state.engine.dispose()


def test_chunked_pull_through_a_link_that_drops(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    app, srv, sh, town = world
    monkeypatch.setattr(registry_pull, "CHUNK", 2048)  # several chunks from a small town
    raw = town.registry.read_bytes()
    with LinkShaper(srv.port, kbps=64, rtt_ms=200, cut_every=1.5, down_seconds=0.2) as link:
        got = client.fetch_registry(sh.session, link.url)
        assert link.cuts >= 1
        moved = link.bytes_down
    assert got.data == raw and got.manifest["sha256"] == hashlib.sha256(raw).hexdigest()
    assert moved * 2 < len(raw), (moved, len(raw))  # compressed: less than half of the file crossed the link
    unchanged = client.fetch_registry(sh.session, srv.url, have=got.manifest["sha256"])
    assert unchanged.unchanged and unchanged.data == b""


def test_unchunked_pull_of_older_laptops_still_served(world) -> None:  # type: ignore[no-untyped-def]
    app, srv, sh, town = world
    got = client.fetch_registry(sh.session, srv.url, chunked=False)
    assert got.data == town.registry.read_bytes()


def test_a_tampered_chunk_is_refused(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    app, srv, sh, town = world
    real = registry_pull.chunk

    def flipped(*args, **kw):  # type: ignore[no-untyped-def]
        data = real(*args, **kw)
        return bytes([data[0] ^ 1]) + data[1:]

    monkeypatch.setattr(registry_pull, "chunk", flipped)
    from sync import registry_fetch

    monkeypatch.setattr(registry_fetch, "MAX_TRIES", 2)
    with pytest.raises(Exception) as exc:
        client.fetch_registry(sh.session, srv.url)
    assert "SHA-256" in str(exc.value) or isinstance(exc.value, HubRejected)
