"""Two copss processes that start at once on one new PostgreSQL database migrate one after the
other (an advisory lock): both finish, and the store has one correct schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from storage.engine import Database
from storage.migrations import LATEST, LOCK_KEY, revision_id, upgrade
from tests.conftest import postgres_url
from tests.engines import store_on
from tests.storage.schemas import store_shape

pytestmark = pytest.mark.postgres

WAITING = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def check_one_schema(db: Database, tmp_path: Path) -> None:
    async with store_on("postgres", tmp_path) as new:
        assert await store_shape(db) == await store_shape(new)
    async with db.engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version FROM schema_version"))).scalars()
        assert sorted(versions) == list(range(1, LATEST + 1))
        revisions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert revisions == [(revision_id(LATEST),)]
        assert await conn.scalar(text("SELECT count(*) FROM community")) == 1


async def test_two_upgrades_wait_for_the_lock_and_take_turns(tmp_path: Path) -> None:
    async with postgres_url() as url:
        first, second = Database(url), Database(url)
        dsn = first.url.set(drivername="postgresql").render_as_string(hide_password=False)
        holder = await asyncpg.connect(dsn)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            tasks = [asyncio.create_task(upgrade(db)) for db in (first, second)]
            # Both are under way and wait for the lock (one migrating process holds it).
            for _ in range(500):
                if await holder.fetchval(WAITING) == 2:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the upgrades did not wait for the lock")
            assert not any(task.done() for task in tasks)
            await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
            results = await asyncio.gather(*tasks)
            assert sorted(results) == [[], list(range(1, LATEST + 1))]
            await check_one_schema(first, tmp_path)
        finally:
            await holder.close()
            await first.close()
            await second.close()


async def test_two_upgrades_started_together_both_finish(tmp_path: Path) -> None:
    async with postgres_url() as url:
        stores = [Database(url) for _ in range(2)]
        try:
            results = await asyncio.gather(*(upgrade(db) for db in stores))
            assert sorted(results) == [[], list(range(1, LATEST + 1))]
            await check_one_schema(stores[0], tmp_path)
        finally:
            for db in stores:
                await db.close()
