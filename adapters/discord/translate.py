"""Pure translation between discord.py models and copss events (no network, no client state).

Each function reads only what it is given, so the tests build discord.py models from payloads
and check the events without a client or a connection.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import discord

from adapters.base import AdapterError, TransientAdapterError
from bot.events import (
    Author,
    ChannelDeleteEvent,
    ChannelRef,
    CommandEvent,
    DeleteEvent,
    EditEvent,
    Event,
    MessageEvent,
    ReactionEvent,
    intake_text,
)

PLATFORM = "discord"
#: Discord's limit on a message's content, in characters.
MESSAGE_LIMIT = 2000
#: How a slash command's CommandEvent names its interaction (it has no message id).
INTERACTION_PREFIX = "interaction:"
#: What follows the interaction's id when only the member who ran the command may see the
#: answer, with that member's id: the answer's ``reply_to`` says so even after a restart, so
#: copss never posts it in the channel.
PRIVATE_MARK = ":private:"

#: What members write; everything else (joins, pins, "thread created", ...) is a system notice.
_MEMBER_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})
_THREAD_TYPES = frozenset(
    {
        discord.ChannelType.public_thread,
        discord.ChannelType.private_thread,
        discord.ChannelType.news_thread,
    }
)


@dataclass(frozen=True)
class BotView:
    """Who copss is on Discord and which text commands it answers."""

    bot_id: int
    application_id: int | None = None
    prefix: str = "!"
    commands: frozenset[str] = frozenset()


# -- places and people --------------------------------------------------------------------------


def channel_of(channel: discord.abc.Snowflake | None) -> ChannelRef | None:
    """Where a message lives: a thread or forum post is (parent channel, thread).

    None when the channel is known only by id and could be a thread: the adapter then asks
    Discord for its parent rather than guess.
    """
    if channel is None:
        return None
    if isinstance(channel, discord.Thread):
        return ChannelRef(PLATFORM, str(channel.parent_id), str(channel.id))
    if isinstance(channel, discord.PartialMessageable) and (
        channel.type is None or channel.type in _THREAD_TYPES
    ):
        return None
    return ChannelRef(PLATFORM, str(channel.id))


def author_of(user: discord.abc.User, webhook: bool = False) -> Author:
    """A member or user as copss names them (server nickname first). A message posted through
    a webhook counts as a bot's whatever its author payload says: webhooks are how bridges
    (copss's own and others') post, and relaying their posts is how bridges ping-pong."""
    return Author(PLATFORM, str(user.id), user.display_name, user.bot or webhook)


def is_own(message: discord.Message, view: BotView) -> bool:
    """Whether copss wrote it: as the bot user (also interaction answers), or through one of
    the application's own webhooks."""
    if message.author.id == view.bot_id:
        return True
    return (
        message.webhook_id is not None
        and view.application_id is not None
        and message.application_id == view.application_id
    )


# -- messages -----------------------------------------------------------------------------------


def parse_command(text: str, prefix: str, names: Collection[str]) -> tuple[str, str] | None:
    """``!name args`` -> (name, args) for a known command name; None otherwise, so ``!!!`` or
    ``!tip`` stay ordinary messages."""
    if not prefix or not text.startswith(prefix):
        return None
    parts = text[len(prefix) :].split(maxsplit=1)
    if not parts or parts[0].casefold() not in names:
        return None
    return parts[0].casefold(), parts[1].strip() if len(parts) > 1 else ""


def is_forward(message: discord.Message) -> bool:
    """A message shared from elsewhere (Discord's "forward")."""
    ref = message.reference
    return ref is not None and ref.type is discord.MessageReferenceType.forward


def is_forum_starter(message: discord.Message) -> bool:
    """The opening message of a forum post (its id is the post's id)."""
    channel = message.channel
    return (
        isinstance(channel, discord.Thread)
        and channel.id == message.id
        and isinstance(channel.parent, discord.ForumChannel)
    )


def message_text(message: discord.Message) -> str:
    """What the message says. A forum post's title usually is the question, so its opening
    message reads "title, newline, body"; a forward reads as the forwarded text."""
    if is_forward(message) and message.message_snapshots:
        return message.message_snapshots[0].content
    if is_forum_starter(message):
        assert isinstance(message.channel, discord.Thread)
        title = message.channel.name
        return f"{title}\n{message.content}" if message.content else title
    return message.content


