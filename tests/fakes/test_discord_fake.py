"""Prove :mod:`tests.fakes.discord_gateway` against the real discord.py client."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.discord_gateway import (
    ADMINISTRATOR,
    GUILD_FORUM,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    FakeDiscord,
    RateLimited,
    Slow,
    running_client,
)

with warnings.catch_warnings():
    # discord.py imports the stdlib ``audioop`` module, which warns on 3.11+; the warning is
    # attributed to importlib, so the project's ``ignore::DeprecationWarning:discord.*`` filter
    # does not catch it when this module is the first to import discord.
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord
    from discord import app_commands

pytestmark = pytest.mark.asyncio

TOKEN = "fake-bot-token"
GUILD = 900_000_000_000_000_001
GENERAL = 900_000_000_000_000_010
FORUM = 900_000_000_000_000_011
ALICE = 900_000_000_000_000_100
MOD = 900_000_000_000_000_101
BOSS = 900_000_000_000_000_102
WAIT = 4.0


class Recorder(discord.Client):
    """A discord.py client that records what it receives."""

    def __init__(self, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.message_content = True
        intents.guild_reactions = True
        intents.members = True
        super().__init__(intents=intents, guild_ready_timeout=0.05, **options)
        self.inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.seen: list[discord.Message] = []
        self.raw_reactions: asyncio.Queue[discord.RawReactionActionEvent] = asyncio.Queue()
        self.threads: asyncio.Queue[discord.Thread] = asyncio.Queue()
        self.resumed = asyncio.Event()

    async def on_message(self, message: discord.Message) -> None:
        if self.user is not None and message.author.id == self.user.id:
            return  # Discord echoes the bot's own messages; ignore them like a bot would
        self.seen.append(message)
        await self.inbox.put(message)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self.raw_reactions.put(payload)

    async def on_thread_create(self, thread: discord.Thread) -> None:
        await self.threads.put(thread)

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def next_message(self) -> discord.Message:
        return await asyncio.wait_for(self.inbox.get(), WAIT)


class FastReidentify(Recorder):
    """discord.py sleeps 5 s before every non-initial IDENTIFY; skip that in tests."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN) as server:
        server.add_guild(GUILD, "Expats")
        server.add_channel(GUILD, GENERAL, "general")
        server.add_channel(GUILD, FORUM, "help", type=GUILD_FORUM)
        server.add_member(GUILD, ALICE, "alice")
        server.add_member(GUILD, MOD, "mod", permissions=MANAGE_GUILD | MANAGE_MESSAGES)
        server.add_member(GUILD, BOSS, "boss", permissions=ADMINISTRATOR)
        yield server


def text_channel(client: discord.Client, channel_id: int = GENERAL) -> discord.TextChannel:
    channel = client.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_message_in_and_send_with_allowed_mentions(fake: FakeDiscord) -> None:
    client = Recorder()
    async with running_client(fake, client):
        assert client.user is not None and client.user.name == "copss"
        assert client.application_id == fake.application_id
        assert fake.identify_count == 1
        # discord.py asks for a compressed stream but accepts plain text frames.
        assert fake.gateway_queries[0]["compress"] in ("zlib-stream", "zstd-stream")
        assert fake.gateway_queries[0]["v"] == "10"
        assert [c.path for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]

        await fake.user_message(GENERAL, ALICE, f"hello <@{MOD}>")
        got = await client.next_message()
        assert got.content == f"hello <@{MOD}>"
        assert got.author.id == ALICE and isinstance(got.author, discord.Member)
        assert [m.id for m in got.mentions] == [MOD]

        sent = await text_channel(client).send(
            f"hi <@{ALICE}>", allowed_mentions=discord.AllowedMentions.none()
        )
        assert sent.content == f"hi <@{ALICE}>" and sent.author.id == fake.bot_id
        [stored] = fake.sent_messages(GENERAL)
        assert stored["allowed_mentions"] == {"parse": []}
        assert stored["mentions"] == []  # nobody pinged
        assert int(stored["id"]) == sent.id
        [post] = fake.calls_to("POST", f"/channels/{GENERAL}/messages")
        assert post.headers["Authorization"] == f"Bot {TOKEN}"
        assert post.json_body["content"] == f"hi <@{ALICE}>"

    # REST answers carry exactly `application/json`; unknown routes are recorded 404s.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{fake.rest_base}/no/such/route", headers={"Authorization": f"Bot {TOKEN}"}
        ) as resp,
    ):
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {"message": "404: Not Found", "code": 0}
    assert [c.path for c in fake.unknown_routes] == ["/no/such/route"]
    assert discord.http.Route.BASE == "https://discord.com/api/v10"  # patch restored


