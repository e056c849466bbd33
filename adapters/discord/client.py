"""discord.py's client as copss runs it.

The intents copss asks for, mentions switched off for everything it posts, what it learns
at login, and every gateway event handed to the adapter's intake in the order Discord sent
it. discord.py itself keeps the gateway alive (heartbeats, RESUME after a drop, rate-limit
buckets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.utils import MISSING

from adapters.base import AdapterError
from adapters.discord.translate import BotView, content_intent_granted
from bot.events import ChannelRef

if TYPE_CHECKING:
    from adapters.base import Checkpoints, EventSink
    from adapters.discord.adapter import DiscordAdapter
    from adapters.discord.intake import Intake

log = logging.getLogger(__name__)

#: Seconds to wait for the gateway to accept a connection before counting it unreachable.
GATEWAY_CONNECT_TIMEOUT = 10.0

#: Whatever the text says (@everyone, <@&role>, <@id>), nobody and no role is pinged.
NO_MENTIONS = discord.AllowedMentions.none()

ENABLE_MESSAGE_CONTENT = (
    "Switch it on: https://discord.com/developers/applications -> your application -> Bot -> "
    "Privileged Gateway Intents -> 'Message Content Intent' -> Save Changes, then start copss "
    "again. (A bot in 100 or more servers also needs Discord to approve the intent for it.)"
)
MESSAGE_CONTENT_HELP = (
    "Discord refused the Message Content intent (gateway close code 4014), so copss cannot "
    "read what members write. " + ENABLE_MESSAGE_CONTENT
)


def copss_intents() -> discord.Intents:
    """Servers and their channels, messages with their text, reactions, direct messages."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    intents.guild_reactions = True
    intents.dm_messages = True
    intents.dm_reactions = True
    return intents


