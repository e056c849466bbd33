"""Discord translation: real discord.py models built from payloads, no client, no network."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import pytest

from adapters.base import AdapterError, TransientAdapterError
from adapters.discord.adapter import copss_intents
from adapters.discord.translate import (
    BotView,
    adapter_error,
    catch_up_plan,
    channel_of,
    command_event,
    content_intent_granted,
    content_withheld,
    delete_events,
    edit_event,
    interaction_id,
    message_event,
    message_nonce,
    parse_command,
    reaction_event,
)
from bot.events import ChannelRef, CommandEvent, DeleteEvent, EditEvent, MessageEvent

GUILD, GENERAL, FORUM, THREAD, POST, DM = 1, 10, 11, 500, 600, 70
BOT, APP, ALICE, BOB, HOOK = 90, 91, 5, 6, 95
TS = "2026-03-01T12:00:00+00:00"
VIEW = BotView(BOT, APP, "!", frozenset({"help", "ask", "stats"}))
GEN = ChannelRef("discord", str(GENERAL))


def _user(uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(uid),
        "username": name,
        "global_name": None if bot else name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


def _thread(tid: int, parent: int, name: str) -> dict[str, Any]:
    return {
        "id": str(tid),
        "type": 11,
        "guild_id": str(GUILD),
        "parent_id": str(parent),
        "owner_id": str(ALICE),
        "name": name,
        "message_count": 1,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": TS,
            "locked": False,
        },
    }


@pytest.fixture
def state() -> Iterator[Any]:
    """A ConnectionState holding one server: #general, a forum, a thread and a forum post."""
    client = discord.Client(intents=copss_intents())
    conn = client._connection
    everyone = {"id": str(GUILD), "name": "@everyone", "permissions": "0", "position": 0}
    guild = discord.Guild(
        state=conn,
        data={
            "id": str(GUILD),
            "name": "Expats",
            "roles": [{**everyone, "color": 0, "hoist": False, "managed": False}],
            "channels": [
                {"id": str(GENERAL), "type": 0, "name": "general", "position": 0},
                {"id": str(FORUM), "type": 15, "name": "help", "position": 1},
            ],
            "threads": [
                _thread(THREAD, GENERAL, "Registration"),
                _thread(POST, FORUM, "How do I get a BSN?"),
            ],
        },
    )
    conn._add_guild(guild)
    # What login would set; interactions look up the bot's own member through it.
    conn.user = discord.ClientUser(state=conn, data=_user(BOT, "copss", bot=True))
    yield conn


def _message(
    conn: Any, channel_id: int, mid: int, content: str, author: int = ALICE, **extra: Any
) -> discord.Message:
    guild = conn._get_guild(GUILD)
    channel: Any
    if channel_id == DM:
        channel = discord.DMChannel(
            me=None, state=conn, data={"id": str(DM), "type": 1, "recipients": [_user(ALICE, "a")]}
        )
    else:
        channel = guild.get_channel_or_thread(channel_id)
    data: dict[str, Any] = {
        "id": str(mid),
        "channel_id": str(channel_id),
        "author": extra.pop("author_payload", None) or _user(author, f"user{author}"),
        "content": content,
        "timestamp": TS,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": [],
    }
    if channel_id != DM:
        data["guild_id"] = str(GUILD)
        nick = extra.pop("nick", None)
        data["member"] = {"roles": [], "nick": nick, "joined_at": TS, "flags": 0}
    data.update(extra)
    return discord.Message(state=conn, channel=channel, data=data)


def _reference(mid: int, channel_id: int = GENERAL, kind: int = 0) -> dict[str, Any]:
    return {"type": kind, "message_id": str(mid), "channel_id": str(channel_id)}


# -- messages -----------------------------------------------------------------------------------


