"""Platform-neutral events.

Adapters translate native payloads into these frozen dataclasses at the edge; nothing past
``adapters/`` sees a discord.py or python-telegram-bot object except through ``raw``.
Every event can be turned into a plain dict and back (``to_record``/``from_record``) so the hub
can store it before handling it and replay it after a crash. :func:`sanitized` is what the
hub applies to every event before storing it, so every string copss keeps is one every store
(PostgreSQL included) can hold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Platform = Literal["console", "discord", "telegram"]
PLATFORMS: tuple[str, ...] = ("console", "discord", "telegram")


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """A place messages are posted: a Discord channel/thread or a Telegram chat/topic."""

    platform: str
    chat_id: str
    thread_id: str | None = None

    def key(self) -> str:
        """A stable textual key, e.g. ``telegram:-100123:7``."""
        return f"{self.platform}:{self.chat_id}:{self.thread_id or ''}"


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote something, as the platform names them."""

    platform: str
    user_id: str
    display_name: str
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A new message. ``origin`` is set when the message is a bridged copy made by copss."""

    channel: ChannelRef
    message_id: str
    author: Author
    text: str
    sent_at: datetime
    reply_to: str | None = None
    attachments: tuple[str, ...] = ()
    origin: str | None = None
    #: Shared from elsewhere (a forward): stored, never taken as the author's own question.
    forwarded: bool = False
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EditEvent:
    """A message's text changed."""

    channel: ChannelRef
    message_id: str
    text: str
    edited_at: datetime
    author: Author | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DeleteEvent:
    """A message was deleted."""

    channel: ChannelRef
    message_id: str
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ReactionEvent:
    """An emoji reaction was added to (``added``) or removed from a message."""

    channel: ChannelRef
    message_id: str
    author: Author
    emoji: str
    added: bool
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A bot command (``/name args`` on Telegram and the console, slash or text on Discord)."""

    channel: ChannelRef
    message_id: str
    author: Author
    name: str
    args: str
    sent_at: datetime
    reply_to: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MigrateEvent:
    """A chat moved to a new id (a Telegram group upgraded to a supergroup)."""

    channel: ChannelRef
    new_chat_id: str
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def message_id(self) -> str:
        """Migrations have no message; the new chat id keys them."""
        return f"migrate-{self.new_chat_id}"


@dataclass(frozen=True, slots=True)
class ChannelDeleteEvent:
    """A channel was deleted with every message in it (a Discord thread or forum post).
    Archiving or closing one is not deleting it."""

    channel: ChannelRef
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def message_id(self) -> str:
        """A deleted channel has no message; the channel's own id keys it."""
        return f"channel-{self.channel.thread_id or self.channel.chat_id}"


Event = (
    MessageEvent
    | EditEvent
    | DeleteEvent
    | ReactionEvent
    | CommandEvent
    | MigrateEvent
    | ChannelDeleteEvent
)

_KINDS: dict[str, type[Any]] = {
    "message": MessageEvent,
    "edit": EditEvent,
    "delete": DeleteEvent,
    "reaction": ReactionEvent,
    "command": CommandEvent,
    "migrate": MigrateEvent,
    "channel_delete": ChannelDeleteEvent,
}
_KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in _KINDS.items()}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Something copss wants to post. ``reply_to`` is a platform message id in ``channel``."""

    channel: ChannelRef
    text: str
    reply_to: str | None = None
    #: Display name to post as, where the platform allows it (Discord webhooks for bridging).
    as_name: str | None = None
    #: Set on bridged copies: ``platform:chat_id:message_id`` of the original.
    origin: str | None = None
    #: Stable across retries of the same outbox row (``outbox:ID``), so an adapter can make a
    #: retried send idempotent (Discord's message ``nonce``).
    key: str | None = None


def event_kind(event: Event) -> str:
    """The short name of an event's type (``message``, ``edit``, ...)."""
    return _KIND_OF[type(event)]


#: The longest dedup key stored as is (the inbox column holds 300 characters).
MAX_KEY_CHARS = 300


