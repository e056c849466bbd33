"""The hub: store-first inbox, ordered handlers, outbox senders.

Every incoming event is written to the inbox before the adapter may acknowledge it. One
dispatcher takes stored events in order and runs the handlers inside one transaction together
with marking the event handled, so a crash re-processes an event but never half-applies it.
Everything copss posts goes through the outbox table and is sent by one task per platform.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import (
    Adapter,
    AdapterError,
    Progress,
    TransientAdapterError,
    UncertainSendError,
)
from bot import supervision
from bot.events import (
    ChannelRef,
    Event,
    MessageEvent,
    Outgoing,
    from_record,
)
from bot.intake import Intake
from bot.pacing import Pacer
from bot.supervision import StoreHealth, lost_race, store_unavailable
from storage.engine import Database, _reason
from storage.models import InboxEvent, OutboxMessage, utcnow
from storage.repos.conversation import ConversationRepo
from storage.repos.queues import ChatLeases, InboxRepo, OutboxRepo

log = logging.getLogger(__name__)

#: A handler returns True when it handled the event (later handlers are then skipped).
Handler = Callable[[Event, "Context"], Awaitable[bool]]
#: Called after the outbox sent a row (or carried out an edit row: ``meta["action"]`` is
#: ``edit``), inside a transaction, with the platform id of the message's first chunk;
#: :func:`sent_chunks` gives every chunk's id.
SentHook = Callable[[AsyncSession, OutboxMessage, str], Awaitable[None]]
#: Called just before a row is sent; may return a changed message (e.g. a reply target that
#: only became known when an earlier row was sent) and may bring the row's ``meta`` up to date
#: for this attempt (e.g. ``message_ids``: the chunks an edit or delete acts on now).
PrepareHook = Callable[[AsyncSession, OutboxMessage, Outgoing], Awaitable[Outgoing]]

#: Tries at sending a row before it is given up as ``dead`` (an admin may retry it with
#: ``undelivered retry``); transient failures (flood control, server errors, no connection)
#: are tried again after :meth:`Hub.backoff`.
MAX_SEND_ATTEMPTS = 10
#: Seconds before the second try at a row after a transient failure; each further failure
#: doubles it, up to ``BACKOFF_MAX`` (each wait with jitter; a platform's own flood wait is
#: never cut short).
BACKOFF_BASE = 1.0
BACKOFF_MAX = 600.0
#: Chats of one platform sent to at once (each chat's rows still one after another).
SEND_CONCURRENCY = 16
#: Rows waiting for one chat beyond which nothing more is queued for it (see
#: :meth:`Context.send` and docs/reliability.md).
CHAT_BACKLOG = 1000
#: Seconds between log lines about one chat's full queue.
BACKLOG_WARN_EVERY = 600.0
INBOX_RETENTION = timedelta(days=7)
#: Seconds the handlers may take over one event; longer counts as a failed attempt.
HANDLER_TIMEOUT = 30.0
#: An event whose handling failed, timed out or was cut short by a crash this many times is
#: parked: marked handled with the reason, so that the events after it are not held up.
MAX_EVENT_ATTEMPTS = 3
#: Pending events looked at at once: new messages among them are handled in one transaction
#: (see :meth:`Hub._dispatch_batch`), and a chat waiting for a platform answer is skipped.
DISPATCH_BATCH = 100
#: Seconds after which a batch takes no more events: on SQLite intake and senders wait for
#: the batch's transaction, so a long one would delay storing new updates and sending replies.
DISPATCH_BATCH_SECONDS = 0.1
#: Seconds between looks at the outbox when nothing woke the sender.
SENDER_POLL = 2.0
#: The outbox row ``meta`` key holding the chunks of a message as they are posted (see
#: :class:`adapters.base.Progress`), so a retry, also after a restart, goes on where it stopped
#: and every chunk is known once it is sent.
CHUNKS = "chunks"
#: Delivery policies of an outbox row (``OutboxMessage.delivery``) for a send that may or may
#: not have arrived: sent again, or not (see docs/reliability.md).
AT_LEAST_ONCE = "at_least_once"
AT_MOST_ONCE = "at_most_once"


def sent_chunks(row: OutboxMessage) -> list[str]:
    """The platform ids of every chunk of the message a row posted or edited, first first."""
    ids = Progress.from_record(row.meta.get(CHUNKS)).ids
    if ids:
        return ids
    return [row.platform_message_id] if row.platform_message_id else []


@dataclass
class Context:
    """What a handler may use while handling one event; ``session`` is its transaction."""

    hub: Hub
    session: AsyncSession
    queued: list[OutboxMessage] = field(default_factory=list)
    #: Platforms whose senders are woken once this transaction is committed.
    woken: set[str] = field(default_factory=set)

    def wake(self, platform: str) -> None:
        """Wake the platform's sender after the commit (e.g. rows put back in the queue)."""
        self.woken.add(platform)

    async def send(
        self,
        out: Outgoing,
        *,
        key: str | None = None,
        meta: dict[str, Any] | None = None,
        delivery: str | None = None,
    ) -> OutboxMessage | None:
        """Queue a message in this transaction; ``key`` makes it queued at most once.
        ``delivery``: what a send that may or may not have arrived leads to; by default a
        bridged copy (it names an author) is sent again, copss's own words are not.

        Returns None, queuing nothing, when the chat already has ``hub.chat_backlog`` rows
        waiting (its platform refuses or floods it for long): the queue stays bounded, its
        rows keep their order and the other chats are not affected (one log line per chat
        every ten minutes)."""
        c = out.channel
        if self.hub.chat_backlog:
            waiting = await OutboxRepo(self.session).backlog(c.platform, c.chat_id)
            if waiting >= self.hub.chat_backlog:
                self.hub.note_full(c, waiting)
                return None
        row = OutboxMessage(
            dedup_key=key,
            platform=out.channel.platform,
            chat_id=out.channel.chat_id,
            thread_id=out.channel.thread_id or "",
            text=out.text,
            reply_to=out.reply_to,
            as_name=out.as_name,
            origin=out.origin,
            meta=meta or {},
            delivery=delivery or (AT_LEAST_ONCE if out.as_name else AT_MOST_ONCE),
        )
        added = await OutboxRepo(self.session).add(row)
        if added is not None:
            self.queued.append(added)
            self.woken.add(added.platform)
        return added

    #: Platform answers known for this run of the handlers: (channel key, user id) → admin.
    facts: dict[tuple[str, str], bool] = field(default_factory=dict)
    #: The handlers ran over this event before and stopped to ask the platform something:
    #: in-memory bookkeeping (rate limits) was done then and is not done again.
    again: bool = False

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """The config allow-list, else the platform's answer, asked outside the transaction:
        when it is not known yet, the handlers stop here (the transaction is rolled back),
        the platform is asked with no transaction open, and the handlers run again."""
        if self.hub.configured_admin(channel, user_id):
            return True
        known = self.facts.get((channel.key(), user_id))
        if known is None:
            raise AskPlatform(channel, user_id)
        return known