def _attachments(message: discord.Message) -> tuple[str, ...]:
    found = list(message.attachments)
    if is_forward(message):
        for snapshot in message.message_snapshots:
            found.extend(snapshot.attachments)
    return tuple(a.url for a in found)


def reply_to_of(message: discord.Message, channel: ChannelRef) -> str | None:
    """The message answered: an explicit reply, else (inside a thread or forum post) the
    question the thread was opened from, whose id is the thread's id."""
    ref = message.reference
    if ref is not None and ref.message_id is not None and not is_forward(message):
        return str(ref.message_id)
    if channel.thread_id is not None and channel.thread_id != str(message.id):
        return channel.thread_id
    return None


def content_withheld(message: discord.Message) -> bool:
    """A server message that arrived with nothing in it: what Discord sends when the bot lacks
    the Message Content intent (a bot mentioned in the message still gets the text)."""
    return (
        message.guild is not None
        and message.type in _MEMBER_TYPES
        and not message.content
        and not message.attachments
        and not message.embeds
        and not message.stickers
        and not message.components
        and message.poll is None
        and not message.message_snapshots
    )


def message_event(message: discord.Message, channel: ChannelRef, view: BotView) -> Event | None:
    """A MessageEvent, or a CommandEvent for ``prefix + known name``; None for copss's own
    messages, system notices and messages with nothing to store."""
    if is_own(message, view) or message.type not in _MEMBER_TYPES:
        return None
    text = message_text(message)
    attachments = _attachments(message)
    if not text and not attachments:
        return None
    author = author_of(message.author, message.webhook_id is not None)
    forwarded = is_forward(message)
    # Bots and webhooks never command copss (another bridge may repeat a member's "!link").
    command = (
        None
        if forwarded or author.is_bot
        else parse_command(message.content, view.prefix, view.commands)
    )
    if command is not None:
        # A command acts on the message it explicitly replies to (``!delete everywhere``), so
        # it never inherits a thread's question as an implicit target.
        ref = message.reference
        target = str(ref.message_id) if ref is not None and ref.message_id is not None else None
        name, args = command
        return CommandEvent(
            channel, str(message.id), author, name, args, message.created_at, target, raw=message
        )
    reply_to = reply_to_of(message, channel)
    return MessageEvent(
        channel,
        str(message.id),
        author,
        text,
        message.created_at,
        reply_to=reply_to,
        attachments=attachments,
        forwarded=forwarded,
        raw=message,
    )


def edit_event(message: discord.Message, channel: ChannelRef, view: BotView) -> EditEvent | None:
    """An EditEvent when the author changed the message. Discord also sends an update when a
    link preview unfolds; that one has no edit time and is not an edit."""
    if is_own(message, view) or message.type not in _MEMBER_TYPES:
        return None
    if message.edited_at is None:
        return None
    text = message_text(message)
    if not text and not message.attachments:
        return None
    author = author_of(message.author, message.webhook_id is not None)
    return EditEvent(channel, str(message.id), text, message.edited_at, author, raw=message)


def changed_event(
    message: discord.Message, channel: ChannelRef, view: BotView, stored: str
) -> EditEvent | None:
    """An EditEvent when a message says something else now than the ``stored`` text copss
    keeps of it (edited while copss was away, or a forum post renamed); None when it says the
    same. Compared as copss stores text (:func:`bot.events.intake_text`)."""
    if is_own(message, view) or message.type not in _MEMBER_TYPES:
        return None
    text = message_text(message)
    if intake_text(text) == stored:
        return None
    author = author_of(message.author, message.webhook_id is not None)
    # A renamed forum post has no edit time: the change is dated when copss saw it.
    when = message.edited_at or datetime.now(UTC)
    return EditEvent(channel, str(message.id), text, when, author, raw=message)


def delete_events(channel: ChannelRef, message_ids: Iterable[int], raw: object) -> list[Event]:
    """One DeleteEvent per deleted message (Discord deletes in bulk too)."""
    return [DeleteEvent(channel, str(mid), raw=raw) for mid in sorted(message_ids)]


