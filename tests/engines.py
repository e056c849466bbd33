"""Stores on each engine, for tests that must hold on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from tests.conftest import ENGINES, postgres_url

__all__ = ["ENGINES", "postgres_database", "store_on"]


@asynccontextmanager
async def postgres_database() -> AsyncIterator[Database]:
    """A fresh database on the test server, dropped afterwards (skips without a server)."""
    async with postgres_url() as url:
        db = Database(url)
        try:
            yield db
        finally:
            await db.close()


@asynccontextmanager
async def store_on(
    engine: str, tmp_path: Path, *, migrated: bool = True
) -> AsyncIterator[Database]:
    """A store on ``engine`` (``sqlite``: a file in ``tmp_path``; ``postgres``)."""
    if engine == "sqlite":
        db = Database(sqlite_url(tmp_path / "copss.db"))
        try:
            if migrated:
                await upgrade(db)
            yield db
        finally:
            await db.close()
        return
    async with postgres_database() as db:
        if migrated:
            await upgrade(db)
        yield db
