"""The same store on PostgreSQL (skipped where no server answers)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from faq.kb import starter_entries, store_entries
from faq.matcher import LexicalMatcher
from storage.engine import Database
from storage.migrations import LATEST, schema_version, upgrade
from storage.repos.faq import FaqRepo
from storage.repos.search import SearchRepo

pytestmark = pytest.mark.postgres

BASE_URL = os.environ.get("COPSS_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _server_answers() -> bool:
    try:
        import asyncpg
    except ImportError:
        return False
    dsn = BASE_URL.replace("postgresql+asyncpg", "postgresql")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), 3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    """A fresh database on the server, dropped afterwards."""
    if not await _server_answers():
        pytest.skip(f"no PostgreSQL server answers at {BASE_URL} (set COPSS_TEST_PG_URL)")
    import asyncpg

    name = f"copss_{uuid.uuid4().hex[:10]}"
    dsn = BASE_URL.replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(BASE_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrate_and_match_on_postgres(pg: Database) -> None:
    assert await upgrade(pg) == [1]
    assert await schema_version(pg) == LATEST
    async with pg.session() as s:
        created, _ = await store_entries(FaqRepo(s), starter_entries())
    assert created >= 40
    async with pg.session() as s:
        matches = await LexicalMatcher().match(
            SearchRepo(s), "How do I get a BSN number?", community_id=None
        )
        entry = await FaqRepo(s).get(matches[0].ref_id)
    assert entry is not None and "bsn" in entry.slug
