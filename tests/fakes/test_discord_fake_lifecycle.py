"""Prove the Discord fake's interaction expiry, thread deletion and archiving, closed DMs and
histories without ephemeral messages against the real discord.py client, as on Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands

from tests.fakes.discord_gateway import (
    FLAG_EPHEMERAL,
    GUILD_FORUM,
    FakeDiscord,
    InteractionRecord,
    running_client,
)
from tests.fakes.test_discord_fake import ALICE, GENERAL, GUILD, TOKEN, WAIT, Recorder

FORUM = 900_000_000_000_000_011


class Watcher(Recorder):
    """Also records raw thread deletes and thread updates."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: asyncio.Queue[discord.RawThreadDeleteEvent] = asyncio.Queue()
        self.updated: asyncio.Queue[discord.RawThreadUpdateEvent] = asyncio.Queue()

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        await self.deleted.put(payload)

    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        await self.updated.put(payload)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN) as server:
        server.add_guild(GUILD, "Expats")
        server.add_channel(GUILD, GENERAL, "general")
        server.add_channel(GUILD, FORUM, "help", type=GUILD_FORUM)
        server.add_member(GUILD, ALICE, "alice")
        yield server


async def test_interaction_acknowledged_too_late_is_unknown(fake: FakeDiscord) -> None:
    fake.interaction_ack_timeout = 0.0
    client = Recorder()
    tree = app_commands.CommandTree(client)
    failures: asyncio.Queue[discord.HTTPException] = asyncio.Queue()

    @tree.command(name="ask", description="Ask")
    async def ask(interaction: discord.Interaction) -> None:
        try:
            await interaction.response.defer(ephemeral=True)
        except discord.HTTPException as exc:
            await failures.put(exc)

    async with running_client(fake, client):
        await tree.sync()
        record = await fake.interaction(GUILD, GENERAL, ALICE, "ask")
        failure = await asyncio.wait_for(failures.get(), WAIT)
    assert isinstance(failure, discord.NotFound) and failure.code == 10062
    assert record.responses == [] and record.original_message_id is None


async def test_expired_token_refuses_followups_and_edits(fake: FakeDiscord) -> None:
    client = Recorder()
    tree = app_commands.CommandTree(client)
    held: asyncio.Queue[discord.Interaction] = asyncio.Queue()

    @tree.command(name="ask", description="Ask")
    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await held.put(interaction)

    async with running_client(fake, client):
        await tree.sync()
        record: InteractionRecord = await fake.interaction(GUILD, GENERAL, ALICE, "ask")
        interaction = await asyncio.wait_for(held.get(), WAIT)
        first = await interaction.followup.send("private", ephemeral=True, wait=True)
        assert fake.message(first.id)["flags"] & FLAG_EPHEMERAL
        fake.expire_interaction(record.id, token=True)
        for attempt in (
            interaction.followup.send("too late", ephemeral=True, wait=True),
            interaction.edit_original_response(content="too late"),
        ):
            with pytest.raises(discord.HTTPException) as info:
                await attempt
            assert (info.value.status, info.value.code) == (401, 50027)
        # Ephemeral messages are the member's alone: no channel history shows them.
        assert [m["content"] for m in fake.messages(GENERAL)] == ["", "private"]
        channel = client.get_channel(GENERAL)
        assert isinstance(channel, discord.TextChannel)
        assert [m async for m in channel.history(limit=10)] == []


async def test_thread_deleted_and_archived(fake: FakeDiscord) -> None:
    client = Watcher()
    async with running_client(fake, client):
        post = await fake.create_thread(FORUM, "Registering?", owner_id=ALICE)
        await fake.user_message(int(post["id"]), ALICE, "how do I register?")
        kept = await fake.create_thread(GENERAL, "kept")
        await asyncio.wait_for(client.threads.get(), WAIT)

        await fake.archive_thread(int(kept["id"]))
        updated = await asyncio.wait_for(client.updated.get(), WAIT)
        assert updated.thread_id == int(kept["id"]) and updated.data["thread_metadata"]["archived"]
        assert fake.channel(int(kept["id"]))  # still there, and readable
        archived = client.get_partial_messageable(int(kept["id"]))
        assert [m async for m in archived.history(limit=10)] == []

        await fake.delete_thread(int(post["id"]))
        deleted = await asyncio.wait_for(client.deleted.get(), WAIT)
        assert (deleted.thread_id, deleted.parent_id, deleted.guild_id) == (
            int(post["id"]),
            FORUM,
            GUILD,
        )
        gone = client.get_partial_messageable(int(post["id"]))
        with pytest.raises(discord.NotFound) as info:
            await anext(aiter(gone.history(limit=10)))
        assert info.value.code == 10003
        assert fake.messages(int(post["id"])) == []


async def test_closed_dms_refuse_the_bot(fake: FakeDiscord) -> None:
    client = Recorder()
    async with running_client(fake, client):
        fake.close_dms(ALICE)
        dm = await client.create_dm(discord.Object(ALICE))  # opening it still works
        with pytest.raises(discord.Forbidden) as info:
            await dm.send("hello")
        assert info.value.code == 50007
        fake.close_dms(ALICE, closed=False)
        sent = await dm.send("hello")
        assert fake.message(sent.id)["channel_id"] == str(dm.id)
