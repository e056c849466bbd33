"""copss on the real discord.py client, end to end through the fake gateway and REST API."""

from __future__ import annotations

import asyncio
import io
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import discord
import pytest
from sqlalchemy import insert, select

from adapters.base import AdapterError
from adapters.discord import DiscordAdapter
from adapters.discord.adapter import copss_intents
from adapters.text import outgoing_text, split_text
from bot.events import (
    ChannelRef,
    CommandEvent,
    DeleteEvent,
    EditEvent,
    Event,
    MessageEvent,
    Outgoing,
    ReactionEvent,
)
from faq.normalize import search_text
from storage.models import Answer, InboxEvent, Message, OutboxMessage, Thread
from storage.repos.conversation import ConversationRepo
from storage.repos.threads import ThreadRepo
from tests.adapters.dc_harness import MENU, TOKEN, WAIT, DiscordHarness, PortalFake
from tests.fakes.discord_gateway import (
    ADMINISTRATOR,
    GUILD_FORUM,
    JSON,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    FakeDiscord,
    RateLimited,
    ServerError,
    Slow,
    patch_discord,
)

GUILD = 900_000_000_000_000_001
GENERAL, FORUM, ROLE = 900_000_000_000_000_010, 900_000_000_000_000_011, 900_000_000_000_000_020
ALICE, BOB, CAROL, DAVE = (900_000_000_000_000_100 + i for i in range(4))
MOD, BOSS = 900_000_000_000_000_110, 900_000_000_000_000_111
#: Members posting the bursts in the resilience test.
CROWD = [900_000_000_000_000_200 + i for i in range(40)]
NOBODY = {"parse": []}


def build_world(fake: FakeDiscord) -> None:
    fake.add_guild(GUILD, "Expats NL")
    fake.add_channel(GUILD, GENERAL, "general")
    fake.add_channel(GUILD, FORUM, "help", type=GUILD_FORUM)
    fake.add_role(GUILD, ROLE, "moderators", MANAGE_MESSAGES)
    for uid, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol"), (DAVE, "Dave")):
        fake.add_member(GUILD, uid, name)
    fake.add_member(GUILD, MOD, "Mod", permissions=MANAGE_GUILD)
    fake.add_member(GUILD, BOSS, "Boss", permissions=MANAGE_GUILD | ADMINISTRATOR)
    for i, uid in enumerate(CROWD):
        fake.add_member(GUILD, uid, f"M{i}")


@pytest.fixture
async def dc(tmp_path: Path) -> AsyncIterator[DiscordHarness]:
    async with PortalFake(token=TOKEN) as fake:
        build_world(fake)
        harness = DiscordHarness(fake, tmp_path)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def answers_to(dc: DiscordHarness, message_id: int) -> list[str]:
    """Platform ids of the answers recorded for the thread asked by ``message_id``."""
    async with dc.db.session() as s:
        question = await s.scalar(
            select(Message.id).where(Message.platform_message_id == str(message_id))
        )
        rows = await s.execute(
            select(Message.platform_message_id)
            .join(Answer, Answer.message_id == Message.id)
            .join(Thread, Thread.id == Answer.thread_id)
            .where(Thread.question_message_id == question)
        )
    return [row[0] for row in rows]


async def thread_status(dc: DiscordHarness, message_id: int) -> str | None:
    async with dc.db.session() as s:
        return await s.scalar(
            select(Thread.status)
            .join(Message, Message.id == Thread.question_message_id)
            .where(Message.platform_message_id == str(message_id))
        )


def assert_pings_nobody(message: dict[str, object]) -> None:
    assert message["allowed_mentions"] == NOBODY
    assert message["mentions"] == [] and message["mention_roles"] == []
    assert message["mention_everyone"] is False


# -- Q&A --------------------------------------------------------------------------------------


