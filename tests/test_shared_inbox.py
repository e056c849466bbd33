"""On a PostgreSQL store shared by several processes, events one process stored are handled by
another that serves the same platform, though nothing in that process woke its dispatcher
(skipped without a server)."""

from __future__ import annotations

import asyncio

import pytest

import bot.dispatch
from adapters.console import ConsoleAdapter
from bot.core import Context, Hub
from bot.events import Event, MessageEvent
from storage.engine import Database
from storage.migrations import upgrade

pytestmark = pytest.mark.postgres


async def test_events_another_process_stored_are_handled(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.dispatch, "SHARED_STORE_POLL", 0.2)
    await upgrade(pg)
    handled: list[str] = []
    all_three = asyncio.Event()

    async def record(event: Event, ctx: Context) -> bool:
        if isinstance(event, MessageEvent):
            handled.append(event.text)
            if len(handled) == 3:
                all_three.set()
        return True

    # The receiving process stores the console's messages but is not handling them (say it
    # is busy, or about to stop); the other one, on its own engine, runs only its dispatcher.
    receiver_console = ConsoleAdapter("you")
    receiver = Hub(pg, [receiver_console], [])
    other_db = Database(pg.url.render_as_string(hide_password=False))
    other = Hub(other_db, [ConsoleAdapter("you")], [record])  # type: ignore[list-item]
    dispatching = asyncio.create_task(other.run_dispatcher())
    taking = asyncio.create_task(receiver_console.start(receiver.sink))
    try:
        await asyncio.sleep(0.3)  # the other dispatcher found nothing and waits
        for text in ("one", "two", "three"):
            await receiver_console.push(text)  # stored; wakes only the receiver's dispatcher
        await asyncio.wait_for(all_three.wait(), 10)
    finally:
        for task in (dispatching, taking):
            task.cancel()
        await asyncio.gather(dispatching, taking, return_exceptions=True)
        await other_db.close()
    assert handled == ["one", "two", "three"]
