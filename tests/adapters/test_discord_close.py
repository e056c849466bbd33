"""Closing the Discord adapter right after a gateway session began leaves nothing running.

discord.py waits a while after READY for the servers' GUILD_CREATEs before it dispatches
``ready``; a close within that wait must end the wait too, or the old session's task goes on
past the close and fails (or tells a restarted client it is ready).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.discord import DiscordAdapter
from bot.events import Event
from tests.adapters.dc_harness import MENU, TOKEN
from tests.fakes.discord_gateway import FakeDiscord, patch_discord

GUILD, GENERAL = 900_000_000_000_000_001, 900_000_000_000_000_010


async def test_close_during_the_wait_for_guilds_ends_that_wait(tmp_path: Path) -> None:
    async with FakeDiscord(token=TOKEN) as fake:
        fake.add_guild(GUILD, "Expats NL")
        fake.add_channel(GUILD, GENERAL, "general")
        with patch_discord(fake):
            # A long wait, so the close surely lands inside it.
            adapter = DiscordAdapter(TOKEN, commands=MENU, guild_ready_timeout=30)
            received: list[Event] = []

            async def sink(event: Event) -> None:
                received.append(event)

            running = asyncio.create_task(adapter.start(sink))
            state = adapter.client._connection
            for _ in range(1000):  # READY arrives within a second or so
                if getattr(state, "_ready_task", None) is not None:
                    break
                await asyncio.sleep(0.01)
            waiting = state._ready_task
            assert waiting is not None and not waiting.done()
            await adapter.close()
            assert waiting.done(), "the wait for guilds outlived the close"
            async with asyncio.timeout(10):
                await running
            assert not adapter.client.is_ready()
