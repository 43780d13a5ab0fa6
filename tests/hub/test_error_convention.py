"""One error convention (ARCHITECTURE.md §8): every error class says its HTTP status and "error"
token once, and `sync.http_errors.error_answer` gives every route — shelter and hub — one JSON shape.

The hub's desks (certificates, 安否照会, PFIF) are walked over real HTTP on PostgreSQL with bad bodies,
unknown ids and conflicting actions: every answer is the one shape with the status chosen for it."""
from __future__ import annotations

import inspect
import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import httpx
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


def test_font_missing_says_how_it_is_answered() -> None:
    from app.formats.fonts import FontMissing

    body, status = error_answer(FontMissing("ipaexg.ttf not found"))
    assert (status, body["error"], body["detail"]) == (503, "font_missing", "ipaexg.ttf not found")
    assert "フォント" in body["detail_ja"] and answerable(FontMissing("x"))


# ---- the desks at the hub (certificates, 安否照会, PFIF) answer in the one shape too -------------------
#: every key an error answer may carry (the one shape and the extra keys a class adds)
SHAPE = {"error", "detail", "detail_ja", "field", "problems", "total", "limit_bytes", "reason"}


def one_shape(r: Any, status: int, error: str, field: str | None = None) -> dict[str, Any]:
    """The answer ``r`` is the one JSON shape with this status and token (and field, when given)."""
    assert r.headers["content-type"].startswith("application/json"), (r.request.url, r.text)
    body = r.json()
    assert (r.status_code, body.get("error")) == (status, error), (r.request.method, r.request.url, r.text)
    assert set(body) <= SHAPE, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body.get("detail_ja", ""), str) and isinstance(body.get("field", ""), str), body
    if field is not None:
        assert body["field"] == field and body["detail_ja"], body
    return body


@pytest.fixture
def desks(pg_hub: Any, tmp_path: Path) -> Iterator[SimpleNamespace]:
    from app.hub_app import create_app
    from sync.hub import registry, tenants
    from tests.hub.helpers import A, add_towns, store_registry
    from tests.sync.helpers import ThreadedServer

    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=60, evacuees=2)
    store_registry(engine, key, a)
    store_registry(engine, key, b)
    desk = tenants.add_user(engine, A, "窓口-A", "desk")[1]
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        yield SimpleNamespace(http=http, a=a, b=b, desk=desk)
    engine.dispose()


def _call(d: SimpleNamespace, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
          token: str | None = None) -> httpx.Response:
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    return d.http.request(method, path, content=content,
                          headers={"Authorization": f"Bearer {token or d.desk}", "Content-Type": "application/json"})


def test_certificate_desk_answers_in_the_one_shape(desks: SimpleNamespace) -> None:
    d = desks
    p = next(r for r in d.a.residents if r["氏"] and r["名"] and not r["閲覧制限"])
    ok = {"resident_id": p["宛名番号"], "kind": "risai", "damage": "半壊", "cause": "令和8年11月20日の地震",
          "in_person": True, "id_note": "運転免許証"}
    # malformed bodies: 400, naming the field (or "body")
    one_shape(_call(d, "POST", "/v1/hq/certificates", raw=b"{not json"), 400, "bad_request", "body")
    one_shape(_call(d, "POST", "/v1/hq/certificates", ok | {"in_person": "yes"}), 400, "bad_request", "in_person")
    one_shape(_call(d, "POST", "/v1/hq/certificates", ok | {"cause": 3}), 400, "bad_request", "cause")
    # values the desk refuses: 422 invalid_input with the field and Japanese
    one_shape(_call(d, "POST", "/v1/hq/certificates", ok | {"resident_id": ""}), 422, "invalid_input", "resident_id")
    one_shape(_call(d, "POST", "/v1/hq/certificates", ok | {"name": "山田"}), 422, "invalid_input", "name")
    one_shape(_call(d, "GET", "/v1/hq/certificates?origin=mars"), 422, "invalid_input", "origin")
    # unknown ids: 404, also for another municipality's
    one_shape(_call(d, "POST", "/v1/hq/certificates", ok | {"resident_id": "0000000000"}), 404, "not_found")
    for path in ("/v1/hq/certificates/R-NOPE-000001", "/v1/hq/certificates/R-NOPE-000001/pdf"):
        one_shape(_call(d, "GET", path), 404, "not_found")
    one_shape(_call(d, "POST", "/v1/hq/certificates/R-NOPE-000001/void", {"reason": "誤発行"}), 404, "not_found")
    # a conflicting action: 409; the void's reason is required (422)
    r = _call(d, "POST", "/v1/hq/certificates", ok)
    assert r.status_code == 201, r.text
    n = r.json()["number"]
    one_shape(_call(d, "POST", f"/v1/hq/certificates/{n}/void", {}), 422, "invalid_input", "reason")
    one_shape(_call(d, "POST", f"/v1/hq/certificates/{n}/void", raw=b"[1]"), 400, "bad_request", "body")
    assert _call(d, "POST", f"/v1/hq/certificates/{n}/void", {"reason": "誤発行"}).status_code == 200
    one_shape(_call(d, "POST", f"/v1/hq/certificates/{n}/void", {"reason": "誤発行"}), 409, "conflict")
    one_shape(_call(d, "POST", f"/v1/hq/certificates/{n}/reissue", {"reason": "紛失"}), 409, "conflict")
    one_shape(_call(d, "POST", "/v1/hq/certificates", ok, token=d.b.hq_token), 404, "not_found")


