"""Issue 18 (2): a laptop's clock never decides the status HQ sees.

Real processes on loopback, the laptop's clock really wrong: a uvicorn hub (PostgreSQL and SQLite)
and the `anpi` CLI plus a small staff-action script, run under Debian's ``faketime`` two days
behind for the laptop whose clock was reset by a power cut.

- the shelter laptop checks a person in again with a correct clock and syncs; then its clock is
  reset two days back and staff check the person out: the check-out's time is *earlier* than the
  check-in's, yet the hub shows the person gone (one device's events go in (epoch, seq) order);
- a replacement laptop restored from that laptop's backup, also two days behind, checks out a
  person the first laptop checked in (another stream): the hub corrects its times by the offset
  it measured at the sync and shows the person gone;
- the laptop keeps its own time for display (the stay's ``at`` on the hub is the laptop's), the
  measured offset is recorded on both sides, and the shelter dashboard warns in Japanese.
"""
from __future__ import annotations

import json
import shutil
from tests.sync.helpers import connect_file
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from sync.hub import store
from tests.sync.conftest import drop_pg_schema, new_pg_schema, require_pg
from tests.sync.helpers import free_port
from tests.sync.test_cloned_laptops import anpi, ok, roster
from tests.sync.test_processes import ROOT, HubProcess, env

FAKETIME = shutil.which("faketime")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(FAKETIME is None, reason="Debian package faketime is not installed")]
TWO_DAYS_BEHIND = "-2d"

STAFF = """
import sys
from sqlmodel import Session
from app.db import open_shelter_db
from app.services import evacuees
engine = open_shelter_db(sys.argv[1])
with Session(engine) as s:
    getattr(evacuees, sys.argv[2])(s, sys.argv[3], by="staff")
    s.commit()
"""


