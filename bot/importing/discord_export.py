"""DiscordChatExporter's JSON export of one channel or thread as imported messages.

``{"guild": {id, name}, "channel": {id, type, categoryId, category, name}, "messages": [...]}``;
ids are strings (numbers are accepted too), timestamps ISO 8601 with an offset. For a thread
or forum post (``channel.type`` ``Guild*Thread``) ``categoryId`` is the parent channel, so the
messages land where live capture puts them: chat = parent channel, thread = the thread.

As live (``adapters/discord/translate.py``): only member messages (``type`` ``Default`` or
``Reply``) count; a reply is ``reference.messageId`` unless the reference is a forward; inside
a thread a message that replies to nothing answers the message the thread was opened from
(whose id is the thread's); a forum post's opening message reads "title, newline, body";
``author.isBot`` marks bots; the name is the server nickname, else the user name.
``reactions`` carry the emoji, a count and the ``users`` who reacted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.importing.records import (
    CHECKED,
    ExportChannel,
    FirstPass,
    ImportedMessage,
    ImportFileError,
    Reaction,
    first_pass_count,
)
from bot.importing.stream import header, items

PLATFORM = "discord"
_MEMBER_TYPES = frozenset({"Default", "Reply", "0", "19"})
_THREAD_TYPES = frozenset({"GuildPublicThread", "GuildPrivateThread", "GuildNewsThread"})


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value)
    text = str(value).strip()
    return text or None


def _when(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def channel_of(fields: dict[str, Any]) -> tuple[ExportChannel, str]:
    """Where the export's messages live, and the forum post title (or "")."""
    channel = fields.get("channel")
    if not isinstance(channel, dict) or _id(channel.get("id")) is None:
        raise ValueError('no "channel" with an "id"')
    guild = fields.get("guild") if isinstance(fields.get("guild"), dict) else {}
    guild_id = _id(guild.get("id")) if guild else None
    # Message links need the server: bot.features.answers.message_link reads it here.
    title = f"guild:{guild_id}" if guild_id and guild_id != "0" else None
    own = str(_id(channel.get("id")))
    parent = _id(channel.get("categoryId"))
    if channel.get("type") in _THREAD_TYPES and parent:
        return ExportChannel(PLATFORM, parent, own, title), str(channel.get("name") or "")
    return ExportChannel(PLATFORM, own, "", title), ""


def read(path: Path) -> Iterator[ImportedMessage]:
    """Every member message of the export, in file order (raises :class:`ImportFileError`)."""
    return _read(path, None)


def check(path: Path, keep: FirstPass | None = None) -> int:
    """How many messages :func:`read` yields, reading the whole file as it does and raising the
    same :class:`ImportFileError` for a file it cannot read whole. The messages are built (and
    kept) only while ``keep`` has room for them; without it, none is."""
    return first_pass_count(_read, path, keep)


def _read(path: Path, keep: FirstPass | None) -> Iterator[ImportedMessage]:
    # keep None: every message is built (the import); else only while keep is building.
    fields, key = header(path, frozenset({"messages"}))
    if key is None:
        raise ImportFileError(
            str(path),
            'not a DiscordChatExporter export: no "messages" list',
            offset=None,
            messages=0,
        )
    try:
        channel, post_title = channel_of(fields)
    except ValueError as exc:
        raise ImportFileError(str(path), str(exc), offset=None, messages=0) from exc
    read_so_far = [0]
    for raw in items(path, "messages.item", lambda: read_so_far[0]):
        try:
            found = _parse(channel, post_title, raw, keep is None or keep.building)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ImportFileError(
                str(path),
                f"message {read_so_far[0] + 1} (id {raw.get('id')!r}) cannot be read: {exc}",
                offset=None,
                messages=read_so_far[0],
            ) from exc
        read_so_far[0] += 1
        if found is not None:
            yield found


def _parse(
    channel: ExportChannel, post_title: str, raw: dict[str, Any], build: bool = True
) -> ImportedMessage | None:
    # build=False (the first pass, past what it keeps): every step runs, so a message that
    # cannot be read fails here as it would when read again, but no record is built.
    message_id = _id(raw.get("id"))
    if message_id is None:
        raise ValueError("no message id")
    if str(raw.get("type", "Default")) not in _MEMBER_TYPES:
        return None
    sent_at = _when(raw.get("timestamp"))
    if sent_at is None:
        raise ValueError("no timestamp")
    author: dict[str, Any] = raw["author"] if isinstance(raw.get("author"), dict) else {}
    reference = raw.get("reference") if isinstance(raw.get("reference"), dict) else None
    forwarded = bool(reference and reference.get("type") == "Forward") or bool(
        raw.get("forwardedMessage")
    )
    reply_to = _id(reference.get("messageId")) if reference and not forwarded else None
    if reply_to is None and channel.thread_id and channel.thread_id != message_id:
        reply_to = channel.thread_id
    text = str(raw.get("content") or "")
    if forwarded and isinstance(raw.get("forwardedMessage"), dict):
        text = str(raw["forwardedMessage"].get("content") or text)
    if post_title and message_id == channel.thread_id:
        text = f"{post_title}\n{text}" if text else post_title
    name = author.get("nickname") or author.get("name") or "unknown"
    author_id = _id(author.get("id"))
    author_name = str(name)
    is_bot = bool(author.get("isBot"))
    edited_at = _when(raw.get("timestampEdited"))
    reactions = _reactions(raw.get("reactions"))
    if not build:
        return CHECKED
    # Positional: a dataclass's __init__ takes keywords at twice the cost.
    return ImportedMessage(
        channel,
        message_id,
        author_id,
        author_name,
        is_bot,
        text,
        sent_at,
        reply_to,
        edited_at,
        reactions,
        forwarded,
    )


def _reactions(raw: Any) -> tuple[Reaction, ...]:
    if not isinstance(raw, list):
        return ()
    found = []
    for r in raw:
        if not isinstance(r, dict):
            continue
        emoji = r.get("emoji")
        name = emoji.get("name") if isinstance(emoji, dict) else emoji
        users = tuple(
            u for u in (_id(x.get("id")) for x in r.get("users") or [] if isinstance(x, dict)) if u
        )
        found.append(Reaction(str(name or ""), int(r.get("count") or len(users) or 1), users))
    return tuple(found)
