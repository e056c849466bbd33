"""The contract every platform adapter fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.events import ChannelRef, Event, Outgoing

#: Where copss left off: each channel of the adapter's platform that the store knows, with the
#: platform id of the newest message stored from it (for catching up after downtime).
Checkpoints = Callable[[], Awaitable[list[tuple[ChannelRef, str]]]]

#: Notes, before the live events of a new session are stored, after which message a catch-up
#: starts reading each channel; :data:`CatchUpRead` clears a channel's note once it is read.
CatchUpBegins = Callable[[list[tuple[ChannelRef, str]]], Awaitable[None]]
CatchUpRead = Callable[[ChannelRef], Awaitable[None]]

#: What the store holds of one channel: members' messages (not deleted) sent since the given
#: time, the newest ``limit`` of them, as (platform message id, text), newest first. Catching up
#: compares them with the platform's history to find edits and deletes made while copss was away.
StoredMessages = Callable[[ChannelRef, datetime, int], Awaitable[list[tuple[str, str]]]]

#: Called by an adapter for every incoming event. It returns once the event is stored, so an
#: adapter may acknowledge the event to its platform only after the sink returned; it raises
#: :class:`SinkUnavailable` when the event could not be stored (then acknowledge nothing).
EventSink = Callable[[Event], Awaitable[None]]


class AdapterError(Exception):
    """A platform refused or failed an operation for good (retrying will not help)."""


class TransientAdapterError(AdapterError):
    """A platform failed an operation for now; the caller may retry after ``retry_after``."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UncertainSendError(TransientAdapterError):
    """A send may or may not have been carried out: the request went out and no answer came
    (a read timeout, the connection dropped before the answer). Retrying could post the
    message twice; the outbox follows the row's delivery policy instead. For an edit or a
    delete, which are safe to repeat, it is a transient error like any other."""


class SinkUnavailable(Exception):
    """The hub could not store an event (the store failed, or is gone). The adapter must not
    acknowledge it to the platform; it tries again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Progress:
    """How far posting (or re-posting, for an edit) one message got: the platform id of every
    chunk it has now, first first, and for a send how much of the text those chunks carry.

    A platform splits long text into several messages. The outbox keeps a message's progress
    in its row and hands it back on a retry, also after a restart, so a send that failed on
    chunk 2 goes on with chunk 2 instead of posting chunk 1 again, and an edit that already
    posted an extra chunk does not post it twice. ``done`` and ``carry`` are the
    :class:`adapters.text.Piece` ``end`` and ``carry`` of the last chunk posted.
    """

    ids: list[str] = field(default_factory=list)
    done: int = 0
    carry: str = ""
    #: Records the progress durably (set by the outbox); awaited before the next chunk goes.
    save: Callable[[Progress], Awaitable[None]] | None = field(
        default=None, repr=False, compare=False
    )

    async def posted(self, chunk_id: str, end: int, carry: str = "", *, more: bool) -> None:
        """A chunk was posted, ending at ``end`` of the text; ``more``: chunks follow (then
        the progress is recorded before the next one goes)."""
        self.ids.append(chunk_id)
        self.done, self.carry = end, carry
        if more and self.save is not None:
            await self.save(self)

    async def changed(self, ids: Sequence[str]) -> None:
        """An edit posted or removed chunks: the message's chunks are now ``ids``."""
        self.ids = list(ids)
        if self.save is not None:
            await self.save(self)

    def record(self) -> dict[str, Any]:
        """A JSON-ready form (for the outbox row)."""
        return {"ids": list(self.ids), "done": self.done, "carry": self.carry}

    @classmethod
    def from_record(cls, data: Any) -> Progress:
        """Read back :meth:`record` (anything else: nothing posted yet)."""
        if not isinstance(data, dict):
            return cls()
        ids = data.get("ids")
        return cls(
            ids=[str(i) for i in ids] if isinstance(ids, list) else [],
            done=int(data.get("done") or 0),
            carry=str(data.get("carry") or ""),
        )


class Pacing:
    """How fast copss may post on a platform: a minimum gap per chat, an optional cap per chat
    per window (e.g. Telegram groups: 20 a minute) for the chats ``window_applies`` selects, and
    an overall cap per second."""

    def __init__(
        self,
        per_chat_interval: float = 0.0,
        per_chat_window: tuple[int, float] | None = None,
        overall_per_second: float | None = None,
        window_applies: Callable[[str], bool] | None = None,
    ) -> None:
        self.per_chat_interval = per_chat_interval
        self.per_chat_window = per_chat_window
        self.overall_per_second = overall_per_second
        self.window_applies = window_applies


class Adapter(ABC):
    """One platform connection.

    ``start`` connects and feeds events to the sink until ``close`` is called. Text longer
    than the platform allows is posted as several messages ("chunks"): ``send`` and ``edit``
    return the platform id of every chunk, first first, and ``edit`` and ``delete`` take them
    all, so nothing copss posted is ever left behind. Each adapter cleans what it posts (text
    and names) with :func:`adapters.text.outgoing_text` and :func:`adapters.text.outgoing_name`.
    """

    #: ``console``, ``discord`` or ``telegram``.
    platform: str
    #: Posting limits the outbox keeps to (None: send as fast as the adapter allows).
    pacing: Pacing | None = None
    #: Set by the hub before ``start``: where copss left off in each known channel.
    checkpoints: Checkpoints | None = None
    #: Set by the hub before ``start``: where a catch-up under way starts, and that it is done.
    catch_up_begins: CatchUpBegins | None = None
    catch_up_read: CatchUpRead | None = None
    #: Set by the hub before ``start``: the recent messages the store holds of a channel.
    stored_messages: StoredMessages | None = None
    #: Set by the hub before ``start``: waits until every stored event is handled and every
    #: queued message sent (the console uses it to finish a line before reading the next).
    settled: Callable[[], Awaitable[None]] | None = None

    def repeat_safe_for(self, as_name: str | None) -> float:
        """Seconds after a send began during which sending the same outbox row again (the
        same :attr:`Outgoing.key`) cannot post it twice, for a message posted as ``as_name``
        (None: as the bot). 0 by default: the platform has no idempotency key (Telegram)."""
        return 0.0

    @abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Connect and deliver events to ``sink`` until closed."""

    @abstractmethod
    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        """Post a message; returns the platform id of every chunk, first first.

        ``progress`` holds what an earlier attempt at the same message posted: the send goes
        on after it. Every chunk posted is added to it, so after a failure it tells the next
        attempt where to go on.
        """

    @abstractmethod
    async def edit(
        self,
        channel: ChannelRef,
        message_ids: Sequence[str],
        text: str,
        *,
        as_name: str | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Replace the text of a message the bot posted in chunks ``message_ids``; returns
        its chunks now. The new text is split again: chunks are edited in place, chunks no
        longer needed are deleted, and extra chunks are posted when the text grew (each told
        to ``progress``, so a retry posts none twice). ``as_name``: the author a bridged copy
        names, as in :class:`bot.events.Outgoing`."""

    @abstractmethod
    async def delete(self, channel: ChannelRef, message_ids: Sequence[str]) -> None:
        """Delete a message with all its chunks (the bot's own, or a member's where the bot
        may); a chunk that is already gone counts as deleted."""

    @abstractmethod
    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Ask the platform, now, whether the user may administer the channel's community."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; ``start`` returns soon after."""
