"""How many wrong PINs (and setup codes) a client may try, without letting anyone lock others out.

Why not lock the account: a lock that holds "even against the right PIN" for everybody lets one
person at any browser keep every listed account locked, by typing five wrong PINs for each name
on the 交代 screen every five minutes. So the counts are kept per client (its IP address):

- per (client, account): after `max_failures` wrong tries in a row, that client may not try that
  account for `lockout_seconds` — even with the right PIN. The same person at another laptop or
  tablet (another client) still logs in with their right PIN.
- per client: more than `client_max_failures` wrong tries within `client_window_seconds`, over
  any accounts, block that client from every login for `lockout_seconds` (guessing across names).
- a right PIN clears that (client, account) count.

In memory only (like browser sessions): a restart of `anpi serve` forgets the counts. Numbers
are settings (`app.config.Settings`: ANPI_MAX_PIN_FAILURES, ANPI_PIN_LOCKOUT_SECONDS,
ANPI_CLIENT_MAX_PIN_FAILURES, ANPI_CLIENT_PIN_WINDOW_SECONDS).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """Why a try is refused before the PIN is even checked, and for how many more seconds."""

    scope: str  # "account" (this client, this account) | "client" (this client, every account)
    seconds_left: int

    @property
    def message(self) -> str:
        return f"too many wrong PINs from this device: try again in {self.seconds_left} s"

    @property
    def message_ja(self) -> str:
        minutes = max(1, -(-self.seconds_left // 60))
        if self.scope == "client":
            return f"この端末から暗証番号を何度も間違えたため、この端末でのログインをあと{minutes}分間ロックしています"
        return f"暗証番号を続けて間違えたため、この端末からこの名前でのログインをあと{minutes}分間ロックしています"


class LoginThrottle:
    """Thread-safe failure counts per client and per (client, account)."""

    def __init__(self, *, max_failures: int = 5, lockout_seconds: float = 300, client_max_failures: int = 20,
                 client_window_seconds: float = 300, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.client_max_failures = client_max_failures
        self.client_window_seconds = client_window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pair: dict[tuple[str, str], int] = {}  # consecutive failures
        self._pair_until: dict[tuple[str, str], float] = {}
        self._client_fails: dict[str, deque[float]] = {}
        self._client_until: dict[str, float] = {}

    def refusal(self, client: str, account: str) -> Refusal | None:
        """A `Refusal` when this client may not try this account now, else None."""
        now = self._clock()
        with self._lock:
            for scope, until in (("client", self._client_until.get(client, 0.0)),
                                 ("account", self._pair_until.get((client, account), 0.0))):
                if until > now:
                    return Refusal(scope, int(until - now + 0.999))
        return None

    def failed(self, client: str, account: str) -> int:
        """Count one wrong try; returns how many tries this client has left on this account (0: locked now)."""
        now = self._clock()
        with self._lock:
            key = (client, account)
            n = self._pair.get(key, 0) + 1
            if n >= self.max_failures:
                self._pair_until[key] = now + self.lockout_seconds
                n = 0
            self._pair[key] = n
            fails = self._client_fails.setdefault(client, deque())
            fails.append(now)
            while fails and fails[0] <= now - self.client_window_seconds:
                fails.popleft()
            if len(fails) > self.client_max_failures:
                self._client_until[client] = now + self.lockout_seconds
                fails.clear()
            self._purge(now)
            return self.max_failures - n if n else 0

    def succeeded(self, client: str, account: str) -> None:
        with self._lock:
            self._pair.pop((client, account), None)

    def _purge(self, now: float) -> None:
        """Forget expired locks so that a long-running server does not collect every address it saw."""
        if len(self._pair_until) + len(self._client_until) < 1024:
            return
        for d in (self._pair_until, self._client_until):
            for k in [k for k, until in d.items() if until <= now]:
                del d[k]
