"""A daemon thread that does one job every N seconds: the background sync and the automatic backups.

Errors never escape the thread (a shelter service must keep running whatever the network or the
USB stick does); the last one is kept in ``last_error`` for the status page. ``trigger()`` asks for
a run now instead of at the end of the interval.
"""
from __future__ import annotations

import threading


class PeriodicThread:
    #: the thread's name, as seen in a debugger or `py-spy dump`
    thread_name = "anpi-periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One run of the job; subclasses say what."""
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def trigger(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._wake.wait(self.interval)
            self._wake.clear()
