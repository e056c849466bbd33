"""Platform-neutral events.

Adapters translate native payloads into these frozen dataclasses at the edge; nothing past
``adapters/`` sees a discord.py or python-telegram-bot object except through ``raw``.
Every event can be turned into a plain dict and back (``to_record``/``from_record``) so the hub
can store it before handling it and replay it after a crash.
"""

from __future__ import annotations

import dataclasses
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


Event = MessageEvent | EditEvent | DeleteEvent | ReactionEvent | CommandEvent | MigrateEvent

_KINDS: dict[str, type[Any]] = {
    "message": MessageEvent,
    "edit": EditEvent,
    "delete": DeleteEvent,
    "reaction": ReactionEvent,
    "command": CommandEvent,
    "migrate": MigrateEvent,
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


def dedup_key(event: Event) -> str:
    """The key under which an event is stored once, however often a platform delivers it."""
    base = f"{event.channel.platform}:{event.channel.chat_id}:{event.message_id}"
    if isinstance(event, EditEvent):
        return f"edit:{base}:{event.edited_at.isoformat()}"
    if isinstance(event, ReactionEvent):
        return f"reaction:{base}:{event.author.user_id}:{event.emoji}:{int(event.added)}"
    if isinstance(event, DeleteEvent):
        return f"delete:{base}"
    if isinstance(event, MigrateEvent):
        return f"migrate:{base}"
    return f"message:{base}"


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
