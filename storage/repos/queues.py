"""The inbox (events stored before handling) and the outbox (what copss will post)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboxEvent, OutboxMessage, utcnow

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
        exists = await self.session.scalar(
            select(InboxEvent.id).where(InboxEvent.dedup_key == dedup_key)
        )
        if exists is not None:
            return None
        row = InboxEvent(dedup_key=dedup_key, payload=payload, platform=platform)
        try:
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            # Another process stored it between our look-up and insert.
            return None
        return row.id

    async def pending(self, limit: int = 500) -> Sequence[InboxEvent]:
        """Stored but unhandled events, oldest first."""
        rows = await self.session.scalars(
            select(InboxEvent)
            .where(InboxEvent.handled_at.is_(None))
            .order_by(InboxEvent.id)
            .limit(limit)
        )
        return rows.all()

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
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(handled_at=utcnow(), error=None if error is None else _storable(error))
        )

    async def count_attempt(self, event_id: int) -> None:
        """One more try at handling the event is starting (commit before handling it)."""
        await self.session.execute(
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(attempts=InboxEvent.attempts + 1)
        )

    async def note_failure(self, event_id: int, error: str) -> None:
        """An attempt failed; the event stays pending, ``error`` says why."""
        await self.session.execute(
            update(InboxEvent).where(InboxEvent.id == event_id).values(error=_storable(error))
        )


def _storable(error: str) -> str:
    # Exception texts can hold anything; PostgreSQL text takes neither NUL nor lone surrogates.
    error = error[:MAX_ERROR_CHARS].replace("\x00", "")
    return error.encode("utf-8", "replace").decode("utf-8")


class OutboxRepo:
    """Messages to post, drained per platform in id order."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: OutboxMessage) -> OutboxMessage | None:
        """Queue a message; returns None when one with the same dedup key exists."""
        if row.dedup_key is not None:
            exists = await self.session.scalar(
                select(OutboxMessage.id).where(OutboxMessage.dedup_key == row.dedup_key)
            )
            if exists is not None:
                return None
        self.session.add(row)
        await self.session.flush()
        return row

    async def pending(self, platform: str, limit: int = 100) -> Sequence[OutboxMessage]:
        """Unsent messages for a platform, oldest first."""
        rows = await self.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.platform == platform, OutboxMessage.state == "pending")
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        return rows.all()
