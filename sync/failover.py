"""Several hub URLs per laptop: try the next hub when one is down or is a standby.

The data center runs the hub on a PostgreSQL primary and a synchronous standby (README "Hub high
availability").  Enrolment hands the laptop every hub node's URL (``ANPI_HUB_URLS`` at the hub,
MAC'd with the enrolment code); this module is the thin layer between :func:`sync.client.sync_once`
and the signed transport :class:`sync.client.HubClient` that walks that list:

- a hub that does not answer (after a short retry) or whose database is gone → the next URL;
- a hub whose database is a standby answers ``503 hub_read_only`` → the next URL at once;
- the URL that answered last is tried first next time (in this process: a laptop that failed over
  does not knock on the dead hub at every sync).

Moving between hub nodes is safe because they share one database (PostgreSQL replicates it):
the same hub keys, the same event numbering, the same acknowledgements.  Nothing is trusted
from memory: each run starts by asking the hub what it holds (``/v1/acks``).
"""
from __future__ import annotations

import json
import random
import threading
import time
from typing import Any, Callable, Sequence

from sync.errors import HubReadOnly, HubUnavailable


def urls_of(hub_url: str | None, hub_urls_json: str | None) -> list[str]:
    """The laptop's hub URLs in order: ``hub_url`` (where it enrolled, or ``--hub``) first, then
    the others from the enrolment list, each once."""
    out: list[str] = []
    try:
        listed = json.loads(hub_urls_json) if hub_urls_json else []
    except ValueError:
        listed = []
    for u in [hub_url or "", *(x for x in listed if isinstance(x, str))]:
        u = u.strip().rstrip("/")
        if u and u not in out:
            out.append(u)
    return out


#: (first URL of a list, device) → the URL that answered last; per process, never persisted
_preferred: dict[tuple[str, str], str] = {}
_preferred_lock = threading.Lock()


class FailoverClient:
    """Duck-types :class:`sync.client.HubClient` (``request``, ``clock``, ``retries``, ``close``) over
    several hub URLs.  ``make(url, max_retries)`` builds one HubClient per URL.

    With one URL it is exactly one HubClient with ``max_retries``.  With several, each URL gets a
    short try (``per_url_retries``) and the list is walked up to ``max_retries + 1`` times, with
    back-off between rounds (a failover takes seconds: the standby must first be promoted).
    """

    def __init__(self, urls: Sequence[str], make: Callable[[str, int], Any], *, max_retries: int = 5,
                 per_url_retries: int = 1, backoff: float = 0.5, max_backoff: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, remember_as: str = "") -> None:
        if not urls:
            raise ValueError("no hub URL")
        self.urls = list(urls)
        single = len(self.urls) == 1
        self.rounds = 1 if single else max_retries + 1
        self.clients = [make(u, max_retries if single else per_url_retries) for u in self.urls]
        self._memory = (self.urls[0], remember_as)
        with _preferred_lock:
            last = _preferred.get(self._memory)
        self.current = self.urls.index(last) if last in self.urls else 0
        self.backoff, self.max_backoff, self.sleep = backoff, max_backoff, sleep
        self.switches = 0

    def __getattr__(self, name: str) -> Any:
        """Everything else (signing key, device id, HTTP client, clock offset) is the current hub's
        client's: the compact push loop (sync/link.py) sends through it directly."""
        if name in ("clients", "current"):  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self.clients[self.current], name)

    @property
    def base_url(self) -> str:
        return self.clients[self.current].base_url

    def clock(self) -> float:
        return self.clients[self.current].clock()

    @property
    def retries(self) -> int:
        return sum(c.retries for c in self.clients) + self.switches

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        errors: list[str] = []
        n = len(self.clients)
        for attempt in range(self.rounds):
            for step in range(n):
                i = (self.current + step) % n
                c = self.clients[i]
                c.clock_offset = self.clients[self.current].clock_offset  # a fixed clock carries over
                try:
                    doc = c.request(method, path, body)
                except HubUnavailable as exc:  # HubReadOnly too: a standby
                    if n == 1:
                        raise  # one hub: its own answer, exactly as before
                    errors.append(str(exc))
                    continue
                if i != self.current:
                    self.switches += 1
                    self.current = i
                    with _preferred_lock:
                        _preferred[self._memory] = self.urls[i]
                return doc
            if attempt + 1 < self.rounds:
                delay = min(self.max_backoff, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)
                self.sleep(delay)
        last = errors[-n:] if errors else []
        read_only = all("read-only" in e for e in last) and bool(last)
        cls = HubReadOnly if read_only else HubUnavailable
        raise cls(f"no hub accepted the request ({len(self.urls)} URLs): " + "; ".join(last))
