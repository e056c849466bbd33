"""A store copss cannot write: one clear line and exit 2 at start; one line per failure, waiting
longer each time, when it stops taking writes while copss runs.

Tests run as root here, and root writes a file of mode 0444 or into a folder of mode 0555 as
if they were not read-only. The kernel refuses root only for the immutable attribute
(``chattr +i``), so as root these tests add it (and skip, saying why, where the filesystem
or the container does not allow it); as anyone else the mode alone does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import bot.supervision
from adapters.console import ConsoleAdapter
from bot.core import Context, Hub
from bot.events import Author, ChannelRef, Event, MessageEvent
from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from storage.models import InboxEvent, OutboxMessage
from storage.repos.queues import OutboxRepo
from tests.conftest import BASE_URL
from tests.test_cli import copss

pytestmark = pytest.mark.faults


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a file or a folder) read-only for this process, also when it runs as root."""
    mode = path.stat().st_mode & 0o777
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = False
    try:
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            result = (
                subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
                if chattr
                else None
            )
            if result is None or result.returncode != 0:
                why = result.stderr.strip() if result is not None else "chattr is not installed"
                pytest.skip(
                    "runs as root, who writes read-only files, and the immutable attribute "
                    f"that stops root is not available here ({why})"
                )
            immutable = True
        if os.access(path, os.W_OK):
            pytest.skip(f"cannot make {path} read-only for this process")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def _store(tmp_path: Path) -> Path:
    """A store in COPSS_HOME (tmp_path/home), migrated and with the starter entries, as any
    earlier run leaves it."""
    out = copss(tmp_path, "ask", "bsn")
    assert out.returncode == 0, out.stderr
    return tmp_path / "home" / "copss.db"


# -- at start ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_read_only_database_file_stops_run_with_one_line(tmp_path: Path) -> None:
    dbfile = _store(tmp_path)
    with read_only(dbfile):
        out = copss(tmp_path, "run", stdin="How do I get a BSN number?\n", timeout=30)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.splitlines() == [
        f"copss: cannot write to database {dbfile}: attempt to write a readonly database"
    ]
    assert out.stdout == ""  # the console never started


@pytest.mark.slow
def test_database_in_read_only_folder_stops_run_with_one_line(tmp_path: Path) -> None:
    dbfile = _store(tmp_path)
    assert not Path(f"{dbfile}-wal").exists()  # closed cleanly: SQLite must create it again
    with read_only(dbfile.parent):
        out = copss(tmp_path, "run", stdin="How do I get a BSN number?\n", timeout=30)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith(f"copss: cannot write to database {dbfile}: ")
    assert f"its folder {dbfile.parent} is read-only" in lines[0]


@pytest.mark.slow
def test_read_only_store_still_answers_ask(tmp_path: Path) -> None:
    # Only what writes checks that it can: looking a question up works on a read-only copy.
    dbfile = _store(tmp_path)
    with read_only(dbfile):
        out = copss(tmp_path, "ask", "how do I get a BSN number")
    assert out.returncode == 0, out.stderr
    assert "BSN" in out.stdout


@pytest.mark.slow
@pytest.mark.postgres
async def test_postgres_role_without_write_rights_stops_run_with_one_line(
    pg: Database, tmp_path: Path
) -> None:
    import asyncpg

    await upgrade(pg)
    role = f"copss_reader_{uuid.uuid4().hex[:8]}"
    server = BASE_URL.replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    inside = await asyncpg.connect(server.rsplit("/", 1)[0] + "/" + str(pg.url.database))
    try:
        # What a read-only reporting account gets: it may look, not change anything.
        await inside.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        await inside.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        url = pg.url.set(username=role, password=None)
        cfg = tmp_path / "config.toml"
        cfg.write_text(f"[storage]\nurl = '{url.render_as_string(hide_password=False)}'\n")
        out = await asyncio.to_thread(
            copss, tmp_path, "--config", str(cfg), "run", stdin="hello\n", timeout=30
        )
    finally:
        await inside.execute(f'DROP OWNED BY "{role}"')
        await inside.close()
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.splitlines() == [
        f"copss: cannot write to database {url.render_as_string(hide_password=True)}: "
        "permission denied for table inbox"
    ]


