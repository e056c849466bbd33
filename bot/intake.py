"""Intake: incoming events stored before the platform may be told they arrived, many events
to a transaction (group commit)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from adapters.base import SinkUnavailable
from bot import supervision
from bot.events import Event, dedup_key, sanitized, to_record
from bot.supervision import StoreHealth, store_unavailable
from storage.engine import Database, _reason
from storage.repos.queues import InboxRepo

log = logging.getLogger(__name__)

#: Most events stored in one transaction.
INTAKE_BATCH = 500


@dataclass
class _Waiting:
    event: Event
    key: str
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Intake:
    """Stores events for the dispatcher. Callers of :meth:`sink` wait until their event is
    committed; events that arrive while a transaction is being written are stored together in
    the next one, so a burst costs one commit per batch instead of one per event, and a lone
    event is written at once (no waiting for company)."""

    def __init__(
        self,
        db: Database,
        health: StoreHealth,
        on_stored: Callable[[], None],
        batch: int = INTAKE_BATCH,
    ) -> None:
        self.db = db
        self.health = health
        self.on_stored = on_stored
        self.batch = batch
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._delay = supervision.STORE_RETRY

    async def sink(self, event: Event) -> None:
        """Store an incoming event; returns once it is durable (duplicates are dropped), raises
        :class:`SinkUnavailable` when the store did not take it. Every string in it is made
        storable first (:func:`bot.events.sanitized`): handlers only ever see the stored form.

        The event is queued before this coroutine first waits, so events of concurrent calls
        are stored in the order the calls were made (an adapter may hand over a whole batch
        with ``asyncio.gather`` and keep its order)."""
        event = sanitized(event)
        waiting = _Waiting(event, dedup_key(event))
        self._queue.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="intake")
        await waiting.done

    async def _write(self) -> None:
        taken: list[_Waiting] = []
        try:
            while self._queue:
                taken, self._queue = self._queue[: self.batch], self._queue[self.batch :]
                await self._store(taken)
        except BaseException:
            # Cancelled (shutdown): whatever is not answered yet was not stored.
            for w in [*taken, *self._queue]:
                if not w.done.done():
                    w.done.cancel()
            self._queue.clear()
            raise

    async def _store(self, taken: list[_Waiting]) -> None:
        try:
            stored = await self._put(taken)
        except SQLAlchemyError as exc:
            if len(taken) > 1 and not store_unavailable(exc):
                # Something in one event the store refuses: store the others one by one, so
                # that only that event is refused.
                for w in taken:
                    await self._store([w])
                return
            # The adapters acknowledge nothing, log one line and try again after the wait,
            # which doubles with each failure in a row.
            delay = self._delay
            self._delay = min(delay * 2, supervision.STORE_RETRY_MAX)
            reason = _reason(exc)
            # The events queued behind fail with them: were a later batch stored, it would
            # be ahead of these when the adapters offer them again (order is per chat).
            taken, self._queue = [*taken, *self._queue], []
            self.health.failed(reason, [w.event.channel for w in taken])
            for w in taken:
                if not w.done.done():
                    w.done.set_exception(SinkUnavailable(reason, delay))
            return
        self._delay = supervision.STORE_RETRY
        self.health.answered()
        for w in taken:
            if not stored.get(w.key):
                log.debug("duplicate event dropped: %s", w.key)
        if any(stored.values()):
            self.on_stored()
        for w in taken:
            if not w.done.done():
                w.done.set_result(bool(stored.get(w.key)))

    async def _put(self, taken: list[_Waiting]) -> dict[str, bool]:
        async with self.db.session() as session:
            ids = await InboxRepo(session).put_many(
                [(w.key, to_record(w.event), w.event.channel.platform) for w in taken]
            )
        # An event given twice in one batch is stored once: the first call gets it.
        firsts: dict[str, bool] = {}
        for w in taken:
            firsts.setdefault(w.key, w.key in ids)
        return firsts
