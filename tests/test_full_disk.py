"""A full disk under copss's store while it runs on Telegram: copss keeps running, each
failure is one log line, Telegram keeps the updates copss could not store (the getUpdates
offset stays before them), the admins are told by private message, and once there is room
again everything is stored once, in order, and answered.

The disk is a small tmpfs mounted for the test, filled by a file. Mounting needs root (and,
in a container, the right to mount): elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
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
QUESTIONS = ["How do I get a BSN number?", "Where do I apply for DigiD?"]
#: The disk: room for the store (about 1.5 MB with the starter knowledge base) and a little.
DISK_SIZE = "8m"


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    """A tmpfs of :data:`DISK_SIZE` mounted at ``where`` (skips when it cannot be)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("mounts a tmpfs, which needs Linux")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "cannot mount a small tmpfs to fill (needs root, and in a container the right "
            f"to mount): {mounted.stderr.strip() or mounted.returncode}"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` with a file until nothing more fits; returns the file."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    # The last partial block, so that not even one more page fits.
    with filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 512)
    return filler


def empty_wal(dbfile: Path) -> None:
    """Checkpoint the store and truncate its write-ahead log: SQLite reuses a log's space
    once checkpointed, so a write fails on a full disk only when the log must grow."""
    with contextlib.closing(sqlite3.connect(dbfile, timeout=10)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


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


async def test_full_disk_loses_nothing_and_warns_the_admins(
    tmp_path: Path, api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with small_disk(tmp_path / "disk") as disk:
        dbfile = disk / "copss.db"
        tg = TelegramHarness(api, tmp_path, url=sqlite_url(dbfile))
        tg.config = dataclasses.replace(tg.config, admins=(f"telegram:{ADMIN}",))
        await tg.start()
        try:
            assert tg.app is not None and tg.app.hub is not None
            tg.app.hub.health.warn_after = 3
            first, _ = await tg.push(api.message_update(GROUP, ALICE, "hello there"))
            empty_wal(dbfile)
            filler = fill(disk)
            assert shutil.disk_usage(disk).free < 4096

            ids = [api.push_update(api.message_update(GROUP, ALICE, q)) for q in QUESTIONS]
            await api.wait_for(lambda: len(_not_stored(caplog)) >= 4, within=15)
            # copss runs on, and Telegram still holds both updates.
            assert tg.task is not None and not tg.task.done()
            assert api.confirmed_offset == first + 1
            assert [u["update_id"] for u in api.pending_updates] == ids
            await api.wait_for(lambda: bool(api.sent_texts(ADMIN)), within=10)

            filler.unlink()
            await tg.settle(ids[-1])
            async with tg.db.session() as s:
                stored = (await s.scalars(select(InboxEvent).order_by(InboxEvent.id))).all()
        finally:
            await tg.stop()

    # Stored once each, in the order they came, and each question answered once.
    texts = [e.payload.get("text") for e in stored]
    assert texts == ["hello there", *QUESTIONS]
    assert all(e.handled_at is not None and e.error is None for e in stored)
    replies = [m for m in api.sent_messages(GROUP) if m.get("reply_to_message")]
    assert len(replies) == len(QUESTIONS)
    assert len({m["reply_to_message"]["message_id"] for m in replies}) == len(QUESTIONS)
    # One line per failure, saying why, without a traceback.
    failures = _not_stored(caplog)
    for record in failures:
        message = record.getMessage()
        assert "database or disk is full" in message, message
        assert "\n" not in message and not record.exc_info
    assert "Traceback" not in caplog.text
    # The admin is told once, in private, and the group is not bothered with it.
    [warning] = api.sent_texts(ADMIN)
    assert "cannot use its store" in warning and "database or disk is full" in warning
    assert not any("cannot use its store" in t for t in api.sent_texts(GROUP))


def _not_stored(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "not confirming it" in r.getMessage()]
