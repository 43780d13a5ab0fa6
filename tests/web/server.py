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


#: where a test stands a tablet: another loopback address, so the server sees a peer that is not the
#: laptop's own browser (127.0.0.1) while no traffic leaves this machine's loopback
TABLET_SOURCE = "127.0.0.2"


@dataclass
class LanServer:
    """`anpi serve --lan` in a thread on 127.0.0.1: `base` is its URL for the laptop's browser and
    for tablets alike; a tablet's client connects from TABLET_SOURCE (httpx `local_address`, or
    Chromium through `tablet_relay`). The clients pin `cert_file`."""

    port: int
    base: str
    cert_file: Path
    cert_pem: str
    fingerprint: str
    app: object


@contextmanager
def serve_lan(db_path: Path, tmp_path: Path, *, auto_lock_seconds: int | None = None) -> Iterator[LanServer]:
    """The app as `anpi serve --lan` builds it (app.cli_lan: certificate stored in the database,
    HTTPS only, proxy headers off)."""
    import uvicorn

    from app import cli_lan
    from app.db import open_shelter_db
    from app.main import create_app

    port = free_port()
    engine = open_shelter_db(db_path)
    info, tls = cli_lan.prepare(engine, "127.0.0.1", port)
    cert_file = tmp_path / "pinned-cert.pem"
    cert_pem = tls.cert_file.read_text()
    cert_file.write_text(cert_pem)
    app = create_app(db_path, auto_lock_seconds=auto_lock_seconds, lan=info)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", proxy_headers=False,
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
        yield LanServer(port, f"https://127.0.0.1:{port}", cert_file, cert_pem, info.fingerprint, app)
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.engine.dispose()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def tablet_relay(source: str = TABLET_SOURCE, *, any_host: bool = False) -> Iterator[str]:
    """An HTTP CONNECT relay on 127.0.0.1 whose outgoing connections leave from `source`: Chromium
    cannot pick its source address, so a tablet's browser context goes through this (TLS stays
    end to end: the relay only copies bytes). It only ever connects to 127.0.0.1; with `any_host`
    a tablet may use another address in its URL (the README's pictures show the hotspot's), which
    still reaches 127.0.0.1 on the same port. Yields the proxy URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        target = head.split(b" ")[1].decode()
        host, port = target.rsplit(":", 1)
        if head.split(b" ")[0] != b"CONNECT" or not (any_host or host in ("127.0.0.1", "localhost")):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")  # loopback only: nothing leaves this machine
            conn.close()
            return
        try:
            out = socket.create_connection(("127.0.0.1", int(port)), source_address=(source, 0))
        except OSError:
            conn.close()
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=_pipe, args=(conn, out), daemon=True).start()
        _pipe(out, conn)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, name="anpi-test-tablet-relay", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()
