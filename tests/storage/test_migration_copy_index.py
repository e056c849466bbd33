"""Migration 11: bridged copies are indexed by channel and copy id, in a new store and after
the upgrade from version 10; finding the original of a copy uses the index."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from storage.engine import Database
from storage.migrations import LATEST, upgrade
from tests.engines import ENGINES, store_on

INDEX = "ix_message_copy_channel_copy"
LOOKUP = (
    "SELECT original_id FROM message_copy WHERE channel_id = 3 AND copy_platform_message_id = '42'"
)


async def copy_indexes(db: Database) -> dict[str, list[str]]:
    async with db.engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes("message_copy"))
    return {i["name"]: list(i["column_names"]) for i in found if i["name"]}


async def plan(db: Database) -> str:
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + LOOKUP)
            return " ".join(str(row[-1]) for row in rows)
        # The table is small: the planner would scan it anyway unless told not to.
        await conn.exec_driver_sql("SET enable_seqscan = off")
        return " ".join(str(row[0]) for row in await conn.exec_driver_sql("EXPLAIN " + LOOKUP))


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_copy_index_in_a_new_store_and_after_the_upgrade(
    engine: str, tmp_path: Path
) -> None:
    async with store_on(engine, tmp_path) as db:
        assert (await copy_indexes(db)).get(INDEX) == ["channel_id", "copy_platform_message_id"]
        assert INDEX in await plan(db)
        # A store at version 10: without the index.
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP INDEX {INDEX}"))
            await conn.execute(text("DELETE FROM schema_version WHERE version = 11"))
            await conn.execute(text("UPDATE alembic_version SET version_num = '0010'"))
        # Pooled connections keep their prepared statements: plan on fresh ones.
        await db.engine.dispose()
        assert INDEX not in await plan(db)
        assert await upgrade(db) == [11] and LATEST == 11
        await db.engine.dispose()
        assert INDEX in await plan(db)