def test_inquiry_desk_answers_in_the_one_shape(desks: SimpleNamespace) -> None:
    d = desks
    form = {"inquirer_name": "双葉 太郎", "inquirer_address": "埼玉県加須市騎西1", "id_proof": "運転免許証",
            "relationship": "同居の親族", "sought_name": "山田　花子", "sought_birth": "S45.3.1"}
    one_shape(_call(d, "POST", "/v1/hq/inquiries", raw=b"[1]"), 400, "bad_request", "body")
    one_shape(_call(d, "POST", "/v1/hq/inquiries", raw=b"{"), 400, "bad_request", "body")
    one_shape(_call(d, "POST", "/v1/hq/inquiries", form | {"give_up": "yes"}), 400, "bad_request", "give_up")
    one_shape(_call(d, "POST", "/v1/hq/inquiries", form | {"inquirer_name": ""}), 422, "invalid_input",
              "inquirer_name")
    one_shape(_call(d, "POST", "/v1/hq/inquiries", form | {"relationship": "友人"}), 422, "invalid_input",
              "relationship")
    one_shape(_call(d, "GET", "/v1/hq/inquiries?outcome=bogus", token=d.a.hq_token), 422, "invalid_input", "outcome")
    one_shape(_call(d, "GET", "/v1/hq/inquiries"), 403, "forbidden")


def test_pfif_desk_answers_in_the_one_shape(desks: SimpleNamespace) -> None:
    from app.formats.pfif import PfifPerson, write_pfif

    d = desks
    p = next(r for r in d.a.residents if r["氏"] and r["名"] and r["生年月日"] and not r["閲覧制限"]
             and not r["英字氏名"])
    t = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
    person = PfifPerson("pf.example.org/e1", source_date=t, full_name=f"{p['氏']} {p['名']}",
                        alternate_names=f"{p['氏カナ']} {p['名カナ']}", date_of_birth=p["生年月日"])

    def upload(data: bytes, name: str) -> httpx.Response:
        return d.http.post(f"/v1/hq/pfif/import?name={name}", content=data,
                           headers={"Authorization": f"Bearer {d.a.hq_token}"})

    # a refused file: 422 bad_file with every problem and the total, nothing stored
    bad = one_shape(upload(write_pfif([person])[:200], "broken.xml"), 422, "bad_file")
    assert bad["total"] >= 1 and bad["problems"][0]["file"] == "broken.xml" and "line" in bad["problems"][0]
    r = upload(write_pfif([person]), "family.xml")
    assert r.status_code == 200, r.text
    sid = r.json()["sought_ids"][0]
    listed = _call(d, "GET", "/v1/hq/pfif/sought", token=d.a.hq_token).json()["sought"]
    link = next(lk for s in listed if s["sought_id"] == sid for lk in s["links"] if lk["target_kind"] == "resident")
    path = f"/v1/hq/pfif/sought/{sid}/links"
    decide = {"target_kind": "resident", "target_id": link["target_id"]}
    # bad input stays 400 here, its detail starting with the field
    assert one_shape(_call(d, "POST", path, decide | {"decision": "maybe"}), 400,
                     "bad_request")["detail"].startswith("decision:")
    assert one_shape(_call(d, "POST", path, decide | {"decision": 5}), 400, "bad_request")["field"] == "decision"
    one_shape(_call(d, "POST", path, raw=b"nope"), 400, "bad_request", "body")
    one_shape(_call(d, "GET", "/v1/hq/pfif/export?expiry_days=0", token=d.a.hq_token), 400, "bad_request")
    # unknown ids (and another municipality's): 404 in the same words
    ghost = one_shape(_call(d, "POST", "/v1/hq/pfif/sought/01HZZZZZZZZZZZZZZZZZZZZZZZ/links",
                            decide | {"decision": "confirmed"}), 404, "not_found")
    theirs = one_shape(_call(d, "POST", path, decide | {"decision": "confirmed"}, token=d.b.hq_token), 404,
                       "not_found")
    assert theirs == {**ghost, "detail": ghost["detail"].replace("01HZZZZZZZZZZZZZZZZZZZZZZZ", sid)}
    one_shape(_call(d, "POST", path, {"target_kind": "resident", "target_id": "0000000000", "decision": "confirmed"}),
              404, "not_found")
    # conflicting actions: 409 (nothing to undo; the same decision twice)
    one_shape(_call(d, "POST", path, decide | {"decision": "undo"}), 409, "conflict")
    assert _call(d, "POST", path, decide | {"decision": "confirmed"}).status_code == 200
    one_shape(_call(d, "POST", path, decide | {"decision": "confirmed"}), 409, "already_done")


def test_inquiry_body_reads_every_field_of_the_desk_form() -> None:
    """The hub's body model and the desk's form are one list of fields (a new field cannot be dropped)."""
    from app.api.hub.inquiry import InquiryBody
    from app.services.inquiry_rules import InquiryRequest

    assert set(InquiryBody.model_fields) == set(InquiryRequest.__dataclass_fields__)
    full = {f: ("x" if f != "give_up" else True) for f in InquiryRequest.__dataclass_fields__}
    assert InquiryBody.model_validate(full).request() == InquiryRequest(**full)
