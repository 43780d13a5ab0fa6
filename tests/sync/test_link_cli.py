"""Issue 16: `anpi sync --status` (events, bytes, estimated time), `anpi sync --max-kbps`, the dashboard line.

Real CLI, a real hub over loopback (SQLite), the real shelter database and staff screen.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sync.hub import server
from tests.hub.test_device_audit import anpi
from tests.sync.helpers import ThreadedServer
from tests.web.helpers import build_shelter, login, shelter_app


@pytest.fixture
def hub(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    app = server.create_hub_app(url)
    with ThreadedServer(app) as srv:
        yield {"ANPI_HUB_DATABASE_URL": url, "url": srv.url}
    app.state.engine.dispose()


def laptop(tmp_path: Path, hub: dict[str, str], evacuees: int) -> Path:
    from app.db import open_shelter_db
    from app.services.roster import EvacueeInput, register
    from sqlmodel import Session

    r = anpi("hub", "enroll", "第一小", "--json", env={"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]})
    db = build_shelter(tmp_path).db_path
    assert anpi("--db", db, "enroll", "--hub", hub["url"], "--code", json.loads(r.stdout)["code"], env={}).exit_code == 0
    engine = open_shelter_db(db)
    with Session(engine) as s:
        for i in range(evacuees):
            register(s, EvacueeInput(name=f"避難 {i}号", birth_date="1970-01-01", sex="女", address="岩手県陸前高田市高田町"),
                     by="t")
        s.commit()
    engine.dispose()
    return db


def status(db: Path) -> dict[str, Any]:
    r = anpi("--db", db, "sync", "--status", "--json", env={})
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_status_then_throttled_sync(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    db = laptop(tmp_path, hub, 40)
    before = status(db)
    assert before["events"] >= 40 and before["urgent"] >= 40 and before["bytes"] > 1000
    assert before["link_kbps"] is None and before["eta_seconds"] is None  # never measured yet
    r = anpi("--db", db, "sync", "--status", env={})
    assert "pending:" in r.stdout and "not measured yet" in r.stdout
    kbps = 8.0
    t = time.monotonic()
    r = anpi("--db", db, "sync", "--max-kbps", str(kbps), "--json", env={})
    took = time.monotonic() - t
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["wire"] == 2
    assert took >= 0.8 * (doc["bytes_up"] + doc["bytes_down"]) * 8 / (kbps * 1000), (took, doc)  # stayed under N kbit/s
    after = status(db)
    assert after["events"] == 0 and after["link_kbps"] > 0  # the link itself, measured without the pauses


def test_dashboard_shows_pending_size(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    db = laptop(tmp_path, hub, 5)
    for app in shelter_app(db):
        with TestClient(app) as c:
            login(c, "佐藤")
            page = c.get("/").text
    assert 'id="pending-size"' in page and "KB" in page
