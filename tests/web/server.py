"""Running the real app with uvicorn on a free 127.0.0.1 port, and the audit CLI, for the UI tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
from typer.testing import CliRunner

from app.cli_admin import audit_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(db_path: Path, *, auto_lock_seconds: int | None = None) -> Iterator[str]:
    """uvicorn serving create_app(db_path) in a thread; yields the base URL."""
    import uvicorn

    from app.main import create_app

    app = create_app(db_path, auto_lock_seconds=auto_lock_seconds)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="anpi-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.engine.dispose()


def audit_cli(db_path: Path, *args: str) -> tuple[int, str]:
    """`anpi --db DB audit …` through the same typer sub-app the real CLI mounts."""
    root = typer.Typer()

    @root.callback()
    def _main(ctx: typer.Context, db: Path = typer.Option(..., "--db")) -> None:
        ctx.obj = {"db_path": db}

    root.add_typer(audit_app, name="audit")
    res = CliRunner().invoke(root, ["--db", str(db_path), "audit", *args], catch_exceptions=False)
    return res.exit_code, res.stdout + res.stderr


@dataclass
class LanServer:
    """`anpi serve --lan` in a thread: the laptop's own URL (loopback, no pairing) and the URL a
    tablet on the shelter network uses (this machine's LAN address, so the server sees a
    non-loopback peer and asks for pairing), with the certificate the clients pin."""

    port: int
    laptop: str
    tablet: str
    cert_file: Path
    cert_pem: str
    fingerprint: str
    app: object


def lan_address() -> str | None:
    from app.services.lan_tls import lan_addresses

    found = lan_addresses()
    return found[0] if found else None


@contextmanager
def serve_lan(db_path: Path, tmp_path: Path, *, auto_lock_seconds: int | None = None) -> Iterator[LanServer]:
    """The app as `anpi serve --lan` builds it (app.cli_lan: certificate stored in the database,
    HTTPS only, proxy headers off), listening on every address of a free port."""
    import uvicorn

    from app import cli_lan
    from app.db import open_shelter_db
    from app.main import create_app

    address = lan_address()
    if address is None:
        import pytest

        pytest.skip("this machine has no non-loopback address to stand in for the shelter network")
    port = free_port()
    engine = open_shelter_db(db_path)
    info, tls = cli_lan.prepare(engine, "0.0.0.0", port)
    engine.dispose()
    cert_file = tmp_path / "pinned-cert.pem"
    cert_pem = tls.cert_file.read_text()
    cert_file.write_text(cert_pem)
    app = create_app(db_path, auto_lock_seconds=auto_lock_seconds, lan=info)
    config = uvicorn.Config(app, host="0.0.0.0", port=port, log_level="warning", lifespan="off", proxy_headers=False,
                            ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.key_file),
                            ssl_keyfile_password=tls.key_password)
    config.load()
    cli_lan.cleanup(tls)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="anpi-test-lan-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield LanServer(port, f"https://127.0.0.1:{port}", f"https://{address}:{port}", cert_file, cert_pem,
                        info.fingerprint, app)
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.engine.dispose()
