"""A store closes, and copss can exit, however its work was interrupted.

SQLite connections run in a worker thread each (aiosqlite). A task cancelled in the middle of
a query (shutdown, a timeout) makes SQLAlchemy close that connection while it is busy; done
wrongly that leaves a task waiting forever for a thread that has ended, and asyncio.run (which
cancels and awaits every task on the way out) never returns.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from storage.engine import Database, sqlite_url

#: A query SQLite needs a while for: long enough to be cancelled in the middle.
SLOW = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000000) "
    "SELECT count(*) FROM n"
)


async def everything_else_ends(within: float) -> set[asyncio.Task[object]]:
    """Cancel every other task, as asyncio.run does on the way out; those still running after
    ``within`` seconds."""
    others = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    for task in others:
        task.cancel()
    if not others:
        return set()
    _, pending = await asyncio.wait(others, timeout=within)
    return pending


async def test_a_connection_stopped_while_closing_closes(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "copss.db"))
    try:
        async with db.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            closing = asyncio.create_task(driver.close())
            await asyncio.sleep(0)  # the close is queued for the worker thread
            driver.stop()  # what SQLAlchemy does when that graceful close is cancelled
            done, _ = await asyncio.wait({closing}, timeout=5)
            assert closing in done, "close() waits for a worker thread that has ended"
            await conn.invalidate()
    finally:
        await db.close()


async def test_a_query_cancelled_twice_midway_leaves_nothing_running(tmp_path: Path) -> None:
    # Shutdown cancels a task, and asyncio.run cancels what is left once more: the second
    # cancel lands while SQLAlchemy closes the interrupted connection.
    db = Database(sqlite_url(tmp_path / "copss.db"))

    async def slow() -> None:
        async with db.session() as session:
            await session.execute(SLOW)

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.05)  # in the middle of the query
    task.cancel()
    await asyncio.sleep(0.05)  # closing the interrupted connection, waiting for the query
    task.cancel()
    await asyncio.wait({task}, timeout=30)
    assert task.cancelled()
    await db.close()
    stuck = await everything_else_ends(within=10)
    assert not stuck, f"still running after the store closed: {stuck}"
