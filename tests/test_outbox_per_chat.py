"""The outbox per chat: ordered in each chat, chats sent to side by side, so one chat's flood
wait or failing sends hold up only that chat; rows given up on are ``dead``, shown in ``stats``
and sent again with ``undelivered retry``; each chat's queue is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import bot.core
import bot.sender
import bot.supervision
from adapters.base import Adapter, EventSink, Progress
from bot.core import Context, Hub
from bot.events import ChannelRef, Outgoing
from storage.engine import Database
from storage.migrations import upgrade
from storage.models import OutboxMessage
from storage.repos.queues import OutboxRepo
from tests.adapters.tg_harness import TelegramHarness
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, JSONDict, TelegramAPIError

pytestmark = pytest.mark.faults

CHAT_A, CHAT_B = -1001000000001, -1001000000002
ADMIN, MEMBER = 7001, 7002


class FailingChats(FakeTelegramAPI):
    """The fake, but ``sendMessage`` to a chat in ``broken`` answers 500 (nothing posted)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.broken: set[int] = set()
        self.register_method("sendMessage", self._maybe_fail)

    async def _maybe_fail(self, params: JSONDict) -> JSONDict:
        if int(params["chat_id"]) in self.broken:
            raise TelegramAPIError(500, "Internal Server Error")
        return await self._m_send_message(params)


async def _queue(db: Database, chat: int, texts: Sequence[str]) -> None:
    """Queue copss's own messages to a Telegram chat, as a handler would."""
    async with db.session() as s:
        for text in texts:
            await OutboxRepo(s).add(
                OutboxMessage(
                    platform="telegram",
                    chat_id=str(chat),
                    thread_id="",
                    text=text,
                    meta={},
                    delivery="at_most_once",
                )
            )


async def _states(db: Database, chat: int) -> list[str]:
    async with db.session() as s:
        rows = await s.scalars(
            select(OutboxMessage.state)
            .where(OutboxMessage.chat_id == str(chat))
            .order_by(OutboxMessage.id)
        )
        return list(rows.all())


@contextlib.asynccontextmanager
async def _copss(api: FakeTelegramAPI, tmp_path: Path) -> Any:
    api.add_chat(CHAT_A, "supergroup", title="A")
    api.add_chat(CHAT_B, "supergroup", title="B")
    api.set_member_status(CHAT_A, ADMIN, "administrator")
    harness = TelegramHarness(api, tmp_path)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_flooded_chat_waits_alone_and_keeps_its_order(tmp_path: Path) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api, _copss(api, tmp_path) as h:
        # Telegram's real per-chat limit (one a second), escalating under flooding, while copss
        # paces for a much faster clock: chat A floods.
        api.enforce_rate_limits(per_chat_per_sec=1.0, escalation=2.0)
        await _queue(h.db, CHAT_A, ["A1", "A2", "A3"])
        assert h.app is not None and h.app.hub is not None
        h.app.hub.wake_sender("telegram")
        await api.wait_for(lambda: api.rate_limit_violations >= 1, within=5)
        api.push_update(api.message_update(CHAT_B, MEMBER, "/help"))

        await api.wait_for_sent_messages(1, chat_id=CHAT_B, within=5)
        # B's reply went out while A's rows still waited out their flood waits.
        assert len(api.sent_texts(CHAT_A)) < 3

        await api.wait_for_sent_messages(3, chat_id=CHAT_A, within=20)
        assert api.sent_texts(CHAT_A) == ["A1", "A2", "A3"]
        assert {v.chat_id for v in api.rate_limit_log} == {CHAT_A}
        # copss waited what it was told each time: no request inside a flood wait.
        assert not any(v.during_wait for v in api.rate_limit_log)
        await h.settle()
        assert await _states(h.db, CHAT_A) == ["sent"] * 3


async def test_failing_chat_goes_dead_then_admin_sees_and_retries_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.sender, "BACKOFF_BASE", 0.05)
    async with FailingChats(token=DEFAULT_TOKEN) as api, _copss(api, tmp_path) as h:
        assert h.app is not None and h.app.hub is not None
        h.app.hub.max_send_attempts = 3
        api.broken.add(CHAT_A)
        await _queue(h.db, CHAT_A, ["A1", "A2"])
        h.app.hub.wake_sender("telegram")
        api.push_update(api.message_update(CHAT_B, MEMBER, "/help"))

        # B is answered while A's sends fail; A's rows are given up on, in order, after 3
        # tries each, backing off in between.
        await api.wait_for_sent_messages(1, chat_id=CHAT_B, within=5)
        for _ in range(100):
            if await _states(h.db, CHAT_A) == ["dead", "dead"]:
                break
            await asyncio.sleep(0.1)
        assert await _states(h.db, CHAT_A) == ["dead", "dead"]
        tries = [c for c in api.calls_to("sendMessage") if int(c.params["chat_id"]) == CHAT_A]
        assert len(tries) == 6
        assert api.sent_texts(CHAT_A) == []

        api.broken.clear()
        await h.push(api.message_update(CHAT_A, ADMIN, "/stats"))
        stats = api.sent_texts(CHAT_A)[-1]
        assert "gave up on after repeated tries: 2" in stats

        await h.push(api.message_update(CHAT_A, ADMIN, "/undelivered"))
        listing = api.sent_texts(CHAT_A)[-1]
        assert "gave up sending 2 message(s)" in listing and "“A1”" in listing

        # A member may not retry them.
        await h.push(api.message_update(CHAT_A, MEMBER, "/undelivered retry"))
        assert "for admins" in api.sent_texts(CHAT_A)[-1]

        await h.push(api.message_update(CHAT_A, ADMIN, "/undelivered retry"))
        texts = api.sent_texts(CHAT_A)
        # The two dead rows go first (they were queued first), then the command's reply.
        assert texts[-3:] == ["A1", "A2", "Sending 2 message(s) again."]
        assert await _states(h.db, CHAT_A) == ["sent"] * 6