def test_channel_message_and_reply(state: Any) -> None:
    question = message_event(
        _message(state, GENERAL, 100, "Where is the IND?", nick="Ali"), GEN, VIEW
    )
    assert isinstance(question, MessageEvent)
    assert question.channel == GEN and question.message_id == "100"
    assert question.author.user_id == str(ALICE) and question.author.display_name == "Ali"
    assert question.sent_at == discord.utils.snowflake_time(100)  # Discord ids carry the time
    assert question.reply_to is None and not question.forwarded

    reply = _message(state, GENERAL, 101, "Zwolle", BOB, type=19, message_reference=_reference(100))
    event = message_event(reply, GEN, VIEW)
    assert isinstance(event, MessageEvent) and event.reply_to == "100"


def test_thread_message_answers_the_message_it_was_opened_from(state: Any) -> None:
    place = channel_of(state._get_guild(GUILD).get_thread(THREAD))
    assert place == ChannelRef("discord", str(GENERAL), str(THREAD))
    plain = message_event(_message(state, THREAD, 700, "Try the town hall"), place, VIEW)
    assert isinstance(plain, MessageEvent) and plain.reply_to == str(THREAD)
    explicit = _message(
        state, THREAD, 701, "Yes", type=19, message_reference=_reference(700, THREAD)
    )
    event = message_event(explicit, place, VIEW)
    assert isinstance(event, MessageEvent) and event.reply_to == "700"
    # A command in a thread targets only what it explicitly replies to.
    command = message_event(_message(state, THREAD, 702, "!stats"), place, VIEW)
    assert isinstance(command, CommandEvent) and command.reply_to is None


def test_forum_post_opening_message_is_the_question(state: Any) -> None:
    place = ChannelRef("discord", str(FORUM), str(POST))
    starter = message_event(_message(state, POST, POST, "I just moved here."), place, VIEW)
    assert isinstance(starter, MessageEvent)
    assert starter.channel == place and starter.reply_to is None
    assert starter.text == "How do I get a BSN?\nI just moved here."
    answer = message_event(
        _message(state, POST, POST + 1, "Book at the gemeente", BOB), place, VIEW
    )
    assert isinstance(answer, MessageEvent) and answer.reply_to == str(POST)


def test_direct_message(state: Any) -> None:
    message = _message(state, DM, 200, "hello bot")
    place = channel_of(message.channel)
    assert place == ChannelRef("discord", str(DM))
    event = message_event(message, place, VIEW)
    assert isinstance(event, MessageEvent) and event.channel.thread_id is None
    assert not content_withheld(_message(state, DM, 201, ""))


def test_own_messages_and_system_notices_are_skipped(state: Any) -> None:
    own = _message(
        state, GENERAL, 300, "copss says hi", BOT, author_payload=_user(BOT, "copss", bot=True)
    )
    assert message_event(own, GEN, VIEW) is None
    own_hook = _message(
        state,
        GENERAL,
        301,
        "relayed",
        author_payload=_user(HOOK, "Bob (Telegram)", bot=True),
        webhook_id=str(HOOK),
        application_id=str(APP),
    )
    assert message_event(own_hook, GEN, VIEW) is None
    foreign_hook = _message(
        state,
        GENERAL,
        302,
        "CI passed",
        author_payload=_user(HOOK, "ci", bot=True),
        webhook_id="96",
    )
    event = message_event(foreign_hook, GEN, VIEW)
    assert isinstance(event, MessageEvent) and event.author.is_bot
    assert message_event(_message(state, GENERAL, 303, "", type=7), GEN, VIEW) is None  # join
    assert message_event(_message(state, GENERAL, 304, "pinned", type=6), GEN, VIEW) is None


def test_text_commands(state: Any) -> None:
    stats = message_event(_message(state, GENERAL, 400, "!stats"), GEN, VIEW)
    assert isinstance(stats, CommandEvent) and (stats.name, stats.args) == ("stats", "")
    ask = message_event(_message(state, GENERAL, 401, "!ASK  how do I\nget DigiD? "), GEN, VIEW)
    assert isinstance(ask, CommandEvent) and (ask.name, ask.args) == ("ask", "how do I\nget DigiD?")
    for text in ("!tip of the day", "!", "!!!", "stats please", "!statsx"):
        assert isinstance(
            message_event(_message(state, GENERAL, 402, text), GEN, VIEW), MessageEvent
        )
    assert parse_command("?help me", "?", {"help"}) == ("help", "me")
    assert parse_command("!help", "", {"help"}) is None


