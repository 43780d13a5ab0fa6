"""Running the real app with uvicorn on a free 127.0.0.1 port, and the audit CLI, for the UI tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
