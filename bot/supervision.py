"""Keeping watch over the store: failures in a row, and a warning to admins in chat.

Intake, dispatcher and senders each wait and retry by themselves when the store fails; this
counts their failures in a row and, once there are ``warn_after`` of them, tells the admins in
chat once per outage (the store is what failed, so the warning goes straight to the platform,
not through the outbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.events import ChannelRef
from storage.engine import StoreGone

log = logging.getLogger(__name__)

#: Seconds to wait before trying the store again after it failed (intake, dispatcher and
#: senders alike); each further failure in a row doubles the wait, up to ``STORE_RETRY_MAX``.
STORE_RETRY = 1.0
STORE_RETRY_MAX = 30.0

#: Store failures in a row (intake, dispatch and send together) before admins are warned.
WARN_AFTER = 5

#: Sends a warning to admins: (text, chats affected by the failure).
Warn = Callable[[str, frozenset[ChannelRef]], Awaitable[None]]


#: PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race with
#: another one and may simply run again.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def lost_race(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` is a deadlock or serialization failure (PostgreSQL)."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in TRANSIENT_SQLSTATES


def store_unavailable(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` says the store could not be reached or used for now (connection lost,
    locked, timed out, gone, a lost race with another transaction), rather than that the
    statement was wrong for it: the work is then tried again, not counted as failing."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(exc, StoreGone) or lost_race(exc):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class StoreHealth:
    """Store failures in a row across intake, dispatch and send."""

    def __init__(self, warn: Warn, warn_after: int = WARN_AFTER) -> None:
        self._warn = warn
        self.warn_after = warn_after
        #: Failures since the store last answered.
        self.failures = 0
        self._affected: set[ChannelRef] = set()
        self._warned = False
        self._tasks: set[asyncio.Task[None]] = set()

    def failed(self, reason: str, chats: Iterable[ChannelRef] = ()) -> None:
        """The store failed once more (the caller logged it); ``chats``: whose messages wait."""
        self.failures += 1
        self._affected.update(chats)
        if self._warned or self.failures < self.warn_after:
            return
        self._warned = True
        text = (
            f"copss cannot use its store ({reason}). Messages are not taken in or answered "
            "meanwhile; nothing is lost yet (the platforms keep what copss has not confirmed). "
            "copss keeps trying by itself; please check its disk or database."
        )
        task = asyncio.create_task(self._send(text, frozenset(self._affected)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answered(self) -> None:
        """The store answered again."""
        if self.failures:
            log.info("store answers again after %d failures", self.failures)
        self.failures = 0
        self._affected.clear()
        self._warned = False

    async def _send(self, text: str, chats: frozenset[ChannelRef]) -> None:
        try:
            await self._warn(text, chats)
        except Exception as exc:  # the warning is best effort; the log has the failures
            log.warning("could not warn admins about the store: %s", exc)