def thread_delete_event(payload: discord.RawThreadDeleteEvent) -> ChannelDeleteEvent:
    """A thread or forum post deleted with its messages (THREAD_DELETE)."""
    return ChannelDeleteEvent(
        ChannelRef(PLATFORM, str(payload.parent_id), str(payload.thread_id)), raw=payload
    )


def reaction_event(
    payload: discord.RawReactionActionEvent, channel: ChannelRef, user: discord.abc.User | None
) -> ReactionEvent:
    """A reaction added or removed. Discord sends the member only with additions in servers;
    ``user`` is whoever the adapter found for the rest (None: known by id only)."""
    who = payload.member or user
    author = (
        author_of(who) if who is not None else Author(PLATFORM, str(payload.user_id), "", False)
    )
    return ReactionEvent(
        channel,
        str(payload.message_id),
        author,
        str(payload.emoji),
        payload.event_type == "REACTION_ADD",
        raw=payload,
    )


def command_event(
    interaction: discord.Interaction,
    name: str,
    text: str | None,
    channel: ChannelRef,
    *,
    private: bool = False,
) -> CommandEvent:
    """A slash command; its "message id" names the interaction so the answer can go back
    through it, and (``private``) the member the answer is for alone."""
    mark = f"{PRIVATE_MARK}{interaction.user.id}" if private else ""
    return CommandEvent(
        channel,
        f"{INTERACTION_PREFIX}{interaction.id}{mark}",
        author_of(interaction.user),
        name,
        (text or "").strip(),
        interaction.created_at,
        raw=interaction,
    )


def interaction_id(reply_to: str | None) -> int | None:
    """The interaction an outgoing reply answers, if it answers one."""
    if reply_to is None or not reply_to.startswith(INTERACTION_PREFIX):
        return None
    rest = reply_to.removeprefix(INTERACTION_PREFIX).partition(PRIVATE_MARK)[0]
    return int(rest) if rest.isdigit() else None


def private_recipient(reply_to: str | None) -> int | None:
    """The member an outgoing reply is privately for (the answer to a private slash
    command), if it is one: such an answer goes nowhere anyone else can see it."""
    if interaction_id(reply_to) is None:
        return None
    assert reply_to is not None
    _, mark, user = reply_to.partition(PRIVATE_MARK)
    return int(user) if mark and user.isdigit() else None


# -- sending ------------------------------------------------------------------------------------

#: The webhook copss creates (once per channel) to post bridged copies under their authors'
#: names; found again after a restart by this name and copss's application id.
WEBHOOK_NAME = "copss bridge"
#: Discord's limit on a webhook message's username.
USERNAME_LIMIT = 80
# Discord refuses webhook usernames containing these words; a zero-width space after the
# first letter keeps the name readable and accepted.
_REFUSED_IN_NAMES = re.compile(r"discord|clyde", re.IGNORECASE)
# What copss puts before a copy's text: a link to the message it answers (webhook copies,
# which cannot be Discord replies), and the author in bold (copies posted as the bot).
_REPLY_HEAD = re.compile(r"\A(-# ↪ reply to https://discord\.com/channels/\d+/\d+/\d+\n)?")
_NAME_HEAD = re.compile(r"\A(\*\*(?:\\.|[^*\\\n])*\*\*: )?")


def is_copss_webhook(data: Mapping[str, Any], view: BotView) -> bool:
    """Whether a webhook (as ``GET /channels/{id}/webhooks`` lists it) is the one copss made:
    its name, made by copss's application (or, where Discord omits that, by copss's bot
    user), and with a token copss can post with. Another bridge's webhook of the same name
    belongs to another application."""
    if data.get("name") != WEBHOOK_NAME or not data.get("token"):
        return False
    app = data.get("application_id")
    if app is not None:
        return view.application_id is not None and str(app) == str(view.application_id)
    creator = data.get("user") or {}
    return str(creator.get("id")) == str(view.bot_id)


def webhook_username(name: str) -> str:
    """The author name a webhook copy shows: one line, words Discord refuses broken up, and
    at most 80 characters, shortening the person's name rather than the "(Platform)" tag."""
    flat = " ".join(name.split()) or "?"
    flat = _REFUSED_IN_NAMES.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], flat)
    if len(flat) <= USERNAME_LIMIT:
        return flat
    person, sep, tag = flat.rpartition(" (")
    if sep and person and len(sep + tag) < USERNAME_LIMIT // 2:
        return person[: USERNAME_LIMIT - len(sep + tag) - 1] + "…" + sep + tag
    return flat[: USERNAME_LIMIT - 1] + "…"