# -- while running -------------------------------------------------------------------------------

RETRY = re.compile(r"retrying in ([0-9.]+)s")


async def _hub_with_work(tmp_path: Path) -> tuple[Database, Hub, list[Event]]:
    """A store with one unhandled event and one unsent console message, and a hub on it."""
    db = Database(sqlite_url(tmp_path / "copss.db"))
    await upgrade(db)
    handled: list[Event] = []

    async def handler(event: Event, ctx: Context) -> bool:
        handled.append(event)
        return True

    console = ConsoleAdapter("you")
    hub = Hub(db, [console], [handler])
    channel = ChannelRef("console", "console")
    you = Author("console", "you", "you", False)
    await hub.sink(MessageEvent(channel, "1", you, "hello", datetime.now(UTC)))
    async with db.session() as session:
        await OutboxRepo(session).add(
            OutboxMessage(platform="console", chat_id="console", thread_id="", text="hi", meta={})
        )
    # Connections opened from now on see the file as it is then.
    await db.engine.dispose()
    return db, hub, handled


async def _run_unwritable(
    db: Database, hub: Hub, seconds: float
) -> tuple[asyncio.Task[None], asyncio.Task[None]]:
    dbfile = Path(str(db.url.database))
    with read_only(dbfile):
        tasks = (
            asyncio.create_task(hub.run_dispatcher()),
            asyncio.create_task(hub.run_sender("console")),
        )
        await asyncio.sleep(seconds)
        # SQLite keeps a connection opened read-only read-only: new connections write again.
        await db.engine.dispose()
    return tasks


@pytest.mark.slow
async def test_store_failing_while_running_logs_one_line_per_failure_backing_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.05)
    monkeypatch.setattr(bot.supervision, "STORE_RETRY_MAX", 0.4, raising=False)
    caplog.set_level(logging.INFO)
    db, hub, handled = await _hub_with_work(tmp_path)
    try:
        # Long enough for four failures of each with their waits (0.75 s) on a busy machine.
        tasks = await _run_unwritable(db, hub, 2.5)
        # Writable again: the event is handled and the message marked sent, no restart needed.
        async with asyncio.timeout(5):
            await hub.settled()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert [e.message_id for e in handled] == ["1"]
        async with db.session() as session:
            row = await session.get(OutboxMessage, 1)
            event = await session.get(InboxEvent, 1)
        assert row is not None and row.state == "sent"
        assert event is not None and event.handled_at is not None
    finally:
        await db.close()

    failures = [r for r in caplog.records if r.name == "bot.core" and "store failed" in r.message]
    for who in ("dispatcher:", "sender console:"):
        mine = [r for r in failures if r.message.startswith(who)]
        assert len(mine) >= 4, [r.message for r in failures]
        for record in mine:
            assert "attempt to write a readonly database" in record.message
            assert "\n" not in record.message and not record.exc_info  # no traceback
        delays = [float(RETRY.search(r.message).group(1)) for r in mine]  # type: ignore[union-attr]
        assert delays[:4] == [0.05, 0.1, 0.2, 0.4]
        assert set(delays[4:]) <= {0.4}  # capped
        gaps = [b.created - a.created for a, b in itertools.pairwise(mine)]
        for gap, delay in zip(gaps, delays, strict=False):
            assert gap >= delay * 0.9
    assert "Traceback" not in caplog.text


@pytest.mark.slow
async def test_store_failing_while_running_shows_the_traceback_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.05)
    caplog.set_level(logging.DEBUG, logger="bot.core")
    db, hub, _ = await _hub_with_work(tmp_path)
    try:
        tasks = await _run_unwritable(db, hub, 0.3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await db.close()
    failures = [r for r in caplog.records if "store failed" in r.message]
    assert failures and all(r.exc_info for r in failures)
