"""Stopping a copss App that a test harness started as a task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from bot.app import App
from bot.events import Event


async def stop_app(app: App, task: asyncio.Task[None], *, abrupt: bool = False) -> None:
    """Stop cleanly, or (``abrupt``) cancel everything mid-flight like a crash would; then
    close the app's store and adapters."""
    if abrupt:
        task.cancel()
    else:
        app.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    await app.__aexit__(None, None, None)


class WatchesEvents:
    """Records every event a harness's copss handed to its hub, and lets a test wait for one
    (already seen or still to come) instead of sleeping."""

    def __init__(self) -> None:
        #: Every event the adapters handed to the hub, across restarts (duplicates included).
        self.events: list[Event] = []
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []

    def _note(self, event: Event) -> None:
        self.events.append(event)
        still = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(event):
                future.set_result(event)
            else:
                still.append((predicate, future))
        self._waiters = still

    async def wait_event(self, predicate: Callable[[Event], bool], within: float = 10.0) -> Event:
        """The first event (already seen, or still to come) that ``predicate`` accepts."""
        for event in self.events:
            if predicate(event):
                return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return await asyncio.wait_for(future, within)