async def test_question_pointed_at_answers_from_discord_and_telegram(dc: DiscordHarness) -> None:
    q = await dc.say(
        GENERAL, ALICE, "Which supermarket sells cheap oat milk near Utrecht Centraal?"
    )
    assert dc.replies_to(q) == []
    a = await dc.say(GENERAL, BOB, "Lidl at Vredenburg, about 1 euro a litre.", reply_to=q)
    assert await answers_to(dc, q) == [str(a)]  # a Discord reply is an answer
    assert await thread_status(dc, q) == "answered"

    # A thread asked and answered in a linked Telegram chat (by the process running Telegram,
    # sharing this store) lands in the same community memory.
    now = datetime.now(UTC)
    ask = "Does anyone know a good dentist in Leiden taking new patients?"
    tip = "Tandartspraktijk Centrum in Leiden took me last month."
    async with dc.db.session() as s:
        repo = ConversationRepo(s)
        general = await repo.ensure_channel("discord", str(GENERAL), None)
        chat = await repo.ensure_channel("telegram", "-1001234567890", None)
        chat.community_id = general.community_id  # linked chats share one community
        tom = await repo.ensure_member("telegram", "42", "Tom")
        tess = await repo.ensure_member("telegram", "43", "Tess")
        asked, _ = await repo.add_message(chat, "7", tom, ask, now)
        told, _ = await repo.add_message(chat, "8", tess, tip, now, reply_to="7")
        threads = ThreadRepo(s)
        thread = await threads.create(chat.community_id, asked, ask, search_text([ask]), now)
        await threads.add_answer(thread, told)

    q2 = await dc.say(GENERAL, CAROL, "where to buy cheap oat milk around utrecht centraal?")
    [reply] = dc.replies_to(q2)
    assert "Bob" in reply["content"] and "Lidl at Vredenburg" in reply["content"]
    assert reply["type"] == 19 and reply["channel_id"] == str(GENERAL)  # a real Discord reply
    assert_pings_nobody(reply)

    q3 = await dc.say(GENERAL, DAVE, "any good dentist in leiden taking new patients?")
    [reply3] = dc.replies_to(q3)
    assert "Tess" in reply3["content"] and "Tandartspraktijk Centrum" in reply3["content"]


async def test_thread_and_forum_messages_answer_their_question(dc: DiscordHarness) -> None:
    fake = dc.fake
    q = await dc.say(
        GENERAL, ALICE, "Does anyone know a good dentist in Leiden taking new patients?"
    )
    thread = await fake.create_thread(GENERAL, "Dentist in Leiden", from_message_id=q)
    assert int(thread["id"]) == q  # Discord: the thread id is the starter message's id
    a = await dc.say(q, BOB, "Tandartspraktijk Centrum in Leiden took me last month.")
    event = await dc.wait_message(a)
    assert event.channel == ChannelRef("discord", str(GENERAL), str(q))
    assert await answers_to(dc, q) == [str(a)]

    # The asker's ✅ on the answer solves the thread; someone else's does not.
    await fake.user_react(q, a, CAROL, "✅")
    await dc.wait_event(lambda e: isinstance(e, ReactionEvent) and e.author.user_id == str(CAROL))
    await dc.settle()
    assert await thread_status(dc, q) == "answered"
    await fake.user_react(q, a, ALICE, "✅")
    await dc.wait_event(lambda e: isinstance(e, ReactionEvent) and e.author.user_id == str(ALICE))
    await dc.settle()
    assert await thread_status(dc, q) == "solved"

    post = await dc.forum_post(FORUM, ALICE, "Where do I register my bike?", "Just moved to Delft.")
    opening = await dc.wait_message(post)
    assert isinstance(opening, MessageEvent)
    assert opening.text == "Where do I register my bike?\nJust moved to Delft."
    b = await dc.say(post, BOB, "You don't register bikes here, but get a good lock.")
    assert await answers_to(dc, post) == [str(b)]


