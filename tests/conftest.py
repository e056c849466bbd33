"""Shared fixtures: a migrated SQLite store in tmp_path and the console harness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import or_, select

from adapters.console import ConsoleAdapter, Said
from bot.app import App
from bot.config import Config, MatchingConfig, StorageConfig
from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from storage.models import InboxEvent, OutboxMessage
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

BASE_URL = os.environ.get("COPSS_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
# Tests never download a model (no network but loopback); copss processes they start inherit
# this and match on words unless a test puts a model in their data folder.
os.environ["COPSS_FETCH_MODEL"] = "0"


async def _server_answers() -> bool:
    try:
        import asyncpg
    except ImportError:
        return False
    dsn = BASE_URL.replace("postgresql+asyncpg", "postgresql")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), 3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@contextlib.asynccontextmanager
async def postgres_url() -> AsyncIterator[str]:
    """The URL of a fresh database on the test server, dropped afterwards (skips, with the
    reason, when no server answers)."""
    if not await _server_answers():
        pytest.skip(f"no PostgreSQL server answers at {BASE_URL} (set COPSS_TEST_PG_URL)")
    import asyncpg

    name = f"copss_{uuid.uuid4().hex[:10]}"
    dsn = BASE_URL.replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield BASE_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    """A fresh database on the server, dropped afterwards."""
    async with postgres_url() as url:
        db = Database(url)
        try:
            yield db
        finally:
            await db.close()


#: ``pytest.fixture(params=ENGINES)``: the PostgreSQL case carries the ``postgres`` marker.
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.asynccontextmanager
async def store_url(engine: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL for a new store on ``engine``: a file in ``tmp_path``, or a fresh PostgreSQL
    database."""
    if engine == "sqlite":
        yield sqlite_url(tmp_path / "copss.db")
        return
    async with postgres_url() as url:
        yield url


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty SQLite store: for tests of SQLite's own side (pragmas, FTS5 tables,
    reading the file with sqlite3)."""
    database = Database(sqlite_url(tmp_path / "copss.db"))
    try:
        await upgrade(database)
        yield database
    finally:
        await database.close()


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty store, on SQLite and on PostgreSQL."""
    async with store_url(request.param, tmp_path) as url:
        database = Database(url)
        try:
            await upgrade(database)
            yield database
        finally:
            await database.close()


class Harness:
    """copss running in-process on a console adapter and a real SQLite file."""

    def __init__(self, app: App, console: ConsoleAdapter) -> None:
        self.app = app
        self.console = console

    @property
    def db(self) -> Database:
        assert self.app.db is not None
        return self.app.db

    async def settle(self) -> None:
        """Wait until copss has handled everything and sent every reply: the hub says so and
        the store agrees (no event unhandled, no reply due and unsent). The hub's idle flag
        alone was seen to come early on PostgreSQL, where a handler re-run after a transient
        error leaves its event pending for a moment."""
        hub = self.app.hub
        assert hub is not None
        async with asyncio.timeout(10):
            while True:
                await hub.settled()
                if not await self._unfinished():
                    return
                await asyncio.sleep(0.02)

    async def _unfinished(self) -> bool:
        now = datetime.now(UTC)
        async with self.db.session() as s:
            if await s.scalar(select(InboxEvent.id).where(InboxEvent.handled_at.is_(None))):
                return True
            due = await s.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.state.in_(("pending", "sending")),
                    or_(
                        OutboxMessage.next_attempt_at.is_(None),
                        OutboxMessage.next_attempt_at <= now,
                    ),
                )
            )
        return due is not None

    async def say(self, text: str, user: str = "you", reply_to: int | None = None) -> int:
        """Post a message and wait for copss to finish with it."""
        number = await self.console.push(text, user=user, reply_to=reply_to)
        await self.settle()
        return number

    async def command(self, name: str, args: str = "", user: str = "you") -> Said:
        """Run a command and return copss's reply."""
        await self.console.command(name, args, user=user)
        await self.settle()
        return await self.console.pop(timeout=1)

    def said(self) -> list[Said]:
        """Everything copss said and nobody popped yet."""
        return self.console.drain()


def make_config(
    tmp_path: Path, *, url: str | None = None, **matching: float | bool | str
) -> Config:
    """A config on a SQLite file in tmp_path (or the store at ``url``), matching on words
    unless ``model`` is given."""
    matching.setdefault("model", "")
    return Config(
        storage=StorageConfig(url=url or sqlite_url(tmp_path / "copss.db")),
        matching=MatchingConfig(**matching),  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def harness_on(url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """copss with the starter knowledge base on the store at ``url``, run in-process and
    driven through the console adapter; stopped on exit."""
    console = ConsoleAdapter("you")
    async with App(make_config(tmp_path, url=url), adapters=[console]) as app:
        task = asyncio.create_task(app.run(handle_signals=False))
        harness = Harness(app, console)
        await app.started.wait()
        try:
            yield harness
        finally:
            app.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)


@pytest.fixture(params=ENGINES)
async def copss(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """copss with the starter knowledge base, driven through the console adapter, on a
    SQLite file and on PostgreSQL (its data folder, exports included, in tmp_path)."""
    monkeypatch.setenv("COPSS_HOME", str(tmp_path))
    async with store_url(request.param, tmp_path) as url, harness_on(url, tmp_path) as harness:
        yield harness


#: The Telegram group admin who confirms the bridge in the ``bridged`` fixture.
BRIDGE_ADMIN = 302


@pytest.fixture
async def bridged(tmp_path: Path) -> AsyncIterator[tuple[TelegramHarness, ConsoleAdapter]]:
    """copss with a console chat bridged to a Telegram supergroup (the real PTB client against
    the fake), the link confirmed by a group admin (``BRIDGE_ADMIN``)."""

    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL")
        api.set_member_status(GROUP, BRIDGE_ADMIN, "administrator")
        console = ConsoleAdapter("bob")
        harness = TelegramHarness(api, tmp_path, extra_adapters=[console])
        await harness.start()
        await console.command("link", f"telegram:{GROUP}", user="bob")
        await harness.push(api.message_update(GROUP, BRIDGE_ADMIN, "/link console:console"))
        assert "Linked" in api.sent_messages(GROUP)[-1]["text"]
        console.said.clear()
        console.drain()
        try:
            yield harness, console
        finally:
            await harness.stop()
