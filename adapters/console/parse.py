"""Pure parsing of what a person types into the console."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Say:
    """Post ``text`` (as a reply to display number ``reply_to`` when set)."""

    text: str
    reply_to: int | None = None


@dataclass(frozen=True)
class Command:
    """A bot command: ``/name args``."""

    name: str
    args: str
    reply_to: int | None = None


@dataclass(frozen=True)
class React:
    """React with ``emoji`` to message number ``target``."""

    target: int
    emoji: str


@dataclass(frozen=True)
class Edit:
    """Replace the text of message number ``target``."""

    target: int
    text: str


@dataclass(frozen=True)
class Delete:
    """Delete message number ``target``."""

    target: int


@dataclass(frozen=True)
class SwitchUser:
    """Act as another member from now on."""

    name: str


@dataclass(frozen=True)
class Quit:
    """Leave the console."""


@dataclass(frozen=True)
class Problem:
    """The line could not be understood; ``message`` says how to type it."""

    message: str


Action = Say | Command | React | Edit | Delete | SwitchUser | Quit | Problem

CONSOLE_HELP = """\
Type a message and press Enter. Console controls:
  /as NAME            act as another member (e.g. /as alice)
  /reply N TEXT       reply to message #N
  /react N EMOJI      react to message #N (✅ on an answer marks your question solved)
  /edit N TEXT        edit your message #N
  /delete N           delete your message #N
  /quit               leave (Ctrl-D works too)
Anything else starting with / is a bot command, e.g. /help or /ask how do I get a BSN."""


def _number(token: str) -> int | None:
    token = token.lstrip("#")
    return int(token) if token.isdigit() else None


def parse_line(line: str) -> Action | None:
    """Parse one typed line; None for a blank line."""
    line = line.strip()
    if not line:
        return None
    if not line.startswith("/"):
        return Say(line)
    head, _, rest = line[1:].partition(" ")
    head, rest = head.casefold(), rest.strip()
    if head in ("quit", "exit"):
        return Quit()
    if head == "as":
        name = rest.strip()
        return SwitchUser(name) if name else Problem("usage: /as NAME")
    if head in ("reply", "react", "edit", "delete"):
        target_text, _, tail = rest.partition(" ")
        target = _number(target_text)
        tail = tail.strip()
        if target is None:
            return Problem(f"usage: /{head} N ..., where N is a message number like 3 or #3")
        if head == "delete":
            return Delete(target)
        if not tail:
            return Problem(f"usage: /{head} N {'EMOJI' if head == 'react' else 'TEXT'}")
        if head == "react":
            return React(target, tail)
        if head == "edit":
            return Edit(target, tail)
        if tail.startswith("/") and len(tail) > 1:
            name, _, args = tail[1:].partition(" ")
            return Command(name, args.strip(), reply_to=target)
        return Say(tail, reply_to=target)
    if not head:
        return Problem("type a command name after '/', e.g. /help")
    return Command(head, rest)
