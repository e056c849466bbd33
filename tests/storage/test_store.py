"""The SQLite store: pragmas, migrations, idempotent inbox, search index sync."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from faq.matcher import LexicalMatcher
from faq.normalize import search_text
from storage.engine import Database, StorageError, sqlite_url
from storage.migrations import LATEST, MIGRATIONS, schema_version, upgrade
from storage.repos.conversation import ConversationRepo
from storage.repos.queues import InboxRepo
from storage.repos.search import SearchRepo
from storage.repos.threads import ThreadRepo


async def test_pragmas_and_schema(sqlite_db: Database) -> None:
    db = sqlite_db  # SQLite's own side: pragmas and FTS5 tables
    async with db.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
    assert await schema_version(db) == LATEST
    assert await upgrade(db) == []


async def test_inbox_put_is_idempotent(db: Database) -> None:
    async with db.session() as s:
        first = await InboxRepo(s).put("message:console:c:1", {"kind": "message"})
    async with db.session() as s:
        again = await InboxRepo(s).put("message:console:c:1", {"kind": "message"})
        pending = await InboxRepo(s).pending()
    assert first is not None and again is None and len(pending) == 1


async def _thread(db: Database, text_: str, message_id: str = "1") -> int:
    async with db.session() as s:
        repo = ConversationRepo(s)
        channel = await repo.ensure_channel("console", "c", None)
        member = await repo.ensure_member("console", "alice", "alice")
        now = datetime.now(UTC)
        message, _ = await repo.add_message(channel, message_id, member, text_, now)
        thread = await ThreadRepo(s).create(
            channel.community_id, message, text_, search_text([text_]), now
        )
        thread.status = "answered"  # only answered threads are candidates
        return thread.id


async def _find(db: Database, query: str) -> list[int]:
    async with db.session() as s:
        matches = await LexicalMatcher().match(SearchRepo(s), query, community_id=None, limit=5)
    return [m.ref_id for m in matches if m.kind == "thread"]


async def test_search_index_follows_insert_edit_delete(sqlite_db: Database) -> None:
    db = sqlite_db  # SQLite's own side: pragmas and FTS5 tables
    thread_id = await _thread(db, "Where can I recycle old paint in Groningen?")
    assert await _find(db, "recycle paint groningen") == [thread_id]
    async with db.session() as s:
        repo = ThreadRepo(s)
        thread = await repo.get(thread_id)
        assert thread is not None
        new = "Where can I dispose of batteries in Groningen?"
        await repo.update_question(thread, new, search_text([new]))
    assert await _find(db, "recycle old paint") == []
    assert await _find(db, "dispose batteries groningen") == [thread_id]
    async with db.session() as s:
        thread = await ThreadRepo(s).get(thread_id)
        assert thread is not None
        await ThreadRepo(s).mark_deleted(thread)
    assert await _find(db, "dispose batteries groningen") == []
    async with db.session() as s:
        count = await s.scalar(text("SELECT count(*) FROM search_fts"))
    assert count == 0


async def test_many_threads_rarest_terms(db: Database) -> None:
    for i in range(30):
        await _thread(db, f"How do I register my bike number {i} at the gemeente office?", str(i))
    target = await _thread(db, "How do I register a sailboat at the gemeente harbour office?", "x")
    found = await _find(
        db, "how do I register a sailboat at the gemeente harbour office for my bike please"
    )
    assert found[0] == target


async def test_corrupt_file_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(b"garbage" * 1000)
    db = Database(sqlite_url(path))
    with pytest.raises(StorageError, match="cannot open database"):
        await upgrade(db)
    await db.close()


def test_bad_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError):
        Database("not a url")


async def test_inbox_prune_keeps_pending_and_recent(db: Database) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from storage.models import InboxEvent

    async with db.session() as s:
        repo = InboxRepo(s)
        old_done = await repo.put("a", {})
        old_pending = await repo.put("b", {})
        new_done = await repo.put("c", {})
        assert old_done and old_pending and new_done
        await repo.mark_handled(old_done)
        await repo.mark_handled(new_done)
        past = datetime.now(UTC) - timedelta(days=30)
        await s.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_([old_done, old_pending]))
            .values(received_at=past)
        )
    async with db.session() as s:
        assert await InboxRepo(s).prune(datetime.now(UTC) - timedelta(days=7)) == 1
        keys = (await s.scalars(select(InboxEvent.dedup_key))).all()
    assert sorted(keys) == ["b", "c"]


async def test_migration_2_backfills_inbox_platform(tmp_path: Path) -> None:
    """A store created at schema 1 (without inbox.platform) is upgraded and back-filled."""
    import json
    import sqlite3

    path = tmp_path / "old.db"
    db = Database(sqlite_url(path))
    await upgrade(db)
    await db.close()
    # Turn it into what version 1 looked like: no platform column, no version 2.
    con = sqlite3.connect(path)
    con.execute("DROP INDEX ix_inbox_platform_pending")
    con.execute("ALTER TABLE inbox DROP COLUMN platform")
    con.execute("DELETE FROM schema_version WHERE version >= 2")
    payload = {"kind": "message", "channel": {"platform": "telegram", "chat_id": "-1"}}
    con.execute(
        "INSERT INTO inbox (dedup_key, payload, received_at) VALUES (?, ?, '2026-01-01')",
        ("k1", json.dumps(payload)),
    )
    con.commit()
    con.close()
    db = Database(sqlite_url(path))
    try:
        assert await upgrade(db) == [m.version for m in MIGRATIONS if m.version >= 2]
        async with db.session() as s:
            platform = await s.scalar(text("SELECT platform FROM inbox WHERE dedup_key = 'k1'"))
        assert platform == "telegram"
    finally:
        await db.close()
