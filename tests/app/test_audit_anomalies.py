"""監査ログの異常報告: synthetic audit logs with and without an insider; the real API and CLI at the shelter."""

from __future__ import annotations

import json
import re
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.audit_models import AuditEntry
from app.db import open_shelter_db
from app.services import audit
from app.services import audit_anomalies as aa
from tests.conftest import Cli
from tests.web.helpers import ADDR, api_csrf, build_shelter, login, shelter_app

REGISTERED = [f"resident:{1000 + i}" for i in range(40)]  # residents who registered at this shelter
STRANGERS = [f"resident:{5000 + i}" for i in range(200)]  # residents who never came here
VICTIM = "resident:7777"  # 閲覧制限
CTX = aa.Context(registered=frozenset(REGISTERED), restricted=frozenset({VICTIM, "resident:7778"}))
DAY = datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc)  # 10:00 in Japan


class Log:
    """A synthetic audit log: entries shaped like `audit.as_dict`."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, user: str, action: str, subjects: list[str], detail: dict[str, Any] | None = None,
            at: datetime | None = None, role: str = "staff") -> int:
        i = len(self.entries) + 1
        self.entries.append({"id": i, "at": (at or DAY + timedelta(minutes=i)).replace(tzinfo=None).isoformat(),
                             "user_id": f"U-{user}", "user_name": user, "role": role, "action": action,
                             "screen": "GET /api/search", "subjects": subjects, "detail": detail or {}})
        return i


def honest_day(log: Log, rng: random.Random, users: tuple[str, ...] = ("佐藤", "田中", "伊藤")) -> None:
    """A busy honest day: intake searches (the candidate list has the arrival and a few others, some of them
    strangers), a retyped address now and then, looks at evacuees, daytime exports by HQ."""
    for n in range(300):
        user = rng.choice(users)
        arrival = rng.choice(REGISTERED)
        others = rng.sample(STRANGERS, rng.randint(0, 4))
        address = rng.choice(["", "高田町1", "高田町字館の沖12-3"])
        log.add(user, "search", [arrival, *others], {"query": {"name": "誰か", "address": address}})
        if rng.random() < 0.2:  # typed the address again, differently
            log.add(user, "search", [arrival], {"query": {"name": "誰か", "address": "高田町字館の沖12"}})
        if rng.random() < 0.3:
            log.add(user, "view", [f"evacuee:E{n}", arrival])
    log.add(users[0], "search", [REGISTERED[0], VICTIM], {"query": {"name": "山﨑"}})  # one chance candidate
    for h in (1, 3, 8):  # 10:00, 12:00, 17:00 in Japan
        log.add("本部", "export", REGISTERED[:10], {"file": "list.xlsx"}, at=DAY + timedelta(hours=h), role="hq")


def insider(log: Log, name: str = "鈴木") -> dict[str, list[int]]:
    """A staff login used to find one person: hunting strangers, walking the victim's address, a night export."""
    ids: dict[str, list[int]] = {"hunt": [], "oracle": [], "night": []}
    for s in STRANGERS[:30]:
        ids["hunt"].append(log.add(name, "search", [s], {"query": {"name": "山﨑 花"}}))
    for street in ["米崎町1", "米崎町2", "米崎町2-1", "米崎町3", "米崎町2-2", "米崎町2-3"]:
        ids["oracle"].append(log.add(name, "search", [VICTIM, STRANGERS[0]], {"query": {"name": "山﨑 花", "address": street}}))
    ids["night"].append(log.add(name, "export", REGISTERED, {"file": "x.csv"}, at=DAY + timedelta(hours=16)))  # 02:00
    return ids


def by_rule(flags: list[aa.Flag]) -> dict[tuple[str, str], aa.Flag]:
    return {(f.user, f.rule): f for f in flags}


def test_honest_staff_are_not_flagged() -> None:
    log = Log()
    honest_day(log, random.Random(1))
    assert aa.anomalies(log.entries, CTX) == []


def test_the_insider_is_flagged_by_every_rule_with_the_entries_behind_it() -> None:
    log = Log()
    honest_day(log, random.Random(2))
    ids = insider(log)
    honest_day(log, random.Random(3))
    flags = by_rule(aa.anomalies(log.entries, CTX))
    assert {u for u, _ in flags} == {"鈴木"}, flags.keys()
    assert set(flags[("鈴木", "unregistered_lookups")].entry_ids) >= set(ids["hunt"])
    oracle = flags[("鈴木", "address_oracle")]
    assert oracle.entry_ids == ids["oracle"] and oracle.subjects == [VICTIM]
    assert flags[("鈴木", "odd_hour_exports")].entry_ids == ids["night"]
    assert flags[("鈴木", "restricted_lookups")].entry_ids == ids["oracle"]
    for f in flags.values():  # plain Japanese for the screen, no addresses
        assert f.summary_ja and f.rule_ja
        assert "米崎町" not in json.dumps(f.as_dict(), ensure_ascii=False)


