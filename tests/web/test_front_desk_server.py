"""The server's final word on what the 受付 form checks while typing (issue 14 items 7, 10), and the
API side of matching at once (item 1): real app, real SQLite file, HTTP through TestClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.helpers import api_csrf, build_shelter, client_as, csrf_of, shelter_app


@pytest.fixture
def staff(tmp_path: Path):  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path, evacuees=False)
    for app in shelter_app(sh.db_path):
        yield client_as(app, "佐藤")


def _intake(client, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/intake").text)
    return client.post("/intake", data={"csrf_token": token, **fields}, follow_redirects=False)


def test_a_name_of_200_characters_is_refused_with_its_length(staff) -> None:  # type: ignore[no-untyped-def]
    r = _intake(staff, {"address": "高田町", "m-0-name": "あ" * 200, "m-0-birth_date": "S45.3.1"})
    assert r.status_code == 422
    assert "氏名は60文字以内で入力してください（いま200文字）" in r.text
    r = _intake(staff, {"address": "高" * 121, "m-0-name": "岩手 太郎"})
    assert r.status_code == 422 and "住所は120文字以内で入力してください（いま121文字）" in r.text
    h = {"X-CSRF-Token": api_csrf(staff)}
    r = staff.post("/api/evacuees/household", json={"members": [{"name": "い" * 61}]}, headers=h)
    assert r.status_code == 422 and "氏名は60文字以内" in r.json()["detail_ja"]


def test_future_and_impossible_dates_are_named(staff) -> None:  # type: ignore[no-untyped-def]
    r = _intake(staff, {"m-0-name": "岩手 太郎", "m-0-birth_date": "令和10年1月1日"})
    assert r.status_code == 422 and "生年月日: 未来の日付です" in r.text
    assert staff.get("/api/check-birth", params={"value": "S45.13.1"}).json() == {
        "ok": False, "message_ja": "生年月日: 13月はありません"}
    assert staff.get("/api/check-birth", params={"value": "S45.3.1"}).json() == {"ok": True, "label": "1970年3月1日（昭和45年）"}
    assert staff.get("/api/check-birth", params={"value": "2030"}).json()["message_ja"] == "生年月日: 未来の日付です"


def test_household_registered_through_the_api_is_matched_at_once(staff) -> None:  # type: ignore[no-untyped-def]
    h = {"X-CSRF-Token": api_csrf(staff)}
    r = staff.post("/api/evacuees/household", json={"members": [
        {"name": "高橋 一郎", "birth_date": "S45.3.1", "sex": "男", "address": "高田町字館の沖12-3"}]}, headers=h)
    assert r.status_code == 201, r.text
    ev = r.json()["evacuees"][0]
    detail = staff.get(f"/api/evacuees/{ev['id']}").json()
    assert detail["decisions"][-1]["decision"] == "auto" and detail["decisions"][-1]["resident_id"] == "1001"
