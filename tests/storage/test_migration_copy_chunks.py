"""Migration 5: bridged copies keep every chunk's id; copies recorded before know their first
chunk, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from storage.engine import Database, sqlite_url
from storage.migrations import MIGRATIONS, upgrade
from storage.models import Channel, Community, Message, MessageCopy


async def check_backfill(db: Database) -> None:
    await upgrade(db)
    async with db.session() as s:
        community = Community(name="migration-5", settings={})
        s.add(community)
        await s.flush()
        here = Channel(community_id=community.id, platform="telegram", chat_id="-1")
        there = Channel(community_id=community.id, platform="discord", chat_id="2")
        s.add_all([here, there])
        await s.flush()
        original = Message(channel_id=here.id, platform_message_id="10", text="long")
        s.add(original)
        await s.flush()
        s.add(
            MessageCopy(
                original_id=original.id,
                channel_id=there.id,
                copy_platform_message_id="77",
                chunk_ids=["77", "78"],
            )
        )
    # What a store before version 5 looked like: no chunk ids, only the first chunk's id.
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE message_copy DROP COLUMN chunk_ids"))
        await conn.execute(text("DELETE FROM schema_version WHERE version >= 5"))
    assert await upgrade(db) == [m.version for m in MIGRATIONS if m.version >= 5]
    assert await upgrade(db) == []
    async with db.session() as s:
        [copy] = (await s.scalars(select(MessageCopy))).all()
        assert copy.chunk_ids == ["77"]
        # New copies record every chunk.
        copy.chunk_ids = ["77", "79"]
    async with db.session() as s:
        assert (await s.scalars(select(MessageCopy.chunk_ids))).all() == [["77", "79"]]


async def test_migration_5_on_sqlite(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "old.db"))
    try:
        await check_backfill(db)
    finally:
        await db.close()


@pytest.mark.postgres
async def test_migration_5_on_postgres(pg: Database) -> None:
    await check_backfill(pg)
