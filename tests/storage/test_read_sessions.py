"""A reading session neither waits for a writing one nor holds it up (SQLite: WAL, no turn)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from storage.engine import Database
from storage.models import InboxEvent


async def test_a_read_sees_the_last_commit_while_a_write_is_under_way(db: Database) -> None:
    async with db.session() as s:
        s.add(InboxEvent(dedup_key="committed", payload={}))
    writing, release = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        async with db.session() as s:
            s.add(InboxEvent(dedup_key="under way", payload={}))
            await s.flush()
            writing.set()
            await release.wait()

    writer = asyncio.create_task(write())
    try:
        await writing.wait()
        async with asyncio.timeout(2):  # on a turn or the write lock it would wait forever
            async with db.read() as s:
                keys = (await s.scalars(select(InboxEvent.dedup_key))).all()
        assert keys == ["committed"]
    finally:
        release.set()
        await writer
    async with db.read() as s:
        keys = (await s.scalars(select(InboxEvent.dedup_key).order_by(InboxEvent.id))).all()
    assert keys == ["committed", "under way"]
