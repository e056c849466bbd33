"""aiosqlite with one trip to the connection's thread per statement, and none inside a write
transaction.

aiosqlite runs each SQLite connection in a thread of its own and hands every call over to it:
SQLAlchemy's adaptation opens a cursor, executes, fetches and closes it, four hand-overs per
statement, each a queue put, a wake-up of the thread, a GIL hand-over and a wake-up of the event
loop. :class:`OneHopConnection` does the four in one: its cursors execute, fetch every row and
close the SQLite cursor in a single call on the thread, and then answer from what they kept.
SQLAlchemy fetches every row of a statement at once anyway (its server-side cursors, used by
``stream()``, now read rows that were fetched at once as well).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import aiosqlite

# (description, rowcount, lastrowid, rows) of one statement.
_Outcome = tuple[Any, int, int | None, list[Any]]


def _run(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    # On the connection's thread: the whole statement, rows and counts included.
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        # After the fetch: SQLite counts the rows of an INSERT ... RETURNING as they are read.
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor:
    """An aiosqlite-like cursor whose :meth:`execute` is the only call that goes to the
    connection's thread."""

    __slots__ = ("_connection", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _go(self, sql: str, parameters: Any, many: bool) -> OneHopCursor:
        connection = self._connection
        if connection.writing:
            # Inside a write transaction nothing waits (see OneHopConnection): run it here.
            outcome = _run(connection._conn, sql, parameters, many)
        else:
            # aiosqlite's own hand-over to the thread (untyped there).
            hand_over = cast(Callable[..., Awaitable[_Outcome]], connection._execute)
            outcome = await hand_over(_run, connection._conn, sql, parameters, many)
            if sql.startswith(WRITE_BEGIN):
                connection.writing = True
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        """Execute ``sql`` and keep its rows."""
        return await self._go(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneHopCursor:
        """Execute ``sql`` once per set of parameters."""
        return await self._go(sql, parameters, True)

    async def fetchall(self) -> list[Any]:
        """The rows not read yet."""
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """The next ``size`` rows (``arraysize`` when None)."""
        n = self.arraysize if size is None else size
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return self._rows.pop(0) if self._rows else None

    async def setinputsizes(self, *sizes: Any) -> None:
        """Nothing to do (as for sqlite3)."""

    async def close(self) -> None:
        """Forget the rows not read (the SQLite cursor is closed already)."""
        self._rows = []


#: How copss begins a transaction that writes (storage.engine._begin_immediate).
WRITE_BEGIN = "BEGIN IMMEDIATE"


class OneHopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors are :class:`OneHopCursor`.

    Between a ``BEGIN IMMEDIATE`` and the end of its transaction the statements run on the
    event loop's own thread, with no hand-over at all: the transaction holds SQLite's write
    lock, so in WAL mode none of them waits for another connection, and the statements of
    copss's write transactions take microseconds, less than a hand-over costs. What may wait
    still goes to the connection's thread: ``BEGIN IMMEDIATE`` (for another process's
    writer, up to busy_timeout), the commit (a checkpoint may write the database file then)
    and the rollback, and every statement of a transaction that only reads (a report's long
    queries)."""

    #: Whether a write transaction is open (statements run on the caller's thread).
    writing = False

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        """A cursor; opening it costs no trip to the thread."""
        return OneHopCursor(self)

    async def commit(self) -> None:
        """Commit, on the connection's thread."""
        self.writing = False
        await super().commit()

    async def rollback(self) -> None:
        """Roll back, on the connection's thread."""
        self.writing = False
        await super().rollback()


def connect(database: str | Path, *, iter_chunk_size: int = 64, **kwargs: Any) -> OneHopConnection:
    """As :func:`aiosqlite.connect` (awaited by SQLAlchemy), with a daemon thread: a thread
    left over by a connection that was never closed must not keep the process alive."""
    # Used from two threads, never at once: the thread, and the event loop's in a write
    # transaction (every call waits for the one before it).
    kwargs["check_same_thread"] = False
    connector = partial(sqlite3.connect, str(database), **kwargs)
    connection = OneHopConnection(connector, iter_chunk_size)
    connection._thread.daemon = True
    return connection


def on_connect(dialect: Any, record: Any, cargs: Sequence[Any], cparams: dict[str, Any]) -> Any:
    """A ``do_connect`` listener of an aiosqlite engine: its connections are
    :class:`OneHopConnection`."""
    return dialect.dbapi.connect(*cargs, async_creator_fn=connect, **cparams)