async def test_edit_and_delete_follow_into_the_store(dc: DiscordHarness) -> None:
    q = await dc.say(GENERAL, ALICE, "Is the IND desk in Zwolle open on Fridays?")
    # Edited after it left discord.py's message cache (as after a restart): raw events work.
    assert dc.adapter is not None
    dc.adapter.client._connection._messages.clear()  # type: ignore[union-attr]
    await dc.fake.user_edit(GENERAL, q, "Is the IND desk in Den Bosch open on Fridays?")
    await dc.wait_message(q, EditEvent)
    await dc.settle()
    async with dc.db.session() as s:
        message = await s.scalar(select(Message).where(Message.platform_message_id == str(q)))
        thread = await s.scalar(select(Thread))
    assert message is not None and message.text == "Is the IND desk in Den Bosch open on Fridays?"
    assert thread is not None and "Den Bosch" in thread.question_text

    await dc.fake.user_delete(GENERAL, q)
    await dc.wait_message(q, DeleteEvent)
    await dc.settle()
    async with dc.db.session() as s:
        message = await s.scalar(select(Message).where(Message.platform_message_id == str(q)))
    assert message is not None and message.deleted and message.text == ""


async def test_direct_messages(dc: DiscordHarness) -> None:
    assert dc.adapter is not None
    dm = await dc.adapter.client.create_dm(discord.Object(ALICE))
    q = await dc.say(dm.id, ALICE, "How do I get a BSN number?")
    [reply] = dc.replies_to(q)
    assert reply["channel_id"] == str(dm.id) and "BSN" in reply["content"]
    s = await dc.say(dm.id, ALICE, "!stats")
    assert isinstance(await dc.wait_message(s), CommandEvent)
    assert "for admins" in dc.replies_to(s)[0]["content"]  # nobody administers a DM


# -- nothing pings ------------------------------------------------------------------------------

INJECTIONS = [
    "@everyone",
    "@here",
    f"<@&{ROLE}>",
    f"<@&{GUILD}>",  # the @everyone role itself
    f"<@{ALICE}>",
    f"<@!{BOB}>",
    "@\u200beveryone",
    "\u202e@everyone",
    "@\u2060here",
    "\u200f@here\u200e",
    "@everyone\u200d",
    "＠everyone",
]


async def test_user_text_quoted_by_copss_pings_nobody(dc: DiscordHarness) -> None:
    fake = dc.fake
    q = await dc.say(GENERAL, ALICE, "Where can I recycle old batteries in Haarlem city centre?")
    planted = "Drop them at the Albert Heijn " + " ".join(INJECTIONS)
    a = await dc.say(GENERAL, BOB, planted, reply_to=q)
    # Posted by a member, these strings do ping: the test really exercises mentions.
    answer = fake.message(a)
    assert answer["mention_everyone"] and answer["mention_roles"] and answer["mentions"]

    q2 = await dc.say(GENERAL, CAROL, "where to recycle old batteries in haarlem centre?")
    text_ask = await dc.say(GENERAL, DAVE, "!ask recycle old batteries in haarlem")
    record = await dc.slash(GUILD, GENERAL, MOD, "ask", "recycle batteries haarlem city centre")
    [by_channel] = dc.replies_to(q2)
    [by_command] = dc.replies_to(text_ask)
    assert record.original_message_id is not None
    by_interaction = fake.message(record.original_message_id)
    for reply in (by_channel, by_command, by_interaction):
        for injection in INJECTIONS:
            # Quoted as copss posts text: without bidi and zero-width characters.
            assert outgoing_text(injection) in reply["content"], (injection, reply["content"])
    for sent in fake.sent_messages():
        assert_pings_nobody(sent)
    # The interaction's answer replaced its "thinking…" message without allowing a ping.
    [patch] = fake.calls_to("PATCH", f"/webhooks/{fake.application_id}/")
    assert patch.json_body["allowed_mentions"] == NOBODY
    # Deferred at once (privately: an ask is the member's own), answered later.
    assert record.responses == [{"type": 5, "data": {"flags": 1 << 6}}]


# -- commands and admins ------------------------------------------------------------------------


async def test_slash_commands_registered_with_optional_text(dc: DiscordHarness) -> None:
    commands = dc.fake.commands[None]
    assert [c["name"] for c in commands] == [name for name, _ in MENU]
    for command in commands:
        [option] = command["options"]
        assert (option["name"], option["type"], option["required"]) == ("text", 3, False)


