"""Every body the hub receives has a limit, enforced while it streams (issue 12, item 8).

`anpi hub serve` runs as its own process on PostgreSQL with a 10 MB push limit; a laptop-sized
50 MB push body streamed without a length is refused 413 and the hub's RSS (from /proc) does not
grow with it. The desks' JSON routes and the PFIF import have their own limits.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from sync.hub import tenants
from sync.hub.store import open_hub_engine
from tests.hub.conftest import PgHub
from tests.web.server import free_port
from tests.web.test_limits import MB, _rss_kb, stop

A = "075469"


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"events": ['
    block = b'{"stream": "x", "seq": 1, "payload": "' + b"a" * (MB - 64) + b'"},'
    sent = 0
    while sent < total:
        sent += len(block)
        yield block
    yield b"{}]}"


def test_hub_bodies_are_cut_off_while_streaming(pg_hub: PgHub) -> None:
    engine = open_hub_engine(pg_hub.url)
    tenants.add_municipality(engine, A, "双葉町")
    _, token = tenants.add_user(engine, A, "本部", "hq")
    engine.dispose()
    port = free_port()
    env = {**os.environ, "ANPI_HUB_PUSH_MAX_MB": "10", "ANPI_PFIF_UPLOAD_MAX_MB": "2", "ANPI_HUB_BODY_MAX_MB": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "hub", "serve", "--database-url", pg_hub.url,
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "anpi hub serve did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=120) as c:
            before = _rss_kb(proc.pid)
            r = c.post("/v1/push", content=_chunks(50 * MB), headers={"Content-Type": "application/json"})
            assert r.status_code == 413, r.text[:300]
            assert r.json()["error"] == "too_large" and r.json()["limit_bytes"] == 10 * MB
            grown = _rss_kb(proc.pid) - before
            assert grown < 8 * 1024, f"hub RSS grew by {grown} kB for a refused 50 MB body"
            auth = {"Authorization": f"Bearer {token}"}
            for path, size in (("/v1/hq/pfif/import", 3 * MB), ("/v1/hq/inquiries", 2 * MB),
                               ("/v1/hq/certificates", 2 * MB), ("/v1/enroll", 2 * MB)):
                r = c.post(path, content=b"x" * size, headers=auth)
                assert r.status_code == 413 and "大きすぎます" in r.json()["detail_ja"], (path, r.status_code)
            assert c.get("/v1/hq/shares", headers=auth).status_code == 200  # still serving
    finally:
        stop(proc)


def test_hub_bundle_import_refuses_a_file_over_the_limit(pg_hub: PgHub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`anpi hub bundle import` reads a bundle whole to verify it: one over the limit is refused unread."""
    from typer.testing import CliRunner

    from app.cli import app as anpi

    big = tmp_path / "huge.anpibundle"
    with big.open("wb") as fh:
        fh.truncate(3 * MB)  # sparse: no need to write 3 MB
    r = CliRunner().invoke(anpi, ["hub", "bundle", "import", str(big), "--database-url", pg_hub.url],
                           env={"ANPI_HUB_BUNDLE_MAX_MB": "1"})
    assert r.exit_code == 1 and "over the limit of 1 MB" in r.output and "ANPI_HUB_BUNDLE_MAX_MB" in r.output, r.output
