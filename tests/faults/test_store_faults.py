"""Store faults while copss runs on Telegram, each checked for the same four things: copss
keeps running, nothing it acknowledged is lost (Telegram keeps every update copss has not
stored, and it is stored and answered once the store is back), each failure is one log line
without a traceback, and the configured admin is told, once, by private message.

A write lock another process holds for 20 s, and the store's folder removed (then restored
from a backup, and copss started again). The read-only store and the full disk are in
tests/test_supervision.py and tests/test_full_disk.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

import bot.supervision
from storage.engine import sqlite_url
from storage.models import InboxEvent
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.fakes.telegram_api import FakeTelegramAPI

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ALICE, ADMIN = 4242, 777
QUESTION = "How do I get a BSN number?"


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    fake = FakeTelegramAPI()
    fake.add_chat(GROUP, "supergroup")
    fake.add_user(ALICE, "Alice")
    fake.add_user(ADMIN, "Operator")
    fake.add_chat(ADMIN, "private")
    async with fake:
        yield fake


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.1)
    monkeypatch.setattr(bot.supervision, "STORE_RETRY_MAX", 0.8)


async def started(api: FakeTelegramAPI, dbfile: Path) -> TelegramHarness:
    """copss on ``dbfile`` with an admin configured; warns after 2 failures in a row (5 by
    default: with SQLite's 5 s busy timeout per failure, later than this test waits)."""
    tg = TelegramHarness(api, dbfile.parent, url=sqlite_url(dbfile))
    tg.config = dataclasses.replace(tg.config, admins=(f"telegram:{ADMIN}",))
    await tg.start()
    assert tg.app is not None and tg.app.hub is not None
    tg.app.hub.health.warn_after = 2
    return tg


def not_stored(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The intake's lines: one per update it could not store."""
    return [r.getMessage() for r in caplog.records if "not confirming it" in r.getMessage()]


def one_line_each(caplog: pytest.LogCaptureFixture, reason: str) -> None:
    failures = [r for r in caplog.records if "not confirming it" in r.getMessage()]
    assert failures
    for record in failures:
        assert reason in record.getMessage() and not record.exc_info, record.getMessage()
        assert "\n" not in record.getMessage()
    assert "Traceback" not in caplog.text


async def stored_once_and_answered(tg: TelegramHarness, texts: list[str]) -> None:
    async with tg.db.session() as s:
        events = (await s.scalars(select(InboxEvent).order_by(InboxEvent.id))).all()
    assert [e.payload.get("text") for e in events] == texts
    assert all(e.handled_at is not None and e.error is None for e in events)
    replies = [m for m in tg.api.sent_messages(GROUP) if m.get("reply_to_message")]
    assert len(replies) == 1 and "BSN" in replies[0]["text"]


async def test_write_lock_held_20s_by_another_process(
    tmp_path: Path, api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dbfile = tmp_path / "copss.db"
    tg = await started(api, dbfile)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sqlite3, time\n"
        f"c = sqlite3.connect({str(dbfile)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(20)\n",
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        first = api.push_update(api.message_update(GROUP, ALICE, "hello there"))
        update_id = api.push_update(api.message_update(GROUP, ALICE, QUESTION))
        await asyncio.sleep(18)
        # 18 s in: copss runs, Telegram keeps both updates, the admin has been told.
        assert tg.task is not None and not tg.task.done()
        assert api.confirmed_offset <= first
        assert [u["update_id"] for u in api.pending_updates] == [first, update_id]
        assert len(api.sent_texts(ADMIN)) == 1
        await holder.wait()
        await tg.settle(update_id)
        await stored_once_and_answered(tg, ["hello there", QUESTION])
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await tg.stop()
    one_line_each(caplog, "database is locked")
    [warning] = api.sent_texts(ADMIN)
    assert "cannot use its store (database is locked)" in warning
    assert not any("cannot use its store" in t for t in api.sent_texts(GROUP))


async def test_store_folder_removed_then_restored_loses_nothing(
    tmp_path: Path, api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    folder = tmp_path / "store"
    folder.mkdir()  # a configured store's folder exists before copss starts
    dbfile = folder / "copss.db"
    backup = tmp_path / "backup.db"
    tg = await started(api, dbfile)
    try:
        first, _ = await tg.push(api.message_update(GROUP, ALICE, "hello there"))
        # The operator's nightly backup, taken while copss runs.
        with (
            contextlib.closing(sqlite3.connect(dbfile)) as source,
            contextlib.closing(sqlite3.connect(backup)) as copy,
        ):
            source.backup(copy)
        shutil.rmtree(folder)
        update_id = api.push_update(api.message_update(GROUP, ALICE, QUESTION))
        await api.wait_for(lambda: len(not_stored(caplog)) >= 3, within=10)
        await api.wait_for(lambda: bool(api.sent_texts(ADMIN)), within=10)
        assert tg.task is not None and not tg.task.done()
        assert api.confirmed_offset == first + 1
        assert not folder.exists()  # no empty store made in its place
    finally:
        await tg.stop()
    one_line_each(caplog, "is gone")
    [warning] = api.sent_texts(ADMIN)
    assert "cannot use its store" in warning and "is gone" in warning

    # Restored from the backup and started again: Telegram hands over what copss never
    # confirmed, and it is stored and answered once.
    folder.mkdir()
    shutil.copy(backup, dbfile)
    tg = await started(api, dbfile)
    try:
        await tg.settle(update_id)
        await stored_once_and_answered(tg, ["hello there", QUESTION])
    finally:
        await tg.stop()
