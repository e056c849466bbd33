"""The console adapter: a terminal chat, and the same adapter driven in-process by tests."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

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

#: Seconds a terminal waits for copss's replies to a line before the prompt comes back (a
#: reply that takes longer is printed above the prompt when it comes).
TERMINAL_REPLY_WAIT = 5.0


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

    Lines are taken one at a time: a line is numbered when it is read, and copss handles it
    and sends its replies (numbered as they are sent) before the next line is read. So the
    numbers follow the conversation in order and do not depend on timing, and piped input
    (a script) gets exactly the numbers a person typing the same lines sees.
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
        # Who wrote each message: a member's name, None for copss (no member may be copss,
        # whatever name they take with /as).
        self._authors: dict[int, str | None] = {}
        self._deleted: set[int] = set()
        self._sink: EventSink | None = None
        self._closed = asyncio.Event()
        self._said: asyncio.Queue[Said] = asyncio.Queue()
        self.said: list[Said] = []
        self._tty = self.terminal and self.stdin.isatty()
        # Lines read (None: end of input, or the console was closed) and requests for the
        # next one (False: stop reading).
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._wanted: queue.SimpleQueue[bool] = queue.SimpleQueue()
        # The terminal's modes when copss started, given back however it stops.
        self._saved_mode: list[Any] | None = None
        # Line editing is reading a line now (a reply must redraw the prompt), and the
        # cursor stands on the prompt's line (a newline is owed before anything else).
        self._editing = False
        self._on_prompt_line = False
        # A terminal read is under way: its prompt is on the screen or about to be (readline
        # draws it before it tells so), so a stop owes a newline.
        self._reading = False
        # readline tells when its prompt is on the screen (see _line_editing).
        self._hooked = False

    # -- adapter contract ----------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Deliver events to ``sink``; in terminal mode, read lines until EOF or /quit, and
        return once every line is handled and its replies are sent."""
        self._sink = sink
        if not self.terminal:
            await self._closed.wait()
            return
        if self._tty:
            self._saved_mode = _terminal_mode(self.stdin)
        try:
            self._print(parse.CONSOLE_HELP if self._tty else "")
            await self._converse()
        finally:
            # Every way out (/quit, end of input, Ctrl-C, SIGTERM, an error anywhere in
            # copss) passes here: a read may still be pending in line editing, which keeps
            # the terminal without echo and line mode until it returns.
            self._wanted.put(False)
            self._give_terminal_back()

    async def _converse(self) -> None:
        loop = asyncio.get_running_loop()
        reader = threading.Thread(target=self._read_lines, args=(loop, self._lines), daemon=True)
        reader.start()
        while not self._closed.is_set():
            self._wanted.put(True)
            line = await self._lines.get()
            if line is None or not await self._handle_line(line):
                break
            await self._caught_up()
        # End of input or /quit: copss finishes with every line and sends its replies first.
        await self._caught_up()

    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        """Print (and queue for :meth:`pop`) what copss says, as one message however long;
        returns its id."""
        reply_number = self._numbers.get(message.reply_to) if message.reply_to else None
        number, message_id = self._next_id()
        text = _shown(message.text, message.as_name)
        said = Said(number, text, reply_number, message_id)
        self.said.append(said)
        self._said.put_nowait(said)
        self._authors[number] = None
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
        for message_id in message_ids:
            number = self._numbers.get(message_id)
            if number is not None:
                self._deleted.add(number)
            if self.terminal:
                self._print(f"(#{number or '?'} deleted)")

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Whoever sits at the console runs it, so every console member is an admin."""
        return True

    async def close(self) -> None:
        """Stop :meth:`start`."""
        self._closed.set()
        self._lines.put_nowait(None)

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
        self._authors[number] = user or self.user
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
        """Edit message ``number`` as ``user`` (default: its author). Only its author may:
        for anyone else, copss's messages included, it raises :class:`AdapterError` saying
        so, and nothing reaches copss."""
        author = self._own(number, user, "edit")
        event = EditEvent(
            self.channel, self._require(number), text, datetime.now(UTC), self.author(author)
        )
        await self._deliver(event)

    async def delete_message(self, number: int, user: str | None = None) -> None:
        """Delete message ``number`` as ``user`` (default: its author); only its author may,
        as with :meth:`edit_message`."""
        self._own(number, user, "delete")
        await self._deliver(DeleteEvent(self.channel, self._require(number)))
        self._deleted.add(number)

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

    def _own(self, number: int, user: str | None, verb: str) -> str:
        # As on every platform, a member edits and deletes only what they wrote.
        self._require(number)
        if number in self._deleted:
            raise AdapterError(f"(#{number} was deleted)")
        author = self._authors.get(number)
        only_author = f"only its author may {verb} it"
        if author is None:
            raise AdapterError(f"(sorry, #{number} was written by copss: {only_author})")
        if user is not None and user.casefold() != author.casefold():
            raise AdapterError(f"(sorry, #{number} was written by {author}: {only_author})")
        return author

    async def _deliver(
        self, event: MessageEvent | CommandEvent | ReactionEvent | EditEvent | DeleteEvent
    ) -> None:
        if self._sink is None:
            raise AdapterError("the console adapter has not been started")
        await self._sink(event)

    def _read_lines(self, loop: asyncio.AbstractEventLoop, out: asyncio.Queue[str | None]) -> None:
        # A daemon thread, so a read blocked at exit never holds up shutdown. It reads a line
        # only when asked for one: after /quit or end of input no read (and no prompt) is left
        # behind, and a line's replies are printed before the next prompt.
        if self._tty:
            self._line_editing()
        while self._wanted.get():
            line = self._read_line()
            with contextlib.suppress(RuntimeError):  # the loop is closed: copss has stopped
                loop.call_soon_threadsafe(out.put_nowait, line)
            if line is None:
                return

    def _read_line(self) -> str | None:
        """The next line, None at end of input."""
        if not self._tty:
            line = self.stdin.readline()
            return line if line else None
        self._reading = True
        try:
            if self.stdin is sys.stdin and self.stdout is sys.stdout:
                if not self._hooked:
                    self._prompt_shown()  # no readline: input() shows the prompt at once
                line = input(self._prompt())
            else:
                self.stdout.write(self._prompt())
                self.stdout.flush()
                self._prompt_shown()
                line = self.stdin.readline()
                if not line:
                    raise EOFError
        except EOFError:
            # Ctrl-D: the cursor still stands after the prompt.
            return None
        finally:
            self._editing = False
            self._reading = False
        self._on_prompt_line = False
        return line

    def _line_editing(self) -> None:
        # readline gives input() line editing and history. It switches the terminal to a raw
        # mode while it reads a line and back when the line is done: start() gives the
        # terminal back itself when copss stops during a read.
        try:
            import readline
        except ImportError:
            return
        if "libedit" not in (readline.__doc__ or ""):
            # Pasted lines arrive one by one, like typed ones, and no paste mode is left on
            # in the terminal should copss stop mid-line.
            readline.parse_and_bind("set enable-bracketed-paste off")

        # Called once the prompt is on the screen.
        readline.set_pre_input_hook(self._prompt_shown)
        self._hooked = True

    def _prompt_shown(self) -> None:
        # From now on a reply redraws the prompt, and a newline is owed at the end.
        self._editing = True
        self._on_prompt_line = True

    def _give_terminal_back(self) -> None:
        if self._saved_mode is not None:
            _set_terminal_mode(self.stdin, self._saved_mode)
        if self._on_prompt_line or self._reading:
            # Ctrl-D, Ctrl-C or a stop at the prompt: the shell's prompt gets a line of its own.
            self._on_prompt_line = self._reading = False
            self.stdout.write("\n")
            self.stdout.flush()

    async def _caught_up(self) -> None:
        # Wait until copss has handled everything read so far and sent its replies, so they
        # are numbered before the next line is. A script waits as long as that takes; at a
        # terminal the prompt comes back after a while anyway.
        if self.settled is None or self._closed.is_set():
            return
        if not self._tty:
            await self.settled()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TERMINAL_REPLY_WAIT):
                await self.settled()

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
                    self._print(f"(reacted {emoji} to #{target})")
                case parse.Edit(target=target, text=text):
                    await self.edit_message(target, text, self.user)
                    self._print(f"(#{target} edited)")
                case parse.Delete(target=target):
                    await self.delete_message(target, self.user)
                    self._print(f"(#{target} deleted)")
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
        if self._editing:
            # A reply arriving while the person types: clear the prompt line, print, then
            # redraw the prompt with what they typed so far.
            typed = ""
            with contextlib.suppress(ImportError):
                import readline

                typed = readline.get_line_buffer()
            self.stdout.write(f"\r\x1b[K{text}\n{self._prompt()}{typed}")
        elif self._on_prompt_line:
            # After Ctrl-D at the prompt: the last replies start on a line of their own.
            self._on_prompt_line = False
            self.stdout.write(f"\n{text}\n")
        else:
            self.stdout.write(text + "\n")
        self.stdout.flush()


def _terminal_mode(stream: TextIO) -> list[Any] | None:
    """The terminal modes of ``stream`` (None where there are none to keep)."""
    try:
        import termios
    except ImportError:
        return None
    try:
        return termios.tcgetattr(stream.fileno())
    except (termios.error, OSError, ValueError):
        return None


def _set_terminal_mode(stream: TextIO, mode: list[Any]) -> None:
    import termios

    with contextlib.suppress(termios.error, OSError, ValueError):
        termios.tcsetattr(stream.fileno(), termios.TCSADRAIN, mode)
