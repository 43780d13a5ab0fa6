"""The CLI contract (ARCHITECTURE.md §2) for the sync commands, driven through typer like a user would."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli_sync import standalone
from sync.hub import server
from tests.sync.helpers import ThreadedServer, append_events, make_app_shelter as make_shelter, random_events

runner = CliRunner()


def run(*args: str, env: dict | None = None):  # noqa: ANN201
    return runner.invoke(standalone, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture
def live_hub(hub_db_url: str):  # noqa: ANN201
    app = server.create_hub_app(hub_db_url)
    with ThreadedServer(app) as srv:
        yield hub_db_url, srv.url
    app.state.engine.dispose()


def test_full_cli_flow(tmp_path: Path, live_hub) -> None:  # noqa: ANN001
    db_url, url = live_hub
    env = {"ANPI_HUB_DATABASE_URL": db_url}
    r = run("hub", "enroll", "第二中学校", "--json", env=env)
    assert r.exit_code == 0, r.output
    code = json.loads(r.stdout)["code"]
    shelter_db = tmp_path / "s.db"
    sh = make_shelter(tmp_path, "s")  # same file the CLI opens
    append_events(sh, random_events(random.Random(0), sh, 40))
    r = run("--db", str(sh.path), "enroll", "--hub", url, "--code", code, "--shelter-name", "第二中学校")
    assert r.exit_code == 0 and "enrolled device" in r.stdout, r.output
    r = run("--db", str(sh.path), "sync")
    assert r.exit_code == 0 and "0 pending" in r.stdout, r.output
    r = run("hub", "status", "--json", "--database-url", db_url)
    st = json.loads(r.stdout)
    assert set(st) == {"devices", "events", "evacuees", "people", "forks", "review_items", "replication"}
    assert st["replication"]["role"] == "primary" and st["replication"]["acks_synchronous"] is False
    assert st["devices"] == 1 and st["events"] == 40
    # bundle path
    append_events(sh, random_events(random.Random(1), sh, 7))
    r = run("--db", str(sh.path), "bundle", "export", "--out", str(tmp_path / "usb" / "b.anpi"))
    assert r.exit_code == 0 and "7 events" in r.stdout, r.output
    r = run("hub", "bundle", "import", str(tmp_path / "usb" / "b.anpi"), "--receipt-out", str(tmp_path / "r"), env=env)
    assert r.exit_code == 0 and "7 new" in r.stdout, r.output
    r = run("hub", "bundle", "import", str(tmp_path / "usb" / "b.anpi"), env=env)
    assert r.exit_code == 0 and r.stdout.startswith("already imported"), r.output
    r = run("--db", str(sh.path), "bundle", "import", str(tmp_path / "r"))
    assert r.exit_code == 0 and "7 events newly acknowledged, 0 still pending" in r.stdout, r.output
    del shelter_db


def test_cli_failures_are_one_line_and_non_zero(tmp_path: Path, live_hub) -> None:  # noqa: ANN001
    db_url, url = live_hub
    env = {"ANPI_HUB_DATABASE_URL": db_url}
    db = tmp_path / "s.db"
    r = run("--db", str(db), "sync")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "not enrolled" in r.stderr
    r = run("--db", str(db), "enroll", "--hub", url, "--code", "AAAA-BBBB-CCCC-DDDD")
    assert r.exit_code == 1 and "unknown enrolment code" in r.stderr
    r = run("--db", str(db), "enroll", "--hub", "http://127.0.0.1:9", "--code", "AAAA")
    assert r.exit_code == 1 and "unreachable" in r.stderr
    (tmp_path / "bad.anpi").write_bytes(b"ANPI-BUNDLE 1\n{\"bundle")
    r = run("hub", "bundle", "import", str(tmp_path / "bad.anpi"), env=env)
    assert r.exit_code == 1 and r.stderr.startswith("error: bundle is truncated") and r.stderr.count("\n") == 1
    r = run("hub", "status")
    assert r.exit_code == 1 and "ANPI_HUB_DATABASE_URL" in r.stderr


def test_sync_exit_status_reflects_pending(tmp_path: Path, live_hub) -> None:  # noqa: ANN001
    db_url, url = live_hub
    env = {"ANPI_HUB_DATABASE_URL": db_url}
    code = json.loads(run("hub", "enroll", "x", "--json", env=env).stdout)["code"]
    sh = make_shelter(tmp_path, "s")
    append_events(sh, random_events(random.Random(0), sh, 5))
    assert run("--db", str(sh.path), "enroll", "--hub", url, "--code", code).exit_code == 0
    r = run("--db", str(sh.path), "sync", "--hub", "http://127.0.0.1:9", "--retries", "0", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["pending"] == 5 and "5 events still pending" in r.stderr
    r = run("--db", str(sh.path), "sync", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] is True
    r = run("hub", "revoke", "x", env=env)
    assert r.exit_code == 0
    r = run("--db", str(sh.path), "sync")
    assert r.exit_code == 1 and "revoked" in r.stderr
