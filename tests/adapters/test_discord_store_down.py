"""Discord's intake while the store takes no events: events wait in a bounded queue and are
stored, in order, once it does; beyond the bound they are read back from history, also when
copss posted in the channel meanwhile (its own messages are newer than those not read yet)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import adapters.discord.intake
import bot.core
import bot.supervision
from bot.context import Context
from bot.events import ChannelRef, Outgoing
from storage.models import InboxEvent, Member, Message
from storage.repos.conversation import OWN_USER_ID
from storage.repos.queues import InboxRepo
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake, one_server

pytestmark = pytest.mark.faults

GUILD, GENERAL, ALICE = 910_000_000_000_000_001, 910_000_000_000_000_010, 910_000_000_000_000_100


@dataclass
class Outage:
    """Makes the store refuse every event while ``now`` (counting the refusals)."""

    now: bool = False
    refused: int = 0

    async def until_refused(self, times: int) -> None:
        for _ in range(100):
            if self.refused >= times:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the store refused {self.refused} time(s), not {times}")


@pytest.fixture
async def down(monkeypatch: pytest.MonkeyPatch) -> Outage:
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.05)
    monkeypatch.setattr(bot.supervision, "STORE_RETRY_MAX", 0.2)
    monkeypatch.setattr(adapters.discord.intake, "MAX_WAITING", 2, raising=False)
    outage = Outage()
    put = InboxRepo.put_many

    async def failing_put(self: InboxRepo, *args: Any, **kw: Any) -> dict[str, int]:
        if outage.now:
            outage.refused += 1
            raise OperationalError("INSERT INTO inbox", {}, Exception("database is locked"))
        return await put(self, *args, **kw)

    monkeypatch.setattr(InboxRepo, "put_many", failing_put)
    return outage


@pytest.fixture
async def copss(tmp_path: Path) -> AsyncIterator[DiscordHarness]:
    async with PortalFake(token=TOKEN) as fake:
        one_server(fake, GUILD, {GENERAL: "general"}, {ALICE: "Alice"})
        h = DiscordHarness(fake, tmp_path)
        await h.start()
        try:
            await h.say(GENERAL, ALICE, "hello")  # copss knows the channel from here on
            yield h
        finally:
            await h.stop()


async def stored_in_order(h: DiscordHarness, ids: list[str]) -> list[str]:
    """The ids among ``ids`` whose events the inbox holds, in the order it stored them."""
    async with h.db.session() as s:
        keys = (await s.scalars(select(InboxEvent.dedup_key).order_by(InboxEvent.id))).all()
    return [i for k in keys for i in ids if k.endswith(f":{i}")]


async def test_events_wait_for_the_store_and_overflow_is_read_back(
    copss: DiscordHarness, down: Outage
) -> None:
    h = copss
    down.now = True
    ids = [(await h.fake.user_message(GENERAL, ALICE, f"message {n}"))["id"] for n in range(6)]
    await down.until_refused(3)  # the hub refuses the first event a few times
    down.now = False
    for message_id in ids:
        await h.wait_message(message_id)
    await h.settle()
    # Each once, in the order they were said (the first waited in the queue, the ones past
    # the bound were read back from history after it).
    assert await stored_in_order(h, ids) == ids


async def test_overflow_is_read_back_though_copss_posted_after_it(
    copss: DiscordHarness, down: Outage
) -> None:
    h = copss
    hub = h.app.hub if h.app is not None else None
    assert hub is not None
    down.now = True
    ids = [(await h.fake.user_message(GENERAL, ALICE, f"message {n}"))["id"] for n in range(6)]
    await down.until_refused(1)
    # copss posts in the channel while members' messages past the bound wait to be read back
    # (as when it answers a question stored before): its message is newer than theirs.
    async with h.db.session() as s:
        await Context(hub, s).send(Outgoing(ChannelRef("discord", str(GENERAL)), "copss here"))
    hub.wake_sender("discord")
    own = None
    for _ in range(200):
        async with h.db.session() as s:
            own = await s.scalar(
                select(Message.platform_message_id)
                .join(Member, Member.id == Message.member_id)
                .where(Member.user_id == OWN_USER_ID)
            )
        if own is not None:
            break
        await asyncio.sleep(0.05)
    assert own is not None and int(own) > max(int(i) for i in ids)
    down.now = False
    for message_id in ids:
        await h.wait_message(message_id)
    await h.settle()
    assert await stored_in_order(h, ids) == ids
