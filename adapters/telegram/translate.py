"""Pure translation of Telegram updates into copss events (no network, no client state)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from telegram import Chat, Message, MessageReactionUpdated, ReactionTypeEmoji, Update, User

from bot.events import (
    Author,
    ChannelRef,
    CommandEvent,
    EditEvent,
    Event,
    MessageEvent,
    MigrateEvent,
    ReactionEvent,
)

PLATFORM = "telegram"


def channel_of(message: Message) -> ChannelRef:
    """The chat, and the forum topic when the message is in one."""
    thread = str(message.message_thread_id) if message.is_topic_message else None
    return ChannelRef(PLATFORM, str(message.chat.id), thread)


def author_of(user: User | None, sender_chat: Chat | None) -> Author:
    """Who wrote it; a message sent on behalf of a chat (an anonymous admin or a channel) is
    authored by that chat, so ``is_admin`` can tell the group's own chat from a foreign one."""
    if sender_chat is not None:
        name = sender_chat.title or sender_chat.username or str(sender_chat.id)
        return Author(PLATFORM, str(sender_chat.id), name, False)
    if user is None:
        return Author(PLATFORM, "0", "unknown", False)
    return Author(PLATFORM, str(user.id), user.full_name or str(user.id), user.is_bot)


def _reply_to(message: Message) -> str | None:
    parent = message.reply_to_message
    # In a forum topic every message "replies" to the topic's creation message: not a reply.
    if parent is None or parent.forum_topic_created is not None:
        return None
    return str(parent.message_id)


def _attachments(message: Message) -> tuple[str, ...]:
    kinds = ("photo", "document", "video", "audio", "voice", "sticker", "animation", "location")
    return tuple(kind for kind in kinds if getattr(message, kind, None))


def _when(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?\Z", re.DOTALL)


def parse_command(text: str, bot_username: str) -> tuple[str, str] | None:
    """``/name@bot args`` -> (name, args); None if it is not a command for this bot."""
    found = _COMMAND.match(text)
    if found is None:
        return None
    name, target, args = found.groups()
    if target and target.casefold() != bot_username.casefold():
        return None
    return name.casefold(), (args or "").strip()


def message_events(message: Message, bot_username: str, *, edited: bool = False) -> list[Event]:
    """Events for one message (new or edited); service messages give none, except a chat
    migration."""
    channel = channel_of(message)
    if message.migrate_to_chat_id is not None:
        return [MigrateEvent(channel, str(message.migrate_to_chat_id), raw=message)]
    text = message.text if message.text is not None else (message.caption or "")
    attachments = _attachments(message)
    if not text and not attachments:
        return []  # joins, leaves, pins, topic changes and other service messages
    if message.is_automatic_forward:
        return []  # a linked channel's post mirrored into the discussion group
    author = author_of(message.from_user, message.sender_chat)
    if edited:
        return [
            EditEvent(
                channel,
                str(message.message_id),
                text,
                _when(message.edit_date),
                author,
                raw=message,
            )
        ]
    sent_at = _when(message.date)
    command = parse_command(text, bot_username) if message.text else None
    if command is not None:
        name, args = command
        return [
            CommandEvent(
                channel,
                str(message.message_id),
                author,
                name,
                args,
                sent_at,
                _reply_to(message),
                raw=message,
            )
        ]
    return [
        MessageEvent(
            channel,
            str(message.message_id),
            author,
            text,
            sent_at,
            reply_to=_reply_to(message),
            attachments=attachments,
            forwarded=message.forward_origin is not None,
            raw=message,
        )
    ]


def _emoji(reactions: tuple[object, ...]) -> set[str]:
    return {r.emoji for r in reactions if isinstance(r, ReactionTypeEmoji)}


def reaction_events(update: MessageReactionUpdated) -> list[Event]:
    """One event per emoji added or removed."""
    channel = ChannelRef(PLATFORM, str(update.chat.id))
    author = author_of(update.user, update.actor_chat)
    old, new = _emoji(update.old_reaction), _emoji(update.new_reaction)
    message_id = str(update.message_id)
    events: list[Event] = [
        ReactionEvent(channel, message_id, author, e, True, raw=update) for e in sorted(new - old)
    ]
    events += [
        ReactionEvent(channel, message_id, author, e, False, raw=update) for e in sorted(old - new)
    ]
    return events


def update_events(update: Update, bot_username: str) -> list[Event]:
    """Every copss event an update carries (often one, sometimes none)."""
    if update.message is not None:
        return message_events(update.message, bot_username)
    if update.edited_message is not None:
        return message_events(update.edited_message, bot_username, edited=True)
    if update.message_reaction is not None:
        return reaction_events(update.message_reaction)
    return []