async def test_stats_needs_manage_server_asked_of_discord_each_time(dc: DiscordHarness) -> None:
    fake = dc.fake
    refused = await dc.say(GENERAL, DAVE, "!stats")
    allowed = await dc.say(GENERAL, MOD, "!stats")
    assert "for admins" in dc.replies_to(refused)[0]["content"]
    assert "Questions:" in dc.replies_to(allowed)[0]["content"]

    plain = await dc.slash(GUILD, GENERAL, CAROL, "stats")
    boss = await dc.slash(GUILD, GENERAL, BOSS, "stats")
    for record in (plain, boss):
        assert record.original_message_id is not None and record.followup_ids == []
    assert "for admins" in fake.message(plain.original_message_id or 0)["content"]
    assert "Questions:" in fake.message(boss.original_message_id or 0)["content"]

    # Demoted: the next check asks Discord again instead of trusting a cached member.
    fake.set_member_roles(GUILD, MOD, [])
    again = await dc.say(GENERAL, MOD, "!stats")
    assert "for admins" in dc.replies_to(again)[0]["content"]
    lookups = Counter(c.path for c in fake.calls_to("GET", f"/guilds/{GUILD}/members/"))
    assert lookups[f"/guilds/{GUILD}/members/{MOD}"] == 2
    assert all(lookups[f"/guilds/{GUILD}/members/{uid}"] >= 1 for uid in (DAVE, CAROL, BOSS))


# -- resilience ---------------------------------------------------------------------------------

TOPICS = ["a BSN number", "DigiD", "health insurance", "a GP", "a bank account"]


@pytest.mark.faults
async def test_drops_and_restart_lose_nothing_and_repeat_nothing(dc: DiscordHarness) -> None:
    fake = dc.fake
    posted: list[JSON] = []

    async def ask(i: int) -> None:
        text = f"How do I get {TOPICS[i % len(TOPICS)]}? (asking for friend {i})"
        posted.append(await fake.user_message(GENERAL, CROWD[i % len(CROWD)], text))

    # 20 websocket drops while members keep posting: missed events come back on RESUME.
    for n in range(1, 21):
        assert await fake.drop_websocket(4000) == 1
        await ask(2 * n)  # posted while copss is disconnected
        await fake.wait_for_resume(n, within=WAIT)
        await ask(2 * n + 1)
    assert fake.resume_count == 20 and fake.identify_count == 1
    for message in posted:
        await dc.wait_message(str(message["id"]))
    await dc.settle()

    # copss is down while members go on: a question, a thread answer, a new forum post.
    await dc.stop()
    await ask(100)
    thread_q = posted[0]
    await fake.create_thread(GENERAL, "BSN", from_message_id=int(thread_q["id"]))
    posted.append(await fake.user_message(int(thread_q["id"]), BOB, "Book it at the gemeente."))
    new_post = await fake.create_thread(FORUM, "How do I get DigiD?")
    posted.append(await fake.user_message(int(new_post["id"]), CAROL, "asking for a friend"))
    await dc.start()  # catches up from the store's checkpoints
    for message in posted:
        await dc.wait_message(str(message["id"]))
    await dc.settle()
    await dc.stop()
    seen = len(dc.events)
    await dc.start()  # a clean restart with nothing missed reads nothing again
    await dc.settle()
    assert len(dc.events) == seen

    async with dc.db.session() as s:
        keys = (await s.scalars(select(InboxEvent.dedup_key))).all()
        outbox = (await s.scalars(select(OutboxMessage))).all()
    chat_of = {thread_q["id"]: str(GENERAL), new_post["id"]: str(FORUM)}
    expected = {
        f"message:discord:{chat_of.get(m['channel_id'], m['channel_id'])}:{m['id']}" for m in posted
    }
    assert expected <= set(keys) and len(keys) == len(set(keys))
    replied = [(r.get("message_reference") or {}).get("message_id") for r in fake.sent_messages()]
    assert len(replied) == len(set(replied))  # no question answered twice
    # Whether a question gets a suggestion is the matcher's call; what was queued went out once.
    assert len(outbox) >= 20 and all(row.state == "sent" for row in outbox)
    assert sorted(replied) == sorted(str(row.reply_to) for row in outbox)
    assert str(posted[-3]["id"]) in replied  # asked during the downtime, answered on return
    assert await answers_to(dc, int(thread_q["id"])) == [str(posted[-2]["id"])]