@pytest.mark.parametrize("rule, below", [
    ("unregistered_lookups", aa.UNREGISTERED_MIN_SEARCHES - 1),
    ("address_oracle", aa.ORACLE_MIN_ADDRESSES - 1),
])
def test_thresholds_are_the_documented_ones(rule: str, below: int) -> None:
    log = Log()
    if rule == "unregistered_lookups":
        for s in STRANGERS[:below]:
            log.add("鈴木", "search", [s])
    else:
        for k in range(aa.ORACLE_MIN_SEARCHES + 3):
            log.add("鈴木", "search", [VICTIM], {"query": {"address": f"米崎町{k % below}"}})
    assert not [f for f in aa.anomalies(log.entries, CTX) if f.rule == rule]
    log.add("鈴木", "search", [STRANGERS[150]] if rule == "unregistered_lookups" else [VICTIM],
            {"query": {"address": "米崎町99"}})
    assert [f for f in aa.anomalies(log.entries, CTX) if f.rule == rule]


def test_hours_are_japan_time() -> None:
    log = Log()
    log.add("本部", "export", [], at=datetime(2026, 11, 21, 12, 59, tzinfo=timezone.utc))  # 21:59 JST
    log.add("本部", "export", [], at=datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc))  # 06:00 JST
    assert aa.anomalies(log.entries, CTX) == []
    late = log.add("本部", "backup", [], at=datetime(2026, 11, 21, 13, 0, tzinfo=timezone.utc))  # 22:00 JST
    assert [f.entry_ids for f in aa.anomalies(log.entries, CTX)] == [[late]]


def _search(client: TestClient, token: str, **q: str) -> None:
    r = client.get("/api/search", params=q, headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text


def test_shelter_report_on_the_real_log(tmp_path: Path) -> None:
    """Through the real search API: 鈴木 walks 山﨑 花's (閲覧制限) address; 佐藤 searches the arrivals."""
    sh = build_shelter(tmp_path)
    for app in shelter_app(sh.db_path):
        honest, suzuki = TestClient(app), TestClient(app)
        login(honest, "佐藤")
        login(suzuki, "鈴木")
        th, ts = api_csrf(honest), api_csrf(suzuki)
        for _ in range(3):
            _search(honest, th, name="渡辺 稔", birth="S30.5.5", address="高田町2")
            _search(honest, th, name="佐々木 健", address="気仙町3")
        for street in ["米崎町1", "米崎町2", "米崎町2-1", "米崎町3", "米崎町2-2"]:
            _search(suzuki, ts, name="山﨑 花", address=f"岩手県陸前高田市{street}")
        for _ in range(20):
            _search(suzuki, ts, name="髙橋 一郎", address=ADDR)
    cli = Cli(sh.db_path)
    out = cli.json("audit", "anomalies", "--json")
    flags = by_rule([aa.Flag(**{k: v for k, v in f.items() if k != "rule_ja"}) for f in out["flags"]])  # type: ignore[index]
    assert {u for u, _ in flags} == {"鈴木"}, flags.keys()
    assert {"address_oracle", "restricted_lookups", "unregistered_lookups"} <= {r for _, r in flags}
    assert flags[("鈴木", "address_oracle")].subjects == ["resident:1004"]
    assert "米崎町" not in json.dumps(out, ensure_ascii=False)
    engine = open_shelter_db(sh.db_path)
    with Session(engine) as s:
        assert [e for e in audit.query(s) if e.screen == "cli: anpi audit anomalies"]  # the look is audited
        behind = [s.get(AuditEntry, i) for i in flags[("鈴木", "address_oracle")].entry_ids]
        assert all(e is not None and e.user_name == "鈴木" and e.action == "search" for e in behind)
    engine.dispose()


def test_admin_screen_links_each_flag_to_its_entries(tmp_path: Path) -> None:
    """管理 opens 監査ログの異常: plain Japanese, 宛名番号 not addresses, links that open exactly those entries."""
    sh = build_shelter(tmp_path)
    for app in shelter_app(sh.db_path):
        suzuki, admin = TestClient(app), TestClient(app)
        login(suzuki, "鈴木")
        ts = api_csrf(suzuki)
        for street in ["米崎町1", "米崎町2", "米崎町2-1", "米崎町3", "米崎町2-2"]:
            _search(suzuki, ts, name="山﨑 花", address=f"岩手県陸前高田市{street}")
        login(admin, "管理")
        assert "/admin/audit/anomalies" in admin.get("/admin/audit").text
        page = admin.get("/admin/audit/anomalies")
        assert page.status_code == 200
        html = page.text
        assert "住所を5通りに変えた検索5回" in html and "宛名番号 1004" in html and "鈴木" in html
        assert "米崎町" not in html and "山﨑" not in html  # nothing the report adds beyond ids
        assert "佐藤" not in html
        link = re.search(r'class="entries-link" href="([^"]+)"', html)
        assert link, html
        href = link.group(1).replace("&amp;", "&")
        listed = admin.get(href.split("#")[0]).text
        ids = re.findall(r'<tr id="entry-(\d+)">', listed)
        assert len(ids) == 5 and href.endswith(f"#entry-{min(map(int, ids))}")
        assert TestClient(app).get("/admin/audit/anomalies", follow_redirects=False).status_code in (302, 303, 401)
