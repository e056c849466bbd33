"""The inbox (events stored before handling) and the outbox (what copss will post)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.engine import Database, close_quietly
from storage.models import InboxEvent, OutboxMessage, utcnow
from storage.repos.rows import insert_row

log = logging.getLogger(__name__)

#: Longest error text kept on an inbox row (an exception can quote a whole message).
MAX_ERROR_CHARS = 1000


class InboxRepo:
    """Incoming events, each stored once under its dedup key."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put(
        self, dedup_key: str, payload: dict[str, Any], platform: str | None = None
    ) -> int | None:
        """Store an event; returns its id, or None when it was stored before."""
        return (await self.put_many([(dedup_key, payload, platform)])).get(dedup_key)

    async def put_many(
        self, events: Sequence[tuple[str, dict[str, Any], str | None]]
    ) -> dict[str, int]:
        """Store events given as (dedup key, payload, platform) with one statement, each key
        once (an event stored before, or earlier in ``events``, is skipped); returns the id of
        each event stored now, by dedup key."""
        if not events:
            return {}
        now = utcnow()
        values = [
            {"dedup_key": k, "payload": p, "platform": pf, "received_at": now, "attempts": 0}
            for k, p, pf in events
        ]
        postgres = self.session.get_bind().dialect.name == "postgresql"
        make = pg_insert if postgres else sqlite_insert
        statement = (
            make(InboxEvent)
            .values(values)
            .on_conflict_do_nothing(index_elements=[InboxEvent.dedup_key])
            .returning(InboxEvent.id, InboxEvent.dedup_key)
        )
        rows = await self.session.execute(statement)
        return {key: row_id for row_id, key in rows.all()}

    async def pending(self, limit: int = 500) -> Sequence[InboxEvent]:
        """Stored but unhandled events, oldest first."""
        rows = await self.session.scalars(
            select(InboxEvent)
            .where(InboxEvent.handled_at.is_(None))
            .order_by(InboxEvent.id)
            .limit(limit)
        )
        return rows.all()

    async def pending_payloads(self, platform: str) -> list[dict[str, Any]]:
        """The payloads of ``platform``'s events not handled yet, oldest first."""
        rows = await self.session.scalars(
            select(InboxEvent.payload)
            .where(InboxEvent.platform == platform, InboxEvent.handled_at.is_(None))
            .order_by(InboxEvent.id)
        )
        return list(rows.all())

    async def prune(self, before: datetime) -> int:
        """Forget handled events received before ``before``; returns how many."""
        result = await self.session.execute(
            delete(InboxEvent).where(
                InboxEvent.handled_at.is_not(None), InboxEvent.received_at < before
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def mark_handled(self, event_id: int, error: str | None = None) -> None:
        """The event has been handled (or failed for good, with ``error``)."""
        await self.session.execute(
            _inbox_update()
            .where(InboxEvent.id == event_id)
            .values(handled_at=utcnow(), error=None if error is None else _storable(error))
        )

    async def mark_handled_many(self, event_ids: Sequence[int]) -> None:
        """The events have been handled."""
        if event_ids:
            await self.session.execute(
                _inbox_update()
                .where(InboxEvent.id.in_(list(event_ids)))
                .values(handled_at=utcnow(), error=None)
            )

    async def claim_batch(self, event_ids: Sequence[int], reason: str) -> None:
        """A try at handling the events together is starting (commit before handling them):
        each is counted as tried once, with ``reason`` saying that copss stopped in their
        batch, which stays if it does."""
        await self.session.execute(
            _inbox_update()
            .where(InboxEvent.id.in_(list(event_ids)))
            .values(attempts=InboxEvent.attempts + 1, error=reason)
        )

    async def give_back(self, event_ids: Sequence[int]) -> None:
        """Events of a batch that were not tried after all: new again."""
        await self.session.execute(
            _inbox_update()
            .where(InboxEvent.id.in_(list(event_ids)))
            .values(attempts=InboxEvent.attempts - 1, error=None)
        )

    async def try_alone(self, event_id: int) -> None:
        """The event, tried once in a batch copss stopped in, is tried again alone: that try
        is the one its batch counted."""
        await self.session.execute(
            _inbox_update().where(InboxEvent.id == event_id).values(error=None)
        )

    async def count_attempt(self, event_id: int) -> None:
        """One more try at handling the event is starting (commit before handling it)."""
        await self.session.execute(
            _inbox_update()
            .where(InboxEvent.id == event_id)
            .values(attempts=InboxEvent.attempts + 1)
        )

    async def note_failure(self, event_id: int, error: str) -> None:
        """An attempt failed; the event stays pending, ``error`` says why."""
        await self.session.execute(
            _inbox_update().where(InboxEvent.id == event_id).values(error=_storable(error))
        )


def _inbox_update() -> Update:
    # The session's inbox rows are not brought up to date: a batch's session holds many, and
    # checking each against the statement's criteria cost more than the statement itself.
    return update(InboxEvent).execution_options(synchronize_session=False)


def _storable(error: str) -> str:
    # Exception texts can hold anything; PostgreSQL text takes neither NUL nor lone surrogates.
    error = error[:MAX_ERROR_CHARS].replace("\x00", "")
    return error.encode("utf-8", "replace").decode("utf-8")


#: Outbox states of a row still to be sent: queued, or a send under way (or interrupted).
WAITING = ("pending", "sending")


# Built once (building a statement costs more than running it from SQLAlchemy's cache).
_HEAD_OF = (
    select(OutboxMessage)
    .where(
        OutboxMessage.platform == bindparam("platform"),
        OutboxMessage.state.in_(WAITING),
        OutboxMessage.chat_id == bindparam("chat_id"),
    )
    .order_by(OutboxMessage.id)
    .limit(1)
)
_BACKLOG = select(func.count(OutboxMessage.id)).where(
    OutboxMessage.platform == bindparam("platform"),
    OutboxMessage.state.in_(WAITING),
    OutboxMessage.chat_id == bindparam("chat_id"),
)
_FIRSTS = (
    select(OutboxMessage.chat_id, func.min(OutboxMessage.id).label("head"))
    .where(OutboxMessage.platform == bindparam("platform"), OutboxMessage.state.in_(WAITING))
    .group_by(OutboxMessage.chat_id)
    .subquery()
)
_HEADS = (
    select(OutboxMessage.chat_id, OutboxMessage.state, OutboxMessage.next_attempt_at)
    .join(_FIRSTS, OutboxMessage.id == _FIRSTS.c.head)
    .order_by(OutboxMessage.id)
    .limit(bindparam("limit"))
)


class OutboxRepo:
    """Messages to post, sent per chat in id order."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: OutboxMessage) -> OutboxMessage | None:
        """Queue a message; returns None when one with the same dedup key exists."""
        conflict = ("dedup_key",) if row.dedup_key is not None else ()
        return row if await insert_row(self.session, row, conflict) else None

    async def heads(
        self, platform: str, limit: int = 200
    ) -> Sequence[tuple[str, str, datetime | None]]:
        """The first waiting row of each chat of ``platform`` that has one, as (chat id,
        state, not before), the chat waiting longest first."""
        rows = await self.session.execute(_HEADS, {"platform": platform, "limit": limit})
        return [(chat, state, at) for chat, state, at in rows.all()]

    async def head_of(self, platform: str, chat_id: str) -> OutboxMessage | None:
        """A chat's first waiting row (the next to send), if any."""
        return await self.session.scalar(_HEAD_OF, {"platform": platform, "chat_id": chat_id})

    async def backlog(self, platform: str, chat_id: str) -> int:
        """How many rows wait to be sent to a chat."""
        count = await self.session.scalar(_BACKLOG, {"platform": platform, "chat_id": chat_id})
        return int(count or 0)


#: The PostgreSQL advisory lock class of outbox chat leases (the first key of the two-key
#: form; the second is the hash of platform and chat).
LEASE_CLASS = 0x636F7073


class ChatLeases:
    """Which chats of a platform this process sends to now: one sender per chat, so each
    chat's messages go out in order, also with several processes on one store.

    In-process a set; on PostgreSQL also a session advisory lock per chat, all held on one
    connection of this process outside any transaction. Another process's try for the same
    chat fails at once (like ``FOR UPDATE SKIP LOCKED``) and it moves on to other chats; when
    this process dies its connection closes and PostgreSQL frees its leases at once, so
    another process takes the chats over without waiting for an expiry. SQLite stores are
    used by one process at a time: the set is enough there.
    """

    def __init__(self, db: Database, platform: str) -> None:
        self.db = db
        self.platform = platform
        self.held: set[str] = set()
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    async def take(self, chat_id: str) -> bool:
        """Take the chat's lease; False when someone (here or in another process) has it."""
        if chat_id in self.held:
            return False
        if self.db.dialect == "postgresql":
            async with self._lock:
                conn = await self._connection()
                try:
                    got = await conn.scalar(
                        text("SELECT pg_try_advisory_lock(:c, hashtext(:k))"),
                        {"c": LEASE_CLASS, "k": f"{self.platform}:{chat_id}"},
                    )
                except SQLAlchemyError:
                    await self._drop()
                    raise
            if not got:
                return False
        self.held.add(chat_id)
        return True

    async def release(self, chat_id: str) -> None:
        """Give the chat's lease back."""
        if chat_id not in self.held:
            return
        self.held.discard(chat_id)
        if self.db.dialect != "postgresql" or self._conn is None:
            return
        async with self._lock:
            try:
                await self._conn.execute(
                    text("SELECT pg_advisory_unlock(:c, hashtext(:k))"),
                    {"c": LEASE_CLASS, "k": f"{self.platform}:{chat_id}"},
                )
            except SQLAlchemyError as exc:
                # Dropping the connection frees every lease it held.
                log.warning("outbox leases of %s lost: %s", self.platform, exc)
                await self._drop()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self.db.lock_connection()
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.held.clear()
        if conn is not None:
            await close_quietly(conn, "the lease connection")

    async def close(self) -> None:
        """Free every lease (closing the connection frees them on PostgreSQL)."""
        async with self._lock:
            await self._drop()
