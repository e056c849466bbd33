"""Discord's intake hands a burst of events to the hub together: they are stored in a few
transactions instead of one each, in the order Discord sent them, each once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import InboxEvent, Message
from storage.repos.queues import InboxRepo
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake, one_server

GUILD, GENERAL, ALICE = 920_000_000_000_000_001, 920_000_000_000_000_010, 920_000_000_000_000_100
BURST = 150


async def test_a_burst_is_stored_in_few_transactions_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = asyncio.Event()
    held.set()
    inserts: list[int] = []  # events per INSERT into the inbox
    put = InboxRepo.put_many

    async def counted_put(self: InboxRepo, rows: list[Any]) -> dict[str, int]:
        await held.wait()  # the store is busy (another transaction) while this waits
        inserts.append(len(rows))
        return await put(self, rows)

    monkeypatch.setattr(InboxRepo, "put_many", counted_put)
    async with PortalFake(token=TOKEN) as fake:
        one_server(fake, GUILD, {GENERAL: "general"}, {ALICE: "Alice"})
        h = DiscordHarness(fake, tmp_path)
        await h.start()
        try:
            await h.say(GENERAL, ALICE, "hello")
            assert h.adapter is not None
            inserts.clear()
            held.clear()
            ids = [
                str((await fake.user_message(GENERAL, ALICE, f"message {n}"))["id"])
                for n in range(BURST)
            ]
            # Every message reached copss: the first ones wait for the store, the rest in the
            # intake's queue (its length stops changing).
            seen = -1
            async with asyncio.timeout(10):
                while h.adapter.intake.waiting != seen or seen == 0:
                    seen = h.adapter.intake.waiting
                    await asyncio.sleep(0.3)
            held.set()
            for message_id in ids:
                await h.wait_message(message_id)
            await h.settle()
            async with h.db.session() as s:
                keys = (await s.scalars(select(InboxEvent.dedup_key).order_by(InboxEvent.id))).all()
                stored = (await s.scalars(select(Message.platform_message_id))).all()
        finally:
            await h.stop()
    # Those taken before the store answered, then the rest that waited behind them together
    # (one event per transaction before).
    assert sum(inserts) == BURST and len(inserts) <= 3, inserts
    in_order = [i for k in keys for i in ids if k.endswith(f":{i}")]
    assert in_order == ids
    assert sorted(i for i in stored if i in set(ids)) == sorted(ids)
