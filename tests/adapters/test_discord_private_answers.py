"""Private slash answers stay private on Discord.

Every chunk of the answer to a personal command (``ask``, ``forget``, ``optout``, ``optin``)
is ephemeral, and an answer its interaction cannot carry (not acknowledged in time, expired
mid-answer, or lost to a restart) goes to the member by DM, or nowhere: never into the
channel. The real discord.py client against the loopback fake."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from adapters.discord.commands import PRIVATE_COMMANDS
from bot.features.indexing import index_entry
from storage.models import FaqEntry, OutboxMessage
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake
from tests.adapters.test_discord_e2e import CAROL, GENERAL, GUILD, MOD, build_world
from tests.fakes.discord_gateway import DM, JSON, FakeDiscord, Slow

EPHEMERAL = 1 << 6
QUESTION = "How do I get a parking permit in Haarlem?"
#: About 2,600 characters: the answer to /ask is two Discord messages.
LONG_ANSWER = " ".join(f"step{i:04d}" for i in range(290))


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **fake_options: Any) -> AsyncIterator[DiscordHarness]:
    """copss on the fake (``fake_options`` go to the fake), with a FAQ entry whose answer
    takes two Discord messages."""
    async with PortalFake(token=TOKEN, **fake_options) as fake:
        build_world(fake)
        harness = DiscordHarness(fake, tmp_path)
        await harness.start()
        try:
            async with harness.db.session() as s:
                # A global entry, straight into the store: with acknowledgements failing (as
                # some tests here make them) an admin's /faq would not get its answer shown.
                entry = FaqEntry(
                    slug="parking",
                    question=QUESTION,
                    answer=LONG_ANSWER,
                    source_url="https://example.org/permit",
                )
                s.add(entry)
                await s.flush()
                await index_entry(s, entry)
            yield harness
        finally:
            await harness.stop()


def bot_messages_since(fake: FakeDiscord, count: int) -> list[JSON]:
    """What the bot created after its first ``count`` messages."""
    return fake.sent_messages()[count:]


def dm_channel_of(fake: FakeDiscord, user_id: int) -> int | None:
    """The id of the bot's DM channel with ``user_id``, if copss opened one."""
    for call in fake.calls_to("POST", "/users/@me/channels"):
        if call.status == 200 and str(call.json_body.get("recipient_id")) == str(user_id):
            for channel_id in list(fake._channels):
                channel = fake.channel(channel_id)
                if channel["type"] == DM and channel["recipients"][0]["id"] == str(user_id):
                    return channel_id
    return None


def public_in(fake: FakeDiscord, channel_id: int, since: int) -> list[JSON]:
    """Bot messages others in the channel can see (not ephemeral) created since ``since``."""
    return [
        m
        for m in bot_messages_since(fake, since)
        if m["channel_id"] == str(channel_id) and not m["flags"] & EPHEMERAL
    ]


# -- every chunk private --------------------------------------------------------------------


async def test_every_chunk_of_a_long_private_answer_is_private(tmp_path: Path) -> None:
    async with running(tmp_path) as dc:
        fake = dc.fake
        before = len(fake.sent_messages())
        record = await dc.slash(GUILD, GENERAL, CAROL, "ask", QUESTION)
        assert record.original_message_id is not None and len(record.followup_ids) == 1
        chunks = [fake.message(record.original_message_id)] + [
            fake.message(i) for i in record.followup_ids
        ]
        assert LONG_ANSWER[-500:] in "".join(c["content"] for c in chunks)
        for chunk in chunks:
            assert chunk["flags"] & EPHEMERAL, chunk["content"][:60]
        assert public_in(fake, GENERAL, before) == []


async def test_every_payload_of_every_private_command_is_ephemeral(tmp_path: Path) -> None:
    """The sweep: every request copss makes while answering personal slash commands (short
    and long answers, usage errors included) keeps the answer to the member."""
    async with running(tmp_path) as dc:
        fake = dc.fake
        app = fake.application_id
        first_call, first_message = len(fake.calls), len(fake.sent_messages())
        dispatched = len(fake.dispatched)
        runs = [
            ("ask", "how do I get a BSN"),  # short
            ("ask", QUESTION),  # two chunks
            ("forget", ""),  # a usage answer
            ("optout", ""),
            ("optin", ""),
            ("forget", "me"),
        ]
        assert {name for name, _ in runs} == PRIVATE_COMMANDS
        records = [await dc.slash(GUILD, GENERAL, CAROL, name, text) for name, text in runs]
        assert any(len(r.followup_ids) >= 1 for r in records)  # a long answer was among them

        calls = fake.calls[first_call:]
        assert calls, "nothing was captured"
        originals = {r.token: r.original_message_id for r in records}
        kinds: set[str] = set()
        for call in calls:
            body = call.json_body or {}
            if re.fullmatch(r"/interactions/\d+/[^/]+/callback", call.path):
                kinds.add("callback")
                assert (body.get("data") or {}).get("flags", 0) & EPHEMERAL, body
            elif call.method == "POST" and call.path.startswith(f"/webhooks/{app}/"):
                kinds.add("followup")
                assert body.get("flags", 0) & EPHEMERAL, body
            elif call.method == "PATCH" and call.path.startswith(f"/webhooks/{app}/"):
                # Editing the deferred private message: it stays as private as it was made.
                kinds.add("edit")
                token = call.path.split("/")[3]
                assert fake.message(originals[token] or 0)["flags"] & EPHEMERAL
            else:
                # Nothing else goes out: no channel post, no DM.
                assert call.method == "GET", (call.method, call.path)
        assert kinds == {"callback", "followup", "edit"}
        made = bot_messages_since(fake, first_message)
        assert len(made) == len(records) + sum(len(r.followup_ids) for r in records)
        assert all(m["flags"] & EPHEMERAL for m in made)
        # Discord tells nobody else about an ephemeral message: no gateway event went out.
        bot = str(fake.bot_id)
        assert not [
            data
            for event, data in fake.dispatched[dispatched:]
            if event.startswith("MESSAGE_") and data.get("author", {}).get("id") == bot
        ]


