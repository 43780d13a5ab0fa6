"""Enrolment and request authentication at the hub's HTTP face."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sync import client, crypto
from sync.canonical import canonical_bytes
from sync.errors import EnrollmentError
from sync.hub import server, store
from tests.sync.helpers import append_events, enroll_shelter, make_shelter, random_events, sync


@pytest.fixture
def hub(hub_db_url: str):  # noqa: ANN201
    app = server.create_hub_app(hub_db_url)
    with TestClient(app, base_url="http://hub") as tc:
        yield app, tc
    app.state.engine.dispose()


def signed(tc: TestClient, key: Any, device_id: str, method: str, path: str, body: Any = None,
           now: float | None = None, **override: str) -> httpx.Response:
    data = canonical_bytes(body) if body is not None else b""
    hdrs = crypto.sign_request(key, device_id, method, path, data, now or time.time()).as_dict()
    hdrs.update(override)
    return tc.request(method, path, content=data, headers=hdrs)


def enrolled(tmp_path: Path, app: Any, tc: TestClient, name: str = "s1"):  # noqa: ANN201
    sh = make_shelter(tmp_path, name)
    enroll_shelter(sh, app.state.engine, tc)
    dev = sh.device()
    return sh, dev, crypto.signing_key_from_b64(dev.signing_key)


def test_enrolment_pins_hub_keys_and_code_is_one_time(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh, dev, _ = enrolled(tmp_path, app, tc)
    ident = app.state.identity
    assert (dev.hub_id, dev.hub_sign_public_key, dev.hub_box_public_key) == (
        ident.hub_id, ident.sign_public_b64, ident.box_public_b64)
    other = make_shelter(tmp_path, "s2")
    with pytest.raises(EnrollmentError, match="already used"):
        client.enroll(other.session, "http://hub", sh.code, http=tc)
    with pytest.raises(EnrollmentError, match="already enrolled"):
        client.enroll(sh.session, "http://hub", sh.code, http=tc)


def test_enrolment_refuses_wrong_or_expired_code(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = make_shelter(tmp_path, "s1")
    with pytest.raises(EnrollmentError, match="unknown enrolment code"):
        client.enroll(sh.session, "http://hub", "AAAA-BBBB-CCCC-DDDD", http=tc)
    slot = store.create_enrolment(app.state.engine, "x", ttl=timedelta(seconds=-1))
    with pytest.raises(EnrollmentError, match="expired"):
        client.enroll(sh.session, "http://hub", slot.code, http=tc)
    # codes are typed by hand: case and dashes do not matter
    slot = store.create_enrolment(app.state.engine, "y")
    client.enroll(sh.session, "http://hub", slot.code.lower().replace("-", " "), http=tc)


def test_tampered_enrolment_reply_is_refused(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub

    class Mitm(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.read()
            r = tc.post("/v1/enroll", content=request.content, headers={"content-type": "application/json"})
            doc = r.json()
            doc["box_public_key"] = crypto.b64e(bytes(crypto.new_box_key().public_key))  # swapped key
            return httpx.Response(200, json=doc)

    sh = make_shelter(tmp_path, "s1")
    slot = store.create_enrolment(app.state.engine, "s1")
    with pytest.raises(EnrollmentError, match="not authenticated"):
        client.enroll(sh.session, "http://hub", slot.code, http=httpx.Client(transport=Mitm()))
    assert sh.device().hub_id is None


def test_signed_requests_are_checked(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh, dev, key = enrolled(tmp_path, app, tc)
    assert signed(tc, key, dev.device_id, "GET", "/v1/acks").status_code == 200

    r = tc.get("/v1/acks")
    assert (r.status_code, r.json()["error"]) == (401, "unsigned")
    stranger = crypto.new_signing_key()
    r = signed(tc, stranger, "Z" * 26, "GET", "/v1/acks")
    assert (r.status_code, r.json()["error"]) == (401, "unknown_device")
    r = signed(tc, stranger, dev.device_id, "GET", "/v1/acks")
    assert (r.status_code, r.json()["error"]) == (401, "bad_signature")
    r = signed(tc, key, dev.device_id, "GET", "/v1/acks", now=time.time() - 3600)
    assert (r.status_code, r.json()["error"]) == (401, "stale_timestamp") and "hub_time" in r.json()
    # replay: same signed request twice
    data = b""
    hdrs = crypto.sign_request(key, dev.device_id, "GET", "/v1/acks", data, time.time()).as_dict()
    assert tc.get("/v1/acks", headers=hdrs).status_code == 200
    r = tc.get("/v1/acks", headers=hdrs)
    assert (r.status_code, r.json()["error"]) == (401, "replayed_nonce")
    # a signature covers path and body
    hdrs = crypto.sign_request(key, dev.device_id, "GET", "/v1/pull?after=0", b"", time.time()).as_dict()
    r = tc.get("/v1/pull?after=99", headers=hdrs)
    assert (r.status_code, r.json()["error"]) == (401, "bad_signature")
    body = canonical_bytes({"events": []})
    hdrs = crypto.sign_request(key, dev.device_id, "POST", "/v1/push", body, time.time()).as_dict()
    r = tc.post("/v1/push", content=canonical_bytes({"events": [{"x": 1}]}), headers=hdrs)
    assert (r.status_code, r.json()["error"]) == (401, "bad_signature")
    # revoked devices get 403
    store.revoke_device(app.state.engine, dev.device_id)
    r = signed(tc, key, dev.device_id, "GET", "/v1/acks")
    assert (r.status_code, r.json()["error"]) == (403, "device_revoked")
    res = sync(sh, tc)
    assert not res.ok and "revoked" in (res.error or "")


def test_laptop_with_wrong_clock_adopts_hub_time(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh, _, _ = enrolled(tmp_path, app, tc)
    append_events(sh, random_events(__import__("random").Random(1), sh, 20))
    sh.clock_offset = -9 * 3600  # CMOS battery died: the laptop thinks it is 9 hours earlier
    res = sync(sh, tc)
    assert res.ok and res.acknowledged == 20, res.as_dict()


def test_push_of_another_devices_events_is_refused(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    a, dev_a, key_a = enrolled(tmp_path, app, tc, "a")
    b, dev_b, _ = enrolled(tmp_path, app, tc, "b")
    append_events(b, random_events(__import__("random").Random(2), b, 3))
    with b.session() as s:
        from sync import outbox
        batch = [e.to_wire() for e in outbox.pending_events(s)]
    r = signed(tc, key_a, dev_a.device_id, "POST", "/v1/push", {"events": batch})
    assert r.status_code == 422 and "belongs to device" in r.json()["detail"]
    assert store.status(app.state.engine)["events"] == 0
    json.dumps(r.json())
