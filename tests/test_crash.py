"""A copss process killed with SIGKILL right after acknowledging a message loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.engine import Database, sqlite_url
from storage.models import InboxEvent, Message, Thread

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def start(tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "COPSS_HOME": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


async def test_sigkill_after_ack_loses_nothing(tmp_path: Path) -> None:
    question = "Which gemeente office handles registration for Haarlem residents?"
    proc = start(tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(question + "\n")
    proc.stdin.flush()
    ack = proc.stdout.readline()  # printed only once the message is stored
    assert ack.strip() == f"#1 you: {question}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    db = Database(sqlite_url(tmp_path / "copss.db"))
    try:
        async with db.session() as s:
            stored = (await s.scalars(select(InboxEvent))).all()
        assert len(stored) == 1 and stored[0].payload["text"] == question
    finally:
        await db.close()

    # Restart: the stored event is handled (once), the thread exists.
    proc = start(tmp_path)
    _, err = proc.communicate("", timeout=60)
    assert proc.returncode == 0, err
    db = Database(sqlite_url(tmp_path / "copss.db"))
    try:
        async with db.session() as s:
            messages = (await s.scalars(select(Message).where(Message.text == question))).all()
            threads = (await s.scalars(select(Thread))).all()
            pending = await s.scalar(select(InboxEvent).where(InboxEvent.handled_at.is_(None)))
        assert len(messages) == 1
        assert len(threads) == 1 and threads[0].question_text == question
        assert pending is None
    finally:
        await db.close()
    await asyncio.sleep(0)
