"""The dispatcher: stored events handled in order, new messages in batches.

One dispatcher per process takes stored events of its platforms in order and runs the handlers
inside one transaction together with marking the event handled, so a crash re-processes an
event but never half-applies it. New messages that arrived together are handled in one
transaction (each event's handlers in a savepoint); an event that fails, times out or was cut
short by a crash is retried alone and parked after ``max_event_attempts`` tries (a crash counts
against an event only when it was handled alone: one in its batch only makes it be tried
alone). A handler that needs the platform's answer (an admin check) stops, the platform is
asked with no transaction open, and the event runs again; other chats go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import supervision
from bot.context import AskPlatform, Context
from bot.events import Event, MessageEvent, from_record
from bot.supervision import lost_race, store_unavailable
from storage.engine import _reason
from storage.models import InboxEvent, utcnow
from storage.repos.conversation import ConversationRepo
from storage.repos.queues import InboxRepo

if TYPE_CHECKING:
    from bot.core import Hub

log = logging.getLogger(__name__)

INBOX_RETENTION = timedelta(days=7)
#: Seconds the handlers may take over one event; longer counts as a failed attempt.
HANDLER_TIMEOUT = 30.0
#: An event whose handling failed, timed out or was cut short by a crash this many times is
#: parked: marked handled with the reason, so that the events after it are not held up.
MAX_EVENT_ATTEMPTS = 3
#: Pending events looked at at once: new messages among them are handled in one transaction
#: (see :meth:`Dispatcher._dispatch_batch`), and a chat waiting for a platform answer is
#: skipped.
DISPATCH_BATCH = 100
#: Seconds after which a batch takes no more events: on SQLite intake and senders wait for
#: the batch's transaction, so a long one would delay storing new updates and sending replies.
DISPATCH_BATCH_SECONDS = 0.1
#: Seconds before looking again at pending events none of which could be claimed (another
#: process sharing the store holds them).
PENDING_RECHECK = 0.05
#: Seconds between looks at the inbox when nothing woke the dispatcher, on PostgreSQL (a store
#: other processes may store events in; on SQLite the process storing an event handles it).
SHARED_STORE_POLL = 2.0
#: Seconds a dispatcher on PostgreSQL waits before parking an event whose last attempt never
#: finished, to be sure no other process sharing the store is just taking it.
PARK_CONFIRM = 0.5
#: What an event claimed in a batch says while the batch is handled: still there at the next
#: claim, it tells that copss stopped during the batch, not during this event alone.
BATCH_CUT = "copss stopped while handling the batch it was in"
#: Immediate re-runs of an event's handlers after a deadlock or serialization failure, before
#: the dispatcher waits for the store as after any other store failure.
RACE_RETRIES = 3


@dataclass(frozen=True)
class Abandoned:
    """A pending event whose last counted attempt never finished (see
    :meth:`Dispatcher._park_abandoned`)."""

    row_id: int
    key: str
    attempts: int
    reason: str


@dataclass(frozen=True)
class Batch:
    """New messages handled in one transaction, oldest first: inbox row ids, dedup keys and
    payloads as claimed."""

    rows: list[tuple[int, str, dict[str, Any]]]

    @property
    def ids(self) -> list[int]:
        """The inbox row ids."""
        return [row_id for row_id, _, _ in self.rows]


class Dispatcher:
    """Handles the inbox of a hub's platforms (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.db = hub.db
        # Events whose last attempt ended because the store failed, or stopped to ask the
        # platform: that attempt is not counted against the event (it is not the event's fault).
        self._uncounted: set[int] = set()
        # Events the last batch handled before its time was up, when it was: the next claim
        # takes about that many (with room to spare) instead of the whole DISPATCH_BATCH, so
        # that rows are not read, marked and given back again and again. None: no cut.
        self._batch_fit: int | None = None
        # Chats (platform:chat) whose next event waits for a platform answer, asked outside
        # any transaction; the events of other chats are handled meanwhile.
        self._asking: dict[str, asyncio.Task[None]] = {}
        # Platform answers for an event's next run, by inbox row id.
        self._facts: dict[int, dict[tuple[str, str], bool]] = {}
        self._inbox_ready = asyncio.Event()
        #: Set when the inbox has no pending events (tests and shutdown wait on it).
        self.idle = asyncio.Event()

    def wake(self) -> None:
        """New events were stored."""
        self.idle.clear()
        self._inbox_ready.set()

    async def run(self) -> None:
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
                    elif await self._has_pending():
                        # Stored since the last claim, or held by another process sharing
                        # the store: not idle; look again shortly (no busy loop).
                        await asyncio.sleep(PENDING_RECHECK)
                        continue
                    else:
                        self.idle.set()
            except SQLAlchemyError as exc:
                # The store is unreachable, locked or read-only for now: nothing was marked
                # handled, so the same events come round again once it answers.
                delay = await self.hub._store_failed("dispatcher", exc, delay)
                continue
            delay = supervision.STORE_RETRY
            if handled:
                self.hub.health.answered()  # a write went through (a read alone may not tell)
                continue
            if self.db.dialect == "sqlite":
                await self._inbox_ready.wait()
            else:
                # A store shared with other processes: events of this process's platforms
                # that another one received (its Telegram poller, a Discord shard) wake
                # nothing here, so look again now and then; the receiver handles them at once.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SHARED_STORE_POLL):
                        await self._inbox_ready.wait()

    async def prune_inbox(self) -> int:
        """Drop handled events older than ``INBOX_RETENTION``: platforms redeliver within
        hours, so a week of keys is plenty for de-duplication."""
        async with self.db.session() as session:
            return await InboxRepo(session).prune(utcnow() - INBOX_RETENTION)

    def _mine(self) -> ColumnElement[bool]:
        # Events of platforms this process runs (and any stored without a platform).
        return or_(InboxEvent.platform.in_(list(self.hub.adapters)), InboxEvent.platform.is_(None))

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
            elif isinstance(claimed, Abandoned):
                count += await self._park_abandoned(claimed)
            elif claimed is True or await self._dispatch_one(*claimed):
                count += 1

    async def _park_abandoned(self, row: Abandoned) -> int:
        """Park an event whose last attempt never finished, once it is plain that no process
        is handling it: still pending, unlocked and with the same count after
        :data:`PARK_CONFIRM` seconds. Returns 1 when it was parked."""
        await asyncio.sleep(PARK_CONFIRM)
        async with self.db.session() as session:
            still = await session.scalar(
                select(InboxEvent.id)
                .where(
                    InboxEvent.id == row.row_id,
                    InboxEvent.handled_at.is_(None),
                    InboxEvent.attempts == row.attempts,
                )
                .with_for_update(skip_locked=True)
            )
            if still is None:
                return 0  # another process took it meanwhile
            await self._park(InboxRepo(session), row.row_id, row.key, row.reason)
        return 1

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
            self.hub.wake_sender(platform)
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
            for handler in self.hub.handlers:
                # A handler may look up what the whole batch needs at once.
                prefetch = getattr(handler, "prefetch", None)
                if prefetch is not None:
                    await prefetch(session, events)
            ends = time.monotonic() + self.hub.dispatch_batch_seconds
            self._batch_fit = None
            for (row_id, key), event in zip(rows, events, strict=True):
                if done and time.monotonic() > ends:
                    stopped = row_id  # the rest waits for the next batch
                    self._batch_fit = len(done)
                    break
                ctx = Context(self.hub, session)
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
                    await repo.give_back(rest)
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
            self.hub.wake_sender(platform)
        return True

    def _start_asking(self, row_id: int, key: str, ask: AskPlatform) -> None:
        chat = f"{ask.channel.platform}:{ask.channel.chat_id}"
        facts = self._facts.setdefault(row_id, {})

        async def run() -> None:
            try:
                async with asyncio.timeout(self.hub.handler_timeout):
                    answer = await self.hub.is_admin(ask.channel, ask.user_id)
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
            ctx = Context(self.hub, session, facts=dict(known or {}), again=known is not None)
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
        deadline = asyncio.timeout(self.hub.handler_timeout)
        try:
            async with session.begin_nested(), deadline:
                for handler in self.hub.handlers:
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
                    self.hub.handler_timeout,
                    key,
                    attempt,
                )
                return f"timed out after {self.hub.handler_timeout:g}s"
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
        if attempt >= self.hub.max_event_attempts:
            await self._park(repo, row_id, key, f"{failure} ({attempt} attempts)")
        else:
            # Still pending: the next look at the inbox tries it again.
            await repo.note_failure(row_id, failure)

    async def _claim(self) -> Batch | Abandoned | tuple[int, str, int] | bool:
        """What to handle next, its attempt counted and committed before anything handles
        it: a :class:`Batch` of new messages, or one event as (id, dedup key, attempt number);
        ``True`` when that event was parked instead, an :class:`Abandoned` one to park once
        confirmed (PostgreSQL), ``False`` when there is none."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(InboxEvent)
                .where(InboxEvent.handled_at.is_(None), self._mine())
                .order_by(InboxEvent.id)
                .limit(self._claim_limit())
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
                await repo.claim_batch(claimed.ids, BATCH_CUT)
                return claimed
            row = ready[0]
            if row.id in self._uncounted:
                # Its last attempt was cut short by the store, or it was in a batch that
                # stopped: this one is that attempt again.
                self._uncounted.discard(row.id)
                return row.id, row.dedup_key, max(1, row.attempts)
            if row.error == BATCH_CUT:
                # copss stopped (or was killed) while handling the batch it was in: no sign
                # against this event, which may have had nothing to do with it. Tried alone
                # now as that batch's try, so that only stops while it alone is handled
                # count against it (an event that kills copss is still parked, one try later).
                await repo.try_alone(row.id)
                return row.id, row.dedup_key, max(1, row.attempts)
            if row.attempts >= self.hub.max_event_attempts:
                # The last attempt never finished: copss stopped (or was killed) in it.
                last = f"; last failure: {row.error}" if row.error else ""
                reason = f"copss stopped while handling it ({row.attempts} attempts{last})"
                if self.db.dialect != "sqlite":
                    # Or another process sharing the store has just counted that attempt and
                    # is about to take the row (between its claim and its handling the row
                    # is not locked): parked only if it is still untaken a moment later.
                    return Abandoned(row.id, row.dedup_key, row.attempts, reason)
                await self._park(repo, row.id, row.dedup_key, reason)
                return True
            attempt = row.attempts + 1
            await repo.count_attempt(row.id)
            return row.id, row.dedup_key, attempt

    def _claim_limit(self) -> int:
        """Pending events to look at: all of ``dispatch_batch``, unless the last batch ran out
        of time (then half as many again as it handled, at least 16). While a chat waits for
        a platform answer always all, so that other chats' events are found behind it."""
        fit = self._batch_fit
        if fit is None or self._asking:
            return self.hub.dispatch_batch
        return min(self.hub.dispatch_batch, max(16, fit + fit // 2))

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