async def test_a_full_chat_queue_takes_no_more_and_others_are_unaffected(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(db, [], [])
    hub.chat_backlog = 3
    full, other = ChannelRef("telegram", "-100"), ChannelRef("telegram", "-200")
    async with db.session() as s:
        ctx = Context(hub, s)
        queued = [await ctx.send(Outgoing(full, f"m{i}")) for i in range(3)]
        assert all(queued)
        with caplog.at_level(logging.WARNING, "bot.core"):
            assert await ctx.send(Outgoing(full, "one too many")) is None
            assert await ctx.send(Outgoing(full, "and another")) is None
        assert await ctx.send(Outgoing(other, "elsewhere")) is not None
    full_lines = [r for r in caplog.records if "is full" in r.message]
    assert len(full_lines) == 1  # one line, not one per refused message
    async with db.session() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        assert [r.text for r in rows] == ["m0", "m1", "m2", "elsewhere"]
        # Sent rows free the room again.
        rows[0].state = "sent"
    async with db.session() as s:
        assert await Context(hub, s).send(Outgoing(full, "room again")) is not None


class Recorder(Adapter):
    """An adapter that only records what it is asked to send (after a short wait)."""

    platform = "stub"

    def __init__(self, name: str, log: list[tuple[str, str, str]], all_in: asyncio.Event) -> None:
        self.name = name
        self.log = log
        self.all_in = all_in

    async def start(self, sink: EventSink) -> None:
        await asyncio.Event().wait()

    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        await asyncio.sleep(0.01)
        self.log.append((self.name, message.channel.chat_id, message.text))
        if len(self.log) >= 48:
            self.all_in.set()
        return [str(len(self.log))]

    async def edit(self, *args: Any, **kw: Any) -> list[str]:
        raise NotImplementedError

    async def delete(self, channel: ChannelRef, message_ids: Sequence[str]) -> None:
        raise NotImplementedError

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        return False

    async def close(self) -> None:
        return None


@pytest.mark.postgres
async def test_two_processes_share_the_outbox_per_chat_in_order(pg: Database) -> None:
    await upgrade(pg)
    other = Database(pg.url.render_as_string(hide_password=False))
    sent: list[tuple[str, str, str]] = []
    all_in = asyncio.Event()
    hubs = [
        Hub(pg, [Recorder("one", sent, all_in)], []),
        Hub(other, [Recorder("two", sent, all_in)], []),
    ]
    for hub in hubs:
        hub.send_concurrency = 1  # each takes one chat at a time, so both get some
    chats = ["x", "y", "z", "w"]
    async with pg.session() as s:
        for n in range(12):
            for chat in chats:
                await OutboxRepo(s).add(
                    OutboxMessage(
                        platform="stub", chat_id=chat, thread_id="", text=f"{chat}{n}", meta={}
                    )
                )
    tasks = [asyncio.create_task(hub.run_sender("stub")) for hub in hubs]
    try:
        await asyncio.wait_for(all_in.wait(), 30)
        await asyncio.sleep(0.3)  # nothing more arrives
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await other.close()
    assert len(sent) == 48  # none twice
    for chat in chats:
        assert [t for _, c, t in sent if c == chat] == [f"{chat}{n}" for n in range(12)]
    assert {name for name, _, _ in sent} == {"one", "two"}


@pytest.mark.postgres
async def test_a_send_whose_outcome_the_store_refused_keeps_its_chat_lease(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Process one sends x0 but the store refuses to record it: the row still reads "sending".
    # Had one let the chat's lease go, process two would take the row for interrupted (a
    # crash mid-send) and post it again; the lease stays until the outcome is recorded.
    from sqlalchemy.exc import OperationalError

    import bot.core

    # Process one retries its store 3 s later; process two looks at the chat again after 2 s.
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 3.0)
    await upgrade(pg)
    other = Database(pg.url.render_as_string(hide_password=False))
    sent: list[tuple[str, str, str]] = []
    all_in = asyncio.Event()
    one, two = (
        Hub(pg, [Recorder("one", sent, all_in)], []),
        Hub(other, [Recorder("two", sent, all_in)], []),
    )
    real_finish = one.sender._finish
    refused: list[int] = []

    async def finish_once_refused(row: OutboxMessage, *args: Any, **kw: Any) -> None:
        if not refused:
            refused.append(row.id)
            raise OperationalError("UPDATE outbox", {}, Exception("connection lost"))
        await real_finish(row, *args, **kw)

    one.sender._finish = finish_once_refused  # type: ignore[method-assign]
    async with pg.session() as s:
        for n in range(24):
            await OutboxRepo(s).add(
                OutboxMessage(platform="stub", chat_id="x", thread_id="", text=f"x{n}", meta={})
            )
    tasks = [asyncio.create_task(one.run_sender("stub"))]
    await asyncio.sleep(0.1)  # one takes the chat first
    tasks.append(asyncio.create_task(two.run_sender("stub")))
    try:
        for _ in range(600):  # at most 30 s
            if len(sent) >= 24:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # nothing more arrives
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await other.close()
    assert refused
    assert [t for _, _, t in sent] == [f"x{n}" for n in range(24)]  # each once, in order
