"""One error convention (ARCHITECTURE.md §8): every error class says its HTTP status and "error"
token once, and `sync.http_errors.error_answer` gives every route — shelter and hub — one JSON shape."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import app.services.errors as app_errors
import sync.errors as sync_errors
from app.formats.errors import FileFormatError, RowProblem
from sync.http_errors import answerable, error_answer

#: chosen once: what each kind of failure answers
EXPECTED = {
    app_errors.Malformed: 400, app_errors.Unauthorized: 401, app_errors.Forbidden: 403, app_errors.NotFound: 404,
    app_errors.Conflict: 409, app_errors.AlreadyDone: 409, app_errors.TooLarge: 413, app_errors.InvalidInput: 422,
    app_errors.Busy: 503, app_errors.DiskFull: 507, sync_errors.BadRequest: 400, sync_errors.HubNotFound: 404,
    sync_errors.HubConflict: 409, sync_errors.IngestError: 422, sync_errors.DataKeyError: 503,
    sync_errors.NoRegistry: 404, sync_errors.EnrollmentError: 403,
}


def _classes(module: object, base: type) -> list[type]:
    return [c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, base)]


def test_every_error_class_says_how_it_is_answered() -> None:
    for cls in _classes(app_errors, app_errors.AnpiError) + _classes(sync_errors, sync_errors.SyncError):
        assert isinstance(cls.code, str) and cls.code, cls
        assert isinstance(cls.status, int) and 400 <= cls.status < 600, cls
    for cls, status in EXPECTED.items():
        assert cls.status == status, cls


def test_one_shape() -> None:
    body, status = error_answer(app_errors.InvalidInput("bad birth date", "生年月日が読めません", "birth_date"))
    assert (status, body) == (422, {"error": "invalid_input", "detail": "bad birth date",
                                    "detail_ja": "生年月日が読めません", "field": "birth_date"})
    # the hub never confirms that another municipality's id exists: one fixed detail
    assert error_answer(sync_errors.HubNotFound("evacuee 01H… of 032026")) == (
        {"error": "not_found", "detail": "not found"}, 404)
    assert error_answer(sync_errors.AuthError("replayed_nonce", "seen", 401)) == (
        {"error": "replayed_nonce", "detail": "seen"}, 401)
    assert error_answer(app_errors.TooLarge("too big", "大きすぎます", 10))[0]["limit_bytes"] == 10
    assert error_answer(FileFormatError([RowProblem("roster.csv", 3, "氏名", "empty")]))[1] == 422
    assert error_answer(KeyError("x")) == ({"error": "bad_request", "detail": "'x'"}, 400)
    assert answerable(app_errors.Busy("busy")) and not answerable(RuntimeError("bug"))


@pytest.fixture
def hub(tmp_path: Path) -> TestClient:
    from app.hub_app import create_app

    return TestClient(create_app(f"sqlite:///{tmp_path / 'hub.db'}"))


def test_hub_malformed_bodies_are_400_naming_the_field(hub: TestClient) -> None:
    r = hub.post("/v1/enroll", json={"code_id": "x", "device_id": "d", "public_key": "k", "signature": "s"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request" and r.json()["detail"].startswith("mac:")
    r = hub.post("/v1/enroll", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    r = hub.post("/v1/enroll", json={"code_id": "x", "device_id": "d", "public_key": "k", "signature": "s",
                                     "mac": "m"})
    assert (r.status_code, r.json()["error"]) == (403, "enrollment_refused")
    r = hub.get("/v1/hq/whoami")
    assert (r.status_code, r.json()["error"]) == (401, "unauthenticated")
