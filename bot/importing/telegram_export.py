"""Telegram Desktop's "Export chat history" JSON (``result.json``) as imported messages.

Two shapes: a single chat, ``{"name", "type", "id", "messages": [...]}``, and a whole
account, whose chats are in ``chats.list`` (and ``left_chats.list``), each shaped like a
single chat. What the years of exports have varied in, and how it is read:

- ``id`` of a message: a number (a string in some converted files); the chat's ``id`` is the
  bare id, which the Bot API (and so live copss) prefixes by chat type: ``-100`` for
  supergroups and channels, ``-`` for basic groups (an id already negative is kept).
- ``date_unixtime`` (seconds, a string) is preferred; older exports only have ``date``, ISO
  8601 in the exporting computer's local time without a zone, which is read as UTC (the zone
  is not in the file), or with ``Z``/an offset, which is honoured.
- ``text``: a string, or a list of strings and entity objects (``{"type": "link", "text":
  ...}``) whose visible texts are joined, as the Bot API's ``text`` is.
- ``from`` may be null (a deleted account); ``from_id`` is ``user123``, ``channel123`` (posted
  as a channel or an anonymous admin: ``-100123`` as live), ``chat123``, or a bare number in
  old exports.
- ``type: "service"`` messages (joins, pins, ``actor`` instead of ``from``) are skipped, except
  that a ``topic_created`` one makes its id a forum topic: a message replying to it is in that
  topic (as live: ``message_thread_id``), not a reply.
- ``reply_to_message_id`` is the reply (one with ``reply_to_peer_id`` replies to another
  chat and is not); ``forwarded_from`` marks a forward; ``reactions`` carry ``emoji``,
  ``count`` and, in newer exports, ``recent`` reactors with their ``from_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
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
from bot.importing.threads import Bounded

PLATFORM = "telegram"
_SUPERGROUP_TYPES = frozenset(
    {"private_supergroup", "public_supergroup", "private_channel", "public_channel"}
)
_GROUP_TYPES = frozenset({"private_group", "public_group"})
#: Forum topics remembered per import (replies inherit their parent's topic).
_TOPIC_MEMORY = 200_000


def chat_id_of(bare: Any, chat_type: Any) -> str:
    """The Bot API chat id of an exported chat."""
    value = _int_id(bare)
    if value is None:
        raise ValueError(f"chat id {bare!r} is not a number")
    if value < 0:
        return str(value)
    if chat_type in _SUPERGROUP_TYPES:
        return f"-100{value}"
    if chat_type in _GROUP_TYPES:
        return f"-{value}"
    return str(value)


def user_id_of(from_id: Any) -> str | None:
    """``user123`` -> ``123``, ``channel123`` -> ``-100123``, ``chat123`` -> ``-123``, a bare
    number as it is; None when missing."""
    if from_id is None or from_id == "":
        return None
    if isinstance(from_id, int | float):
        return str(int(from_id))
    return _user_id_of_text(str(from_id))


@lru_cache(maxsize=65536)
def _user_id_of_text(text: str) -> str:
    # A chat's members write many messages each: their ids are worked out once.
    for prefix, bot_api in (("user", ""), ("channel", "-100"), ("chat", "-")):
        if text.startswith(prefix) and text[len(prefix) :].lstrip("-").isdigit():
            return bot_api + text[len(prefix) :]
    return text


def text_of(value: Any) -> str:
    """The visible text of a ``text`` field (a string or a list of strings and entities)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in value
            if isinstance(part, str | dict)
        )
    return str(value)


def when(message: dict[str, Any], unix_key: str, iso_key: str) -> datetime | None:
    """A timestamp from ``*_unixtime`` (preferred) or the ISO field; None when neither."""
    raw = message.get(unix_key)
    if type(raw) is str and len(raw) < 16 and raw.isdigit() and raw.isascii():
        # The usual form, whole seconds: read as int(float(raw)) would, which is exact for
        # integers below 2**53 (15 digits).
        return datetime.fromtimestamp(int(raw), UTC)
    if raw not in (None, ""):
        return datetime.fromtimestamp(int(float(raw)), UTC)
    iso = message.get(iso_key)
    if iso in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(iso))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _int_id(value: Any) -> int | None:
    if type(value) is int:  # the usual case, first
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _reactions(raw: Any) -> tuple[Reaction, ...]:
    if not isinstance(raw, list):
        return ()
    found = []
    for r in raw:
        if not isinstance(r, dict):
            continue
        emoji = r.get("emoji") or r.get("document_id") or ""
        recent = [x for x in r.get("recent") or [] if isinstance(x, dict)]
        users = tuple(u for u in (user_id_of(x.get("from_id")) for x in recent) if u)
        found.append(Reaction(str(emoji), int(r.get("count") or len(users) or 1), users))
    return tuple(found)


