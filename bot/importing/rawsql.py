"""Driver-level statements for the bulk of an import, on SQLite and PostgreSQL alike.

SQLAlchemy Core spends several microseconds on every row of a bulk insert (compiling the
parameters, converting each timestamp through the column's type); an import stores a few
rows per message, so those microseconds were most of its time. Here the statements go to the
driver as they are (``exec_driver_sql``), with rows as tuples, in the session's transaction:

- statements are written with ``?`` placeholders, which become ``$1``, ``$2``, ... for asyncpg;
- a list of values is one parameter: a JSON array read by ``json_each`` on SQLite, an array
  for ``= ANY`` on PostgreSQL, so each statement's text stays the same (and stays prepared);
- a timestamp is passed the way :class:`storage.models.UTCDateTime` stores it: on SQLite the
  text SQLAlchemy's ``DATETIME`` writes (``2023-11-14 22:13:20.000000``, UTC), on PostgreSQL
  an aware UTC ``datetime``. ``tests/importing/test_rawsql.py`` checks that rows written this
  way read back through the ORM as the same values.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import Connection

_PLACEHOLDER = re.compile(r"\?")
_JSON_IN = "IN (SELECT value FROM json_each(?))"
#: Parameters in one statement: SQLite allows 32,766 since 3.32 (999 before), PostgreSQL
#: and asyncpg 32,767.
_MAX_PARAMETERS = 30_000 if sqlite3.sqlite_version_info >= (3, 32) else 999
#: ``INSERT ... RETURNING``: SQLite since 3.35, PostgreSQL always.
SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)


def sqlite_time(value: datetime) -> str:
    """``value`` as SQLite stores a :class:`~storage.models.UTCDateTime` (naive is UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (the fastest way here)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def postgres_time(value: datetime) -> datetime:
    """``value`` as asyncpg takes a :class:`~storage.models.UTCDateTime` (naive is UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


class Raw:
    """Statements on the DBAPI connection of a session's transaction, below SQLAlchemy."""

    def __init__(self, conn: Connection) -> None:
        self.postgres = conn.dialect.name == "postgresql"
        self.time: Callable[[datetime], Any] = postgres_time if self.postgres else _sqlite_time
        #: Whether :meth:`insert` can return columns of the rows it added.
        self.returning = self.postgres or SQLITE_RETURNING
        # The connection the session's transaction runs on (the driver's, adapted to be
        # called from run_sync): its cursors return plain tuples.
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None, "the session's connection is open"
        self._cursor = dbapi.cursor()
        self._texts: dict[str, str] = {}

    def _text(self, statement: str) -> str:
        found = self._texts.get(statement)
        if found is None:
            found = statement.replace("{in}", "= ANY(?)" if self.postgres else _JSON_IN)
            if self.postgres:
                counter = iter(range(1, found.count("?") + 1))
                found = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", found)
            self._texts[statement] = found
        return found

    def values(self, items: Sequence[Any]) -> Any:
        """A list of values as the one parameter of a ``{in}`` in a statement."""
        return list(items) if self.postgres else json.dumps(list(items))

    def rows(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows a query returns; ``{in}`` in ``statement`` is ``IN`` a :meth:`values`."""
        self._cursor.execute(self._text(statement), params)
        return list(self._cursor.fetchall())

    def run(self, statement: str, *params: Any) -> int:
        """Execute once; the number of rows changed."""
        self._cursor.execute(self._text(statement), params)
        return max(0, self._cursor.rowcount or 0)

    def many(self, statement: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Execute once per row (the driver's ``executemany``); the rows changed, as SQLite
        counts them (asyncpg does not: 0)."""
        if not rows:
            return 0
        self._cursor.executemany(self._text(statement), rows)
        return max(0, self._cursor.rowcount or 0)

    def insert(
        self, statement: str, rows: Sequence[tuple[Any, ...]], returning: str = ""
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` with multi-row ``VALUES`` lists (``{values}`` in ``statement``), as
        few statements as the parameter limit allows. With ``returning`` (columns; only where
        :attr:`returning`), the rows added are returned with those columns. One statement binds
        all its values at once and then runs without the GIL, where ``executemany`` takes it
        back for every row."""
        if not rows:
            return []
        width = len(rows[0])
        group = "(" + ", ".join("?" * width) + ")"
        step = max(1, _MAX_PARAMETERS // width)
        tail = f" RETURNING {returning}" if returning else ""
        added: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            text = statement.replace("{values}", ", ".join([group] * len(chunk))) + tail
            self._cursor.execute(self._text(text), list(chain.from_iterable(chunk)))
            if returning:
                added += self._cursor.fetchall()
        return added

    def close(self) -> None:
        """Let the cursor go (the transaction stays the session's)."""
        self._cursor.close()


#: Imports store each message's time again as its answer's: formatted once.
_sqlite_time = lru_cache(maxsize=4096)(sqlite_time)