async def test_reply_reference_round_trips(fake: FakeDiscord) -> None:
    client = Recorder()
    async with running_client(fake, client):
        question = await fake.user_message(GENERAL, ALICE, "how do I register?")
        incoming = await client.next_message()
        reply = await incoming.reply("Go to the town hall.", mention_author=False)
        assert reply.reference is not None and reply.reference.message_id == incoming.id
        assert reply.type is discord.MessageType.reply
        resolved = reply.reference.resolved
        assert isinstance(resolved, discord.Message) and resolved.content == "how do I register?"
        [post] = fake.calls_to("POST", f"/channels/{GENERAL}/messages")
        assert str(post.json_body["message_reference"]["message_id"]) == question["id"]
        [stored] = fake.sent_messages(GENERAL)
        assert stored["referenced_message"]["id"] == question["id"]
        assert stored["allowed_mentions"]["replied_user"] is False
        assert stored["mentions"] == []

        # A user replies to the bot: reference and the implicit ping reach the client.
        await fake.user_message(GENERAL, ALICE, "thanks!", message_reference=reply.id)
        follow = await client.next_message()
        assert follow.reference is not None and follow.reference.message_id == reply.id
        assert client.user in follow.mentions

        # Replying to a message that does not exist fails like Discord (50035).
        with pytest.raises(discord.HTTPException) as info:
            await text_channel(client).send(
                "x", reference=discord.MessageReference(message_id=1, channel_id=GENERAL)
            )
        assert info.value.code == 50035


@pytest.mark.parametrize("close_code", [4000, None], ids=["close-4000", "abort"])
async def test_drop_websocket_resumes_without_losing_or_duplicating(
    fake: FakeDiscord, close_code: int | None
) -> None:
    client = Recorder()
    async with running_client(fake, client):
        drops = 3
        for n in range(1, drops + 1):
            assert await fake.drop_websocket(close_code) == 1
            # Pushed while the client is disconnected: buffered, replayed on RESUME.
            await fake.user_message(GENERAL, ALICE, f"during drop {n}")
            await fake.wait_for_resume(n, within=WAIT)
            await fake.user_message(GENERAL, ALICE, f"after drop {n}")
            assert (await client.next_message()).content == f"during drop {n}"
            assert (await client.next_message()).content == f"after drop {n}"
        assert fake.identify_count == 1
        assert fake.resume_count == drops
        assert client.resumed.is_set()
        # Exactly once: nothing else arrived (a duplicate would precede this marker).
        await fake.user_message(GENERAL, ALICE, "marker")
        assert (await client.next_message()).content == "marker"
        contents = [m.content for m in client.seen]
        assert len(contents) == len(set(contents)) == 2 * drops + 1


async def test_invalid_session_makes_client_reidentify(fake: FakeDiscord) -> None:
    client = FastReidentify()
    async with running_client(fake, client):
        await fake.invalid_session(resumable=False)
        await fake.wait_for_identify(2, within=WAIT)
        await fake.user_message(GENERAL, ALICE, "after re-identify")
        assert (await client.next_message()).content == "after re-identify"
        assert fake.resume_count == 0


async def test_rate_limited_send_is_retried_once(fake: FakeDiscord) -> None:
    client = Recorder()
    async with running_client(fake, client):
        fake.inject_rest("POST", rf"/channels/{GENERAL}/messages", RateLimited(retry_after=0.2))
        started = time.monotonic()
        sent = await text_channel(client).send("after the 429")
        assert time.monotonic() - started >= 0.2  # discord.py honoured retry_after
        posts = fake.calls_to("POST", f"/channels/{GENERAL}/messages")
        assert [c.status for c in posts] == [429, 200]
        assert [m["content"] for m in fake.sent_messages(GENERAL)] == ["after the 429"]
        assert sent.id == int(fake.sent_messages(GENERAL)[0]["id"])
        assert fake.pending_faults() == 0

        fake.inject_rest("*", r"/channels/\d+/messages", Slow(0.1))
        await text_channel(client).send("slow but fine")
        assert len(fake.sent_messages(GENERAL)) == 2


async def test_slash_command_via_app_commands_tree(fake: FakeDiscord) -> None:
    client = Recorder()
    tree = app_commands.CommandTree(client)
    seen: list[tuple[int, bool]] = []

    @tree.command(name="ask", description="Ask the community memory")
    async def ask(interaction: discord.Interaction, question: str, count: int = 1) -> None:
        member = interaction.user
        assert isinstance(member, discord.Member)
        seen.append((count, member.guild_permissions.manage_guild))
        await interaction.response.send_message(f"answer to {question}", ephemeral=True)

    @tree.command(name="slow", description="Deferred answer")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="still thinking")
        original = await interaction.original_response()
        await interaction.followup.send(f"done after {original.content!r}")

    async with running_client(fake, client):
        synced = await tree.sync()
        assert sorted(c.name for c in synced) == ["ask", "slow"]
        assert {c["name"] for c in fake.commands[None]} == {"ask", "slow"}

        record = await fake.interaction(
            GUILD, GENERAL, MOD, "ask", {"question": "visa?", "count": 2}
        )
        response = await fake.wait_for_interaction_response(record.id, within=WAIT)
        assert response["type"] == 4
        assert response["data"]["content"] == "answer to visa?"
        assert response["data"]["flags"] == 64  # ephemeral
        assert seen == [(2, True)]
        assert record.original_message_id is not None

        deferred = await fake.interaction(GUILD, GENERAL, ALICE, "slow")
        await fake.wait_for(lambda: bool(deferred.followup_ids), within=WAIT, what="followup")
        assert deferred.responses[0]["type"] == 5
        assert deferred.original_message_id is not None
        assert fake.message(deferred.original_message_id)["content"] == "still thinking"
        followup = fake.message(deferred.followup_ids[0])
        assert followup["content"] == "done after 'still thinking'"
        assert [m["content"] for m in fake.sent_messages(GENERAL)][-1] == followup["content"]
        hooks = {c.method for c in fake.calls_to("*", f"/webhooks/{fake.application_id}/")}
        assert hooks == {"PATCH", "GET", "POST"}


