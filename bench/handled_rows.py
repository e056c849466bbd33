"""When copss stored and handled each inbox event, read from its store while it runs
(bench/soak.py).

Each look reads only the rows not read before that are certainly finished: every row below the
lowest id still waiting (``handled_at`` NULL) is handled, so the rows between the previous
look's bound and this one's are read once, with their ``dedup_key``, ``received_at`` and
``handled_at``. A run
of many thousand messages is thus read a few hundred rows at a time, never all at once.

On PostgreSQL a row can become visible after a row with a higher id (ids are drawn before the
commits, which may finish in another order), and so be passed over; :meth:`HandledRows.rewind`
makes the next looks read every row again from the first, for a last pass once copss is done.
The looks are read-only: a WAL reader on SQLite (never holding copss's write lock), one
connection on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

#: Rows read in one look at most (the rest at the next look).
PAGE = 20_000


def _utc(value: Any) -> datetime:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


class Row(NamedTuple):
    """One finished inbox row: its key, when copss stored it and when it handled it."""

    key: str
    received_at: datetime
    handled_at: datetime


class HandledRows(Protocol):
    """Reads newly finished inbox rows."""

    async def read(self) -> list[Row]:
        """Rows finished since the last call, by id (at most :data:`PAGE`: an empty answer
        means none is left)."""
        ...

    def rewind(self) -> None:
        """Read from the first row again."""
        ...

    async def close(self) -> None:
        """Let go of the store."""
        ...


class SqliteHandledRows:
    """:class:`HandledRows` of a SQLite store, through a read-only sqlite3 connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_id = 0
        self._conn: sqlite3.Connection | None = None

    def rewind(self) -> None:
        self.next_id = 0

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.exists():
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
            conn.isolation_level = None  # no read transaction kept open between looks
            self._conn = conn
        return self._conn

    async def read(self) -> list[Row]:
        conn = self._connect()
        if conn is None:
            return []
        try:
            waiting = conn.execute("SELECT min(id) FROM inbox WHERE handled_at IS NULL").fetchone()
            bound = waiting[0]
            if bound is None:
                bound = (conn.execute("SELECT max(id) FROM inbox").fetchone()[0] or 0) + 1
            rows = conn.execute(
                "SELECT id, dedup_key, received_at, handled_at FROM inbox"
                " WHERE id >= ? AND id < ?"
                " ORDER BY id LIMIT ?",
                (self.next_id, bound, PAGE),
            ).fetchall()
        except sqlite3.OperationalError:
            return []  # copss has not made its tables yet
        if rows:
            self.next_id = int(rows[-1][0]) + 1
        return [Row(str(k), _utc(got), _utc(done)) for _, k, got, done in rows if done is not None]

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresHandledRows:
    """:class:`HandledRows` of a PostgreSQL store, through one asyncpg connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.next_id = 0
        self._conn: Any = None

    def rewind(self) -> None:
        self.next_id = 0

    async def read(self) -> list[Row]:
        import asyncpg  # type: ignore[import-untyped]

        if self._conn is None:
            self._conn = await asyncpg.connect(self.dsn)
        try:
            bound = await self._conn.fetchval("SELECT min(id) FROM inbox WHERE handled_at IS NULL")
            if bound is None:
                bound = (await self._conn.fetchval("SELECT max(id) FROM inbox") or 0) + 1
            rows = await self._conn.fetch(
                "SELECT id, dedup_key, received_at, handled_at FROM inbox"
                " WHERE id >= $1 AND id < $2"
                " ORDER BY id LIMIT $3",
                self.next_id,
                bound,
                PAGE,
            )
        except asyncpg.UndefinedTableError:
            return []
        if rows:
            self.next_id = int(rows[-1]["id"]) + 1
        return [
            Row(str(r["dedup_key"]), _utc(r["received_at"]), _utc(r["handled_at"]))
            for r in rows
            if r["handled_at"] is not None
        ]

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
