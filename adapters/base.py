"""The contract every platform adapter fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from bot.events import ChannelRef, Event, Outgoing

#: Where copss left off: each channel of the adapter's platform that the store knows, with the
#: platform id of the newest message stored from it (for catching up after downtime).
Checkpoints = Callable[[], Awaitable[list[tuple[ChannelRef, str]]]]

#: Called by an adapter for every incoming event. It returns once the event is stored, so an
#: adapter may acknowledge the event to its platform only after the sink returned.
EventSink = Callable[[Event], Awaitable[None]]


class AdapterError(Exception):
    """A platform refused or failed an operation for good (retrying will not help)."""


class TransientAdapterError(AdapterError):
    """A platform failed an operation for now; the caller may retry after ``retry_after``."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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

    ``start`` connects and feeds events to the sink until ``close`` is called; ``send`` returns
    the platform id of the posted message (the first one, when the text had to be split).
    """

    #: ``console``, ``discord`` or ``telegram``.
    platform: str
    #: Posting limits the outbox keeps to (None: send as fast as the adapter allows).
    pacing: Pacing | None = None
    #: Set by the hub before ``start``: where copss left off in each known channel.
    checkpoints: Checkpoints | None = None

    @abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Connect and deliver events to ``sink`` until closed."""

    @abstractmethod
    async def send(self, message: Outgoing) -> str:
        """Post a message and return its platform id."""

    @abstractmethod
    async def edit(
        self, channel: ChannelRef, message_id: str, text: str, *, as_name: str | None = None
    ) -> None:
        """Replace the text of a message the bot posted (``as_name``: the author a bridged
        copy names, as in :class:`bot.events.Outgoing`)."""

    @abstractmethod
    async def delete(self, channel: ChannelRef, message_id: str) -> None:
        """Delete a message (the bot's own, or a member's where the bot may)."""

    @abstractmethod
    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Ask the platform, now, whether the user may administer the channel's community."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; ``start`` returns soon after."""
