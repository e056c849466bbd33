"""The outbox sender: everything copss posts, sent per chat in order.

Each platform's sender sends its chats' waiting rows one after another per chat and up to
``send_concurrency`` chats at once, so that one chat's flood wait, failing sends or slow
answers hold up only that chat. Every row records its intent ("sending") before the platform
call and its result right after; a send that may or may not have arrived follows the row's
delivery policy (docs/reliability.md). Transient failures back off per chat; a row is ``dead``
after ``max_send_attempts``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from adapters.base import (
    Adapter,
    AdapterError,
    Progress,
    TransientAdapterError,
    UncertainSendError,
)
from bot import supervision
from bot.context import AT_MOST_ONCE, CHUNKS
from bot.events import ChannelRef, Outgoing
from bot.pacing import Pacer
from storage.models import OutboxMessage, utcnow
from storage.repos.conversation import OWN_USER_ID, ConversationRepo
from storage.repos.queues import ChatLeases, OutboxRepo

if TYPE_CHECKING:
    from bot.core import Hub

log = logging.getLogger(__name__)

#: Tries at sending a row before it is given up as ``dead`` (an admin may retry it with
#: ``undelivered retry``); transient failures (flood control, server errors, no connection)
#: are tried again after :meth:`Sender.backoff`.
MAX_SEND_ATTEMPTS = 10
#: Seconds before the second try at a row after a transient failure; each further failure
#: doubles it, up to ``BACKOFF_MAX`` (each wait with jitter; a platform's own flood wait is
#: never cut short).
BACKOFF_BASE = 1.0
BACKOFF_MAX = 600.0
#: Chats of one platform sent to at once (each chat's rows still one after another).
SEND_CONCURRENCY = 16
#: Seconds between looks at the outbox when nothing woke the sender.
SENDER_POLL = 2.0


class Sender:
    """Sends the outbox of a hub's platforms (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.db = hub.db
        # Outcomes of sends the store could not record yet, by row (recorded first when it
        # answers).
        self._outcomes: dict[int, Callable[[], Awaitable[None]]] = {}
        # The chat lease of each row whose outcome waits in _outcomes: held until it is
        # recorded, or another process would take the row for interrupted and send it again.
        self._leased_outcomes: dict[int, tuple[ChatLeases, str]] = {}
        self._leases = {p: ChatLeases(hub.db, p) for p in hub.adapters}
        self._outbox_ready = {p: asyncio.Event() for p in hub.adapters}
        #: Per platform: set while its sender has nothing to send.
        self.idle = {p: asyncio.Event() for p in hub.adapters}
        self._pacers = {p: Pacer(a.pacing) for p, a in hub.adapters.items() if a.pacing is not None}

    def wake(self, platform: str) -> None:
        """Tell a platform's sender there is work."""
        ready = self._outbox_ready.get(platform)
        if ready is not None:
            self.idle[platform].clear()
            ready.set()

    async def run(self, platform: str) -> None:
        """Send a platform's outbox, forever: each chat's rows in order, one chat at a time
        per chat and up to ``send_concurrency`` chats at once, so that one chat's flood wait,
        failing sends or slow answers hold up only that chat."""
        adapter = self.hub.adapters[platform]
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
                    delay = await self.hub._store_failed(f"sender {platform}", failure, delay)
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
                    if len(running) >= self.hub.send_concurrency:
                        break
                    elsewhere.pop(chat, None)
                    running[chat] = asyncio.create_task(
                        self._send_chat(adapter, leases, chat, elsewhere),
                        name=f"send:{platform}:{chat}",
                    )
                if not running and not waiting and not ready.is_set():
                    self.idle[platform].set()
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
        elif self.hub.health.failures:
            self.hub.health.answered()  # its writes went through
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
        # The chat's next row as read in the transaction that recorded the last send (one
        # transaction less per message); only a pending row or none is taken from there.
        peeked: list[OutboxMessage | None] = []
        try:
            while True:
                if peeked and (peeked[0] is None or peeked[0].state == "pending"):
                    row = peeked[0]
                else:
                    async with self.db.session() as session:
                        row = await OutboxRepo(session).head_of(adapter.platform, chat)
                        if (
                            row is not None
                            and row.state == "sending"
                            and row.id not in self._outcomes
                        ):
                            # No send of it is under way (this process holds the chat's lease
                            # and keeps no outcome of it): an earlier run stopped during its
                            # send.
                            self._interrupted(row, adapter)
                            continue
                if row is None or row.state != "pending":
                    return
                if row.next_attempt_at is not None and row.next_attempt_at > utcnow():
                    return  # its wait is not over: the rows after it wait too (order)
                current = row.id
                peeked = []
                if not await self._deliver(adapter, row, peeked):
                    return
        finally:
            if current is not None and current in self._outcomes:
                # Sent, but the store did not take the outcome: the row still reads
                # "sending". The lease stays until _record_outcomes stores it.
                self._leased_outcomes[current] = (leases, chat)
            else:
                await leases.release(chat)

    def _interrupted(self, row: OutboxMessage, adapter: Adapter) -> None:
        """A row a previous run left "sending" (it stopped mid-call, maybe after the platform
        accepted): a bridged copy goes back to pending (at-least-once), and so does copss's
        own message where the platform cannot post a repeated send twice (Discord's nonce,
        for a few minutes); otherwise copss's own message becomes "unsure" and is not sent
        again (at-most-once). One log line each."""
        where = f"{row.platform}:{row.chat_id}"
        if row.meta.get("action") in ("edit", "delete") or row.delivery != AT_MOST_ONCE:
            log.warning(
                "outbox %d to %s: copss stopped during its send; sending it again", row.id, where
            )
            row.state = "pending"
            row.last_error = "copss stopped during the send; sent again"
        elif _within(row.attempted_at, adapter.repeat_safe_for(row.as_name)):
            log.warning(
                "outbox %d to %s: copss stopped during its send; sending it again (%s posts "
                "a repeated send once)",
                row.id,
                where,
                row.platform,
            )
            row.state = "pending"
            row.last_error = "copss stopped during the send; sent again (posted once)"
        else:
            log.warning(
                "outbox %d to %s: copss stopped during its send; it may have arrived, "
                "not sending it again (at-most-once)",
                row.id,
                where,
            )
            row.state = "unsure"
            row.last_error = "copss stopped during the send; not sent again"

    async def _deliver(
        self, adapter: Adapter, row: OutboxMessage, peek: list[OutboxMessage | None] | None = None
    ) -> bool:
        """One attempt at a row; True when the chat may go on with its next row (this one is
        done: sent, refused, unsure or dead), False when this one waits for another try.
        ``peek`` gets the chat's next row when the transaction recording a send read it."""
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
        await self._keep(row.id, functools.partial(self._finish, row, chunk_ids, peek=peek))
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
        if attempts >= self.hub.max_send_attempts:
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
        if not self.hub.prepare_hooks and sending is None:
            return out
        async with self.db.session() as session:
            for hook in self.hub.prepare_hooks:
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
        peek: list[OutboxMessage | None] | None = None,
    ) -> None:
        """Mark a row sent with the ids of every chunk of its message (kept in ``meta``), or
        failed (``chunk_ids`` None); ``record``: store the message copss posted; ``hooks``: run
        the sent hooks; ``peek``: gets the chat's next row, read in the same transaction."""
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
                sent_at = utcnow()
                # Usually one statement: the chat's channel and copss's member exist.
                if not await repo.add_own_message(
                    fresh.platform,
                    fresh.chat_id,
                    fresh.thread_id,
                    message_id,
                    fresh.text,
                    sent_at,
                    fresh.reply_to,
                    fresh.origin,
                ):
                    channel = await repo.ensure_channel(
                        fresh.platform, fresh.chat_id, fresh.thread_id
                    )
                    bot = await repo.ensure_member(
                        fresh.platform, OWN_USER_ID, "copss", is_bot=True
                    )
                    await repo.add_message(
                        channel, message_id, bot, fresh.text, sent_at, fresh.reply_to, fresh.origin
                    )
            if hooks:
                for hook in self.hub.sent_hooks:
                    await hook(session, fresh, message_id)
            if peek is not None:
                # Flushed first (the head query autoflushes): this row is no longer waiting.
                peek.append(await OutboxRepo(session).head_of(fresh.platform, fresh.chat_id))


def _within(began: datetime | None, seconds: float) -> bool:
    """Whether less than ``seconds`` have passed since ``began``."""
    return began is not None and seconds > 0 and (utcnow() - began).total_seconds() < seconds
