"""Stopping the servers a benchmark started: ask politely, then insist."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:  # type: ignore[type-arg]
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL; nothing for None or a finished process."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
