"""The hub: connects adapters, storage and handlers.

Every incoming event is written to the inbox before the adapter may acknowledge it
(:mod:`bot.intake`, many events to a transaction); the dispatcher (:mod:`bot.dispatch`) takes
stored events in order and runs the handlers inside one transaction together with marking the
event handled, so a crash re-processes an event but never half-applies it; everything copss
posts goes through the outbox table and is sent per chat by :mod:`bot.sender`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import Adapter, SinkUnavailable
from bot import supervision
from bot.context import (
    AT_LEAST_ONCE,
    AT_MOST_ONCE,
    CHUNKS,
    AskPlatform,
    Context,
    sent_chunks,
)
from bot.dispatch import (
    DISPATCH_BATCH,
    DISPATCH_BATCH_SECONDS,
    HANDLER_TIMEOUT,
    MAX_EVENT_ATTEMPTS,
    Dispatcher,
)
from bot.events import ChannelRef, Event, Outgoing, from_record
from bot.intake import Intake
from bot.sender import MAX_SEND_ATTEMPTS, SEND_CONCURRENCY, Sender
from bot.supervision import StoreHealth
from storage.engine import Database, _reason
from storage.models import OutboxMessage
from storage.repos.conversation import ConversationRepo, newer_id, resume_after
from storage.repos.queues import InboxRepo

__all__ = [
    "AT_LEAST_ONCE",
    "AT_MOST_ONCE",
    "CHUNKS",
    "AskPlatform",
    "Context",
    "Handler",
    "Hub",
    "PrepareHook",
    "SentHook",
    "sent_chunks",
]

log = logging.getLogger(__name__)

#: A handler returns True when it handled the event (later handlers are then skipped).
Handler = Callable[[Event, Context], Awaitable[bool]]
#: Called after the outbox sent a row (or carried out an edit row: ``meta["action"]`` is
#: ``edit``), inside a transaction, with the platform id of the message's first chunk;
#: :func:`sent_chunks` gives every chunk's id.
SentHook = Callable[[AsyncSession, OutboxMessage, str], Awaitable[None]]
#: Called just before a row is sent; may return a changed message (e.g. a reply target that
#: only became known when an earlier row was sent) and may bring the row's ``meta`` up to date
#: for this attempt (e.g. ``message_ids``: the chunks an edit or delete acts on now).
PrepareHook = Callable[[AsyncSession, OutboxMessage, Outgoing], Awaitable[Outgoing]]

#: Rows waiting for one chat beyond which nothing more is queued for it (see
#: :meth:`Context.send` and docs/reliability.md).
CHAT_BACKLOG = 1000
#: Seconds between log lines about one chat's full queue.
BACKLOG_WARN_EVERY = 600.0


class Hub:
    """Connects adapters, storage and handlers."""

    def __init__(
        self,
        db: Database,
        adapters: Sequence[Adapter],
        handlers: Sequence[Handler],
        *,
        admins: Sequence[str] = (),
        sent_hooks: Sequence[SentHook] = (),
        prepare_hooks: Sequence[PrepareHook] = (),
        handler_timeout: float | None = None,
        max_event_attempts: int | None = None,
    ) -> None:
        self.db = db
        self.adapters = {a.platform: a for a in adapters}
        self.handlers = list(handlers)
        #: Seconds the handlers may take over one event (default :data:`HANDLER_TIMEOUT`).
        self.handler_timeout = HANDLER_TIMEOUT if handler_timeout is None else handler_timeout
        #: Attempts after which an event is parked (default :data:`MAX_EVENT_ATTEMPTS`).
        self.max_event_attempts = (
            MAX_EVENT_ATTEMPTS if max_event_attempts is None else max_event_attempts
        )
        self.admins = frozenset(admins)
        self.sent_hooks = list(sent_hooks)
        self.prepare_hooks = list(prepare_hooks)
        #: Tries at a row before it is dead (default :data:`MAX_SEND_ATTEMPTS`).
        self.max_send_attempts = MAX_SEND_ATTEMPTS
        #: Pending events claimed at once (1: each event in its own transaction).
        self.dispatch_batch = DISPATCH_BATCH
        #: Seconds after which a batch takes no more events.
        self.dispatch_batch_seconds = DISPATCH_BATCH_SECONDS
        #: Chats of a platform sent to at once (default :data:`SEND_CONCURRENCY`).
        self.send_concurrency = SEND_CONCURRENCY
        #: Rows waiting for one chat beyond which no more are queued for it (0: no bound).
        self.chat_backlog = CHAT_BACKLOG
        self._full_warned: dict[str, float] = {}
        #: Store failures in a row, and the admins' warning after too many.
        self.health = StoreHealth(self.warn_admins)
        #: Handles the stored events.
        self.dispatcher = Dispatcher(self)
        #: Sends the outbox.
        self.sender = Sender(self)
        #: Stores incoming events (group commit).
        self.intake = Intake(db, self.health, self.dispatcher.wake)
        for platform, adapter in self.adapters.items():
            adapter.checkpoints = functools.partial(self.checkpoints, platform)
            adapter.catch_up_begins = functools.partial(self.catch_up_begins, platform)
            adapter.catch_up_read = self.catch_up_read
            adapter.stored_messages = self.stored_messages
            adapter.settled = self.settled

    async def checkpoints(self, platform: str) -> list[tuple[ChannelRef, str]]:
        """Each known channel of ``platform`` with the id of the message after which its
        history is to be read again: the newest member message stored, counting the events
        stored and not handled yet, or an unfinished catch-up's note where that is older."""
        async with self.db.read() as session:
            rows = await ConversationRepo(session).checkpoints(platform)
            pending = await InboxRepo(session).pending_payloads(platform)
        newest: dict[tuple[str, str | None], str | None] = {}
        notes: dict[tuple[str, str | None], str | None] = {}
        for chat, thread, mid, note in rows:
            newest[(chat, thread)], notes[(chat, thread)] = mid, note
        for payload in pending:
            if payload.get("kind") != "message":
                continue
            event = from_record(payload)
            where = (event.channel.chat_id, event.channel.thread_id or None)
            newest[where] = newer_id(newest.get(where), event.message_id)
        found = []
        for (chat, thread), mid in newest.items():
            after = resume_after(mid, notes.get((chat, thread)))
            if after is not None:
                found.append((ChannelRef(platform, chat, thread), after))
        return found

    async def catch_up_begins(self, platform: str, starts: list[tuple[ChannelRef, str]]) -> None:
        """Note where a catch-up starts reading each channel, ahead of the live messages of
        the session it serves: a catch-up cut short (a kill) starts there again next time.
        Raises :class:`SinkUnavailable` when the store is unavailable (tried again later)."""
        rows = [(ref.chat_id, ref.thread_id, after) for ref, after in starts]
        try:
            async with self.db.session() as session:
                await ConversationRepo(session).begin_catch_up(platform, rows)
        except SQLAlchemyError as exc:
            raise SinkUnavailable(_reason(exc), supervision.STORE_RETRY) from exc

    async def catch_up_read(self, channel: ChannelRef) -> None:
        """A catch-up has read ``channel`` up to now (every event it fed is stored)."""
        async with self.db.session() as session:
            await ConversationRepo(session).end_catch_up(
                channel.platform, channel.chat_id, channel.thread_id
            )

    async def stored_messages(
        self, channel: ChannelRef, since: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """Members' messages stored from ``channel`` since ``since`` and not deleted: the
        newest ``limit``, as (platform message id, text), newest first."""
        async with self.db.read() as session:
            return await ConversationRepo(session).recent_messages(
                channel.platform, channel.chat_id, channel.thread_id, since, limit
            )

    # -- inbox ---------------------------------------------------------------------------------

    async def sink(self, event: Event) -> None:
        """Store an incoming event (see :meth:`bot.intake.Intake.sink`)."""
        await self.intake.sink(event)

    @property
    def idle(self) -> asyncio.Event:
        """Set when the inbox has no pending events (tests and shutdown wait on it)."""
        return self.dispatcher.idle

    async def run_dispatcher(self) -> None:
        """Handle stored events in order, forever (see :class:`bot.dispatch.Dispatcher`)."""
        await self.dispatcher.run()

    async def dispatch_pending(self) -> int:
        """Handle every stored, unhandled event; returns how many were handled."""
        return await self.dispatcher.dispatch_pending()

    async def run_sender(self, platform: str) -> None:
        """Send a platform's outbox, forever (see :class:`bot.sender.Sender`)."""
        await self.sender.run(platform)

    def wake_sender(self, platform: str) -> None:
        """Tell a platform's sender there is work."""
        self.sender.wake(platform)

    async def settled(self) -> None:
        """Wait until every stored event is handled and every queued message is sent."""
        while True:
            await self.idle.wait()
            for idle in self.sender.idle.values():
                await idle.wait()
            if self.idle.is_set():
                return

    # -- outbox --------------------------------------------------------------------------------

    async def _store_failed(self, who: str, exc: SQLAlchemyError, delay: float) -> float:
        """One line per store failure (the traceback only at debug level), counted towards the
        admins' warning; waits ``delay`` and returns the next, longer wait."""
        log.error(
            "%s: store failed (%s); retrying in %gs",
            who,
            _reason(exc),
            delay,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        self.health.failed(_reason(exc))
        await asyncio.sleep(delay)
        return min(delay * 2, supervision.STORE_RETRY_MAX)

    async def warn_admins(self, text: str, chats: frozenset[ChannelRef]) -> None:
        """Tell admins about a failure straight through the adapters (not the outbox: the
        store is what failed): by private message to the admins configured for platforms this
        process runs; when none is, in the chats whose messages wait."""
        log.error("warning admins: %s", text)
        targets = [
            ChannelRef(platform, user_id)
            for platform, _, user_id in (a.partition(":") for a in sorted(self.admins))
            if platform in self.adapters and platform != "console"
        ]
        for channel in targets or sorted(chats, key=lambda c: c.key()):
            adapter = self.adapters.get(channel.platform)
            if adapter is None:
                continue
            try:
                await adapter.send(Outgoing(channel=channel, text=text))
            except Exception as exc:
                log.warning("could not warn %s: %s", channel.key(), exc)

    def note_full(self, channel: ChannelRef, waiting: int) -> None:
        """A message for ``channel`` was not queued: its queue is full (logged now and then)."""
        key = f"{channel.platform}:{channel.chat_id}"
        now = time.monotonic()
        if now - self._full_warned.get(key, -BACKLOG_WARN_EVERY) < BACKLOG_WARN_EVERY:
            return
        self._full_warned[key] = now
        log.warning(
            "outbox to %s is full (%d messages waiting, at most %d); new messages to it are "
            "not queued until it drains",
            key,
            waiting,
            self.chat_backlog,
        )

    # -- admin truth ---------------------------------------------------------------------------

    def configured_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Whether the config's allow-list names the user (no platform call)."""
        return f"{channel.platform}:{user_id}" in self.admins

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """The config allow-list, else the platform's answer now (never call this inside a
        transaction: handlers use :meth:`Context.is_admin`)."""
        if self.configured_admin(channel, user_id):
            return True
        adapter = self.adapters.get(channel.platform)
        if adapter is None:
            return False
        return await adapter.is_admin(channel, user_id)
