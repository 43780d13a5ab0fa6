"""Issue 16 (security item): a laptop that only ever syncs by USB still reports its audit chain head.

The v2 bundle carries the head and new audit entries, answering for the head the hub acknowledged in
the last receipt, so `anpi hub audit verify --device …` sees a cut tail exactly as it does for
`anpi sync`. Real CLI on both sides, a real hub over loopback for the enrolment only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.hub import server
from tests.hub.test_device_audit import anpi, audit_head, cut_tail, write
from tests.sync.helpers import ThreadedServer
from tests.web.helpers import build_shelter


@pytest.fixture
def hub(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    app = server.create_hub_app(url)
    with ThreadedServer(app) as srv:
        yield {"ANPI_HUB_DATABASE_URL": url, "url": srv.url}
    app.state.engine.dispose()


def usb_round(tmp_path: Path, db: Path, hub: dict[str, str], n: int) -> Any:
    """Export a bundle, import it at the hub, carry the receipt back; returns the hub's output."""
    bundle, receipt = tmp_path / f"b{n}.anpi", tmp_path / f"r{n}.receipt"
    r = anpi("--db", db, "bundle", "export", "--out", bundle, env={})
    assert r.exit_code == 0, r.output
    assert bundle.read_bytes().startswith(b"ANPI-BUNDLE 2\n")
    out = anpi("hub", "bundle", "import", bundle, "--receipt-out", receipt, env={"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]})
    assert out.exit_code == 0, out.output
    r = anpi("--db", db, "bundle", "import", receipt, env={})
    assert r.exit_code == 0, r.output
    return out


def verify(hub: dict[str, str]) -> Any:
    return anpi("hub", "audit", "verify", "--device", "第一小", "--json", env={"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]})


def test_usb_only_laptop_with_a_cut_audit_tail_is_caught(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    env = {"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]}
    r = anpi("hub", "enroll", "第一小", "--json", env=env)
    db = build_shelter(tmp_path).db_path
    r = anpi("--db", db, "enroll", "--hub", hub["url"], "--code", json.loads(r.stdout)["code"], env={})
    assert r.exit_code == 0, r.output
    write(db, 10)
    usb_round(tmp_path, db, hub, 1)
    doc = json.loads(verify(hub).stdout)
    assert doc["ok"] and doc["entries_held"] >= 10, doc
    write(db, 30, who="鈴木", action="search", subjects=["resident:1004"])  # what the insider wants gone
    usb_round(tmp_path, db, hub, 2)
    assert json.loads(verify(hub).stdout)["ok"]
    head = audit_head(db)
    cut_tail(db, head - 30)
    write(db, 40)  # the chain grows past the old head again
    out = usb_round(tmp_path, db, hub, 3)
    assert "audit log is reported as cut" in out.stderr, out.output
    r = verify(hub)
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and not doc["ok"] and [p["status"] for p in doc["problems"]] == ["cut"], r.output
    assert doc["entries_held"] >= head  # the hub kept the copies of what was deleted


def test_usb_only_laptop_untouched_stays_ok(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    env = {"ANPI_HUB_DATABASE_URL": hub["ANPI_HUB_DATABASE_URL"]}
    r = anpi("hub", "enroll", "第一小", "--json", env=env)
    db = build_shelter(tmp_path).db_path
    anpi("--db", db, "enroll", "--hub", hub["url"], "--code", json.loads(r.stdout)["code"], env={})
    for n in range(3):
        write(db, 5)
        out = usb_round(tmp_path, db, hub, n)
        assert "audit log" not in out.stderr
    r = verify(hub)
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"], r.output
