"""In-process rate limits that stop one member, or one chat, from flooding copss."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` events per ``seconds`` for each key."""

    def __init__(
        self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Record an event for ``key`` if it is within the limit; False when it is not."""
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True


class Repeats:
    """Remembers each member's last request and answer, to skip identical repeats."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last: dict[str, tuple[str, float]] = {}

    def is_repeat(self, key: str, request: str) -> bool:
        """Whether ``request`` equals the member's previous one within the window (and note it)."""
        now = self.clock()
        previous = self._last.get(key)
        self._last[key] = (request, now)
        return previous is not None and previous[0] == request and now - previous[1] < self.seconds
