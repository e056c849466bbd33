"""Parsing, permission checks, rate limits and the audit log around every command."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from rapidfuzz import process

from bot.core import Context
from bot.events import CommandEvent, Event, Outgoing
from bot.features.commands.base import COMMAND_KEY, Command, Invocation, Services, UsageError
from bot.features.ratelimit import Repeats, SlidingWindow
from bot.features.settings import CommunitySettings
from faq.normalize import strip_invisible
from storage.models import AuditLog
from storage.repos.conversation import ConversationRepo

log = logging.getLogger(__name__)

MAX_ARGS = 4000


class Commands:
    """The command handler: first in the hub's handler list."""

    def __init__(
        self,
        services: Services,
        commands: Iterable[Command],
        *,
        per_member: SlidingWindow | None = None,
        per_chat: SlidingWindow | None = None,
        admin_checks: SlidingWindow | None = None,
        repeats: Repeats | None = None,
    ) -> None:
        self.services = services
        self.registry = {c.name: c for c in commands}
        self.per_member = per_member or SlidingWindow(6, 60.0)
        self.per_chat = per_chat or SlidingWindow(30, 60.0)
        self.admin_checks = admin_checks or SlidingWindow(30, 60.0)
        self.repeats = repeats or Repeats(120.0)
        self._warned: set[str] = set()

    def menu(self) -> list[tuple[str, str]]:
        """(name, summary) of every command, for platform command menus."""
        return [(c.name, c.summary) for c in self.registry.values()]

    async def __call__(self, event: Event, ctx: Context) -> bool:
        if not isinstance(event, CommandEvent):
            return False
        quoted: list[int] = []
        text = await self._answer(event, ctx, quoted)
        if text:
            await ctx.send(
                Outgoing(event.channel, text, reply_to=event.message_id),
                key=f"{COMMAND_KEY}{event.channel.key()}:{event.message_id}",
                meta={"quoted_threads": quoted} if quoted else None,
            )
        return True

    async def _answer(self, event: CommandEvent, ctx: Context, quoted: list[int]) -> str:
        """The reply to a command (``""``: none); the threads it quotes go to ``quoted``."""
        # Invisible bidi and zero-width characters are removed before anything is parsed.
        name = strip_invisible(event.name).strip().casefold()
        args = strip_invisible(event.args).strip()
        who = f"{event.author.platform}:{event.author.user_id}"
        command = self.registry.get(name)
        # Admin commands are limited by how often the platform is asked about the member; an
        # admin's own work is not throttled. Everything else counts against member and chat.
        if ctx.again:
            # The handlers ran over this command before and stopped to ask the platform about
            # the member: it was counted (and allowed) then.
            allowed = True
        elif command is not None and command.admin:
            allowed = self.admin_checks.allow(who)
        else:
            allowed = self.per_member.allow(who) and self.per_chat.allow(event.channel.key())
        if not allowed:
            # Say so once per burst, then stay quiet so the refusals cannot flood either.
            if who in self._warned:
                return ""
            self._warned.add(who)
            return "You're sending commands faster than I can answer. Please wait a minute."
        self._warned.discard(who)
        reply = await self._run(event, ctx, command, name, args, quoted)
        # The same request getting the same answer again within minutes is not repeated.
        if self.repeats.is_repeat(who, f"{name} {args}\n{reply}"):
            return ""
        return reply

    async def _run(
        self,
        event: CommandEvent,
        ctx: Context,
        command: Command | None,
        name: str,
        args: str,
        quoted: list[int],
    ) -> str:
        if command is None:
            guess = process.extractOne(name, list(self.registry), score_cutoff=60)
            hint = f" Did you mean '{guess[0]}'?" if guess else ""
            return f"I don't know the command '{name[:40]}'.{hint} Try 'help'."
        if len(args) > MAX_ARGS:
            return f"That is too long for '{name}' ({len(args)} characters; at most {MAX_ARGS})."
        repo = ConversationRepo(ctx.session)
        channel = await repo.ensure_channel(
            event.channel.platform, event.channel.chat_id, event.channel.thread_id
        )
        a = event.author
        member = await repo.ensure_member(a.platform, a.user_id, a.display_name, a.is_bot)
        community = await repo.community(channel.community_id)
        assert community is not None
        inv = Invocation(
            event,
            ctx,
            args,
            channel,
            community,
            member,
            CommunitySettings.of(community, self.services.gate),
            self.services,
            quoted,
        )
        if command.admin and not await ctx.is_admin(event.channel, a.user_id):
            await self._audit(inv, command, "refused: not an admin")
            return (
                f"Sorry, '{name}' is for admins of this community, and the platform says you "
                "are not one here. Nothing was changed."
            )
        try:
            reply = await command.run(inv)
        except UsageError as exc:
            reply = f"{exc}\nUsage: {command.usage}"
        if command.admin:
            await self._audit(inv, command, reply.splitlines()[0] if reply else "")
        return reply

    async def _audit(self, inv: Invocation, command: Command, result: str) -> None:
        inv.ctx.session.add(
            AuditLog(
                community_id=inv.community.id,
                actor=inv.actor,
                command=command.name,
                args=inv.args[:1000],
                result=result[:1000],
            )
        )
