"""An event whose handling keeps failing or hanging is parked with a reason, and the events after
it are handled; a store that fails does not count against the event. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DataError, OperationalError

import bot.core
import bot.supervision
from adapters.console import ConsoleAdapter
from bot.core import Context, Hub
from bot.events import Event, MessageEvent
from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from storage.models import InboxEvent
from tests.engines import ENGINES, store_on

pytestmark = pytest.mark.faults


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated store on each engine."""
    async with store_on(request.param, tmp_path) as db:
        yield db


class Recorder:
    """The last handler: notes each message it gets."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, event: Event, ctx: Context) -> bool:
        if isinstance(event, MessageEvent):
            self.texts.append(event.text)
        return True


def on_text(word: str, action: Callable[[int], object]) -> Callable[[Event, Context], object]:
    """A handler that runs ``action(attempt)`` on messages saying ``word`` (async if it
    returns an awaitable) and passes on every other event."""
    attempts = 0

    async def handler(event: Event, ctx: Context) -> bool:
        nonlocal attempts
        if not isinstance(event, MessageEvent) or event.text != word:
            return False
        attempts += 1
        result = action(attempts)
        if asyncio.iscoroutine(result):
            await result
        return False

    return handler


@contextlib.asynccontextmanager
async def running(db: Database, *handlers: object, **hub_kw: float) -> AsyncIterator[Harness]:
    console = ConsoleAdapter("you")
    recorder = Recorder()
    hub = Hub(db, [console], [*handlers, recorder], **hub_kw)  # type: ignore[list-item,arg-type]
    tasks = [
        asyncio.create_task(console.start(hub.sink)),
        asyncio.create_task(hub.run_dispatcher()),
        asyncio.create_task(hub.run_sender("console")),
    ]
    await asyncio.sleep(0)  # the adapter takes the sink
    try:
        yield Harness(hub, console, recorder)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Harness:
    def __init__(self, hub: Hub, console: ConsoleAdapter, recorder: Recorder) -> None:
        self.hub = hub
        self.console = console
        self.recorder = recorder

    async def say(self, *texts: str) -> None:
        for t in texts:
            await self.console.push(t)
        async with asyncio.timeout(20):
            await self.hub.settled()


async def inbox(db: Database) -> dict[str, InboxEvent]:
    async with db.session() as s:
        rows = (await s.scalars(select(InboxEvent).order_by(InboxEvent.id))).all()
    return {row.payload["text"]: row for row in rows}


async def hang(attempt: int) -> None:
    await asyncio.Event().wait()


def boom(attempt: int) -> None:
    raise ValueError("boom")


async def test_a_hanging_handler_is_parked_and_the_next_events_are_handled(
    store: Database,
) -> None:
    async with running(store, on_text("hang", hang), handler_timeout=0.2) as copss:
        await copss.say("before", "hang", "after")
        assert copss.recorder.texts == ["before", "after"]
    rows = await inbox(store)
    assert rows["hang"].handled_at is not None
    assert rows["hang"].error == "parked: timed out after 0.2s (3 attempts)"
    assert rows["hang"].attempts == 3
    assert [(rows[t].error, rows[t].attempts) for t in ("before", "after")] == [(None, 1)] * 2


async def test_a_raising_handler_is_parked_a_flaky_one_retried(store: Database) -> None:
    def flaky(attempt: int) -> None:
        if attempt == 1:
            raise RuntimeError("not yet")

    async with running(store, on_text("boom", boom), on_text("flaky", flaky)) as copss:
        await copss.say("boom", "flaky", "after")
        assert copss.recorder.texts == ["flaky", "after"]
    rows = await inbox(store)
    assert rows["boom"].error == "parked: ValueError: boom (3 attempts)"
    assert (rows["flaky"].error, rows["flaky"].attempts) == (None, 2)
    assert rows["flaky"].handled_at is not None


async def test_a_failing_store_does_not_count_against_the_event(
    store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.01)

    def locked(attempt: int) -> None:
        # More store failures than an event may fail: they are the store's, not the event's.
        if attempt <= 5:
            raise OperationalError("UPDATE thread ...", {}, Exception("database is locked"))

    def bad_data(attempt: int) -> None:
        # A statement the store refuses for this event's data is the event's failure.
        raise DataError("INSERT INTO message ...", {}, Exception("invalid byte sequence"))

    async with running(store, on_text("locked", locked), on_text("bad", bad_data)) as copss:
        await copss.say("locked", "bad", "after")
        assert copss.recorder.texts == ["locked", "after"]
    rows = await inbox(store)
    assert rows["locked"].error is None and rows["locked"].handled_at is not None
    assert rows["locked"].attempts == 1
    assert rows["bad"].error is not None and rows["bad"].error.startswith("parked: DataError")


async def test_an_event_left_unfinished_by_crashes_is_parked_at_once(store: Database) -> None:
    # Three attempts were recorded and none finished (copss was killed in each).
    handling = asyncio.Event()

    async def hang_noted(attempt: int) -> None:
        handling.set()
        await hang(attempt)

    async with running(store, on_text("poison", hang_noted), handler_timeout=60) as copss:
        await copss.console.push("poison")
        await asyncio.wait_for(handling.wait(), 10)
    assert (await inbox(store))["poison"].attempts == 1  # recorded before it was handled
    async with store.session() as s:
        await s.execute(text("UPDATE inbox SET attempts = 3, error = 'RuntimeError: x'"))
    async with running(store, on_text("poison", hang), handler_timeout=60) as copss:
        await copss.say("after")
        assert copss.recorder.texts == ["after"]
    rows = await inbox(store)
    assert rows["poison"].error == (
        "parked: copss stopped while handling it (3 attempts; last failure: RuntimeError: x)"
    )


async def check_migration_4(db: Database) -> None:
    await upgrade(db)
    async with db.session() as s:
        await s.execute(
            text(
                "INSERT INTO inbox (dedup_key, payload, received_at) "
                "VALUES ('k1', '{}', '2026-01-01 00:00:00+00:00')"
            )
        )
    # What a store before version 4 looked like: no attempts column.
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE inbox DROP COLUMN attempts"))
        await conn.execute(text("DELETE FROM schema_version WHERE version >= 4"))
    assert 4 in await upgrade(db)
    async with db.session() as s:
        assert (await s.scalars(select(InboxEvent.attempts))).all() == [0]


async def test_migration_4_on_sqlite(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "old.db"))
    try:
        await check_migration_4(db)
    finally:
        await db.close()


@pytest.mark.postgres
async def test_migration_4_on_postgres(pg: Database) -> None:
    await check_migration_4(pg)


async def test_a_crash_in_a_batch_does_not_count_against_its_events(store: Database) -> None:
    # copss is killed (its tasks cancelled mid-handling) first while handling five new
    # messages together, then each time it handles "poison" alone. The kill during the batch
    # is no sign against any of them: the four others are handled at the next start, and
    # "poison" is parked only after three kills while it alone was handled.
    handling = asyncio.Event()

    async def hang_noted(attempt: int) -> None:
        handling.set()
        await hang(attempt)

    texts = ["one", "two", "poison", "four", "five"]
    console = ConsoleAdapter("you")
    hub = Hub(store, [console], [on_text("poison", hang_noted)])  # type: ignore[list-item]
    taking = asyncio.create_task(console.start(hub.sink))
    await asyncio.sleep(0)
    for t in texts:
        await console.push(t)  # stored; none handled yet
    dispatching = asyncio.create_task(hub.run_dispatcher())
    await asyncio.wait_for(handling.wait(), 10)
    for task in (taking, dispatching):
        task.cancel()
    await asyncio.gather(taking, dispatching, return_exceptions=True)
    rows = await inbox(store)
    assert {(rows[t].attempts, rows[t].handled_at) for t in texts} == {(1, None)}  # one batch

    tried: list[str] = []
    for kill in (1, 2, 3):
        handling.clear()
        async with running(store, on_text("poison", hang_noted), handler_timeout=60) as copss:
            await asyncio.wait_for(handling.wait(), 10)  # tried again (not parked)
            tried += copss.recorder.texts
        rows = await inbox(store)
        assert (rows["poison"].attempts, rows["poison"].handled_at) == (kill, None)
    assert tried == ["one", "two"]  # each handled once; the rest wait behind "poison"

    handling.clear()
    async with running(store, on_text("poison", hang_noted), handler_timeout=60) as copss:
        await copss.say("after")
        assert copss.recorder.texts == ["four", "five", "after"]
    assert not handling.is_set()  # parked without being tried a fourth time alone
    rows = await inbox(store)
    assert rows["poison"].error == "parked: copss stopped while handling it (3 attempts)"
    assert all(rows[t].error is None and rows[t].handled_at for t in ("one", "two", "four"))
