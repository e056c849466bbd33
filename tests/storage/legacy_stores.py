"""Stores as earlier copss releases left them (the schemas in ``old_stores/``)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from storage.engine import Database, sqlite_url
from tests.engines import postgres_database

OLD = Path(__file__).with_name("old_stores")
#: One per store state the numbered runner left: ``v1-first-release``, ``v1``, ... ``v9``.
STATES = sorted(p.name.removesuffix(".sqlite.sql") for p in OLD.glob("*.sqlite.sql"))


@asynccontextmanager
async def old_store(engine: str, state: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A store as an earlier copss left it at ``state`` (a name in ``old_stores/``)."""
    if engine == "sqlite":
        path = tmp_path / "old.db"
        con = sqlite3.connect(path)
        con.executescript((OLD / f"{state}.sqlite.sql").read_text())
        con.close()
        db = Database(sqlite_url(path))
        try:
            yield db
        finally:
            await db.close()
        return
    async with postgres_database() as db:
        dsn = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute((OLD / f"{state}.postgresql.sql").read_text())
        finally:
            await conn.close()
        yield db
