"""What an export turns into: platform-neutral messages, and the error a bad file gives."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

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


#: What one kept message takes in memory besides its text, roughly (the record, its ids, times
#: and name): 100,000 short chat messages kept take about 42 MB.
RECORD_BYTES = 400


class FirstPass:
    """What a reader's first pass found: how many messages the file holds, and the messages
    themselves while they fit in ``budget`` bytes (estimated), so that the import can store
    them without reading the file a second time. Past the budget the kept ones are let go and
    the pass only counts (the import then reads the file again, as with no budget)."""

    def __init__(self, budget: int = 0) -> None:
        self.count = 0
        self._room = budget
        self._kept: deque[ImportedMessage] | None = deque() if budget > 0 else None

    @property
    def building(self) -> bool:
        """Whether the reader should still build the messages it reads (for keeping)."""
        return self._kept is not None

    def add(self, message: ImportedMessage) -> None:
        """Count the next message the reader yields, and keep it while there is room."""
        self.count += 1
        kept = self._kept
        if kept is not None:
            self._room -= RECORD_BYTES + len(message.text)
            if self._room < 0:
                self._kept = None
            else:
                kept.append(message)

    def take(self) -> Iterator[ImportedMessage] | None:
        """The kept messages, in file order, each let go once handed over (so memory shrinks
        as they are stored); None when the file was too large to keep. Only once: the pass
        keeps nothing after."""
        kept, self._kept = self._kept, None
        if kept is None:
            return None
        return _drain(kept)


def first_pass_count(
    read: Callable[[Path, FirstPass | None], Iterator[ImportedMessage]],
    path: Path,
    keep: FirstPass | None,
) -> int:
    """Run an export reader's first pass: every message read (raising its
    :class:`ImportFileError` for a file it cannot read whole), built and kept only while
    ``keep`` has room; returns how many there are."""
    first = keep if keep is not None else FirstPass()
    for message in read(path, first):
        first.add(message)
    return first.count


def _drain(kept: deque[ImportedMessage]) -> Iterator[ImportedMessage]:
    while kept:
        yield kept.popleft()


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
