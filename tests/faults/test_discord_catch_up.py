"""What members said on Discord while copss was down is read back when copss connects again,
also when a member posts in the first seconds after it connected (discord.py dispatches
``ready``, which starts the catch-up, only after waiting up to 2 s for more servers; the
messages of that time reach copss before the catch-up), and also when copss was killed in
the middle of such a catch-up (the next one starts where the cut one had to)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
import pytest
from sqlalchemy import select

from adapters.discord import DiscordAdapter
from adapters.discord.intake import Intake
from bot.app import App
from bot.events import ChannelRef, Event
from storage.models import Message
from tests.adapters.dc_harness import MENU, TOKEN, DiscordHarness, PortalFake, one_server
from tests.fakes.discord_gateway import patch_discord

pytestmark = [pytest.mark.faults, pytest.mark.slow]

GUILD, GENERAL, ALICE = 960_000_000_000_000_001, 960_000_000_000_000_010, 960_000_000_000_000_100
LOBBY = 960_000_000_000_000_011


async def start_as_copss_run(h: DiscordHarness, fake: PortalFake) -> None:
    """Start copss again as `copss run` starts it (discord.py waits 2 s for servers before
    ``ready``, which starts the catch-up) and return 0.3 s after it identified: a message
    posted then reaches copss before its catch-up does."""
    h._patch.enter_context(patch_discord(fake))
    h.adapter = DiscordAdapter(TOKEN, commands=MENU)
    h.app = App(h.config, adapters=[h.adapter])
    identified = fake.identify_count
    started = asyncio.Event()
    started.set()  # not waiting for the catch-up: the test posts before it
    h.task = await h.start_watched(h.app, started)
    try:
        await fake.wait_for_identify(identified + 1, within=10)
        await asyncio.sleep(0.3)
    except BaseException:
        await h.stop()
        raise


async def test_said_while_down_is_read_back_though_a_member_posts_as_copss_connects(
    tmp_path: Path,
) -> None:
    async with PortalFake(token=TOKEN) as fake:
        one_server(fake, GUILD, {GENERAL: "general"}, {ALICE: "Alice"})
        h = DiscordHarness(fake, tmp_path)
        await h.start()
        try:
            await h.say(GENERAL, ALICE, "before the restart")
        finally:
            await h.stop()
        missed = [
            (await fake.user_message(GENERAL, ALICE, f"while copss is down {n}"))["id"]
            for n in range(2)
        ]

        await start_as_copss_run(h, fake)
        try:
            now = (await fake.user_message(GENERAL, ALICE, "just as copss connects"))["id"]
            async with asyncio.timeout(10):
                await h.adapter.caught_up.wait()
            await h.wait_message(now)
            await h.settle()
            async with h.db.session() as s:
                stored = set((await s.scalars(select(Message.platform_message_id))).all())
        finally:
            await h.stop()
    assert now in stored
    # Read back though a message of the new session was stored before the catch-up looked.
    assert set(missed) <= stored


async def test_a_catch_up_cut_short_is_finished_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PortalFake(token=TOKEN) as fake:
        # The lobby is read after general (ids in order).
        one_server(fake, GUILD, {GENERAL: "general", LOBBY: "lobby"}, {ALICE: "Alice"})
        h = DiscordHarness(fake, tmp_path)
        await h.start()
        try:
            await h.say(GENERAL, ALICE, "before the restart")
            await h.say(LOBBY, ALICE, "before the restart, in the lobby")
        finally:
            await h.stop()
        missed = [
            str((await fake.user_message(channel, ALICE, f"while copss is down {n}"))["id"])
            for channel in (GENERAL, LOBBY)
            for n in range(6)
        ]

        # copss starts, a member posts in the lobby as it connects (stored before the
        # catch-up starts), and copss is killed while catching up in general: it never gets
        # past general's fifth message, so the lobby is not read.
        read = Intake.read

        async def stuck_at_the_fifth(
            self: Intake, message: discord.Message, channel: ChannelRef | None = None
        ) -> Event | None:
            if str(message.id) == missed[4]:
                await asyncio.Event().wait()
            return await read(self, message, channel)

        monkeypatch.setattr(Intake, "read", stuck_at_the_fifth)
        await start_as_copss_run(h, fake)
        try:
            now = str((await fake.user_message(LOBBY, ALICE, "just as copss connects"))["id"])
            await h.wait_message(now)
            await h.wait_message(missed[3])
            await h.settle()  # the live message is stored: the lobby's newest
        finally:
            await h.stop(abrupt=True)
        monkeypatch.setattr(Intake, "read", read)

        await h.start()  # and waits for its catch-up
        try:
            await h.settle()
            async with h.db.session() as s:
                stored = set((await s.scalars(select(Message.platform_message_id))).all())
        finally:
            await h.stop()
    assert now in stored
    assert set(missed) <= stored, sorted(set(missed) - stored)
