"""Building and running the one-file binary, shared by tests/packaging/test_binary.py and
bench/binary_bench.py.

The binary is rebuilt only when a source file is newer than it (a build takes a minute or two),
and always runs with an empty environment (`env -i PATH=/usr/bin:/bin HOME=…`), like on a laptop
that has no Python: nothing from this checkout or its virtualenv can leak in.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
#: what goes into the binary: a change to any of these makes dist/anpi stale
SOURCE_DIRS = ("app", "matching", "sync", "fixtures", "kiosk_ui", "packaging")
SOURCE_FILES = ("pyproject.toml", "scripts/build-binary", "LICENSE", "NOTICE")
SOURCE_SUFFIXES = {".py", ".html", ".css", ".js", ".toml", ".mako", ".spec", ".txt", ".json", ".csv", ".svg", ".ttf"}


def newest_source_mtime() -> float:
    newest = max((ROOT / f).stat().st_mtime for f in SOURCE_FILES)
    for d in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(ROOT / d):
            dirnames[:] = [n for n in dirnames if n != "__pycache__"]
            for name in filenames:
                p = Path(dirpath, name)
                if p.suffix in SOURCE_SUFFIXES:
                    try:
                        newest = max(newest, p.stat().st_mtime)
                    except FileNotFoundError:  # someone's editor swapped the file just now
                        pass
    return newest


def ensure_binary(out_dir: Path = DIST) -> Path:
    """`ANPI_BINARY` if set (a prebuilt binary), else out_dir/anpi, rebuilt when older than the sources.

    Builds under an exclusive lock: a second build replacing dist/anpi while another process runs
    it makes the running binary read its embedded archive at stale offsets ("zlib.error: incorrect
    header check" mid-import) — that is what two test workers (or a test and bench/binary_bench.py)
    building at once did.
    """
    given = os.environ.get("ANPI_BINARY")
    if given:
        return Path(given).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _build_if_stale(out_dir)


def _build_if_stale(out_dir: Path) -> Path:
    binary = out_dir / "anpi"
    if binary.is_file() and binary.stat().st_mtime >= newest_source_mtime():
        return binary
    for attempt in (1, 2):  # once more after a pause: a file caught mid-save by someone's editor
        res = subprocess.run([str(ROOT / "scripts" / "build-binary"), str(out_dir)], cwd=ROOT,
                             capture_output=True, text=True, timeout=1800)
        if res.returncode == 0:
            return binary
        if attempt == 1:
            time.sleep(10)
    raise RuntimeError(f"scripts/build-binary failed twice:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")


def empty_env(home: Path) -> dict[str, str]:
    """What `env -i PATH=/usr/bin:/bin HOME=$home TMPDIR=$home/tmp ANPI_PASSPHRASE=…` leaves: no
    PYTHONPATH, no virtualenv, no other ANPI_* (the passphrase is how automation opens the
    encrypted database; the tests' raw reads of it use the same one). The one-file binary unpacks itself into TMPDIR; a private one keeps
    each run apart from whatever else the machine's /tmp holds (a run during the full suite once
    failed to unpack there and passed alone)."""
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    from tests.conftest import TEST_PASSPHRASE

    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp), "ANPI_PASSPHRASE": TEST_PASSPHRASE}


def run(binary: Path, home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], env=empty_env(home), cwd=home, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    started_in: float  # seconds from exec to the first 200 from /healthz


@contextmanager
def serving(binary: Path, home: Path, db: Path, *extra: str, command: str = "serve",
            timeout: float = 120) -> Iterator[Served]:
    """`anpi --db DB serve --port P` (or `demo`) until /healthz answers 200; stopped with SIGTERM afterwards."""
    port = free_port()
    log = (home / f"{command}-{port}.log").open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(binary), "--db", str(db), command, "--host", "127.0.0.1", "--port", str(port), *extra],
                            env=empty_env(home), cwd=home, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = t0 + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"anpi {command} exited with {proc.returncode}: "
                                   f"{(home / log.name).read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"/healthz did not answer within {timeout}s")
            time.sleep(0.05)
        yield Served(url, proc, time.perf_counter() - t0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the bootloader passes it on; uvicorn shuts down cleanly
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
