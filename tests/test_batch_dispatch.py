"""Events arriving together are stored together and handled in batches, without weakening the
guarantees: each event handled once, each chat's events in order, a failing event handled
alone and parked while the rest of its batch succeeds. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from adapters.base import Adapter, EventSink, Progress
from bot.core import Context, Hub
from bot.events import Author, ChannelRef, Event, MessageEvent, Outgoing
from storage.engine import Database
from storage.models import InboxEvent
from tests.engines import ENGINES, store_on

CHATS = ("-1001", "-1002", "-1003", "-1004")


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated store on each engine."""
    async with store_on(request.param, tmp_path) as db:
        yield db


def message(n: int, text: str | None = None) -> MessageEvent:
    """Message ``n`` of a burst, in chat ``n % 4``; its text is ``m<n>`` unless given."""
    return MessageEvent(
        channel=ChannelRef("telegram", CHATS[n % len(CHATS)]),
        message_id=str(n),
        author=Author("telegram", str(100 + n % 7), f"member{n % 7}"),
        text=text or f"m{n}",
        sent_at=datetime.now(UTC),
    )


class Quiet(Adapter):
    """A Telegram that is never asked anything (the tests hand events to the hub)."""

    platform = "telegram"

    async def start(self, sink: EventSink) -> None:
        await asyncio.Event().wait()

    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        raise AssertionError("nothing is sent in these tests")

    async def edit(self, *args: Any, **kwargs: Any) -> list[str]:
        raise AssertionError("nothing is edited in these tests")

    async def delete(self, channel: ChannelRef, message_ids: Sequence[str]) -> None:
        raise AssertionError("nothing is deleted in these tests")

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        return False

    async def close(self) -> None:
        pass


class Recorder:
    """The last handler: notes each message it gets, by chat."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.by_chat: dict[str, list[int]] = {}

    async def __call__(self, event: Event, ctx: Context) -> bool:
        if isinstance(event, MessageEvent):
            self.texts.append(event.text)
            self.by_chat.setdefault(event.channel.chat_id, []).append(int(event.message_id))
        return True


class Statements:
    """Counts statements sent to the store that start with a given text."""

    def __init__(self, db: Database) -> None:
        self.seen: list[str] = []
        sa_event.listen(db.engine.sync_engine, "before_cursor_execute", self._note)
        self.db = db

    def _note(self, _c: Any, _cur: Any, statement: str, *_: Any) -> None:
        self.seen.append(" ".join(statement.split()))

    def count(self, start: str) -> int:
        return sum(1 for s in self.seen if s.startswith(start))

    def close(self) -> None:
        sa_event.remove(self.db.engine.sync_engine, "before_cursor_execute", self._note)


def fails_on(text: str, action: Callable[[], Any]) -> Callable[[Event, Context], Any]:
    """A handler running ``action`` on the message saying ``text``; passes on every event."""

    async def handler(event: Event, ctx: Context) -> bool:
        if isinstance(event, MessageEvent) and event.text == text:
            result = action()
            if asyncio.iscoroutine(result):
                await result
        return False

    return handler


@contextlib.asynccontextmanager
async def dispatching(hub: Hub) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(hub.run_dispatcher()),
        asyncio.create_task(hub.run_sender("telegram")),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def inbox(db: Database) -> list[InboxEvent]:
    async with db.session() as s:
        return list((await s.scalars(select(InboxEvent).order_by(InboxEvent.id))).all())


async def test_a_burst_is_stored_and_handled_in_few_transactions(store: Database) -> None:
    recorder = Recorder()
    hub = Hub(store, [Quiet()], [recorder])
    counted = Statements(store)
    burst = [message(n) for n in range(240)]
    try:
        # Handed over at once (as the Telegram adapter does with a getUpdates batch).
        await asyncio.gather(*(hub.sink(e) for e in burst))
        stored = await inbox(store)
        async with dispatching(hub):
            async with asyncio.timeout(30):
                await hub.settled()
        inserts = counted.count("INSERT INTO inbox")
        handled_updates = counted.count("UPDATE inbox SET handled_at")
    finally:
        counted.close()
    # Stored in the order handed over, each once, in a few multi-row inserts.
    assert [r.payload["text"] for r in stored] == [e.text for e in burst]
    assert inserts <= 3, inserts
    # Handled once each, every chat in order, in a few transactions (100 events to a batch).
    assert sorted(recorder.texts) == sorted(e.text for e in burst)
    assert len(recorder.texts) == len(burst)
    for chat, ids in recorder.by_chat.items():
        assert ids == sorted(ids), chat
    assert handled_updates <= 5, handled_updates
    rows = await inbox(store)
    assert all(r.handled_at is not None and r.attempts == 1 and r.error is None for r in rows)


async def test_a_duplicate_in_a_burst_is_stored_once(store: Database) -> None:
    hub = Hub(store, [Quiet()], [Recorder()])
    burst = [message(n) for n in range(10)]
    await asyncio.gather(*(hub.sink(e) for e in [*burst, burst[3], *burst]))
    assert [r.payload["text"] for r in await inbox(store)] == [e.text for e in burst]


def boom() -> None:
    raise ValueError("boom")


async def hang() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("poison", [boom, hang], ids=["raises", "hangs"])
async def test_a_poisoned_event_in_a_batch_is_parked_alone_and_the_rest_succeed(
    store: Database, poison: Callable[[], Any]
) -> None:
    recorder = Recorder()
    hub = Hub(store, [Quiet()], [fails_on("poison", poison), recorder], handler_timeout=0.5)
    burst = [message(n, "poison" if n == 25 else None) for n in range(60)]
    await asyncio.gather(*(hub.sink(e) for e in burst))
    async with dispatching(hub):
        async with asyncio.timeout(60):
            await hub.settled()
    rows = {r.payload["text"]: r for r in await inbox(store)}
    poisoned = rows.pop("poison")
    assert poisoned.handled_at is not None
    assert poisoned.error is not None and poisoned.error.startswith("parked: ")
    assert poisoned.error.endswith("(3 attempts)")
    # Every other event handled exactly once (none of the batch before it ran again), at its
    # first try, and each chat's events in order.
    assert sorted(recorder.texts) == sorted(rows)
    assert len(recorder.texts) == len(rows) == 59
    for chat, ids in recorder.by_chat.items():
        assert ids == sorted(ids), chat
    assert all(r.handled_at is not None and r.error is None for r in rows.values())
    assert {r.attempts for r in rows.values()} == {1}


async def test_an_event_another_process_holds_keeps_the_hub_from_idle(store: Database) -> None:
    if store.is_sqlite:
        pytest.skip("one process at a time on a SQLite store: no other process holds a row")
    recorder = Recorder()
    hub = Hub(store, [Quiet()], [recorder])
    await hub.sink(message(1))
    # Another process sharing the store is handling it (its transaction holds the row).
    async with store.session() as other:
        row = await other.scalar(select(InboxEvent).with_for_update())
        assert row is not None
        async with dispatching(hub):
            await asyncio.sleep(0.5)
            assert not hub.idle.is_set()  # pending, only not claimable here
            row.handled_at = datetime.now(UTC)
    # The other process committed: nothing is pending, the hub is idle, nothing ran here.
    async with dispatching(hub):
        async with asyncio.timeout(5):
            await hub.settled()
    assert recorder.texts == []