def staff(db: Path, action: str, evacuee_id: str, *, clock: str | None = None) -> None:
    """A staff member's check-in / check-out through the shelter's own service, in its own process."""
    cmd = [sys.executable, "-c", STAFF, str(db), action, evacuee_id]
    if clock:
        cmd = [FAKETIME, "-f", clock, *cmd]  # type: ignore[list-item]
    r = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def anpi_at(clock: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([FAKETIME, "-f", clock, sys.executable, "-m", "app.cli", *map(str, args)],  # type: ignore[list-item]
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=180)


@pytest.fixture(params=["postgres", "sqlite"])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    require_pg()
    schema, url = new_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


def one(db: Path, sql: str, *args: object) -> object:
    con = connect_file(db)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def hub_status_of(url: str, evacuee_id: str) -> str:
    engine = store.open_hub_engine(url)
    try:
        with engine.connect() as c:
            return str(c.exec_driver_sql(
                f"select status from hub_evacuee where evacuee_id = '{evacuee_id}'").scalar_one())
    finally:
        engine.dispose()


def test_a_laptop_two_days_behind_checks_people_out_and_hq_sees_them_gone(tmp_path: Path, hub_url: str) -> None:
    assert "2d" in TWO_DAYS_BEHIND
    hub = HubProcess(hub_url, free_port())
    try:
        db = tmp_path / "daini.db"
        ok(anpi("--db", db, "roster", "import", roster(tmp_path, "daini", 3)))
        code = json.loads(ok(anpi("hub", "enroll", "daini", "--json", "--database-url", hub_url)).stdout)["code"]
        ok(anpi("--db", db, "enroll", "--hub", hub.url, "--code", code, "--shelter-name", "daini"))
        first, second = [r[0] for r in connect_file(db).execute("select id from evacuee order by id limit 2")]
        for person in (first, second):  # out for the day and back in the evening, clock still right
            staff(db, "check_out", person)
            staff(db, "check_in", person)
        ok(anpi("--db", db, "sync"))
        assert hub_status_of(hub_url, first) == "in_shelter"
        (tmp_path / "usb").mkdir()
        ok(anpi("--db", db, "backup", "--out", tmp_path / "usb" / "daini.bak"))

        # power cut: the laptop's clock comes back two days behind; staff check the first person out
        staff(db, "check_out", first, clock=TWO_DAYS_BEHIND)
        at = [r[0] for r in connect_file(db).execute(
            "select at from stayevent where evacuee_id = ? order by rowid", (first,))]
        assert str(at[-1]) < str(at[-2])  # the check-out is dated before the check-in
        r = anpi_at(TWO_DAYS_BEHIND, "--db", db, "sync")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert hub_status_of(hub_url, first) == "left"  # not "in_shelter": seq order, not the clock
        offset = one(db, "select value from sync_cursor where name = 'sync/clock-offset-seconds'")
        assert 2 * 86400 - 600 < int(offset) < 2 * 86400 + 600  # type: ignore[arg-type]

        # a replacement laptop restored from the backup, its clock also two days behind, checks out
        # the second person (whom the first laptop checked in with a correct clock)
        spare = tmp_path / "spare.db"
        ok(anpi_at(TWO_DAYS_BEHIND, "--db", spare, "restore", tmp_path / "usb" / "daini.bak", "--yes"))
        staff(spare, "check_out", second, clock=TWO_DAYS_BEHIND)
        r = anpi_at(TWO_DAYS_BEHIND, "--db", spare, "sync")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert hub_status_of(hub_url, second) == "left"

        engine = store.open_hub_engine(hub_url)
        try:
            with engine.connect() as c:
                shown = c.exec_driver_sql(f"select at from hub_stay where evacuee_id = '{second}' "
                                          "and kind = 'check_out' order by at").scalars().all()
                offsets = c.exec_driver_sql("select offset_seconds from hub_device_clock").scalars().all()
        finally:
            engine.dispose()
        laptop_day = datetime.fromisoformat(str(shown[0]))  # the spare's check-out: earliest by its clock
        assert (datetime.now(laptop_day.tzinfo) - laptop_day).days >= 1  # the laptop's own time, kept for display
        assert offsets and all(abs(o - 2 * 86400) < 600 for o in offsets)
    finally:
        hub.stop()


def test_dashboard_warns_in_japanese_about_a_wrong_clock_and_forked_events(tmp_path: Path) -> None:
    """The dashboard's sync card speaks plain Japanese about what the last sync found."""
    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.services import journal
    from sync import outbox

    engine = open_shelter_db(tmp_path / "s.db")
    with Session(engine) as s:
        assert journal.sync_warnings(s) == []
        outbox.set_cursor(s, outbox.CLOCK_OFFSET, 2 * 86400)
        outbox.set_cursor(s, outbox.CLOCK_MEASURED, 1_800_000_000)
        outbox.set_cursor(s, outbox.FORKED_EVENTS, 6)
        s.commit()
        warnings = journal.sync_warnings(s)
        assert any("時計" in w and "約2.0日遅れて" in w for w in warnings)
        assert any("6件の記録が本部に届いていません" in w for w in warnings)
        assert not any(ch in "".join(warnings) for ch in "`{}")  # no commands or JSON for staff
        outbox.set_cursor(s, outbox.CLOCK_OFFSET, 120)  # two minutes: no warning
        outbox.set_cursor(s, outbox.FORKED_EVENTS, 0)
        s.commit()
        assert journal.sync_warnings(s) == []
    engine.dispose()


def test_the_dashboard_page_shows_the_sync_warnings(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from app.db import open_shelter_db
    from app.main import create_app
    from sync import outbox
    from tests.web.helpers import build_shelter, login

    shelter = build_shelter(tmp_path)
    engine = open_shelter_db(shelter.db_path)
    with Session(engine) as s:
        outbox.set_cursor(s, outbox.CLOCK_OFFSET, -3 * 3600)
        outbox.set_cursor(s, outbox.CLOCK_MEASURED, 1_800_000_000)
        outbox.set_cursor(s, outbox.FORKED_EVENTS, 2)
        s.commit()
    engine.dispose()
    app = create_app(shelter.db_path, auto_lock_seconds=3600)
    client = TestClient(app)
    login(client, "佐藤")
    page = client.get("/dashboard").text
    assert 'id="sync-warning"' in page
    assert "2件の記録が本部に届いていません" in page and "約3.0時間進んでいます" in page
    app.state.engine.dispose()