def name_prefix(name: str) -> str:
    """The bold author line of a copy posted as the bot: ``**Name (Telegram)**: ``, with the
    name's markdown escaped and its mentions defused (nothing pings anyway)."""
    flat = " ".join(name.split()) or "?"
    escaped = discord.utils.escape_markdown(discord.utils.escape_mentions(flat))
    return f"**{escaped}**: "


def reply_line(guild_id: int, channel_id: str, message_id: str) -> str:
    """The first line of a webhook copy that answers a message (webhooks cannot reply): a
    small link Discord shows as a jump to that message."""
    return f"-# ↪ reply to https://discord.com/channels/{guild_id}/{channel_id}/{message_id}\n"


def copy_head(content: str, *, webhook: bool) -> str:
    """What copss put before the text of a copy it posted (so an edit keeps it): the reply
    line of a webhook copy, or the author line of a copy posted as the bot."""
    found = (_REPLY_HEAD if webhook else _NAME_HEAD).match(content)
    return found.group(0) if found else ""


def message_nonce(key: str, channel: ChannelRef, index: int, text: str) -> int:
    """The nonce for one chunk of an outbox row. With ``enforce_nonce`` Discord returns the
    message already made with it (for a few minutes) instead of posting again, so a retried
    send cannot post twice. Channel and text are mixed in so two stores counting outbox ids
    from 1 (a fresh database, a test run) never swallow each other's messages."""
    seed = f"{key}\x00{channel.key()}\x00{index}\x00{text}".encode()
    digest = hashlib.blake2b(seed, digest_size=8).digest()
    # 63 bits: at most 19 digits, well inside Discord's 25-character nonce limit.
    return int.from_bytes(digest, "big") >> 1


def _retry_after(exc: discord.HTTPException) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    for name in ("X-RateLimit-Reset-After", "Retry-After"):
        try:
            return max(0.1, float(headers[name]))
        except (KeyError, TypeError, ValueError):
            continue
    return 1.0


def adapter_error(exc: BaseException) -> AdapterError | None:
    """The copss error for a discord.py failure (None: not a platform failure).

    Rate limits, server errors and broken connections are worth retrying; Discord refusing
    the request (400 bad request, 403 missing permission, 404 unknown channel) is not.
    """
    if isinstance(exc, AdapterError):
        return exc
    if isinstance(exc, discord.RateLimited):
        return TransientAdapterError("discord rate limit", exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:
            return TransientAdapterError("discord rate limit", _retry_after(exc))
        if exc.status >= 500:
            return TransientAdapterError(f"discord server error {exc.status}", 1.0)
        return AdapterError(f"discord refused ({exc.status}, code {exc.code}): {exc.text}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        # OSError covers TimeoutError and refused or reset connections.
        return TransientAdapterError(f"discord unreachable: {exc!r}", 1.0)
    return None


def content_intent_granted(flags: discord.ApplicationFlags) -> bool:
    """Whether the application's settings switch the Message Content intent on (the limited
    flag for bots in under 100 servers, the full one for verified bots)."""
    return bool(flags.gateway_message_content or flags.gateway_message_content_limited)


# -- catching up --------------------------------------------------------------------------------


def catch_up_plan(
    checkpoints: Iterable[tuple[ChannelRef, str]],
    readable: Iterable[ChannelRef] = (),
) -> list[tuple[ChannelRef, int]]:
    """Which channels to read and after which message id, each channel once.

    Every stored channel is read after its newest stored message. A readable channel or
    active thread copss has stored nothing from (a forum post or thread opened while copss
    was down, a new channel) is read after the newest message copss stored anywhere: ids are
    time ordered, and copss heard everything said before that while it was running.
    """
    after: dict[ChannelRef, int] = {}
    for ref, newest in checkpoints:
        if newest.isdigit():
            after[ref] = max(int(newest), after.get(ref, 0))
    if after:
        floor = max(after.values())
        for ref in readable:
            after.setdefault(ref, floor)
    return sorted(after.items(), key=lambda item: (item[0].chat_id, item[0].thread_id or ""))