@pytest.mark.faults
async def test_429_storm_delays_but_drops_nothing(dc: DiscordHarness) -> None:
    fake = dc.fake
    route = r"/channels/\d+/messages"
    fake.inject_rest("POST", route, RateLimited(0.05), times=2)
    fake.inject_rest("POST", route, RateLimited(0.05, global_=True))
    # Six in a row outlast discord.py's five tries: copss sees the 429 and retries the send
    # itself, with the same nonce.
    fake.inject_rest("POST", route, RateLimited(0.05), times=6)
    fake.inject_rest("POST", route, RateLimited(0.05), times=2)
    questions = []
    for i in range(5):
        text = f"How do I get {TOPICS[i]}? (new in town, {i})"
        questions.append(int((await fake.user_message(GENERAL, CROWD[i], text))["id"]))
    for q in questions:
        await dc.wait_message(q)
    await dc.settle()
    assert fake.pending_faults() == 0
    statuses = Counter(c.status for c in fake.calls_to("POST", f"/channels/{GENERAL}/messages"))
    assert statuses[429] == 11
    for q in questions:
        assert len(dc.replies_to(q)) == 1


async def test_split_message_retried_after_failure_is_posted_once(dc: DiscordHarness) -> None:
    fake = dc.fake
    body = "```\n" + "\n".join(f"line {i:04d} of a long answer" for i in range(200)) + "\n```"
    async with dc.db.session() as s:
        await s.execute(
            insert(OutboxMessage).values(
                platform="discord", chat_id=str(GENERAL), thread_id="", text=body, meta={}
            )
        )
    # The second chunk fails once after the first went out; the retry must not repeat it.
    fake.inject_rest("POST", r"/channels/\d+/messages", Slow(0))
    fake.inject_rest("POST", r"/channels/\d+/messages", ServerError(503))
    assert dc.app is not None and dc.app.hub is not None
    dc.app.hub.wake_sender("discord")
    await dc.settle()
    sent = [m["content"] for m in fake.sent_messages(GENERAL)]
    assert sent == split_text(body, 2000, code_fences=True) and len(sent) == 3
    assert all(len(m) <= 2000 and m.startswith("```") and m.endswith("```") for m in sent)
    lines = [line for m in sent for line in m.splitlines() if line != "```"]
    assert lines == [f"line {i:04d} of a long answer" for i in range(200)]

    # Sending one outbox row twice (a crash after Discord took it) posts it once: same nonce.
    assert dc.adapter is not None
    out = Outgoing(ChannelRef("discord", str(GENERAL)), "exactly once", key="outbox:999")
    first, second = await dc.adapter.send(out), await dc.adapter.send(out)
    assert first == second and [m["content"] for m in fake.sent_messages(GENERAL)][-1:] == [
        "exactly once"
    ]
    assert len(fake.sent_messages(GENERAL)) == 4


# -- start-up problems and secrets --------------------------------------------------------------


async def test_missing_message_content_intent_fails_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[Event] = []

    async def sink(event: Event) -> None:
        events.append(event)

    async with PortalFake(token=TOKEN, message_content=False) as fake:
        build_world(fake)
        adapter = DiscordAdapter(TOKEN, guild_ready_timeout=0.05)
        with patch_discord(fake), pytest.raises(AdapterError) as info:
            await asyncio.wait_for(adapter.start(sink), WAIT)
    assert "Message Content" in str(info.value) and "developers/applications" in str(info.value)
    assert "do not show the Message Content intent" in caplog.text
    assert adapter.client.is_closed() and events == []


