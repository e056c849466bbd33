"""SQLite statements through copss's driver (storage.sqlite_driver): one trip to the
connection's thread each, with rows, counts and errors as aiosqlite gives them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.engine import Database, sqlite_url
from storage.sqlite_driver import OneHopConnection


async def test_rows_counts_and_errors(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "copss.db"))
    try:
        async with db.session() as session:
            conn = await session.connection()
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, OneHopConnection)
            await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            added = await session.execute(
                text("INSERT INTO t (v) VALUES (:v)"), [{"v": "a"}, {"v": "b"}, {"v": "c"}]
            )
            assert added.rowcount == 3
            returned = await session.execute(
                text("INSERT INTO t (v) VALUES ('d'), ('e') RETURNING id, v")
            )
            assert sorted(returned.all()) == [(4, "d"), (5, "e")]
            changed = await session.execute(text("UPDATE t SET v = v || '!' WHERE id <= 2"))
            assert changed.rowcount == 2
            rows = await session.execute(text("SELECT id, v FROM t ORDER BY id"))
            assert rows.all() == [(1, "a!"), (2, "b!"), (3, "c"), (4, "d"), (5, "e")]
            assert await session.scalar(text("SELECT v FROM t WHERE id = 9")) is None
            # stream(): SQLAlchemy's server-side cursor, read in parts.
            streamed = await session.stream(text("SELECT id FROM t ORDER BY id"))
            parts = [list(part) async for part in streamed.partitions(2)]
            assert [[r[0] for r in part] for part in parts] == [[1, 2], [3, 4], [5]]
        with pytest.raises(IntegrityError):
            async with db.session() as session:
                await session.execute(text("INSERT INTO t (v) VALUES ('c')"))
        async with db.read() as session:
            # The failed transaction was rolled back; the connection is still usable.
            assert await session.scalar(text("SELECT count(*) FROM t")) == 5
    finally:
        await db.close()


async def test_waiting_for_another_writer_leaves_the_event_loop_running(tmp_path: Path) -> None:
    # Two stores on one file, as two processes would have: the second one's write transaction
    # waits for the first one's (busy_timeout) on its connection's thread, not on the loop.
    path = tmp_path / "copss.db"
    first, second = Database(sqlite_url(path)), Database(sqlite_url(path))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        async with first.session() as session:
            await session.execute(text("CREATE TABLE t (v INTEGER)"))
        async with first.session() as holding:
            await holding.execute(text("INSERT INTO t VALUES (1)"))
            conn = await holding.connection()
            driver = (await conn.get_raw_connection()).driver_connection
            assert isinstance(driver, OneHopConnection)
            assert driver.writing  # its statements run on the loop's thread now

            async def write() -> None:
                async with second.session() as session:
                    await session.execute(text("INSERT INTO t VALUES (2)"))

            waiting = asyncio.create_task(write())
            await asyncio.sleep(0.3)
            assert not waiting.done()
            before = ticks
            await asyncio.sleep(0.2)
            assert ticks > before + 5  # the loop goes on while the second writer waits
        await asyncio.wait_for(waiting, 5)
        async with second.read() as session:
            assert (await session.execute(text("SELECT v FROM t ORDER BY v"))).all() == [(1,), (2,)]
        assert not driver.writing
    finally:
        ticker.cancel()
        await first.close()
        await second.close()