def test_forward_is_stored_as_shared_not_asked(state: Any) -> None:
    snapshot = {
        "message": {
            "type": 0,
            "content": "Is the ferry running today?",
            "embeds": [],
            "attachments": [],
            "timestamp": TS,
            "edited_timestamp": None,
            "flags": 0,
        }
    }
    forward = _message(
        state,
        GENERAL,
        410,
        "",
        message_reference=_reference(9, kind=1),
        message_snapshots=[snapshot],
    )
    event = message_event(forward, GEN, VIEW)
    assert isinstance(event, MessageEvent)
    assert event.forwarded and event.reply_to is None
    assert event.text == "Is the ferry running today?"
    assert not content_withheld(forward)


def test_withheld_content_is_recognised(state: Any) -> None:
    assert content_withheld(_message(state, GENERAL, 420, ""))
    attachment = {
        "id": "1",
        "filename": "a.png",
        "size": 1,
        "url": "https://cdn/a.png",
        "proxy_url": "x",
    }
    with_file = _message(state, GENERAL, 421, "", attachments=[attachment])
    assert not content_withheld(with_file)
    event = message_event(with_file, GEN, VIEW)
    assert isinstance(event, MessageEvent) and event.attachments == ("https://cdn/a.png",)


# -- edits, deletes, reactions, interactions ----------------------------------------------------


def test_edit_only_when_the_author_edited(state: Any) -> None:
    unfurl = _message(state, GENERAL, 500, "see https://example.org")
    assert edit_event(unfurl, GEN, VIEW) is None  # a link preview appeared, no edit time
    edited = _message(state, GENERAL, 500, "see this", edited_timestamp="2026-03-01T12:05:00+00:00")
    event = edit_event(edited, GEN, VIEW)
    assert isinstance(event, EditEvent)
    assert (event.text, event.edited_at.minute) == ("see this", 5)
    own = _message(
        state,
        GENERAL,
        501,
        "x",
        BOT,
        author_payload=_user(BOT, "copss", bot=True),
        edited_timestamp=TS,
    )
    assert edit_event(own, GEN, VIEW) is None


def test_deletes_and_reactions() -> None:
    events = delete_events(GEN, {3, 1, 2}, None)
    assert [e.message_id for e in events] == ["1", "2", "3"]
    assert all(isinstance(e, DeleteEvent) for e in events)
    data = {
        "user_id": str(ALICE),
        "channel_id": str(GENERAL),
        "message_id": "100",
        "burst": False,
        "type": 0,
    }
    added = discord.RawReactionActionEvent(
        {**data, "guild_id": str(GUILD)}, discord.PartialEmoji(name="✅"), "REACTION_ADD"
    )
    event = reaction_event(added, GEN, None)
    assert (event.emoji, event.added, event.author.user_id) == ("✅", True, str(ALICE))
    removed = discord.RawReactionActionEvent(
        data, discord.PartialEmoji(name="✅"), "REACTION_REMOVE"
    )
    assert reaction_event(removed, GEN, None).added is False
    custom = discord.RawReactionActionEvent(
        data, discord.PartialEmoji(name="party", id=123), "REACTION_ADD"
    )
    assert reaction_event(custom, GEN, None).emoji == "<:party:123>"


