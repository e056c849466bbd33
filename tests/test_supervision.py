"""A store that fails while copss runs on Telegram never ends copss: the update is not
confirmed (the getUpdates offset stays) until it is stored, each failure is one log line, the
waits grow, and after a few failures the admins are told in chat. A store file whose folder is
removed is noticed: nothing more is confirmed, and no empty store is made in its place."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import bot.supervision
from storage.engine import sqlite_url
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.test_store_failures import read_only

pytestmark = [pytest.mark.slow, pytest.mark.faults]

ALICE = 4242
QUESTION = "How do I get a BSN number?"


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    fake = FakeTelegramAPI()
    fake.add_chat(GROUP, "supergroup")
    fake.add_user(ALICE, "Alice")
    async with fake:
        yield fake


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.1)
    monkeypatch.setattr(bot.supervision, "STORE_RETRY_MAX", 0.8)


async def _started(api: FakeTelegramAPI, url: str) -> TelegramHarness:
    tg = TelegramHarness(api, Path("."), url=url)
    await tg.start()
    assert tg.app is not None and tg.app.hub is not None
    tg.app.hub.health.warn_after = 2
    return tg


def _not_stored(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "not confirming it" in r.getMessage()]


async def _unconfirmed_while(tg: TelegramHarness, update_id: int, seconds: float) -> None:
    """For ``seconds``: copss runs and Telegram keeps ``update_id`` unconfirmed."""
    await asyncio.sleep(seconds)
    assert tg.task is not None and not tg.task.done()
    assert tg.api.confirmed_offset <= update_id
    assert any(u["update_id"] == update_id for u in tg.api.pending_updates)


async def test_write_lock_held_by_another_process(
    tmp_path: Path, api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dbfile = tmp_path / "copss.db"
    tg = await _started(api, sqlite_url(dbfile))
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(dbfile)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(12)\n",
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        update_id = api.push_update(api.message_update(GROUP, ALICE, QUESTION))
        # Past busy_timeout (5 s) twice over: the update stays unconfirmed, copss runs.
        await _unconfirmed_while(tg, update_id, 10.5)
        await holder.wait()
        await tg.settle(update_id)
        assert any("BSN" in t for t in api.sent_texts(GROUP))
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await tg.stop()
    failures = _not_stored(caplog)
    assert failures
    for record in failures:
        assert "database is locked" in record.getMessage() and not record.exc_info
    assert "Traceback" not in caplog.text
    # Admins (none configured) are told in the chat whose message waits, once.
    warnings = [t for t in api.sent_texts(GROUP) if "cannot use its store" in t]
    assert len(warnings) == 1 and "database is locked" in warnings[0]


async def test_read_only_store_file(
    tmp_path: Path, api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dbfile = tmp_path / "copss.db"
    tg = await _started(api, sqlite_url(dbfile))
    try:
        assert tg.app is not None and tg.app.db is not None
        with read_only(dbfile):
            await tg.app.db.engine.dispose()  # new connections see the file as it is now
            update_id = api.push_update(api.message_update(GROUP, ALICE, QUESTION))
            await _unconfirmed_while(tg, update_id, 2.0)
            await tg.app.db.engine.dispose()
        await tg.settle(update_id)
    finally:
        await tg.stop()
    failures = _not_stored(caplog)
    assert failures and all("readonly database" in r.getMessage() for r in failures)
    delays = [float(r.getMessage().rsplit(" ", 1)[1].rstrip("s")) for r in failures]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8][: len(delays[:4])]
    assert any("cannot use its store" in t for t in api.sent_texts(GROUP))


async def test_store_folder_removed_while_running(
    tmp_path: Path, api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    folder = tmp_path / "store"
    folder.mkdir()  # a configured store's folder exists before copss starts
    tg = await _started(api, sqlite_url(folder / "copss.db"))
    try:
        first, _ = await tg.push(api.message_update(GROUP, ALICE, "hello there"))
        shutil.rmtree(folder)
        update_id = api.push_update(api.message_update(GROUP, ALICE, QUESTION))
        await _unconfirmed_while(tg, update_id, 2.0)
        assert not folder.exists()  # no empty store made in its place
    finally:
        await tg.stop()
    failures = _not_stored(caplog)
    assert failures and all("is gone" in r.getMessage() for r in failures)
    assert api.confirmed_offset == first + 1


# -- a lost race re-runs the handlers ------------------------------------------------------------


class _PgError(Exception):
    """What asyncpg's errors carry: the SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
async def test_deadlock_or_serialization_failure_reruns_the_handlers(
    tmp_path: Path, sqlstate: str
) -> None:
    from sqlalchemy.exc import DBAPIError

    from storage.engine import Database
    from storage.migrations import upgrade
    from tests.test_parking import inbox, on_text, running

    def racing(attempt: int) -> None:
        if attempt <= 2:
            raise DBAPIError("UPDATE thread ...", {}, _PgError(sqlstate))

    db = Database(sqlite_url(tmp_path / "copss.db"))
    try:
        await upgrade(db)
        async with running(db, on_text("race", racing)) as copss:
            await copss.say("race", "after")
            assert copss.recorder.texts == ["race", "after"]
        rows = await inbox(db)
    finally:
        await db.close()
    # Not the event's failure: one attempt, no error, handled.
    assert (rows["race"].attempts, rows["race"].error) == (1, None)
    assert rows["race"].handled_at is not None
