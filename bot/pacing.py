"""Outbox pacing: wait just long enough to stay inside a platform's posting limits."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from adapters.base import Pacing


class Pacer:
    """Tracks recent sends and tells how long to wait before the next one to a chat."""

    def __init__(self, rules: Pacing) -> None:
        self.rules = rules
        self._last: dict[str, float] = {}
        self._window: dict[str, deque[float]] = {}
        self._overall: deque[float] = deque()

    def _windowed(self, chat: str) -> bool:
        r = self.rules
        return r.per_chat_window is not None and (
            r.window_applies is None or r.window_applies(chat)
        )

    def delay(self, chat: str, now: float) -> float:
        """Seconds to wait before sending to ``chat`` at time ``now``."""
        r = self.rules
        wait = 0.0
        last = self._last.get(chat)
        if last is not None:
            wait = max(wait, last + r.per_chat_interval - now)
        if self._windowed(chat):
            assert r.per_chat_window is not None
            count, seconds = r.per_chat_window
            sent = self._window.get(chat)
            if sent is not None:
                while sent and sent[0] <= now - seconds:
                    sent.popleft()
                if len(sent) >= count:
                    wait = max(wait, sent[0] + seconds - now)
        if r.overall_per_second:
            while self._overall and self._overall[0] <= now - 1.0:
                self._overall.popleft()
            if len(self._overall) >= r.overall_per_second:
                wait = max(wait, self._overall[0] + 1.0 - now)
        return max(0.0, wait)

    def record(self, chat: str, now: float) -> None:
        """A message was sent to ``chat`` at ``now``."""
        self._last[chat] = now
        if self._windowed(chat):
            self._window.setdefault(chat, deque()).append(now)
        if self.rules.overall_per_second:
            self._overall.append(now)

    async def wait(self, chat: str) -> None:
        """Sleep until a send to ``chat`` is within the limits."""
        while True:
            now = time.monotonic()
            delay = self.delay(chat, now)
            if delay <= 0:
                return
            await asyncio.sleep(delay)
