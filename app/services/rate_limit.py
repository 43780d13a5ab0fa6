"""A sliding-window count per key (a client address): how the 本人記入 kiosk is rate limited.

Why a window and not a lock-out: a kiosk tablet at the entrance is one address that many
families use in turn, so the limit only has to stop a flood (a script, a stuck key), never a
queue of people; a refused client may try again as soon as its oldest counted event leaves the
window. In memory only, like browser sessions and the PIN throttle.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class SlidingWindow:
    """At most `max_events` per key within `window_seconds`."""

    def __init__(self, max_events: int, window_seconds: float) -> None:
        self.max_events = max_events
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        self._events: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float | None = None) -> int:
        """Count one event for `key`; 0 when allowed, else the seconds until the next is allowed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._events.setdefault(key, deque())
            while q and now - q[0] >= self.window_seconds:
                q.popleft()
            if len(q) >= self.max_events:
                return max(1, int(self.window_seconds - (now - q[0]) + 0.999))
            q.append(now)
            if len(self._events) > 10_000:  # forget idle clients, never the busy ones
                for k in [k for k, v in self._events.items() if not v or now - v[-1] >= self.window_seconds]:
                    del self._events[k]
            return 0
