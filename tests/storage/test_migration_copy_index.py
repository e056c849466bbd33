"""Migration 11: bridged copies are indexed by channel and copy id, in a new store and after
the upgrade from version 10; finding the original of a copy uses the index."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from storage.migrations import LATEST, upgrade
from tests.engines import ENGINES, store_on
from tests.storage.schemas import query_plan, table_indexes

INDEX = "ix_message_copy_channel_copy"
LOOKUP = (
    "SELECT original_id FROM message_copy WHERE channel_id = 3 AND copy_platform_message_id = '42'"
)


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_copy_index_in_a_new_store_and_after_the_upgrade(
    engine: str, tmp_path: Path
) -> None:
    async with store_on(engine, tmp_path) as db:
        assert (await table_indexes(db, "message_copy")).get(INDEX) == [
            "channel_id",
            "copy_platform_message_id",
        ]
        assert INDEX in await query_plan(db, LOOKUP)
        # A store at version 10: without the index.
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP INDEX {INDEX}"))
            await conn.execute(text("DELETE FROM schema_version WHERE version = 11"))
            await conn.execute(text("UPDATE alembic_version SET version_num = '0010'"))
        assert INDEX not in await query_plan(db, LOOKUP)
        assert await upgrade(db) == [11] and LATEST == 11
        assert INDEX in await query_plan(db, LOOKUP)