@dataclass(frozen=True)
class Batch:
    """New messages handled in one transaction, oldest first: inbox row ids, dedup keys and
    payloads as claimed."""

    rows: list[tuple[int, str, dict[str, Any]]]

    @property
    def ids(self) -> list[int]:
        """The inbox row ids."""
        return [row_id for row_id, _, _ in self.rows]


class AskPlatform(BaseException):
    """Raised by a handler's :meth:`Context.is_admin` when the platform has not been asked
    yet: a platform call (Telegram getChatMember, Discord REST) never runs inside the
    handlers' transaction. A BaseException, so that a handler's ``except Exception`` does not
    swallow it; the dispatcher catches it."""

    def __init__(self, channel: ChannelRef, user_id: str) -> None:
        super().__init__(f"is {user_id} an admin of {channel.key()}?")
        self.channel = channel
        self.user_id = user_id


#: Immediate re-runs of an event's handlers after a deadlock or serialization failure, before
#: the dispatcher waits for the store as after any other store failure.
RACE_RETRIES = 3


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
        # Events whose last attempt ended because the store failed, or stopped to ask the
        # platform: that attempt is not counted against the event (it is not the event's fault).
        self._uncounted: set[int] = set()
        # Chats (platform:chat) whose next event waits for a platform answer, asked outside
        # any transaction; the events of other chats are handled meanwhile.
        self._asking: dict[str, asyncio.Task[None]] = {}
        # Platform answers for an event's next run, by inbox row id.
        self._facts: dict[int, dict[tuple[str, str], bool]] = {}
        self.admins = frozenset(admins)
        self.sent_hooks = list(sent_hooks)
        self.prepare_hooks = list(prepare_hooks)
        # Outcomes of sends the store could not record yet, by row (recorded first when it
        # answers).
        self._outcomes: dict[int, Callable[[], Awaitable[None]]] = {}
        # The chat lease of each row whose outcome waits in _outcomes: held until it is
        # recorded, or another process would take the row for interrupted and send it again.
        self._leased_outcomes: dict[int, tuple[ChatLeases, str]] = {}
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
        self._leases = {p: ChatLeases(db, p) for p in self.adapters}
        #: Store failures in a row, and the admins' warning after too many.
        self.health = StoreHealth(self.warn_admins)
        self._inbox_ready = asyncio.Event()
        self._outbox_ready = {p: asyncio.Event() for p in self.adapters}
        self._sender_idle = {p: asyncio.Event() for p in self.adapters}
        self._pacers = {
            p: Pacer(a.pacing) for p, a in self.adapters.items() if a.pacing is not None
        }
        #: Set when the inbox has no pending events (tests and shutdown wait on it).
        self.idle = asyncio.Event()
        #: Stores incoming events (group commit).
        self.intake = Intake(db, self.health, self._stored)
        for platform, adapter in self.adapters.items():
            adapter.checkpoints = functools.partial(self.checkpoints, platform)
            adapter.stored_messages = self.stored_messages
            adapter.settled = self.settled

    async def checkpoints(self, platform: str) -> list[tuple[ChannelRef, str]]:
        """Each known channel of ``platform`` with the id of its newest stored message."""
        async with self.db.read() as session:
            rows = await ConversationRepo(session).checkpoints(platform)
        return [(ChannelRef(platform, chat, thread), newest) for chat, thread, newest in rows]

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

    def _stored(self) -> None:
        self.idle.clear()
        self._inbox_ready.set()

    async def run_dispatcher(self) -> None:
        """Handle stored events in order, forever (pruning old handled ones now and then)."""
        next_prune = 0.0
        delay = supervision.STORE_RETRY
        while True:
            try:
                if time.monotonic() >= next_prune:
                    await self.prune_inbox()
                    next_prune = time.monotonic() + 3600
                handled = await self.dispatch_pending()
                if not handled:
                    self._inbox_ready.clear()
                    # Re-check after clearing: an event stored in between would otherwise
                    # wait. While a chat waits for a platform answer its events stay pending
                    # (that is not idle); the answer wakes the dispatcher.
                    if self._asking:
                        handled = await self.dispatch_pending()
                    else:
                        self.idle.set()
                        if await self._has_pending():
                            continue
            except SQLAlchemyError as exc:
                # The store is unreachable, locked or read-only for now: nothing was marked
                # handled, so the same events come round again once it answers.
                delay = await self._store_failed("dispatcher", exc, delay)
                continue
            delay = supervision.STORE_RETRY
            if handled:
                self.health.answered()  # a write went through (a read alone may not tell)
                continue
            await self._inbox_ready.wait()

    async def prune_inbox(self) -> int:
        """Drop handled events older than ``INBOX_RETENTION``: platforms redeliver within
        hours, so a week of keys is plenty for de-duplication."""
        async with self.db.session() as session:
            return await InboxRepo(session).prune(utcnow() - INBOX_RETENTION)

    def _mine(self) -> ColumnElement[bool]:
        # Events of platforms this process runs (and any stored without a platform).
        return or_(InboxEvent.platform.in_(list(self.adapters)), InboxEvent.platform.is_(None))

    async def _has_pending(self) -> bool:
        async with self.db.read() as session:
            found = await session.scalar(
                select(InboxEvent.id).where(InboxEvent.handled_at.is_(None), self._mine()).limit(1)
            )
        return found is not None

    async def dispatch_pending(self) -> int:
        """Handle every stored, unhandled event; returns how many were handled."""
        count = 0
        while True:
            claimed = await self._claim()
            if claimed is False:
                return count
            if isinstance(claimed, Batch):
                count += await self._dispatch_batch(claimed)
            elif claimed is True or await self._dispatch_one(*claimed):
                count += 1

    async def _dispatch_batch(self, batch: Batch) -> int:
        """Handle a batch of new messages in one transaction, each event's handlers in a
        savepoint of it. The batch ends at the first event whose handlers fail (an error, a
        timeout: a counted try) or need to ask the platform: the events before it are kept,
        that event is handled alone next, and the events after it are claimed again."""
        try:
            woken, handled = await self._handle_batch(batch)
        except SQLAlchemyError:
            # The store failed (or refused the batch's own statements): nothing was kept, and
            # this try does not count against the events, which are handled alone next.
            self._uncounted.update(batch.ids)
            raise
        for platform in woken:
            self.wake_sender(platform)
        return handled

    async def _handle_batch(self, batch: Batch) -> tuple[set[str], int]:
        """(platforms whose senders have work, events handled)."""
        woken: set[str] = set()
        done: list[int] = []
        stopped: int | None = None
        alone = False  # the event it stopped at is handled alone next
        async with self.db.session() as session:
            # Those another process sharing the store has not handled meanwhile.
            pending = set(
                (
                    await session.scalars(
                        select(InboxEvent.id)
                        .where(InboxEvent.id.in_(batch.ids), InboxEvent.handled_at.is_(None))
                        .with_for_update()
                    )
                ).all()
            )
            rows = [(i, key) for i, key, _ in batch.rows if i in pending]
            events = [from_record(payload) for i, _, payload in batch.rows if i in pending]
            repo = InboxRepo(session)
            await ConversationRepo(session).prefetch(
                {(e.channel.platform, e.channel.chat_id) for e in events},
                {
                    (e.author.platform, e.author.user_id)
                    for e in events
                    if isinstance(e, MessageEvent)
                },
            )
            for handler in self.handlers:
                # A handler may look up what the whole batch needs at once.
                prefetch = getattr(handler, "prefetch", None)
                if prefetch is not None:
                    await prefetch(session, events)
            ends = time.monotonic() + self.dispatch_batch_seconds
            for (row_id, key), event in zip(rows, events, strict=True):
                if done and time.monotonic() > ends:
                    stopped = row_id  # the rest waits for the next batch
                    break
                ctx = Context(self, session)
                try:
                    failure = await self._run_handlers(session, event, ctx, key, 1)
                except AskPlatform:
                    # Asked on its own next, with no transaction open; not a counted try.
                    self._uncounted.add(row_id)
                    stopped, alone = row_id, True
                    break
                if failure is not None:
                    # A real try that failed: counted, and tried again alone.
                    await self._failed(repo, row_id, key, 1, failure)
                    stopped, alone = row_id, True
                    break
                woken |= ctx.woken
                done.append(row_id)
            await repo.mark_handled_many(done)
            if stopped is not None:
                # Not tried yet: claimed again as new (one to be handled alone keeps its count).
                rest = [i for i, _ in rows if i > stopped or (i == stopped and not alone)]
                if rest:
                    await repo.count_attempts(rest, -1)
        return woken, len(done)

    async def _dispatch_one(self, row_id: int, key: str, attempt: int) -> bool:
        try:
            for race in range(RACE_RETRIES + 1):
                try:
                    queued = await self._handle(row_id, key, attempt)
                    break
                except AskPlatform as ask:
                    # The handlers need the platform's answer: nothing of this run was kept.
                    # Ask with no transaction open; the chat's events wait for the answer,
                    # other chats' events are handled meanwhile. Not a counted attempt.
                    self._uncounted.add(row_id)
                    self._start_asking(row_id, key, ask)
                    return True
                except SQLAlchemyError as exc:
                    if not lost_race(exc) or race == RACE_RETRIES:
                        raise
                    # Lost a race with another transaction (PostgreSQL deadlock or
                    # serialization failure): nothing of it was kept; run it again at once.
                    log.warning("handling %s lost a race (%s); running it again", key, _reason(exc))
                    await asyncio.sleep(random.uniform(0, 0.05 * 2**race))
        except SQLAlchemyError as exc:
            if store_unavailable(exc):
                # Not the event's fault (in a handler or in recording the outcome): the
                # dispatcher waits for the store and comes back to this event without
                # counting this attempt.
                self._uncounted.add(row_id)
            raise
        self._facts.pop(row_id, None)
        for platform in queued:
            self.wake_sender(platform)
        return True

    def _start_asking(self, row_id: int, key: str, ask: AskPlatform) -> None:
        chat = f"{ask.channel.platform}:{ask.channel.chat_id}"
        facts = self._facts.setdefault(row_id, {})

        async def run() -> None:
            try:
                async with asyncio.timeout(self.handler_timeout):
                    answer = await self.is_admin(ask.channel, ask.user_id)
            except Exception as exc:
                log.warning(
                    "admin check of %s in %s for %s failed (%s); taken as not an admin",
                    ask.user_id,
                    ask.channel.key(),
                    key,
                    str(exc) or type(exc).__name__,
                )
                answer = False
            finally:
                self._asking.pop(chat, None)
                self._inbox_ready.set()
                self.idle.clear()
            facts[(ask.channel.key(), ask.user_id)] = answer  # before the dispatcher runs

        self._asking[chat] = asyncio.create_task(run(), name=f"ask:{chat}")

    async def _handle(self, row_id: int, key: str, attempt: int) -> set[str]:
        """Run the handlers over a claimed event, in one transaction with its outcome: handled,
        failed (still pending), or parked; returns the platforms whose senders have work."""
        async with self.db.session() as session:
            row = await session.scalar(
                select(InboxEvent)
                .where(InboxEvent.id == row_id, InboxEvent.handled_at.is_(None))
                .with_for_update()
            )
            if row is None:
                return set()  # another process sharing the store finished it meanwhile
            event = from_record(row.payload)
            known = self._facts.get(row_id)
            ctx = Context(self, session, facts=dict(known or {}), again=known is not None)
            failure = await self._run_handlers(session, event, ctx, key, attempt)
            repo = InboxRepo(session)
            if failure is None:
                await repo.mark_handled(row_id)
                return ctx.woken
            await self._failed(repo, row_id, key, attempt, failure)
            return set()

    async def _run_handlers(
        self, session: AsyncSession, event: Event, ctx: Context, key: str, attempt: int
    ) -> str | None:
        """Run the handlers over an event in a savepoint of ``session``: None when they
        succeeded, else why they failed (their writes are then rolled back). Raises the
        store's error when the store is unavailable, and :class:`AskPlatform`."""
        deadline = asyncio.timeout(self.handler_timeout)
        try:
            async with session.begin_nested(), deadline:
                for handler in self.handlers:
                    if await handler(event, ctx):
                        break
        except SQLAlchemyError as exc:
            if store_unavailable(exc):
                raise
            log.exception("handler failed on %s (attempt %d)", key, attempt)
            return f"{type(exc).__name__}: {exc}"
        except TimeoutError as exc:
            if deadline.expired():
                log.error(
                    "handlers took over %gs on %s (attempt %d); cancelled",
                    self.handler_timeout,
                    key,
                    attempt,
                )
                return f"timed out after {self.handler_timeout:g}s"
            log.exception("handler failed on %s (attempt %d)", key, attempt)
            return f"TimeoutError: {exc}"
        except Exception as exc:
            # One error hook: log, record the failure on the event, and carry on.
            log.exception("handler failed on %s (attempt %d)", key, attempt)
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _failed(
        self, repo: InboxRepo, row_id: int, key: str, attempt: int, failure: str
    ) -> None:
        """An attempt at an event failed: it stays pending (tried again next), or is parked
        after ``max_event_attempts``."""
        if attempt >= self.max_event_attempts:
            await self._park(repo, row_id, key, f"{failure} ({attempt} attempts)")
        else:
            # Still pending: the next look at the inbox tries it again.
            await repo.note_failure(row_id, failure)

    async def _claim(self) -> Batch | tuple[int, str, int] | bool:
        """What to handle next, its attempt counted and committed before anything handles
        it: a :class:`Batch` of new messages, or one event as (id, dedup key, attempt number);
        ``True`` when that event was parked instead, ``False`` when there is none."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(InboxEvent)
                .where(InboxEvent.handled_at.is_(None), self._mine())
                .order_by(InboxEvent.id)
                .limit(self.dispatch_batch)
                .with_for_update(skip_locked=True)
            )
            # The oldest events of chats not waiting for a platform answer: a chat's events
            # stay in order, other chats go on.
            ready = [r for r in rows.all() if not self._waits(r)]
            if not ready:
                return False
            repo = InboxRepo(session)
            batch = []
            for r in ready:
                if not self._batchable(r):
                    break
                batch.append((r.id, r.dedup_key, r.payload))
            if len(batch) > 1:
                claimed = Batch(batch)
                await repo.count_attempts(claimed.ids)
                return claimed
            row = ready[0]
            if row.id in self._uncounted:
                # Its last attempt was cut short by the store, or it was in a batch that
                # stopped: this one is that attempt again.
                self._uncounted.discard(row.id)
                return row.id, row.dedup_key, max(1, row.attempts)
            if row.attempts >= self.max_event_attempts:
                # The last attempt never finished: copss stopped (or was killed) in it.
                last = f"; last failure: {row.error}" if row.error else ""
                reason = f"copss stopped while handling it ({row.attempts} attempts{last})"
                await self._park(repo, row.id, row.dedup_key, reason)
                return True
            attempt = row.attempts + 1
            await repo.count_attempt(row.id)
            return row.id, row.dedup_key, attempt

    def _batchable(self, row: InboxEvent) -> bool:
        """Whether an event may be handled in a batch: a new message never tried before (an
        event tried before, e.g. by a process killed during its batch, is handled alone, so
        that an event that kills copss is parked on its own)."""
        return (
            row.attempts == 0
            and row.id not in self._uncounted
            and row.payload.get("kind") == "message"
        )

    def _waits(self, row: InboxEvent) -> bool:
        """Whether the event's chat waits for a platform answer."""
        if not self._asking:
            return False
        channel = from_record(row.payload).channel
        return f"{channel.platform}:{channel.chat_id}" in self._asking

    async def _park(self, repo: InboxRepo, row_id: int, key: str, reason: str) -> None:
        log.error("event %s parked: %s", key, reason)
        await repo.mark_handled(row_id, error=f"parked: {reason}")

    # -- outbox --------------------------------------------------------------------------------

    def wake_sender(self, platform: str) -> None:
        """Tell a platform's sender there is work."""
        ready = self._outbox_ready.get(platform)
        if ready is not None:
            self._sender_idle[platform].clear()
            ready.set()

    async def settled(self) -> None:
        """Wait until every stored event is handled and every queued message is sent."""
        while True:
            await self.idle.wait()
            for idle in self._sender_idle.values():
                await idle.wait()
            if self.idle.is_set():
                return

    async def run_sender(self, platform: str) -> None:
        """Send a platform's outbox, forever: each chat's rows in order, one chat at a time
        per chat and up to ``send_concurrency`` chats at once, so that one chat's flood wait,
        failing sends or slow answers hold up only that chat."""
        adapter = self.adapters[platform]
        ready = self._outbox_ready[platform]
        leases = self._leases[platform]
        running: dict[str, asyncio.Task[None]] = {}
        # Chats whose lease another process holds: not tried again before this time.
        elsewhere: dict[str, float] = {}
        delay = supervision.STORE_RETRY
        try:
            while True:
                ready.clear()
                failure: SQLAlchemyError | None = None
                for chat, task in list(running.items()):
                    if task.done():
                        del running[chat]
                        failure = self._worker_ended(platform, chat, task) or failure
                        if failure is None:
                            delay = supervision.STORE_RETRY  # a chat's sends were recorded
                soonest: float | None = None
                waiting = False
                if failure is None:
                    try:
                        # Outcomes first: a send kept in memory must not be taken for
                        # interrupted.
                        await self._record_outcomes()
                        async with self.db.read() as session:
                            heads = await OutboxRepo(session).heads(platform)
                    except SQLAlchemyError as exc:
                        failure = exc
                if failure is not None:
                    # A send whose result could not be recorded is kept in memory and
                    # recorded first once the store answers (it is not sent again).
                    delay = await self._store_failed(f"sender {platform}", failure, delay)
                    ready.set()
                    continue
                if not heads:
                    delay = supervision.STORE_RETRY
                now, clock = utcnow(), time.monotonic()
                for chat, state, not_before in heads:
                    waiting = True
                    if chat in running or elsewhere.get(chat, 0.0) > clock:
                        continue
                    if state == "pending" and not_before is not None and not_before > now:
                        # Backing off (or a flood wait): this chat's turn comes then.
                        wait = (not_before - now).total_seconds()
                        soonest = wait if soonest is None else min(soonest, wait)
                        continue
                    if len(running) >= self.send_concurrency:
                        break
                    elsewhere.pop(chat, None)
                    running[chat] = asyncio.create_task(
                        self._send_chat(adapter, leases, chat, elsewhere),
                        name=f"send:{platform}:{chat}",
                    )
                if not running and not waiting and not ready.is_set():
                    self._sender_idle[platform].set()
                # Another process sharing the store may queue rows for this platform (a
                # bridged copy handled there), so look again now and then even without a
                # wake-up; and when a chat's wait is over.
                timeout = SENDER_POLL if soonest is None else min(SENDER_POLL, soonest + 0.01)
                woken = asyncio.create_task(ready.wait())
                try:
                    await asyncio.wait(
                        {woken, *running.values()},
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
        finally:
            for task in running.values():
                task.cancel()
            await leases.close()

    def _worker_ended(
        self, platform: str, chat: str, task: asyncio.Task[None]
    ) -> SQLAlchemyError | None:
        """A chat's sender ended: its store failure, if that is why (a bug is logged)."""
        if task.cancelled():
            return None
        exc = task.exception()
        if isinstance(exc, SQLAlchemyError):
            return exc
        if exc is not None:
            log.error(
                "sender %s: sending to chat %s failed: %s",
                platform,
                chat,
                exc,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        elif self.health.failures:
            self.health.answered()  # its writes went through
        return None

    async def _send_chat(
        self, adapter: Adapter, leases: ChatLeases, chat: str, elsewhere: dict[str, float]
    ) -> None:
        """Send a chat's waiting rows in order until none is left or the first has to wait."""
        if not await leases.take(chat):
            # Another process sends to this chat now; look again after a while.
            elsewhere[chat] = time.monotonic() + SENDER_POLL
            return
        current: int | None = None
        try:
            while True:
                async with self.db.session() as session:
                    row = await OutboxRepo(session).head_of(adapter.platform, chat)
                    if row is not None and row.state == "sending" and row.id not in self._outcomes:
                        # No send of it is under way (this process holds the chat's lease and
                        # keeps no outcome of it): an earlier run stopped during its send.
                        self._interrupted(row)
                        continue
                if row is None or row.state != "pending":
                    return
                if row.next_attempt_at is not None and row.next_attempt_at > utcnow():
                    return  # its wait is not over: the rows after it wait too (order)
                current = row.id
                if not await self._deliver(adapter, row):
                    return
        finally:
            if current is not None and current in self._outcomes:
                # Sent, but the store did not take the outcome: the row still reads
                # "sending". The lease stays until _record_outcomes stores it.
                self._leased_outcomes[current] = (leases, chat)
            else:
                await leases.release(chat)

    def _interrupted(self, row: OutboxMessage) -> None:
        """A row a previous run left "sending" (it stopped mid-call, maybe after the platform
        accepted): a bridged copy goes back to pending (at-least-once), copss's own message
        becomes "unsure" and is not sent again (at-most-once); one log line each."""
        where = f"{row.platform}:{row.chat_id}"
        if row.meta.get("action") in ("edit", "delete") or row.delivery != AT_MOST_ONCE:
            log.warning(
                "outbox %d to %s: copss stopped during its send; sending it again", row.id, where
            )
            row.state = "pending"
            row.last_error = "copss stopped during the send; sent again"
        else:
            log.warning(
                "outbox %d to %s: copss stopped during its send; it may have arrived, "
                "not sending it again (at-most-once)",
                row.id,
                where,
            )
            row.state = "unsure"
            row.last_error = "copss stopped during the send; not sent again"

    async def _deliver(self, adapter: Adapter, row: OutboxMessage) -> bool:
        """One attempt at a row; True when the chat may go on with its next row (this one is
        done: sent, refused, unsure or dead), False when this one waits for another try."""
        out = Outgoing(
            channel=ChannelRef(row.platform, row.chat_id, row.thread_id or None),
            text=row.text,
            reply_to=row.reply_to,
            as_name=row.as_name,
            origin=row.origin,
            key=f"outbox:{row.id}",
        )
        if row.meta.get("action") in ("delete", "edit"):
            out = await self._prepared(row, out)
            return await self._act(adapter, out, row)
        pacer = self._pacers.get(row.platform)
        # Platforms limit posting per chat, whatever topic or thread in it.
        chat = row.chat_id
        attempts = row.attempts + 1
        # The chunks an earlier attempt posted (kept in the row): a split message goes on at
        # the chunk that failed instead of posting its first chunks again.
        progress = self._tracked(row, Progress.from_record(row.meta.get(CHUNKS)))
        if pacer is not None:
            await pacer.wait(chat)
        # The intent is committed before the call: a send copss does not see finish (killed
        # mid-call) is found in state "sending" and follows the row's policy.
        out = await self._prepared(row, out, sending=attempts)
        try:
            chunk_ids = await adapter.send(out, progress)
        except UncertainSendError as exc:
            if row.delivery != AT_MOST_ONCE:
                log.warning(
                    "send to %s may not have arrived (%s); sending again (at-least-once)",
                    out.channel.key(),
                    exc,
                )
                return await self._later(row, attempts, str(exc), exc.retry_after)
            log.warning(
                "send to %s may or may not have arrived (%s); not sending it again (at-most-once)",
                out.channel.key(),
                exc,
            )
            await self._keep(row.id, self._unsure(row.id, progress.ids, f"unanswered: {exc}"))
            return True
        except TransientAdapterError as exc:
            return await self._later(row, attempts, str(exc), exc.retry_after)
        except AdapterError as exc:
            log.error("send to %s failed: %s", out.channel.key(), exc)
            # A failed row says how often it was tried, this last attempt included.
            await self._note_attempt(row.id, attempts, str(exc))
            await self._finish(row, None, error=str(exc))
            return True
        except Exception as exc:
            return await self._later(row, attempts, f"{type(exc).__name__}: {exc}", 0.0)
        if pacer is not None:
            pacer.record(chat, time.monotonic())
        await self._keep(row.id, functools.partial(self._finish, row, chunk_ids))
        return True

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones: doubling from
        :data:`BACKOFF_BASE` up to :data:`BACKOFF_MAX`, with jitter (half to all of it) so
        that chats failing together do not come back together."""
        step = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (attempts - 1))
        return float(step * random.uniform(0.5, 1.0))

    async def _later(self, row: OutboxMessage, attempts: int, error: str, floor: float) -> bool:
        """A transient failure: the row waits (at least ``floor``, the platform's own flood
        wait), or is dead after ``max_send_attempts``; True when the chat may go on."""
        where = f"{row.platform}:{row.chat_id}"
        values: dict[str, Any] = {"attempts": attempts, "last_error": error[:500]}
        if attempts >= self.max_send_attempts:
            log.error(
                "outbox %d to %s: giving up after %d attempts (%s); an admin may send it "
                "again with 'undelivered retry'",
                row.id,
                where,
                attempts,
                error,
            )
            values["state"] = "dead"
            go_on = True
        else:
            wait = max(floor, self.backoff(attempts))
            log.warning("send to %s delayed %.1fs: %s", where, wait, error)
            values["state"] = "pending"
            values["next_attempt_at"] = utcnow() + timedelta(seconds=wait)
            go_on = False
        async with self.db.session() as session:
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values)
            )
        return go_on

    async def _keep(self, row_id: int, record: Callable[[], Awaitable[None]]) -> None:
        """Record the outcome of a send; when the store fails, keep it to record first once
        the store answers again (the row stays "sending" meanwhile and is not sent again)."""
        try:
            await record()
        except SQLAlchemyError:
            self._outcomes[row_id] = record
            raise

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

    async def _record_outcomes(self) -> None:
        for row_id, record in list(self._outcomes.items()):
            await record()
            del self._outcomes[row_id]
            held = self._leased_outcomes.pop(row_id, None)
            if held is not None:
                await held[0].release(held[1])

    async def _prepared(
        self, row: OutboxMessage, out: Outgoing, *, sending: int | None = None
    ) -> Outgoing:
        """``out`` as the prepare hooks make it for this attempt, in one transaction that
        also marks the row "sending" (its ``sending``-th attempt) when that is given."""
        if not self.prepare_hooks and sending is None:
            return out
        async with self.db.session() as session:
            for hook in self.prepare_hooks:
                out = await hook(session, row, out)
            if sending is not None:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id)
                    .values(state="sending", attempts=sending, attempted_at=utcnow())
                )
        return out

    def _unsure(self, row_id: int, ids: Sequence[str], error: str) -> Callable[[], Awaitable[None]]:
        async def record() -> None:
            async with self.db.session() as session:
                values: dict[str, Any] = {"state": "unsure", "last_error": error[:500]}
                if ids:
                    values["platform_message_id"] = ids[0]
                await session.execute(
                    update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values)
                )

        return record

    def _tracked(self, row: OutboxMessage, progress: Progress) -> Progress:
        """``progress`` recorded in the row whenever the adapter reports a chunk."""

        async def save(now: Progress) -> None:
            async with self.db.session() as session:
                fresh = await session.get(OutboxMessage, row.id)
                if fresh is not None:
                    fresh.meta = {**fresh.meta, CHUNKS: now.record()}

        progress.save = save
        return progress

    async def _act(self, adapter: Adapter, out: Outgoing, row: OutboxMessage) -> bool:
        # Edits and deletes ride the outbox too, so they survive restarts and keep their order
        # relative to the messages they change. Safe to repeat: no "sending" mark needed.
        action = row.meta["action"]
        target = str(row.meta.get("message_id", ""))
        # Every chunk of the message: as an earlier attempt at this row left them (an edit
        # may have posted extra chunks), else as queued (``message_ids``), else the one id.
        ids = Progress.from_record(row.meta.get(CHUNKS)).ids or [
            str(i) for i in row.meta.get("message_ids") or [target]
        ]
        progress = self._tracked(row, Progress(ids=ids))
        attempts = row.attempts + 1
        try:
            if action == "delete":
                await adapter.delete(out.channel, progress.ids)
            else:
                progress.ids = await adapter.edit(
                    out.channel,
                    list(progress.ids),
                    out.text,
                    as_name=out.as_name,
                    progress=progress,
                )
        except TransientAdapterError as exc:
            return await self._later(row, attempts, f"{action}: {exc}", exc.retry_after)
        except AdapterError as exc:
            log.warning("%s of %s in %s failed: %s", action, target, out.channel.key(), exc)
            await self._note_attempt(row.id, attempts, str(exc))
            await self._finish(row, None, error=str(exc))
            return True
        except Exception as exc:
            return await self._later(row, attempts, f"{action}: {type(exc).__name__}: {exc}", 0)
        await self._finish(row, progress.ids, record=False, hooks=action == "edit")
        return True

    async def _note_attempt(self, row_id: int, attempts: int, error: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id)
                .values(state="pending", attempts=attempts, last_error=error[:500])
            )

    async def _finish(
        self,
        row: OutboxMessage,
        chunk_ids: Sequence[str] | None,
        error: str = "",
        record: bool = True,
        hooks: bool = True,
    ) -> None:
        """Mark a row sent with the ids of every chunk of its message (kept in ``meta``), or
        failed (``chunk_ids`` None); ``record``: store the message copss posted; ``hooks``: run
        the sent hooks."""
        async with self.db.session() as session:
            fresh = await session.get(OutboxMessage, row.id)
            if fresh is None:
                return
            if not chunk_ids:
                fresh.state, fresh.last_error = "failed", (error or "nothing was posted")[:500]
                return
            message_id = chunk_ids[0]
            fresh.state, fresh.platform_message_id, fresh.sent_at = "sent", message_id, utcnow()
            if hooks:
                fresh.meta = {**fresh.meta, CHUNKS: {"ids": list(chunk_ids)}}
            if record:
                repo = ConversationRepo(session)
                channel = await repo.ensure_channel(fresh.platform, fresh.chat_id, fresh.thread_id)
                bot = await repo.ensure_member(fresh.platform, "copss", "copss", is_bot=True)
                await repo.add_message(
                    channel, message_id, bot, fresh.text, utcnow(), fresh.reply_to, fresh.origin
                )
            if hooks:
                for hook in self.sent_hooks:
                    await hook(session, fresh, message_id)

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