async def test_guild_permissions_come_from_roles(fake: FakeDiscord) -> None:
    client = Recorder()
    async with running_client(fake, client):
        guild = client.get_guild(GUILD)
        assert guild is not None
        mod, alice, boss = guild.get_member(MOD), guild.get_member(ALICE), guild.get_member(BOSS)
        assert mod is not None and alice is not None and boss is not None
        assert mod.guild_permissions.manage_guild and mod.guild_permissions.manage_messages
        assert not mod.guild_permissions.administrator
        assert not alice.guild_permissions.manage_guild
        assert alice.guild_permissions.send_messages  # from @everyone
        assert boss.guild_permissions.administrator and boss.guild_permissions.manage_guild
        fetched = await guild.fetch_member(MOD)
        assert fetched.guild_permissions.manage_guild
        assert fake.calls_to("GET", f"/guilds/{GUILD}/members/{MOD}")


async def test_history_after_returns_later_messages(fake: FakeDiscord) -> None:
    client = Recorder()
    async with running_client(fake, client):
        posted = [await fake.user_message(GENERAL, ALICE, f"m{i}") for i in range(120)]
        channel = text_channel(client)
        pivot = discord.Object(id=int(posted[100]["id"]))
        later = [m.content async for m in channel.history(after=pivot)]
        assert later == [f"m{i}" for i in range(101, 120)]  # oldest first with after=
        newest = [m.content async for m in channel.history(limit=3)]
        assert newest == ["m119", "m118", "m117"]
        # limit=None pages through 100-message batches.
        everything = [
            m.content async for m in channel.history(limit=None, after=discord.Object(id=1))
        ]
        assert everything == [f"m{i}" for i in range(120)]
        gets = fake.calls_to("GET", f"/channels/{GENERAL}/messages")
        assert gets[0].query == {"limit": "100", "after": posted[100]["id"]}


async def test_threads_reactions_and_webhooks(fake: FakeDiscord) -> None:
    client = Recorder()
    async with running_client(fake, client):
        await fake.user_message(GENERAL, ALICE, "start a thread here")
        incoming = await client.next_message()
        thread = await incoming.create_thread(name="Registration")
        assert thread.id == incoming.id  # Discord: thread id == starter message id
        assert (await asyncio.wait_for(client.threads.get(), WAIT)).id == thread.id
        await fake.user_message(thread.id, ALICE, "inside the thread")
        inside = await client.next_message()
        assert isinstance(inside.channel, discord.Thread) and inside.channel.parent_id == GENERAL

        user_thread = await fake.create_thread(GENERAL, "user thread")
        assert (await asyncio.wait_for(client.threads.get(), WAIT)).name == "user thread"
        assert client.get_channel(int(user_thread["id"])) is not None

        forum = client.get_channel(FORUM)
        assert isinstance(forum, discord.ForumChannel)
        post = await forum.create_thread(name="Visa FAQ", content="Read this first")
        assert post.thread.id == post.message.id and post.message.content == "Read this first"

        await incoming.add_reaction("👍")
        assert fake.reactions(incoming.id) == [("👍", [fake.bot_id])]
        await fake.user_react(GENERAL, incoming.id, ALICE, "👍")
        raw = await asyncio.wait_for(client.raw_reactions.get(), WAIT)
        while raw.user_id != ALICE:  # the bot's own reaction is echoed first
            raw = await asyncio.wait_for(client.raw_reactions.get(), WAIT)
        assert str(raw.emoji) == "👍" and raw.message_id == incoming.id

        webhook = await text_channel(client).create_webhook(name="relay")
        relayed = await webhook.send("from telegram", username="Bob (Telegram)", wait=True)
        assert relayed.author.name == "Bob (Telegram)" and relayed.webhook_id == webhook.id
        [stored] = fake.webhook_messages(GENERAL)
        assert stored["author"]["username"] == "Bob (Telegram)"
        seen = await client.next_message()
        assert seen.webhook_id == webhook.id


async def test_zlib_stream_frames(fake: FakeDiscord) -> None:
    fake.zlib_stream = True
    client = Recorder()
    async with running_client(fake, client):
        if fake.gateway_queries[0].get("compress") != "zlib-stream":
            pytest.skip("discord.py negotiated zstd-stream; fake only compresses zlib")
        await fake.user_message(GENERAL, ALICE, "compressed")
        assert (await client.next_message()).content == "compressed"
