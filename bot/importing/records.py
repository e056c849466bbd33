"""What an export turns into: platform-neutral messages, and the error a bad file gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

#: A channel as the store keys it: (platform, chat id, thread id or "").
ChannelKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class ExportChannel:
    """Where the exported messages were said; ``title`` is stored for a new channel only."""

    platform: str
    chat_id: str
    thread_id: str = ""
    title: str | None = None

    @property
    def key(self) -> ChannelKey:
        """The channel's store key."""
        return (self.platform, self.chat_id, self.thread_id)


@dataclass(frozen=True, slots=True)
class Reaction:
    """An emoji on a message: who added it when the export says so, else only how many."""

    emoji: str
    count: int
    #: Platform user ids of (some of) the members who reacted; empty when the export only
    #: counts them.
    users: tuple[str, ...] = ()


@dataclass(slots=True)
class ImportedMessage:
    """One member's message from an export, in the shape live capture sees it."""

    channel: ExportChannel
    message_id: str
    #: Platform user id; ``None`` when the export names nobody (a deleted account).
    author_id: str | None
    author_name: str
    is_bot: bool
    text: str
    sent_at: datetime
    reply_to: str | None = None
    edited_at: datetime | None = None
    reactions: tuple[Reaction, ...] = field(default_factory=tuple)
    #: Forwarded from elsewhere: stored, but never a question or an answer (as live).
    forwarded: bool = False


#: What a reader's first pass yields for each message it would store: a check that the file
#: can be read whole counts them without building each one.
CHECKED = ImportedMessage(
    ExportChannel("", ""), "", None, "", False, "", datetime.fromtimestamp(0, UTC)
)


class ImportFileError(Exception):
    """The export cannot be read: not JSON, cut short, or not the expected format.

    The message names the file and where: the byte offset (the parser reads in blocks, so the
    fault lies at or before it) and how many messages were read before it.
    """

    def __init__(self, path: str, reason: str, *, offset: int | None, messages: int) -> None:
        where = [f"after {messages} message{'s' if messages != 1 else ''}"]
        if offset is not None:
            where.insert(0, f"near byte {offset}")
        super().__init__(f"{path}: {reason} ({', '.join(where)})")
        self.path = path
        self.reason = reason
        self.offset = offset
        self.messages = messages
