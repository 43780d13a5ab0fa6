"""本人記入 (issue 15 part 2) over HTTP: the kiosk form in every language, entries landing in the
staff queue, staff finishing intake from it, the kiosk session reaching no staff route, the
rate limit and the inactivity expiry. Browser tests: test_self_registration_browser.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import MatchDecision, SelfEntry
from app.services.self_registration import LANGS
from tests.web.helpers import build_shelter, client_as, csrf_of, shelter_app

HEAD = {"address": "陸前高田市高田町字館の沖12-3", "contact": "090-1234-5678", "m-0-name": "高橋 一郎",
        "m-0-name_kana": "タカハシ イチロウ", "m-0-birth_date": "S45.3.1", "m-0-sex": "男",
        "m-0-care-allergy": "1", "m-0-allergy_detail": "そば", "consent_relatives": "yes", "consent_public": "no"}


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path, evacuees=False)


@pytest.fixture
def app(shelter) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path)


def kiosk(app: Any, lang: str = "ja") -> tuple[TestClient, str]:
    c = TestClient(app)
    r = c.get(f"/self?lang={lang}")
    assert r.status_code == 200
    return c, csrf_of(r.text)


def send(c: TestClient, token: str, fields: dict[str, str], lang: str = "ja", action: str = "send"):  # type: ignore[no-untyped-def]
    return c.post("/self", data={"csrf_token": token, "lang": lang, "action": action, **fields}, follow_redirects=False)


def entries(app: Any) -> list[SelfEntry]:
    with Session(app.state.engine) as s:
        return list(s.exec(select(SelfEntry).order_by(SelfEntry.created_at)))


@pytest.mark.parametrize("lang", LANGS)
def test_the_form_opens_without_login_in_every_language(app: Any, lang: str) -> None:
    c = TestClient(app)
    r = c.get(f"/self?lang={lang}")
    assert r.status_code == 200
    assert f'<html lang="{"ja" if lang == "easy" else lang}">' in r.text
    assert 'href="/dashboard"' not in r.text and "交代" not in r.text  # no staff navigation
    assert 'name="m-0-name"' in r.text and 'name="m-0-birth_date"' in r.text and 'name="consent_public"' in r.text


def test_an_unknown_language_falls_back_to_japanese(app: Any) -> None:
    r = TestClient(app).get("/self?lang=xx")
    assert '<html lang="ja">' in r.text and "受付の前にご記入ください" in r.text


def test_a_sent_form_lands_in_the_queue_without_a_registry_link(app: Any) -> None:
    c, token = kiosk(app, "ko")
    r = send(c, token, {**HEAD, "m-0-resident_id": "1001", "m-0-resident_label": "x", "m-0-injury": "x"}, "ko")
    assert r.status_code == 303 and r.headers["location"] == "/self/sent?lang=ko&ticket=1"
    sent = c.get(r.headers["location"])
    assert 'id="ticket">1<' in sent.text and "감사합니다" in sent.text
    [e] = entries(app)
    assert e.status == "waiting" and e.lang == "ko" and e.ticket == 1
    assert e.data["m-0-name"] == "高橋 一郎" and e.data["m-0-relationship"] == "世帯主"
    assert e.data["m-0-consent_relatives"] == "yes" and e.data["m-0-consent_public"] == "no"
    assert e.data["m-0-care-allergy"] == "1" and e.data["m-0-allergy_detail"] == "そば"
    # the kiosk cannot link anyone to the registry, nor set what only staff decide
    assert not any(k.endswith(("resident_id", "resident_label", "injury")) for k in e.data)
    staff = client_as(app, "佐藤")
    q = staff.get("/intake/self-queue")
    assert q.status_code == 200 and 'id="entry-1"' in q.text and "高橋 一郎" in q.text and "韓国語" in q.text


def test_a_family_the_consent_goes_to_everyone_and_empty_rows_are_dropped(app: Any) -> None:
    c, token = kiosk(app, "en")
    r = send(c, token, HEAD, "en", action="add")
    assert r.status_code == 200 and 'name="m-1-name"' in r.text and 'value="高橋 一郎"' in r.text
    r = send(c, token, {**HEAD, "m-1-name": "高橋 京子", "m-1-birth_date": "78", "m-1-relationship": "wife"}, "en", "add")
    assert 'name="m-2-name"' in r.text
    r = send(c, token, {**HEAD, "m-1-name": "高橋 京子", "m-1-birth_date": "78", "m-1-relationship": "wife",
                        "m-2-name": ""}, "en")
    assert r.status_code == 303
    [e] = entries(app)
    assert e.data["m-1-name"] == "高橋 京子" and e.data["m-1-consent_relatives"] == "yes" and "m-2-name" not in e.data


def test_a_birth_date_the_parser_cannot_read_is_shown_in_the_persons_language(app: Any) -> None:
    c, token = kiosk(app, "vi")
    r = send(c, token, {"m-0-name": "Nguyen Van An", "m-0-birth_date": "sometime"}, "vi")
    assert r.status_code == 422
    assert "Không đọc được ngày này." in r.text and 'aria-invalid="true"' in r.text
    r = send(c, token, {"m-0-birth_date": "1990/1/2"}, "pt")
    assert r.status_code == 422 and "Escreva o nome ou a leitura do nome." in r.text
    for typed in ("昭和45年3月1日", "S45.3.1", "1970-03-01", "78歳", "78"):
        assert send(c, token, {"m-0-name": "高橋 一郎", "m-0-birth_date": typed}).status_code == 303, typed
    assert not entries(app)[0].data.get("m-0-resident_id")


def test_staff_finish_intake_from_the_queue_prefilled_and_matched_at_once(app: Any) -> None:
    c, token = kiosk(app)
    assert send(c, token, HEAD).status_code == 303
    [e] = entries(app)
    staff = client_as(app, "佐藤")
    page = staff.get(f"/intake/self-queue/{e.id}")
    assert page.status_code == 200 and 'id="self-entry-box"' in page.text and 'data-lookup-now="1"' in page.text
    for value in ("高橋 一郎", "タカハシ イチロウ", "S45.3.1", "陸前高田市高田町字館の沖12-3", "090-1234-5678", "そば"):
        assert f'value="{value}"' in page.text, value
    assert re.search(r'name="m-0-consent_relatives" value="yes" checked', page.text)
    form = {k: v for k, v in e.data.items()}
    r = staff.post("/intake", data={**form, "self_entry": e.id, "self_ticket": "1", "csrf_token": csrf_of(page.text)},
                   follow_redirects=False)
    assert r.status_code == 303, r.text[:400]
    done = staff.get(r.headers["location"])
    assert "高橋 一郎" in done.text and "台帳と照合済み" in done.text
    with Session(app.state.engine) as s:
        closed = s.get(SelfEntry, e.id)
        assert closed.status == "done" and closed.data == {} and closed.closed_by == "佐藤" and closed.household_key
        dec = s.exec(select(MatchDecision)).all()
        assert [(d.decision, d.resident_id) for d in dec] == [("auto", "1001")]
    assert 'id="self-queue-empty"' in staff.get("/intake/self-queue").text
    again = staff.get(f"/intake/self-queue/{e.id}", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/intake/self-queue?gone=1"


def test_a_second_desk_cannot_register_the_same_entry_twice(app: Any) -> None:
    c, token = kiosk(app)
    send(c, token, HEAD)
    [e] = entries(app)
    a, b = client_as(app, "佐藤"), client_as(app, "鈴木")
    pa, pb = a.get(f"/intake/self-queue/{e.id}"), b.get(f"/intake/self-queue/{e.id}")
    assert a.post("/intake", data={**e.data, "self_entry": e.id, "csrf_token": csrf_of(pa.text)},
                  follow_redirects=False).status_code == 303
    r = b.post("/intake", data={**e.data, "self_entry": e.id, "csrf_token": csrf_of(pb.text), "confirm_duplicates": "1"},
               follow_redirects=False)
    assert r.status_code == 422 and "受付済み" in r.text
    with Session(app.state.engine) as s:
        from app.models import Evacuee
        assert len(s.exec(select(Evacuee)).all()) == 1


def test_discard_and_the_queue_are_staff_only_and_audited(app: Any, shelter) -> None:  # type: ignore[no-untyped-def]
    c, token = kiosk(app)
    send(c, token, HEAD)
    [e] = entries(app)
    desk = client_as(app, "窓口")  # the desk role does not register people
    assert desk.get("/intake/self-queue", follow_redirects=False).status_code == 403
    staff = client_as(app, "佐藤")
    staff.get("/intake/self-queue")
    page = staff.get(f"/intake/self-queue/{e.id}")
    r = staff.post(f"/intake/self-queue/{e.id}/discard", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    with Session(app.state.engine) as s:
        from app.audit_models import AuditEntry
        gone = s.get(SelfEntry, e.id)
        assert gone.status == "discarded" and gone.data == {}
        seen = [(a.action, a.screen) for a in s.exec(select(AuditEntry)) if f"self_entry:{e.id}" in (a.subjects or [])]
    assert ("view", "GET /intake/self-queue") in seen and ("view", "GET /intake/self-queue/{entry_id}") in seen
    assert ("self_discard", "POST /intake/self-queue/{entry_id}/discard") in seen
    assert ("self_entry", "POST /self") in seen  # the kiosk's own write, with its client address


PUBLIC = ("/self", "/static", "/healthz", "/openapi.json", "/switch", "/api/session", "/pair")  # /pair: a LAN device pairs (no person)


def test_a_kiosk_session_reaches_no_staff_page_or_api(app: Any) -> None:
    """Every route of the app, called with the kiosk's own session (and its CSRF token): only the
    public ones answer; every staff page sends to the 交代 screen, every API answers 401."""
    from tests.disclosure.test_every_output import routes

    c, token = kiosk(app)
    send(c, token, HEAD)
    checked = 0
    for method, path in sorted(set(routes(app))):
        if method == "HEAD" or path == "/" or path.startswith(PUBLIC) or path in ("/lock",):
            continue
        url = re.sub(r"\{[^}]+\}", "x1", path)
        r = c.request(method, url, headers={"X-CSRF-Token": token}, follow_redirects=False)
        checked += 1
        if path.startswith("/api/"):
            assert r.status_code == 401, (method, path, r.status_code)
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/switch"), (method, path, r.status_code)
    assert checked > 60


def test_a_kiosk_page_ends_a_staff_session_in_the_same_browser(app: Any) -> None:
    staff = client_as(app, "佐藤")
    assert staff.get("/dashboard", follow_redirects=False).status_code == 200
    staff.get("/self")
    assert staff.get("/dashboard", follow_redirects=False).status_code == 303


def test_rate_limited_per_client_with_a_translated_message(shelter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ANPI_SELF_MAX_ENTRIES", "2")
    for app in shelter_app(shelter.db_path):
        c, token = kiosk(app, "tl")
        assert send(c, token, HEAD, "tl").status_code == 303
        assert send(c, token, HEAD, "tl").status_code == 303
        r = send(c, token, HEAD, "tl")
        assert r.status_code == 429 and "Masyadong maraming form ang naipadala" in r.text
        other, token2 = kiosk(app, "ne")  # the same address: one tablet, whichever session
        r = send(other, token2, HEAD, "ne")
        assert r.status_code == 429 and "यो उपकरणबाट धेरै फारम पठाइए" in r.text
        assert len(entries(app)) == 2


def test_requests_of_any_kind_are_limited_too(shelter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ANPI_SELF_MAX_REQUESTS", "3")
    for app in shelter_app(shelter.db_path):
        c = TestClient(app)
        assert [c.get("/self?lang=en").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_an_idle_kiosk_session_expires_with_its_draft(shelter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ANPI_SELF_IDLE_SECONDS", "1")
    for app in shelter_app(shelter.db_path):
        c, token = kiosk(app)
        send(c, token, HEAD, action="add")
        assert 'value="高橋 一郎"' in c.get("/self").text  # the draft, within the idle time
        time.sleep(1.3)
        r = c.get("/self")
        assert 'value="高橋 一郎"' not in r.text and csrf_of(r.text) != token
        r = send(c, token, HEAD)  # the old session's token no longer works
        assert r.status_code == 403 and not entries(app)


def test_the_pages_reset_forgets_the_draft_and_the_session(app: Any) -> None:
    c, token = kiosk(app)
    send(c, token, HEAD, action="add")
    assert c.post("/self/reset", headers={"X-CSRF-Token": token}).status_code == 204
    r = c.get("/self?timeout=1")
    assert 'value="高橋 一郎"' not in r.text and 'id="timed-out"' in r.text and csrf_of(r.text) != token


def test_a_page_that_outlived_its_session_comes_back_in_the_persons_language(app: Any) -> None:
    """After a restart (sessions are in memory) the person's own typing is shown again, with a
    fresh session, and one more press sends it; nothing was stored from the refused request."""
    stale = TestClient(app)  # no session at all: what a restarted server sees
    r = send(stale, "from-before-the-restart", HEAD, "pt")
    assert r.status_code == 403 and 'id="expired"' in r.text and "Esta página expirou." in r.text
    assert 'value="高橋 一郎"' in r.text and not entries(app)
    assert send(stale, csrf_of(r.text), HEAD, "pt").status_code == 303 and len(entries(app)) == 1
