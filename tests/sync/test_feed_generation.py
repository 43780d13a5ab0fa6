"""The hub feed's generation (sync/hub/feed_generation.py) and the laptop's answer to a new one.

The real point-in-time restore (clusters, WAL replay, a new timeline) is in the slow
tests/hub/test_failover.py; here the hub's database is made to look restored by hand: the tail of
the feed a laptop already pulled is gone, new items take its numbers, and the stored generation
names an origin the database is no longer on.
"""
from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from sync import outbox
from sync.hub import server, store
from sync.hub.feed_generation import KEY, feed_generation
from tests.sync.helpers import FaultTransport, append_events, enroll_shelter, make_shelter, random_events, sync


def _make_restored(engine, keep: int) -> list[str]:  # noqa: ANN001
    """What a restore to just after feed item ``keep`` leaves: later items gone, the next numbers
    handed to new items (two hub notices), the generation row written on an earlier timeline."""
    m = store.IMPLICIT_TENANT
    with engine.begin() as conn:
        store.set_tenant(conn, m)
        store.hub_lock(conn, m)
        conn.execute(delete(store.hub_event).where(store.hub_event.c.municipality_code == m,
                                                   store.hub_event.c.hub_seq > keep))
        ids = store.insert_notices(conn, m, [{"type": "crossmatch.unlinked", "payload": {"n": i}} for i in (1, 2)])
        value = conn.execute(store.hub_meta.select().where(store.hub_meta.c.key == KEY)).mappings().one()["value"]
        conn.execute(update(store.hub_meta).where(store.hub_meta.c.key == KEY)
                     .values(value="restored-from/1 " + value.rsplit(" ", 1)[1]))
    return ids


def test_generation_is_stable_and_rolls_when_the_origin_changes(hub_db_url: str) -> None:
    engine = store.open_hub_engine(hub_db_url)
    try:
        first = feed_generation(engine)
        assert first is not None and 0 < first < 2 ** 62 and feed_generation(engine) == first
        with engine.begin() as conn:  # the row as a restore brings it back: made on an earlier timeline
            conn.execute(update(store.hub_meta).where(store.hub_meta.c.key == KEY)
                         .values(value=f"restored-from/1 {first}"))
        rolled = feed_generation(engine)
        assert rolled is not None and rolled != first and feed_generation(engine) == rolled
    finally:
        engine.dispose()


@pytest.fixture
def hub(pg_url: str):  # noqa: ANN201
    app = server.create_hub_app(pg_url)
    with TestClient(app, base_url="http://hub") as tc:
        yield app, tc
    app.state.engine.dispose()


def test_laptop_past_the_restore_point_pulls_everything_again(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    writer, reader = make_shelter(tmp_path, "w"), make_shelter(tmp_path, "r")
    for sh in (writer, reader):
        enroll_shelter(sh, app.state.engine, tc)
    append_events(writer, random_events(random.Random(7), writer, 30))
    assert sync(writer, tc).ok
    got = sync(reader, tc, batch_size=7)
    assert got.ok and not got.feed_restarted and reader.remote_ids() == set(writer.local_events())
    with reader.session() as s:
        assert outbox.get_cursor(s, "pull/" + reader.device().hub_id) == 30  # past where the restore goes back to

    notices = _make_restored(app.state.engine, keep=12)  # the notices are numbered 13 and 14: below 30
    kept = {r[3] for r in store.held_events(app.state.engine)}
    assert len(kept) == 12
    again = sync(reader, tc, batch_size=5)
    assert again.ok and again.feed_restarted, again.as_dict()
    assert reader.remote_ids() == kept | set(notices)  # nothing the restored hub lost, nothing it has skipped

    more = sync(reader, tc, batch_size=5)  # the same generation: the cursor goes on, nothing pulled twice
    assert more.ok and not more.feed_restarted and more.pulled == 0


class EarlierHub(FaultTransport):
    """The same hub, answering pulls as a hub of the previous release did: without ``generation``."""

    def _send(self, request: httpx.Request) -> httpx.Response:
        resp = super()._send(request)
        if request.url.path != "/v1/pull":
            return resp
        doc = resp.json()
        assert "generation" in doc
        doc.pop("generation")
        return httpx.Response(resp.status_code, json=doc, request=request)


def test_a_hub_without_generations_keeps_the_cursor(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    writer, reader = make_shelter(tmp_path, "w"), make_shelter(tmp_path, "r")
    for sh in (writer, reader):
        enroll_shelter(sh, app.state.engine, tc)
    append_events(writer, random_events(random.Random(3), writer, 10))
    assert sync(writer, tc).ok
    assert sync(reader, tc).pulled > 0  # a current hub: the laptop keeps the generation
    before = reader.remote_ids()
    append_events(writer, random_events(random.Random(4), writer, 5))
    assert sync(writer, tc).ok
    old = httpx.Client(transport=EarlierHub(tc), base_url="http://hub")
    res = sync(reader, old)
    assert res.ok and not res.feed_restarted, res.as_dict()
    served = {e["event_id"] for e in store.pull_feed(app.state.engine, reader.device().device_id, 0, 2000)["events"]}
    assert reader.remote_ids() == served and res.pulled == len(served - before) > 0  # on from the cursor
