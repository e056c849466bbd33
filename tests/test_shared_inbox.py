"""On a PostgreSQL store shared by several processes, events one process stored are handled by
another that serves the same platform, though nothing in that process woke its dispatcher; and
an event one process is about to handle is not parked by another (skipped without a server)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select, update

import bot.dispatch
from adapters.console import ConsoleAdapter
from bot.core import Context, Hub
from bot.events import Event, MessageEvent
from storage.engine import Database
from storage.migrations import upgrade
from storage.models import InboxEvent

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


async def test_an_event_another_process_is_taking_is_not_parked(pg: Database) -> None:
    # An event tried twice already (two stops). One process counts its third try and is
    # about to handle it: between those two steps the row is not locked, and the other
    # process, seeing three tries and nobody on it, must not park it from under it.
    await upgrade(pg)
    seen: dict[str, list[str]] = {"first": [], "other": []}

    def recorder(name: str) -> Callable[[Event, Context], Awaitable[bool]]:
        async def record(event: Event, ctx: Context) -> bool:
            if isinstance(event, MessageEvent):
                seen[name].append(event.text)
            return True

        return record

    console = ConsoleAdapter("you")
    first = Hub(pg, [console], [recorder("first")])  # type: ignore[list-item]
    other_db = Database(pg.url.render_as_string(hide_password=False))
    other = Hub(other_db, [ConsoleAdapter("you")], [recorder("other")])  # type: ignore[list-item]
    taking = asyncio.create_task(console.start(first.sink))
    try:
        await asyncio.sleep(0)
        await console.push("tried twice")
        async with pg.session() as s:
            await s.execute(update(InboxEvent).values(attempts=2))
        claimed = await first.dispatcher._claim()
        assert isinstance(claimed, tuple) and claimed[2] == 3  # counted, not handled yet
        dispatching = asyncio.create_task(other.run_dispatcher())
        await asyncio.sleep(0.1)  # the other process looks meanwhile
        assert await first.dispatcher._dispatch_one(*claimed)
        await asyncio.sleep(bot.dispatch.PARK_CONFIRM + 0.3)
        dispatching.cancel()
        await asyncio.gather(dispatching, return_exceptions=True)
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await other_db.close()
    async with pg.session() as s:
        row = (await s.scalars(select(InboxEvent))).one()
    assert seen == {"first": ["tried twice"], "other": []}
    assert row.handled_at is not None and row.error is None
