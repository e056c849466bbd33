"""Migration 9: answers are indexed by their message, in a new store and in one upgraded from
version 8, on SQLite and on PostgreSQL; looking an answer up by its message uses the index."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from storage.engine import Database
from storage.migrations import LATEST, upgrade
from storage.models import Answer, Channel, Community, Message, Thread
from storage.repos.threads import ThreadRepo
from tests.engines import ENGINES, store_on
from tests.storage.schemas import query_plan, table_indexes

INDEX = "ix_answer_message"


async def answer_indexes(db: Database) -> dict[str, list[str]]:
    """The answer table's named indexes: name -> columns."""
    return await table_indexes(db, "answer")


async def version(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT max(version) FROM schema_version")) or 0)


async def uses_the_index(db: Database) -> bool:
    """Whether the database plans the look-up of an answer by its message with the index."""
    return INDEX in await query_plan(db, "SELECT id FROM answer WHERE message_id = 7")


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_new_store_has_the_index(engine: str, tmp_path: Path) -> None:
    async with store_on(engine, tmp_path) as db:
        assert await version(db) == LATEST
        assert (await answer_indexes(db)).get(INDEX) == ["message_id"]
        assert await uses_the_index(db)


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_store_at_version_8_gets_the_index(engine: str, tmp_path: Path) -> None:
    async with store_on(engine, tmp_path) as db:
        async with db.session() as s:
            community = Community(name="answers", settings={})
            s.add(community)
            await s.flush()
            channel = Channel(community_id=community.id, platform="telegram", chat_id="-100")
            s.add(channel)
            await s.flush()
            question = Message(channel_id=channel.id, platform_message_id="1", text="BSN?")
            reply = Message(channel_id=channel.id, platform_message_id="2", text="At the desk.")
            s.add_all([question, reply])
            await s.flush()
            thread = Thread(
                community_id=community.id,
                question_message_id=question.id,
                question_text="BSN?",
                search_text="bsn",
                status="open",
                tags=[],
            )
            s.add(thread)
            await s.flush()
            await ThreadRepo(s).add_answer(thread, reply)
            reply_id = reply.id
        # What a store at version 8 looked like: the answers without the index (and the
        # ledger without version 9; the later revisions' changes are left in place).
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP INDEX {INDEX}"))
            await conn.execute(text("DELETE FROM schema_version WHERE version = 9"))
        assert INDEX not in await answer_indexes(db)
        assert not await uses_the_index(db)

        assert await upgrade(db) == [9]
        assert (await answer_indexes(db)).get(INDEX) == ["message_id"]
        assert await uses_the_index(db)
        assert await upgrade(db) == []
        async with db.session() as s:
            found = await ThreadRepo(s).answer_for_message(reply_id)
            assert found is not None and found.message_id == reply_id
            assert await s.scalar(select(Answer.thread_id).where(Answer.message_id == reply_id))