# -- never public, DM instead ---------------------------------------------------------------


async def test_private_answer_not_acknowledged_in_time_goes_by_dm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Discord's 3 s are over before copss acknowledges anything: every callback is 10062.
    async with running(tmp_path, interaction_ack_timeout=0.0) as dc:
        fake = dc.fake
        before = len(fake.sent_messages())
        caplog.set_level(logging.WARNING, logger="adapters.discord")
        private = await dc.slash(GUILD, GENERAL, CAROL, "ask", "how do I get a BSN")
        public = await dc.slash(GUILD, GENERAL, MOD, "stats")
        [refused, *_] = fake.calls_to("POST", f"/interactions/{private.id}/")
        assert refused.status == 404 and private.responses == []

        dm = dm_channel_of(fake, CAROL)
        assert dm is not None
        [answer] = [m for m in bot_messages_since(fake, before) if m["channel_id"] == str(dm)]
        assert answer["content"].startswith("-# The answer to your command")
        assert "BSN" in answer["content"]
        # In the channel only the public command's answer, as before.
        [posted] = public_in(fake, GENERAL, before)
        assert "Questions:" in posted["content"]
        assert public.responses == []
        lines = [r.getMessage() for r in caplog.records if "by DM" in r.getMessage()]
        # Said in the log, without the answer itself.
        assert lines and not [line for line in lines if "government.nl" in line]


async def test_private_answer_expiring_mid_answer_sends_the_rest_by_dm(tmp_path: Path) -> None:
    async with running(tmp_path) as dc:
        fake = dc.fake
        before = len(fake.sent_messages())
        app = fake.application_id
        # The follow-up (chunk 2) is held up; meanwhile the interaction's token expires.
        fake.inject_rest("POST", rf"/webhooks/{app}/itoken-[0-9a-f]+", Slow(0.5))
        asking = asyncio.create_task(dc.slash(GUILD, GENERAL, CAROL, "ask", QUESTION))
        await fake.wait_for_calls("POST", f"/webhooks/{app}/")  # arrived, still held
        [held] = fake.calls_to("POST", f"/webhooks/{app}/")
        record = max(fake.interactions.values(), key=lambda r: r.id)
        fake.expire_interaction(record.id, token=True)
        await asyncio.wait_for(asking, 30)

        assert held.status == 401 and record.followup_ids == []
        first = fake.message(record.original_message_id or 0)
        assert first["flags"] & EPHEMERAL and first["content"].startswith("From the community")
        dm = dm_channel_of(fake, CAROL)
        assert dm is not None
        [rest] = [m for m in bot_messages_since(fake, before) if m["channel_id"] == str(dm)]
        assert LONG_ANSWER.endswith(rest["content"].split("\nSource:")[0][-200:])
        assert public_in(fake, GENERAL, before) == []


async def test_private_answer_nobody_can_take_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, interaction_ack_timeout=0.0) as dc:
        fake = dc.fake
        fake.close_dms(CAROL)
        before = len(fake.sent_messages())
        await dc.slash(GUILD, GENERAL, CAROL, "ask", "how do I get a BSN")
        assert bot_messages_since(fake, before) == []  # not in the channel, not anywhere
        [refused] = fake.calls_to("POST", f"/channels/{dm_channel_of(fake, CAROL)}/messages")
        assert refused.status == 403
        async with dc.db.session() as s:
            [row] = (await s.scalars(select(OutboxMessage))).all()
        assert row.state == "failed" and "dropped a private answer" in (row.last_error or "")
        assert any("dropped a private answer" in r.getMessage() for r in caplog.records)


async def test_private_answer_after_a_restart_goes_by_dm(tmp_path: Path) -> None:
    """copss acknowledged a private command and stopped before answering: the answer it
    sends after the restart has no interaction to go through, and goes by DM."""
    async with running(tmp_path) as dc:
        fake = dc.fake
        before = len(fake.sent_messages())
        private = f"interaction:{fake.next_id()}:private:{CAROL}"
        public = f"interaction:{fake.next_id()}"
        async with dc.db.session() as s:
            for reply_to, text in ((private, "your own answer"), (public, "everyone's answer")):
                await s.execute(
                    insert(OutboxMessage).values(
                        platform="discord",
                        chat_id=str(GENERAL),
                        thread_id="",
                        text=text,
                        reply_to=reply_to,
                        meta={},
                    )
                )
        assert dc.app is not None and dc.app.hub is not None
        dc.app.hub.wake_sender("discord")
        await dc.settle()
        dm = dm_channel_of(fake, CAROL)
        made = bot_messages_since(fake, before)
        assert [(m["channel_id"], m["content"].split("\n")[-1]) for m in made] == [
            (str(dm), "your own answer"),
            (str(GENERAL), "everyone's answer"),
        ]
