"""A message Discord refuses for good is recorded with its attempts, and admins see how many
of their community's messages copss could not deliver (``stats``). The real discord.py
client against the loopback fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from storage.models import OutboxMessage
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake
from tests.adapters.test_discord_e2e import ALICE, GENERAL, GUILD, MOD, build_world
from tests.fakes.discord_gateway import HTTPError, ServerError

#: A second channel of the server: a community of its own.
OTHER = 900_000_000_000_000_012
MISSING = HTTPError(403, 50013, "Missing Permissions")


@pytest.fixture
async def dc(tmp_path: Path) -> AsyncIterator[DiscordHarness]:
    async with PortalFake(token=TOKEN) as fake:
        build_world(fake)
        fake.add_channel(GUILD, OTHER, "offtopic")
        harness = DiscordHarness(fake, tmp_path)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def queue(dc: DiscordHarness, channel_id: int, text: str) -> None:
    async with dc.db.session() as s:
        await s.execute(
            insert(OutboxMessage).values(
                platform="discord", chat_id=str(channel_id), thread_id="", text=text, meta={}
            )
        )
    assert dc.app is not None and dc.app.hub is not None
    dc.app.hub.wake_sender("discord")
    await dc.settle()


async def stats_in(dc: DiscordHarness, channel_id: int) -> str:
    record = await dc.slash(GUILD, channel_id, MOD, "stats")
    return str(dc.fake.message(record.original_message_id or 0)["content"])


async def test_refused_sends_are_counted_with_attempts_and_shown_per_community(
    dc: DiscordHarness,
) -> None:
    fake = dc.fake
    await dc.say(GENERAL, ALICE, "Hello everyone, new here.")
    await dc.say(OTHER, ALICE, "Anyone for football on Sunday?")
    assert "Messages copss could not deliver: 0." in await stats_in(dc, GENERAL)

    # One refused at once; one refused on the second attempt, after a server error.
    fake.inject_rest("POST", rf"/channels/{GENERAL}/messages", MISSING)
    await queue(dc, GENERAL, "a tip for #general")
    fake.inject_rest("POST", rf"/channels/{OTHER}/messages", ServerError(503))
    fake.inject_rest("POST", rf"/channels/{OTHER}/messages", HTTPError(403, 50001, "No Access"))
    await queue(dc, OTHER, "a tip for #offtopic")

    async with dc.db.session() as s:
        rows = {r.chat_id: r for r in (await s.scalars(select(OutboxMessage))).all()}
    general, other = rows[str(GENERAL)], rows[str(OTHER)]
    assert (general.state, general.attempts) == ("failed", 1)
    assert (other.state, other.attempts) == ("failed", 2)
    assert "50013" in (general.last_error or "") and "50001" in (other.last_error or "")

    # Each community's admins see their own failures only.
    here = await stats_in(dc, GENERAL)
    assert (
        "Messages copss could not deliver: 1 (last: discord refused (403, code 50013): "
        "Missing Permissions)." in here
    )
    assert "No Access" not in here
    there = await stats_in(dc, OTHER)
    assert "Messages copss could not deliver: 1 (last: discord refused (403, code 50001)" in there
