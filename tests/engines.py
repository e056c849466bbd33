"""Stores on each engine, for tests that must hold on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from tests.conftest import BASE_URL, _server_answers

#: ``pytest.fixture(params=ENGINES)``: the PostgreSQL case carries the ``postgres`` marker.
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@asynccontextmanager
async def postgres_database() -> AsyncIterator[Database]:
    """A fresh database on the test server, dropped afterwards (skips without a server)."""
    if not await _server_answers():
        pytest.skip(f"no PostgreSQL server answers at {BASE_URL} (set COPSS_TEST_PG_URL)")
    import asyncpg

    name = f"copss_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(BASE_URL.replace("postgresql+asyncpg", "postgresql"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(BASE_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


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