class _Chat:
    """The chat whose messages are being read, and its forum topics."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.name = fields.get("name")
        self.chat_id = chat_id_of(fields.get("id"), fields.get("type"))
        self.root = ExportChannel(PLATFORM, self.chat_id, "", _title(self.name))
        self.topics: dict[str, ExportChannel] = {}
        self.topic_of: Bounded[str, str] = Bounded(_TOPIC_MEMORY)


def _title(name: Any) -> str | None:
    return str(name)[:200] if name else None


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
    fields, key = header(path, frozenset({"messages", "chats", "left_chats"}))
    if key is None:
        raise ImportFileError(
            str(path),
            'not a Telegram Desktop export: no "messages" and no "chats" list',
            offset=None,
            messages=0,
        )
    read_so_far = [0]
    if key == "messages":
        try:
            chat = _Chat(fields)
        except ValueError as exc:
            raise ImportFileError(str(path), str(exc), offset=None, messages=0) from exc
        for raw in items(path, "messages.item", lambda: read_so_far[0]):
            found = _message(path, chat, raw, read_so_far[0], keep is None or keep.building)
            read_so_far[0] += 1
            if found is not None:
                yield found
        return
    yield from _account(path, read_so_far, keep)


def _account(
    path: Path, read_so_far: list[int], keep: FirstPass | None
) -> Iterator[ImportedMessage]:
    # The chat's fields (name, type, id) come before its messages: the events are watched on
    # their way to the object builder, and left chats read like the others.
    current: dict[str, Any] = {}
    chats: list[_Chat] = []
    item = "chats.list.item"

    def watch(events: Iterator[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
        for prefix, event, value in events:
            if prefix.startswith("left_chats.list"):
                prefix = "chats.list" + prefix[len("left_chats.list") :]
            if prefix == item and event == "start_map":
                current.clear()
                chats.clear()
            elif prefix in ("chats.list.item.name", "chats.list.item.type", "chats.list.item.id"):
                current[prefix.rsplit(".", 1)[1]] = value
            yield prefix, event, value

    for raw in items(path, "chats.list.item.messages.item", lambda: read_so_far[0], watch):
        if not chats:
            try:
                chats.append(_Chat(current))
            except ValueError as exc:
                raise ImportFileError(
                    str(path), str(exc), offset=None, messages=read_so_far[0]
                ) from exc
        found = _message(path, chats[0], raw, read_so_far[0], keep is None or keep.building)
        read_so_far[0] += 1
        if found is not None:
            yield found


def _message(
    path: Path, chat: _Chat, raw: dict[str, Any], index: int, build: bool
) -> ImportedMessage | None:
    try:
        return _parse(chat, raw, build)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ImportFileError(
            str(path),
            f"message {index + 1} (id {raw.get('id')!r}) cannot be read: {exc}",
            offset=None,
            messages=index,
        ) from exc


def _parse(chat: _Chat, raw: dict[str, Any], build: bool = True) -> ImportedMessage | None:
    # build=False (the first pass, past what it keeps): every step runs, so a message that
    # cannot be read fails here as it would when read again, but no record is built.
    number = _int_id(raw.get("id"))
    if number is None:
        raise ValueError("no message id")
    message_id = str(number)
    kind = raw.get("type", "message")
    if kind == "service":
        if raw.get("action") == "topic_created":
            chat.topics[message_id] = ExportChannel(
                PLATFORM, chat.chat_id, message_id, _title(raw.get("title"))
            )
        return None
    if kind != "message":
        return None
    sent_at = when(raw, "date_unixtime", "date")
    if sent_at is None:
        raise ValueError("no date")
    # The fields most messages lack, or have in their usual form, are read without a call
    # (each is what the call would give).
    reply_field = raw.get("reply_to_message_id")
    reply = None if reply_field is None else _int_id(reply_field)
    reply_to = str(reply) if reply is not None and not raw.get("reply_to_peer_id") else None
    channel = chat.root
    if reply_to is not None and chat.topics:  # a chat without topics has no topic messages
        if reply_to in chat.topics:
            channel, reply_to = chat.topics[reply_to], None
        else:
            topic = chat.topic_of.get(reply_to)
            if topic is not None:
                channel = chat.topics[topic]
    if channel.thread_id:
        chat.topic_of[message_id] = channel.thread_id
    from_id = raw.get("from_id")
    author_id = (
        _user_id_of_text(from_id) if type(from_id) is str and from_id else user_id_of(from_id)
    )
    name = raw.get("from")
    author_name = str(name) if name else ("Deleted Account" if author_id else "unknown")
    text_field = raw.get("text")
    text = text_field if type(text_field) is str else text_of(text_field)
    edited_at = (
        when(raw, "edited_unixtime", "edited")
        if "edited_unixtime" in raw or "edited" in raw
        else None
    )
    reaction_field = raw.get("reactions")
    reactions = _reactions(reaction_field) if reaction_field else ()
    if not build:
        return CHECKED
    # Positional: a dataclass's __init__ takes keywords at twice the cost.
    return ImportedMessage(
        channel,
        message_id,
        author_id,
        author_name,
        False,  # is_bot: exports do not say
        text,
        sent_at,
        reply_to,
        edited_at,
        reactions,
        "forwarded_from" in raw or "forwarded_from_id" in raw,
    )
