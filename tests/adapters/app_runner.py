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

    async def start_watched(
        self, app: App, ready: asyncio.Event, within: float = 10.0
    ) -> asyncio.Task[None]:
        """Enter ``app``, record every event its hub stores, run it, and return its task once
        ``ready`` is set (e.g. the Discord adapter's catch-up); fails if copss stops first."""
        await app.__aenter__()
        hub = app.hub
        assert hub is not None
        store = hub.sink

        async def observed(event: Event) -> None:
            await store(event)
            self._note(event)

        hub.sink = observed  # type: ignore[method-assign]
        task = asyncio.create_task(app.run(handle_signals=False))
        waiting = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {task, waiting}, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        if task in done:
            task.result()
            raise RuntimeError("copss stopped while starting")
        if waiting not in done:
            raise TimeoutError("copss did not get ready in time")
        return task
