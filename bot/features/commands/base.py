"""What every command gets, and the errors it may raise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import DEFAULT_OFFICIAL_DOMAINS
from bot.core import Context
from bot.events import CommandEvent
from bot.features.settings import CommunitySettings
from faq.matcher import Gate, Matcher
from storage.models import Channel, Community, Member


class UsageError(Exception):
    """The arguments are wrong; the message shows how to use the command."""


@dataclass(frozen=True)
class Services:
    """Long-lived things commands use."""

    matcher: Matcher
    gate: Gate
    export_dir: Path
    #: Sites that count as official sources in ``stats`` (config ``report.official_domains``).
    official_domains: tuple[str, ...] = DEFAULT_OFFICIAL_DOMAINS


#: How a command's reply is keyed in the outbox: ``command:<channel key>:<message id>``.
COMMAND_KEY = "command:"


@dataclass
class Invocation:
    """One command call: who, where, with what arguments."""

    event: CommandEvent
    ctx: Context
    args: str
    channel: Channel
    community: Community
    member: Member
    settings: CommunitySettings
    services: Services
    #: The threads the reply quotes (their questions and answers), recorded with it so that
    #: forgetting a member also takes back a reply that showed their words.
    quoted: list[int] = field(default_factory=list)

    @property
    def actor(self) -> str:
        """``platform:user_id (name)`` for the audit log."""
        a = self.event.author
        return f"{a.platform}:{a.user_id} ({a.display_name})"


CommandFn = Callable[[Invocation], Awaitable[str]]


@dataclass(frozen=True)
class Command:
    """A command: name, usage, one-line help, whether it needs an admin, and its body."""

    name: str
    usage: str
    summary: str
    admin: bool
    run: CommandFn


def split_words(args: str, count: int) -> list[str]:
    """The first ``count`` - 1 words and the rest (padded with empty strings)."""
    parts = args.split(maxsplit=count - 1)
    return parts + [""] * (count - len(parts))
