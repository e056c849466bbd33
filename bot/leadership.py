"""One process at a time: leadership among copss processes sharing one PostgreSQL store.

Some work must be done by one process only, however many share the store: Telegram answers a
second concurrent ``getUpdates`` with the same token with 409 Conflict and ends the first one,
so two pollers keep interrupting each other. :class:`Leadership` runs such a job only while
this process holds a PostgreSQL session advisory lock, taken on a connection of its own that
stays outside any transaction (like the outbox's chat leases). The other processes try for it
every :data:`RETRY` seconds; when the leader dies its connection closes, PostgreSQL frees the
lock at once, and the next try of another process takes over.

A SQLite store is used by one process at a time, so nothing here is needed there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engine import Database, _reason, close_quietly

log = logging.getLogger(__name__)

#: The PostgreSQL advisory lock class of leaderships (the first key of the two-key form; the
#: second is the hash of the leadership's name). The outbox's chat leases use another class.
LEADER_CLASS = 0x6C656164
#: Seconds between tries while another process leads: at most this long (plus one query)
#: passes between the leader's death and another process taking over.
RETRY = 1.0
#: Seconds between checks that the leader's lock connection is still alive; a check that
#: takes longer than :data:`CHECK_TIMEOUT` counts as the connection lost.
CHECK = 2.0
CHECK_TIMEOUT = 5.0

#: A job done while leading: returns when it is done for good (copss is stopping).
Job = Callable[[], Awaitable[None]]


@runtime_checkable
class TakesTurns(Protocol):
    """An adapter that may receive in one process at a time: it runs its receiving through
    ``receive_turn`` when set (see :class:`adapters.telegram.TelegramAdapter`)."""

    platform: str
    receive_turn: Callable[[Job], Awaitable[None]] | None


class Leadership:
    """Leadership named ``name`` (e.g. ``telegram poller``) among the processes on ``db``."""

    def __init__(
        self,
        db: Database,
        name: str,
        *,
        retry: float = RETRY,
        check: float = CHECK,
        on_lead: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self.retry = retry
        self.check = check
        #: Called each time this process comes to lead, before the job starts.
        self.on_lead = on_lead
        #: Whether this process leads now.
        self.leading = False
        self._conn: AsyncConnection | None = None

    async def run(self, job: Job) -> None:
        """Run ``job`` while this process leads; wait for the lead first, and when it is lost
        (the lock connection broke) stop the job and wait again. Returns when the job returns
        by itself; the lead is then given up."""
        while True:
            try:
                await self._acquire()
                if await self._lead(job):
                    return
            finally:
                self.leading = False
                await self._drop()

    async def _acquire(self) -> None:
        waiting = failing = False
        while True:
            try:
                conn = await self._connection()
                got = await conn.scalar(
                    text("SELECT pg_try_advisory_lock(:c, hashtext(:k))"),
                    {"c": LEADER_CLASS, "k": self.name},
                )
            except SQLAlchemyError as exc:
                await self._drop()
                if not failing:
                    log.warning(
                        "%s: cannot reach the store (%s); trying again", self.name, _reason(exc)
                    )
                failing, got = True, False
            else:
                failing = False
            if got:
                self.leading = True
                log.info("%s: this process leads now", self.name)
                if self.on_lead is not None:
                    self.on_lead()
                return
            if not waiting and not failing:
                # Once per wait, not per try.
                log.info("%s: another process leads; taking over when it stops", self.name)
                waiting = True
            await asyncio.sleep(self.retry)

    async def _lead(self, job: Job) -> bool:
        """Run the job until it returns (True) or the lock connection is lost (False)."""
        task = asyncio.ensure_future(job())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.check)
                if done:
                    task.result()  # the job's own error, if any, goes to the caller
                    return True
                problem = await self._still_held()
                if problem is not None:
                    log.warning(
                        "%s: lost the lead (%s); stopping until this process leads again",
                        self.name,
                        problem,
                    )
                    return False
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _still_held(self) -> str | None:
        # A session lock lasts as long as its connection: alive means still held.
        conn = self._conn
        if conn is None:
            return "no connection"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await conn.execute(text("SELECT 1"))
        except TimeoutError:
            return f"the store did not answer within {CHECK_TIMEOUT:g}s"
        except SQLAlchemyError as exc:
            return _reason(exc)
        return None

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self.db.lock_connection()
        return self._conn

    async def _drop(self) -> None:
        # Closing the connection frees the lock (when the connection still worked).
        conn, self._conn = self._conn, None
        if conn is not None:
            await close_quietly(conn, f"the {self.name} lock connection")