class CopssClient(discord.Client):
    """discord.py's client, handing every event to its adapter.

    discord.py runs each event handler in a task of its own, so a handler that awaited
    anything could overtake the one before it (an answer stored before its question). The
    handlers therefore only queue, synchronously; one task takes the queue in order.
    """

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        options.setdefault("intents", copss_intents())
        options.setdefault("allowed_mentions", NO_MENTIONS)
        # Without the members intent there is nothing to chunk; skip the wait for it.
        options.setdefault("chunk_guilds_at_startup", False)
        super().__init__(**options)
        self.adapter = adapter
        # Where each channel was read up to when the current gateway session began.
        self._noted: asyncio.Future[list[tuple[ChannelRef, str]]] | None = None
        self.tree: app_commands.CommandTree[CopssClient] = app_commands.CommandTree(self)
        #: Who copss is on Discord and which text commands it answers; known once logged in.
        self.bot_view = BotView(0)

    async def reopen(self) -> None:
        """Make a client that an earlier :meth:`start` closed ready to start again."""
        if not self.is_closed():
            return
        # close() closed the HTTP session and its connector with it (discord.py makes new ones
        # at login only when it has no connector) and let go of the event loop, which
        # entering the client binds again, as ``async with client`` does.
        self.http.connector = MISSING
        self.clear()
        await self.__aenter__()

    async def connect(self, *, reconnect: bool = True) -> None:
        """Connect to the gateway once it answers, then keep the connection (discord.py).

        discord.py's reconnect loop cannot retry a first connection that never opened (it
        resumes from the last session, and there is none): it logs a traceback and fails with
        an AttributeError. So the gateway is tried first (a TCP connection, closed at once);
        when it does not answer the error reaches the adapter, which reports it in one line
        and tries again later.
        """
        if self.http.proxy is None:
            gateway = DiscordWebSocket.DEFAULT_GATEWAY
            async with asyncio.timeout(GATEWAY_CONNECT_TIMEOUT):
                _, writer = await asyncio.open_connection(gateway.host, gateway.port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await super().connect(reconnect=reconnect)

    async def close(self) -> None:
        """Close, first ending the wait for the guilds of a session that had only just begun.

        discord.py leaves that task (which dispatches ``ready``) running past ``close``, which
        lets go of the event loop; the task then fails with an AttributeError, and a client
        started again could be told ``ready`` by the old session.
        """
        ready = getattr(self._connection, "_ready_task", None)
        if ready is not None and not ready.done():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        await super().close()

    def messageable(self, channel: ChannelRef) -> discord.PartialMessageable:
        """The channel (or thread) to post in or read from, known by its id alone."""
        raw = channel.thread_id or channel.chat_id
        if not raw.isdigit():
            raise AdapterError(f"not a Discord channel id: {raw!r}")
        return self.get_partial_messageable(int(raw))

    async def setup_hook(self) -> None:
        user = self.user
        assert user is not None  # setup_hook runs after login
        adapter = self.adapter
        self.bot_view = BotView(
            user.id,
            self.application_id,
            adapter.command_prefix,
            frozenset(name.casefold() for name, _ in adapter.commands),
        )
        log.info("discord: logged in as %s (id %s)", user.name, user.id)
        if not content_intent_granted(self.application_flags):
            # The gateway has the last word (close code 4014); this only says why early.
            log.warning(
                "discord: the application's settings do not show the Message Content intent; "
                "if Discord refuses it, copss stops with instructions"
            )
        await adapter.slash.register()

    @property
    def intake(self) -> Intake:
        """Where the event handlers queue their work: the adapter's intake."""
        return self.adapter.intake

    def _checkpoints(self) -> Checkpoints | None:
        checkpoints = self.adapter.checkpoints
        if checkpoints is not None and self.shard_count is not None:
            checkpoints = self._mine(checkpoints)
        return checkpoints

    async def on_connect(self) -> None:
        # A new gateway session (READY; discord.py holds on_ready back up to 2 s while servers
        # arrive). Note where each channel was read up to now, before anything of this session
        # is stored: its live messages queue behind this job, and were they counted, the
        # catch-up would start after them and skip what was said while copss was away.
        checkpoints = self._checkpoints()
        if checkpoints is None:
            return
        noted: asyncio.Future[list[tuple[ChannelRef, str]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._noted = noted

        begins = self.adapter.catch_up_begins

        async def note(sink: EventSink) -> None:
            if noted.done():
                return
            starts = await checkpoints()
            if begins is not None:
                # Kept in the store too: should this catch-up be cut short after live
                # messages were stored, the next one still starts here.
                await begins(starts)
            noted.set_result(starts)

        self.intake.enqueue(note, alone=True)

    async def on_ready(self) -> None:
        # READY comes with every new gateway session (not after a RESUME, which replays the
        # missed events itself): read what was said while no session was listening.
        adapter = self.adapter
        checkpoints = self._checkpoints()
        noted, self._noted = self._noted, None
        if checkpoints is not None and noted is not None:
            current = checkpoints
            unused = True

            async def as_noted() -> list[tuple[ChannelRef, str]]:
                # The note serves this catch-up; a later one (events read back after the
                # store refused them) starts from what is stored then.
                nonlocal unused
                use, unused = unused, False
                if use and noted.done() and not noted.cancelled() and noted.exception() is None:
                    return noted.result()
                return await current()  # no note: the store failed when it was taken

            checkpoints = as_noted
        self.intake.enqueue(
            lambda sink: self.intake.catch_up(
                checkpoints, sink, adapter.stored_messages, adapter.catch_up_read
            ),
            alone=True,
        )

    def _mine(self, checkpoints: Checkpoints) -> Checkpoints:
        """The stored channels this process catches up on when the shards are split between
        processes: those of the servers its shards hold; and, on the process with shard 0,
        those no shard here knows (Discord sends direct messages to shard 0; a channel
        deleted meanwhile is noticed there), so each channel is read by one process, or two
        at most."""
        ids = getattr(self, "shard_ids", None)  # an AutoShardedClient's; None: every shard
        if ids is None:
            ids = [self.shard_id] if self.shard_id is not None else range(self.shard_count or 1)
        first = 0 in ids

        async def mine() -> list[tuple[ChannelRef, str]]:
            kept = []
            for ref, newest in await checkpoints():
                channel = self.get_channel(int(ref.chat_id)) if ref.chat_id.isdigit() else None
                if channel is not None or first:
                    kept.append((ref, newest))
            return kept

        return mine

    async def on_message(self, message: discord.Message) -> None:
        self.intake.enqueue(lambda sink: self.intake.take_message(message, sink))

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.intake.enqueue(lambda sink: self.intake.take_edit(payload, sink))

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.intake.enqueue(
            lambda sink: self.intake.take_delete(payload.channel_id, {payload.message_id}, sink)
        )

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.intake.enqueue(
            lambda sink: self.intake.take_delete(payload.channel_id, payload.message_ids, sink)
        )

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        # Deleting a thread or forum post deletes its messages; archiving one (THREAD_UPDATE)
        # deletes nothing and is not handled.
        self.intake.enqueue(lambda sink: self.intake.take_thread_delete(payload, sink))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.intake.enqueue(lambda sink: self.intake.take_reaction(payload, sink))

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        self.intake.enqueue(lambda sink: self.intake.take_reaction(payload, sink))


class ShardedCopssClient(CopssClient, discord.AutoShardedClient):
    """:class:`CopssClient` running several gateway shards in one process."""


def copss_client(
    adapter: DiscordAdapter,
    *,
    shard_count: int | None = None,
    shard_ids: Sequence[int] = (),
    **options: Any,
) -> CopssClient:
    """The client for ``adapter``: one gateway connection when ``shard_count`` is None;
    else the shards ``shard_ids`` of ``shard_count`` (empty: all of them), one connection
    each. Discord sends each server's events to one shard only, so processes running
    different shards of one bot share the servers between them."""
    if shard_count is None:
        return CopssClient(adapter, **options)
    ids = list(shard_ids) or list(range(shard_count))
    if len(ids) == 1:
        return CopssClient(adapter, shard_id=ids[0], shard_count=shard_count, **options)
    return ShardedCopssClient(adapter, shard_ids=ids, shard_count=shard_count, **options)