def dedup_key(event: Event) -> str:
    """The key under which an event is stored once, however often a platform delivers it
    (at most :data:`MAX_KEY_CHARS` characters: a longer one ends in a hash of the rest)."""
    base = f"{event.channel.platform}:{event.channel.chat_id}:{event.message_id}"
    if isinstance(event, EditEvent):
        key = f"edit:{base}:{event.edited_at.isoformat()}"
    elif isinstance(event, ReactionEvent):
        key = f"reaction:{base}:{event.author.user_id}:{event.emoji}:{int(event.added)}"
    elif isinstance(event, DeleteEvent):
        key = f"delete:{base}"
    elif isinstance(event, MigrateEvent):
        key = f"migrate:{base}"
    elif isinstance(event, ChannelDeleteEvent):
        key = f"channel-delete:{base}"
    else:
        key = f"message:{base}"
    if len(key) <= MAX_KEY_CHARS:
        return key
    # A console reaction can be any text; the key must still fit its column, and stay unique.
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: MAX_KEY_CHARS - len(digest) - 1]}#{digest}"


#: Removed from incoming text: NUL (PostgreSQL text cannot hold it) and the other C0 and C1
#: control characters, which only ever move a terminal's cursor or change its state. Tab and
#: newline stay; a carriage return becomes a newline.
_CONTROLS: dict[int, None] = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Display names are cut to this many characters (Telegram allows 128, Discord 32).
MAX_NAME_CHARS = 128


def intake_text(text: str) -> str:
    """``text`` as copss stores it: surrogate pairs joined, lone surrogates (text no encoding
    can carry) replaced by U+FFFD, line ends made ``\\n``, and control characters other than
    tab and newline removed. Everything else (emoji, any script, bidi and zero-width
    characters) is kept: it is the member's text, and each adapter escapes what it posts."""
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_CONTROLS)


def _sanitized_value(value: Any) -> Any:
    if isinstance(value, str):
        return intake_text(value)
    if isinstance(value, tuple):
        return tuple(_sanitized_value(v) for v in value)
    if isinstance(value, Author):
        return Author(
            intake_text(value.platform),
            intake_text(value.user_id),
            intake_text(value.display_name)[:MAX_NAME_CHARS],
            value.is_bot,
        )
    if isinstance(value, ChannelRef):
        return ChannelRef(
            intake_text(value.platform),
            intake_text(value.chat_id),
            None if value.thread_id is None else intake_text(value.thread_id),
        )
    return value


def sanitized(event: Event) -> Event:
    """``event`` with every string in it (text, names, command arguments, ids, emoji, links)
    passed through :func:`intake_text`; ``raw`` is kept as it is."""
    changes = {}
    for f in dataclasses.fields(event):
        if f.name == "raw":
            continue
        value = getattr(event, f.name)
        clean = _sanitized_value(value)
        if clean != value:
            changes[f.name] = clean
    return dataclasses.replace(event, **changes) if changes else event


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__dt__": value.isoformat()}
    if isinstance(value, tuple):
        return list(value)
    return value


def to_record(event: Event) -> dict[str, Any]:
    """A JSON-ready dict of the event (without ``raw``)."""
    out: dict[str, Any] = {"kind": event_kind(event)}
    for f in dataclasses.fields(event):
        if f.name == "raw":
            continue
        value = getattr(event, f.name)
        if isinstance(value, ChannelRef | Author):
            out[f.name] = dataclasses.asdict(value)
        else:
            out[f.name] = _encode(value)
    return out


def from_record(record: dict[str, Any]) -> Event:
    """Rebuild an event stored with :func:`to_record`."""
    data = dict(record)
    cls = _KINDS[data.pop("kind")]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "channel":
            value = ChannelRef(**value)
        elif f.name == "author" and value is not None:
            value = Author(**value)
        elif isinstance(value, dict) and "__dt__" in value:
            value = datetime.fromisoformat(value["__dt__"])
        elif f.name == "attachments":
            value = tuple(value)
        kwargs[f.name] = value
    event: Event = cls(**kwargs)
    return event