async def test_withheld_message_text_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    events: list[Event] = []
    mention_seen = asyncio.Event()

    async def sink(event: Event) -> None:
        events.append(event)
        mention_seen.set()

    intents = copss_intents()
    intents.message_content = False  # Discord then blanks the text of server messages
    async with PortalFake(token=TOKEN) as fake:
        build_world(fake)
        adapter = DiscordAdapter(TOKEN, guild_ready_timeout=0.05, intents=intents)
        with patch_discord(fake):
            task = asyncio.create_task(adapter.start(sink))
            await asyncio.wait_for(adapter.caught_up.wait(), WAIT)
            await fake.user_message(GENERAL, ALICE, "How do I get a BSN number?")
            await fake.user_message(GENERAL, BOB, "Where do I find a GP?")
            # A message that mentions the bot keeps its text; events are taken in order.
            await fake.user_message(GENERAL, CAROL, f"<@{fake.bot_id}> hello?")
            await asyncio.wait_for(mention_seen.wait(), WAIT)
            await adapter.close()
            await asyncio.wait_for(task, WAIT)
    assert len(events) == 1 and "hello?" in getattr(events[0], "text", "")
    warnings = [r for r in caplog.records if "arrived without its text" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


async def test_token_never_logged(tmp_path: Path) -> None:
    from bot.logs import setup_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("DEBUG", stream=stream)
    try:
        async with PortalFake(token=TOKEN) as fake:
            build_world(fake)
            harness = DiscordHarness(fake, tmp_path)
            await harness.start()
            fake.inject_rest("POST", r"/channels/\d+/messages", RateLimited(0.05))
            fake.inject_rest("POST", r"/channels/\d+/messages", ServerError(503))
            q = await harness.say(GENERAL, ALICE, "How do I get a BSN number?")
            await harness.slash(GUILD, GENERAL, MOD, "stats")
            assert len(harness.replies_to(q)) == 1
            await harness.stop()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    output = stream.getvalue()
    assert "discord: logged in as copss" in output
    assert "429" in output and "503" in output  # the faults were logged ...
    assert TOKEN not in output  # ... and the token never was
    assert "Authorization" not in output


ADMIN_CALLS = [
    ("faq", "list"),
    ("faq", "add x | y | z | https://example.org/"),
    ("export", ""),
    ("threshold", "answer 0.9"),
    ("synonyms", "add a, b"),
    ("unsolved", ""),
    ("delete", "everywhere"),
    ("stats", ""),
    ("audit", ""),
    ("undelivered", "retry"),
    ("link", "telegram:-100123"),
    ("unlink", "telegram:-100123"),
    ("links", ""),
]


async def test_every_admin_command_refused_for_members(dc: DiscordHarness) -> None:
    from bot.features.commands import all_commands
    from storage.models import AuditLog, Community

    assert {name for name, _ in ADMIN_CALLS} == {c.name for c in all_commands() if c.admin}
    for name, args in ADMIN_CALLS:
        text = await dc.say(GENERAL, DAVE, f"!{name} {args}".rstrip())
        assert "for admins" in dc.replies_to(text)[0]["content"], name
        record = await dc.slash(GUILD, GENERAL, CAROL, name, args)
        assert "for admins" in dc.fake.message(record.original_message_id or 0)["content"], name
    async with dc.db.session() as s:
        results = (await s.scalars(select(AuditLog.result))).all()
        settings = (await s.scalars(select(Community.settings))).all()
    assert results == ["refused: not an admin"] * (2 * len(ADMIN_CALLS))
    assert settings and all(x == {} for x in settings)  # no community changed


async def test_personal_slash_answers_are_private(dc: DiscordHarness) -> None:
    ephemeral = 1 << 6
    private = await dc.slash(GUILD, GENERAL, CAROL, "ask", "how do I get a BSN")
    public = await dc.slash(GUILD, GENERAL, MOD, "stats")
    assert private.responses[0]["type"] == 5 and public.responses[0]["type"] == 5
    assert private.responses[0]["data"]["flags"] & ephemeral
    assert not (public.responses[0].get("data") or {}).get("flags", 0) & ephemeral
    assert "BSN" in dc.fake.message(private.original_message_id or 0)["content"]
