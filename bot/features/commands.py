"""Bot commands (the same words on every platform)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rapidfuzz import process

from bot.core import Context
from bot.events import CommandEvent, Event, Outgoing
from bot.features.answers import compose
from faq.matcher import Gate, LexicalMatcher, Matcher
from faq.normalize import strip_invisible
from storage.repos.conversation import ConversationRepo
from storage.repos.search import SearchRepo
from storage.repos.threads import ThreadRepo

CommandFn = Callable[[CommandEvent, Context], Awaitable[str]]


@dataclass(frozen=True)
class Command:
    """A command: its name, usage, one-line help, whether it needs an admin, and its body."""

    name: str
    usage: str
    summary: str
    admin: bool
    run: CommandFn


class Commands:
    """Parses and runs commands; replies go through the outbox."""

    def __init__(self, matcher: Matcher | None = None, gate: Gate | None = None) -> None:
        self.matcher: Matcher = matcher or LexicalMatcher()
        self.gate = gate or Gate()
        self.registry: dict[str, Command] = {}
        for cmd in (
            Command("help", "help", "what copss can do", False, self.help),
            Command(
                "ask", "ask TEXT", "search the community's answers and the FAQ", False, self.ask
            ),
            Command("stats", "stats", "how healthy the community is", True, self.stats),
        ):
            self.registry[cmd.name] = cmd

    def menu(self) -> list[tuple[str, str]]:
        """(name, summary) of every command, for platform command menus."""
        return [(c.name, c.summary) for c in self.registry.values()]

    async def __call__(self, event: Event, ctx: Context) -> bool:
        if not isinstance(event, CommandEvent):
            return False
        name = strip_invisible(event.name).casefold()
        command = self.registry.get(name)
        if command is None:
            guess = process.extractOne(name, list(self.registry), score_cutoff=60)
            hint = f" Did you mean '{guess[0]}'?" if guess else ""
            text = f"I don't know the command '{name}'.{hint} Try 'help'."
        elif command.admin and not await ctx.is_admin(event.channel, event.author.user_id):
            text = f"Sorry, '{name}' is for admins of this community."
        else:
            text = await command.run(event, ctx)
        await ctx.send(
            Outgoing(event.channel, text, reply_to=event.message_id),
            key=f"command:{event.channel.key()}:{event.message_id}",
        )
        return True

    async def help(self, event: CommandEvent, ctx: Context) -> str:
        """List the commands."""
        lines = ["copss remembers this community's answers. Commands:"]
        for cmd in self.registry.values():
            lines.append(f"  {cmd.usage} — {cmd.summary}{' (admins)' if cmd.admin else ''}")
        lines.append("Ask a question in the chat and copss points you to earlier answers.")
        return "\n".join(lines)

    async def ask(self, event: CommandEvent, ctx: Context) -> str:
        """Search without opening a thread."""
        query = strip_invisible(event.args).strip()
        if not query:
            return "Usage: ask TEXT — for example: ask how do I get a BSN"
        channel = await ConversationRepo(ctx.session).ensure_channel(
            event.channel.platform, event.channel.chat_id, event.channel.thread_id
        )
        matches = await self.matcher.match(
            SearchRepo(ctx.session),
            query,
            community_id=channel.community_id,
            limit=self.gate.max_suggestions,
        )
        decision = self.gate.decide(matches)
        if decision.mode == "quiet":
            return "I found nothing on that yet. Ask the community — someone may know!"
        text, _ = await compose(ctx.session, decision)
        return text or "I found nothing on that yet."

    async def stats(self, event: CommandEvent, ctx: Context) -> str:
        """The short community health summary."""
        channel = await ConversationRepo(ctx.session).ensure_channel(
            event.channel.platform, event.channel.chat_id, event.channel.thread_id
        )
        counts = await ThreadRepo(ctx.session).status_counts(channel.community_id)
        asked = sum(counts.values()) - counts.get("deleted", 0)
        answered = counts.get("answered", 0) + counts.get("solved", 0)
        rate = f"{answered / asked:.0%}" if asked else "n/a"
        return (
            f"Questions: {asked}; answered: {answered} ({rate}); "
            f"solved: {counts.get('solved', 0)}; still open: {counts.get('open', 0)}."
        )