def test_slash_command_event(state: Any) -> None:
    payload = {
        "id": "777",
        "application_id": str(APP),
        "type": 2,
        "token": "tok",
        "version": 1,
        "channel_id": str(THREAD),
        "channel": _thread(THREAD, GENERAL, "Registration"),
        "guild_id": str(GUILD),
        "member": {
            "user": _user(ALICE, "alice"),
            "roles": [],
            "joined_at": TS,
            "permissions": "0",
            "flags": 0,
        },
        "data": {"id": "1", "name": "ask", "type": 1},
        "locale": "en-US",
        "attachment_size_limit": 26_214_400,
    }
    interaction: discord.Interaction = discord.Interaction(data=payload, state=state)  # type: ignore[arg-type]
    place = channel_of(interaction.channel)
    assert place == ChannelRef("discord", str(GENERAL), str(THREAD))
    event = command_event(interaction, "ask", "  visa? ", place)
    assert event.message_id == "interaction:777" and event.args == "visa?"
    assert event.author.user_id == str(ALICE) and event.reply_to is None
    assert interaction_id(event.message_id) == 777
    assert interaction_id("777") is None and interaction_id(None) is None


def test_channel_known_only_by_id(state: Any) -> None:
    unknown = discord.PartialMessageable(state=state, id=42, guild_id=GUILD)
    assert channel_of(unknown) is None  # could be a thread: ask Discord
    text = discord.PartialMessageable(state=state, id=43, type=discord.ChannelType.text)
    assert channel_of(text) == ChannelRef("discord", "43")


# -- sending and errors -------------------------------------------------------------------------


def test_nonce_is_stable_per_chunk_and_fits_discord() -> None:
    a = message_nonce("outbox:7", GEN, 0, "hello")
    assert a == message_nonce("outbox:7", GEN, 0, "hello")
    others = {
        message_nonce("outbox:8", GEN, 0, "hello"),
        message_nonce("outbox:7", GEN, 1, "hello"),
        message_nonce("outbox:7", GEN, 0, "hello!"),
        message_nonce("outbox:7", ChannelRef("discord", "11"), 0, "hello"),
    }
    assert a not in others and len(others) == 4
    assert 0 <= a < 2**63 and len(str(a)) <= 25


def _http_error(status: int, headers: dict[str, str] | None = None) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="x", headers=headers or {})
    return discord.HTTPException(response, {"message": "nope", "code": 50013})  # type: ignore[arg-type]


def test_errors_map_to_retry_or_give_up() -> None:
    limited = adapter_error(_http_error(429, {"Retry-After": "3"}))
    assert isinstance(limited, TransientAdapterError) and limited.retry_after == 3.0
    precise = adapter_error(_http_error(429, {"X-RateLimit-Reset-After": "0.25"}))
    assert isinstance(precise, TransientAdapterError) and precise.retry_after == 0.25
    too_long = adapter_error(discord.RateLimited(40.0))
    assert isinstance(too_long, TransientAdapterError) and too_long.retry_after == 40.0
    for status in (500, 502, 503):
        assert isinstance(adapter_error(_http_error(status)), TransientAdapterError)
    for status in (400, 403, 404):
        refused = adapter_error(_http_error(status))
        assert isinstance(refused, AdapterError) and not isinstance(refused, TransientAdapterError)
        assert str(status) in str(refused)
    assert isinstance(adapter_error(aiohttp.ClientConnectionError()), TransientAdapterError)
    assert isinstance(adapter_error(TimeoutError()), TransientAdapterError)
    assert adapter_error(ValueError("bug")) is None


def test_message_content_flags() -> None:
    assert not content_intent_granted(discord.ApplicationFlags())
    assert content_intent_granted(discord.ApplicationFlags(gateway_message_content_limited=True))
    assert content_intent_granted(discord.ApplicationFlags(gateway_message_content=True))


def test_catch_up_plan() -> None:
    thread = ChannelRef("discord", "10", "500")
    plan = catch_up_plan(
        [(GEN, "120"), (thread, "130"), (GEN, "110"), (ChannelRef("discord", "12"), "x")],
        readable=[GEN, thread, ChannelRef("discord", "11", "900"), ChannelRef("discord", "13")],
    )
    assert plan == [
        (GEN, 120),
        (thread, 130),
        (ChannelRef("discord", "11", "900"), 130),  # new: after the newest copss stored
        (ChannelRef("discord", "13"), 130),
    ]
    assert catch_up_plan([], readable=[GEN]) == []  # a new install reads no old history
