"""The console adapter: a terminal chat, and the same adapter driven in-process by tests."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from adapters.base import Adapter, AdapterError, EventSink, Progress
from adapters.console import parse
from adapters.text import outgoing_name, outgoing_text
from bot.events import (
    Author,
    ChannelRef,
    CommandEvent,
    DeleteEvent,
    EditEvent,
    MessageEvent,
    Outgoing,
    ReactionEvent,
)


def _shown(text: str, as_name: str | None) -> str:
    # What copss posts here, cleaned like on any platform: a bridged member's name or words
    # must not move the cursor, clear the screen, retitle the terminal or ring its bell.
    text = outgoing_text(text)
    return f"{outgoing_name(as_name)}: {text}" if as_name else text


@dataclass(frozen=True)
class Said:
    """A message copss posted to the console."""

    number: int
    text: str
    reply_to: int | None
    message_id: str


class ConsoleAdapter(Adapter):
    """One console chat. Messages are numbered (#1, #2, ...) so they can be replied to.

    With ``terminal=True`` it reads lines from ``stdin`` (with line editing and history when
    that is a terminal) until end of input or ``/quit``; otherwise it is driven through
    :meth:`push` and friends, and what copss says is read with :meth:`pop`.
    """

    platform = "console"

    def __init__(
        self,
        user: str = "you",
        *,
        chat_id: str = "console",
        terminal: bool = False,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.user = user
        self.channel = ChannelRef("console", chat_id)
        self.terminal = terminal
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._run = format(time.time_ns() // 1000, "x")
        self._count = 0
        self._ids: dict[int, str] = {}
        self._numbers: dict[str, int] = {}
        self._authors: dict[int, str] = {}
        self._sink: EventSink | None = None
        self._closed = asyncio.Event()
        self._said: asyncio.Queue[Said] = asyncio.Queue()
        self.said: list[Said] = []
        self._tty = self.terminal and self.stdin.isatty()
        self._line_done = threading.Event()

    # -- adapter contract ----------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Deliver events to ``sink``; in terminal mode, read lines until EOF or /quit."""
        self._sink = sink
        if not self.terminal:
            await self._closed.wait()
            return
        self._print(parse.CONSOLE_HELP if self._tty else "")
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        reader = threading.Thread(target=self._read_lines, args=(loop, lines), daemon=True)
        reader.start()
        while not self._closed.is_set():
            line = await lines.get()
            if line is None:
                break
            try:
                if not await self._handle_line(line):
                    break
            finally:
                self._line_done.set()

    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        """Print (and queue for :meth:`pop`) what copss says, as one message however long;
        returns its id."""
        reply_number = self._numbers.get(message.reply_to) if message.reply_to else None
        number, message_id = self._next_id()
        text = _shown(message.text, message.as_name)
        said = Said(number, text, reply_number, message_id)
        self.said.append(said)
        self._said.put_nowait(said)
        self._authors[number] = "copss"
        if self.terminal:
            arrow = f" ↪#{reply_number}" if reply_number else ""
            self._print(f"#{number} copss{arrow}: {text}")
        if progress is not None:
            await progress.posted(message_id, len(message.text), more=False)
        return [message_id]

    async def edit(
        self,
        channel: ChannelRef,
        message_ids: Sequence[str],
        text: str,
        *,
        as_name: str | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Show the edit (the console never splits, so a message is one chunk)."""
        if self.terminal:
            number = self._numbers.get(message_ids[0], "?") if message_ids else "?"
            self._print(f"(#{number} edited) {_shown(text, as_name)}")
        return list(message_ids)

    async def delete(self, channel: ChannelRef, message_ids: Sequence[str]) -> None:
        """Show the delete."""
        if self.terminal:
            for message_id in message_ids:
                self._print(f"(#{self._numbers.get(message_id, '?')} deleted)")

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Whoever sits at the console runs it, so every console member is an admin."""
        return True

    async def close(self) -> None:
        """Stop :meth:`start`."""
        self._closed.set()

    # -- driving it (tests and the terminal loop) ----------------------------------------------

    def author(self, name: str) -> Author:
        """A console member by name."""
        return Author("console", name.casefold(), name)

    async def push(self, text: str, user: str | None = None, reply_to: int | None = None) -> int:
        """Post ``text`` as ``user``; returns its number once copss has stored it."""
        number, message_id = self._next_id()
        self._authors[number] = user or self.user
        event = MessageEvent(
            channel=self.channel,
            message_id=message_id,
            author=self.author(user or self.user),
            text=text,
            sent_at=datetime.now(UTC),
            reply_to=self._ref(reply_to),
        )
        await self._deliver(event)
        return number

    async def command(
        self, name: str, args: str = "", user: str | None = None, reply_to: int | None = None
    ) -> int:
        """Run a bot command as ``user``; returns the command message's number."""
        number, message_id = self._next_id()
        event = CommandEvent(
            channel=self.channel,
            message_id=message_id,
            author=self.author(user or self.user),
            name=name,
            args=args,
            sent_at=datetime.now(UTC),
            reply_to=self._ref(reply_to),
        )
        await self._deliver(event)
        return number

    async def react(self, number: int, emoji: str, user: str | None = None) -> None:
        """React to message ``number``."""
        event = ReactionEvent(
            self.channel, self._require(number), self.author(user or self.user), emoji, True
        )
        await self._deliver(event)

    async def edit_message(self, number: int, text: str, user: str | None = None) -> None:
        """Edit message ``number``."""
        event = EditEvent(
            self.channel,
            self._require(number),
            text,
            datetime.now(UTC),
            self.author(user or self.user),
        )
        await self._deliver(event)

    async def delete_message(self, number: int) -> None:
        """Delete message ``number``."""
        await self._deliver(DeleteEvent(self.channel, self._require(number)))

    async def pop(self, timeout: float = 5.0) -> Said:
        """The next thing copss said (waits up to ``timeout`` seconds)."""
        return await asyncio.wait_for(self._said.get(), timeout)

    def drain(self) -> list[Said]:
        """Everything said and not popped yet (without waiting)."""
        out = []
        while not self._said.empty():
            out.append(self._said.get_nowait())
        return out

    # -- internals -----------------------------------------------------------------------------

    def _next_id(self) -> tuple[int, str]:
        self._count += 1
        message_id = f"{self._run}-{self._count}"
        self._ids[self._count] = message_id
        self._numbers[message_id] = self._count
        return self._count, message_id

    def _ref(self, number: int | None) -> str | None:
        return None if number is None else self._require(number)

    def _require(self, number: int) -> str:
        message_id = self._ids.get(number)
        if message_id is None:
            raise AdapterError(f"there is no message #{number} in this console session")
        return message_id

    async def _deliver(
        self, event: MessageEvent | CommandEvent | ReactionEvent | EditEvent | DeleteEvent
    ) -> None:
        if self._sink is None:
            raise AdapterError("the console adapter has not been started")
        await self._sink(event)

    def _read_lines(self, loop: asyncio.AbstractEventLoop, out: asyncio.Queue[str | None]) -> None:
        # A daemon thread, so a blocked read never holds up shutdown.
        if self._tty:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())
        while True:
            try:
                line = input(self._prompt()) if self._tty else self.stdin.readline()
            except (EOFError, KeyboardInterrupt):
                loop.call_soon_threadsafe(out.put_nowait, None)
                return
            if not self._tty and line == "":
                loop.call_soon_threadsafe(out.put_nowait, None)
                return
            # Wait until the line is handled, so its acknowledgement comes before the prompt.
            self._line_done.clear()
            loop.call_soon_threadsafe(out.put_nowait, line)
            self._line_done.wait(timeout=10)

    def _prompt(self) -> str:
        return f"{self.user}> "

    async def _handle_line(self, line: str) -> bool:
        action = parse.parse_line(line)
        try:
            match action:
                case None:
                    pass
                case parse.Quit():
                    return False
                case parse.Problem(message=message):
                    self._print(message)
                case parse.SwitchUser(name=name):
                    self.user = name
                    self._print(f"(you are now {name})")
                case parse.Say(text=text, reply_to=reply_to):
                    number = await self.push(text, reply_to=reply_to)
                    self._ack(number, text, reply_to)
                case parse.Command(name=name, args=args, reply_to=reply_to):
                    number = await self.command(name, args, reply_to=reply_to)
                    self._ack(number, f"/{name} {args}".rstrip(), reply_to)
                case parse.React(target=target, emoji=emoji):
                    await self.react(target, emoji)
                case parse.Edit(target=target, text=text):
                    await self.edit_message(target, text)
                case parse.Delete(target=target):
                    await self.delete_message(target)
        except AdapterError as exc:
            self._print(str(exc))
        return True

    def _ack(self, number: int, text: str, reply_to: int | None) -> None:
        # On a terminal the person already sees their line; show its number only. Piped input
        # gets a transcript line once the message is stored.
        arrow = f" ↪#{reply_to}" if reply_to else ""
        if self._tty:
            self._print(f"  (#{number}{arrow})")
        else:
            self._print(f"#{number} {self.user}{arrow}: {text}")

    def _print(self, text: str) -> None:
        # Whatever is printed, control characters in it never reach the terminal raw (what
        # copss says is cleaned in send already; this also covers echoed names and errors).
        text = outgoing_text(text)
        if not text:
            return
        if self._tty and not self._line_done.is_set():
            self.stdout.write(text + "\n")
        elif self._tty:
            # A reply arriving while the person types: clear the prompt line, print, then
            # redraw the prompt with what they typed so far.
            typed = ""
            with contextlib.suppress(ImportError):
                import readline

                typed = readline.get_line_buffer()
            self.stdout.write(f"\r\x1b[K{text}\n{self._prompt()}{typed}")
        else:
            self.stdout.write(text + "\n")
        self.stdout.flush()
