"""A real copss process (console adapter) that freezes on a poison message is killed and
restarted until the event is parked; then it handles the next message and SIGTERM stops it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from asyncio.subprocess import PIPE, Process
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.engine import Database, sqlite_url
from storage.models import InboxEvent, Thread

pytestmark = [pytest.mark.slow, pytest.mark.faults]

REPO = Path(__file__).resolve().parent.parent
POISON = "POISON " + "p" * 1_000
QUESTION = "Which gemeente office handles registration for Haarlem residents?"


class Copss:
    """One copss process on the store in ``home``, its stderr collected as it comes."""

    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.stderr: list[str] = []
        self._seen = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, home: Path) -> Copss:
        env = {**os.environ, "COPSS_HOME": str(home), "PYTHONPATH": str(REPO)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO / "tests" / "poison_copss.py"),
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            env=env,
            cwd=home,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))
            self._seen.set()

    async def wait_stderr(self, needle: str, within: float = 30) -> None:
        async with asyncio.timeout(within):
            while not any(needle in line for line in self.stderr):
                self._seen.clear()
                await self._seen.wait()

    async def say(self, text: str) -> str:
        """Type a line; returns the acknowledgement copss prints once it is stored."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(30):
            return (await self.proc.stdout.readline()).decode()

    async def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        async with asyncio.timeout(30):
            code = await self.proc.wait()
            await self._reader
        return code


async def pending_attempts(home: Path) -> list[tuple[str, int, str | None]]:
    db = Database(sqlite_url(home / "copss.db"))
    try:
        async with db.session() as s:
            rows = (await s.scalars(select(InboxEvent).order_by(InboxEvent.id))).all()
            return [(r.payload.get("text", ""), r.attempts, r.error) for r in rows]
    finally:
        await db.close()


async def test_killed_on_a_poison_event_it_parks_it_and_goes_on(tmp_path: Path) -> None:
    copss = await Copss.start(tmp_path)
    ack = await copss.say(POISON)
    assert ack.startswith("#1 you: POISON")
    for attempt in (1, 2, 3):
        # Frozen on the loop: only SIGKILL ends it (each try was counted before it began).
        await copss.wait_stderr("spinning on poison")
        assert await copss.stop(signal.SIGKILL) == -signal.SIGKILL
        [(text, attempts, error)] = await pending_attempts(tmp_path)
        assert (text, attempts, error) == (POISON, attempt, None)
        copss = await Copss.start(tmp_path)

    await copss.wait_stderr("parked")
    parked = [line for line in copss.stderr if "parked" in line]
    assert len(parked) == 1 and "copss stopped while handling it (3 attempts)" in parked[0]
    assert not any("spinning" in line for line in copss.stderr)

    assert (await copss.say(QUESTION)).startswith(f"#1 you: {QUESTION}")
    db = Database(sqlite_url(tmp_path / "copss.db"))
    try:
        async with asyncio.timeout(30):
            while True:
                async with db.session() as s:
                    thread = await s.scalar(select(Thread))
                if thread is not None:
                    break
                await asyncio.sleep(0.05)
    finally:
        await db.close()
    assert thread.question_text == QUESTION

    started = time.monotonic()
    assert await copss.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    rows = await pending_attempts(tmp_path)
    assert rows[0] == (
        POISON,
        3,
        "parked: copss stopped while handling it (3 attempts)",
    )
    assert rows[1][0] == QUESTION and rows[1][2] is None
