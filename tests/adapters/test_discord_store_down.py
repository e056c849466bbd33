"""Discord's intake while the store takes no events: events wait in a bounded queue and are
stored, in order, once it does; beyond the bound they are read back from history."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import adapters.discord.intake
import bot.core
import bot.supervision
from storage.models import InboxEvent
from storage.repos.queues import InboxRepo
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake

pytestmark = pytest.mark.faults

GUILD, GENERAL, ALICE = 910_000_000_000_000_001, 910_000_000_000_000_010, 910_000_000_000_000_100


async def test_events_wait_for_the_store_and_overflow_is_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.05)
    monkeypatch.setattr(bot.supervision, "STORE_RETRY_MAX", 0.2)
    monkeypatch.setattr(adapters.discord.intake, "MAX_WAITING", 2, raising=False)
    down = {"now": False, "refused": 0}
    put = InboxRepo.put_many

    async def failing_put(self: InboxRepo, *args: Any, **kw: Any) -> dict[str, int]:
        if down["now"]:
            down["refused"] += 1
            raise OperationalError("INSERT INTO inbox", {}, Exception("database is locked"))
        return await put(self, *args, **kw)

    monkeypatch.setattr(InboxRepo, "put_many", failing_put)
    async with PortalFake(token=TOKEN) as fake:
        fake.add_guild(GUILD, "Expats NL")
        fake.add_channel(GUILD, GENERAL, "general")
        fake.add_member(GUILD, ALICE, "Alice")
        h = DiscordHarness(fake, tmp_path)
        await h.start()
        try:
            await h.say(GENERAL, ALICE, "hello")  # copss knows the channel from here on
            down["now"] = True
            ids = []
            for n in range(6):
                message = await fake.user_message(GENERAL, ALICE, f"message {n}")
                ids.append(message["id"])
            for _ in range(100):  # the hub refuses the first event a few times
                if down["refused"] >= 3:
                    break
                await asyncio.sleep(0.05)
            assert down["refused"] >= 3
            down["now"] = False
            for message_id in ids:
                await h.wait_message(message_id)
            await h.settle()
            async with h.db.session() as s:
                keys = (await s.scalars(select(InboxEvent.dedup_key).order_by(InboxEvent.id))).all()
            stored = [k for k in keys if any(k.endswith(f":{i}") for i in ids)]
            # Each once, in the order they were said (the first waited in the queue, the
            # ones past the bound were read back from history after it).
            assert [next(i for i in ids if k.endswith(f":{i}")) for k in stored] == ids
        finally:
            await h.stop()
