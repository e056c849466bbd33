"""A platform copss cannot reach at start: one line per attempt, tried again with growing waits,
while the other platforms and the console go on; connected as soon as the platform answers.
A refused token still ends copss with one clear message and exit code 1.

"Cannot reach" is real here: the platform's address is a loopback port nothing listens on (a
socket bound, then closed), where the fake server starts later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import discord.gateway
import discord.http
import pytest
import yarl
from aiohttp import web

import bot.app
from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from bot.app import App
from bot.config import Config, StorageConfig
from storage.engine import sqlite_url
from tests.adapters.app_runner import stop_app
from tests.adapters.dc_harness import MENU, TOKEN
from tests.adapters.tg_harness import GROUP, scaled_limits
from tests.fakes.discord_gateway import FakeDiscord
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

pytestmark = [pytest.mark.slow, pytest.mark.faults]

SCRIPT = Path(__file__).with_name("copss_for_tests.py")
#: On the script's path ahead of its own folder, where tests/faq would shadow the faq package.
REPO = SCRIPT.parent.parent
RETRY = re.compile(r"; retrying in ([0-9.]+)s$")
ALICE = 4242
GUILD, GENERAL, DC_ALICE = 900_000_000_000_000_001, 900_000_000_000_000_010, 900_000_000_000_000_100
QUESTION = "How do I get a BSN number?"


def closed_port() -> int:
    """A loopback port nothing listens on (until a test starts a fake there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def listening_on(port: int) -> Iterator[None]:
    """Fakes started within listen on ``port`` instead of a free one."""
    real = web.TCPSite

    def site(
        runner: web.BaseRunner, host: str | None = None, _: int | None = None, **kw: Any
    ) -> web.TCPSite:
        return real(runner, host, port, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(web, "TCPSite", site)
        yield


@contextlib.contextmanager
def discord_at(rest_port: int, gateway_port: int | None = None) -> Iterator[None]:
    """discord.py's REST API (and gateway, by default on the same port) on loopback."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = f"http://127.0.0.1:{rest_port}/api/v10"
    point_gateway(gateway_port or rest_port)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


def point_gateway(port: int) -> None:
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{port}/gateway")


async def until(check: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
    """Wait until ``check()`` holds; fail showing ``what()`` after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {within}s:\n{what()}")
        await asyncio.sleep(0.02)


def delays(lines: list[str]) -> list[float]:
    found = [RETRY.search(line) for line in lines]
    assert all(found), lines
    return [float(m.group(1)) for m in found if m]


def discord_world(fake: FakeDiscord) -> None:
    fake.add_guild(GUILD, "Expats NL")
    fake.add_channel(GUILD, GENERAL, "general")
    fake.add_member(GUILD, DC_ALICE, "Alice")


# -- Telegram out of reach, the console goes on (copss as a process) --------------------------


class Lines:
    """The lines a process writes to one of its pipes, as they come."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def having(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def test_telegram_out_of_reach_is_retried_while_the_console_runs(tmp_path: Path) -> None:
    port = closed_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"[console]\nenabled = true\n[telegram]\nbase_url = 'http://127.0.0.1:{port}/bot'\n"
    )
    env = {
        **os.environ,
        "COPSS_HOME": str(tmp_path / "home"),
        "COPSS_TELEGRAM_TOKEN": DEFAULT_TOKEN,
        "COPSS_TEST_CONNECT_RETRY": "0.1,0.8",
        "PYTHONPATH": str(REPO),
    }
    env.pop("COPSS_DISCORD_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--config",
        str(cfg),
        "run",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    api = FakeTelegramAPI()
    try:
        await until(lambda: len(err.having("cannot reach Telegram")) >= 4, 15, lambda: err.text)
        # Meanwhile the console answers.
        proc.stdin.write(f"{QUESTION}\n".encode())
        await proc.stdin.drain()
        await until(lambda: bool(out.having("#2 copss ↪#1")), 15, lambda: out.text)
        # Telegram answers again: copss logs in and handles a message there.
        with listening_on(port):
            await api.start()
        await until(
            lambda: bool(err.having("telegram: logged in as @copss_bot")), 10, lambda: err.text
        )
        api.push_message(GROUP, ALICE, QUESTION)
        sent = await api.wait_for_sent_messages(1, GROUP, within=10)
        assert "BSN" in sent[0]["text"]
        proc.stdin.close()  # console EOF ends copss
        code = await asyncio.wait_for(proc.wait(), 20)
        await asyncio.gather(out.task, err.task)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await api.close()
    assert code == 0, err.text
    tries = err.having("cannot reach Telegram")
    for line in tries:
        assert " WARNING bot.app: cannot reach Telegram: httpx.ConnectError: " in line, line
    waits = delays(tries)
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8] and set(waits[4:]) <= {0.8}
    assert "Traceback" not in err.text and "ExceptionGroup" not in err.text
    assert DEFAULT_TOKEN not in err.text + out.text


# -- Discord out of reach, Telegram goes on (in-process) ---------------------------------------


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.app, "CONNECT_RETRY", 0.1, raising=False)
    monkeypatch.setattr(bot.app, "CONNECT_RETRY_MAX", 0.8, raising=False)


def _retry_records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def test_discord_out_of_reach_is_retried_while_telegram_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, quick_retries: None
) -> None:
    caplog.set_level(logging.INFO)
    port = closed_port()
    fake = FakeDiscord(token=TOKEN)
    discord_world(fake)
    async with FakeTelegramAPI() as api:
        with discord_at(port):
            telegram = TelegramAdapter(
                DEFAULT_TOKEN,
                base_url=api.base_url,
                base_file_url=api.base_file_url,
                limits=scaled_limits(),
                poll_timeout=1,
            )
            dc = DiscordAdapter(TOKEN, commands=MENU, guild_ready_timeout=0.05)
            app = App(
                Config(storage=StorageConfig(url=sqlite_url(tmp_path / "copss.db"))), [telegram, dc]
            )
            await app.__aenter__()
            task = asyncio.create_task(app.run(handle_signals=False))
            try:

                def tries() -> list[logging.LogRecord]:
                    return _retry_records(caplog, "cannot reach Discord")

                await until(lambda: len(tries()) >= 4, 15, lambda: caplog.text)
                # Telegram is not held up by Discord.
                api.push_message(GROUP, ALICE, QUESTION)
                await api.wait_for_sent_messages(1, GROUP, within=10)
                assert not task.done()
                # Discord comes back: copss connects and answers there too.
                with listening_on(port):
                    await fake.start()
                async with asyncio.timeout(10):
                    await dc.caught_up.wait()
                await fake.user_message(GENERAL, DC_ALICE, QUESTION)
                await until(
                    lambda: bool(fake.sent_messages(GENERAL)), 10, lambda: "no Discord reply"
                )
                assert "BSN" in fake.sent_messages(GENERAL)[0]["content"]
            finally:
                await stop_app(app, task)
                await fake.stop()
    records = tries()
    for record in records:
        assert record.name == "bot.app" and record.levelno == logging.WARNING
        assert record.getMessage().startswith("cannot reach Discord: Cannot connect to host")
    waits = delays([r.getMessage() for r in records])
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8] and set(waits[4:]) <= {0.8}
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_discord_gateway_out_of_reach_after_login_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, quick_retries: None
) -> None:
    # The REST API answers (login works) but the gateway does not: discord.py's own reconnect
    # loop cannot retry a first connection, so copss does.
    caplog.set_level(logging.INFO)
    async with FakeDiscord(token=TOKEN) as fake:
        discord_world(fake)
        with discord_at(fake.port, gateway_port=closed_port()):
            dc = DiscordAdapter(TOKEN, commands=MENU, guild_ready_timeout=0.05)
            app = App(Config(storage=StorageConfig(url=sqlite_url(tmp_path / "copss.db"))), [dc])
            await app.__aenter__()
            task = asyncio.create_task(app.run(handle_signals=False))
            try:

                def tries() -> list[logging.LogRecord]:
                    return _retry_records(caplog, "cannot reach Discord")

                await until(lambda: len(tries()) >= 3, 15, lambda: caplog.text)
                point_gateway(fake.port)
                async with asyncio.timeout(10):
                    await dc.caught_up.wait()
                await fake.user_message(GENERAL, DC_ALICE, QUESTION)
                await until(
                    lambda: bool(fake.sent_messages(GENERAL)), 10, lambda: "no Discord reply"
                )
            finally:
                await stop_app(app, task)
    for record in tries():
        assert re.match(
            r"cannot reach Discord: \[Errno \d+\] Connect call failed", record.getMessage()
        )
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_discord_lost_while_running_reconnects_in_one_line_per_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Once connected, discord.py reconnects (and resumes) by itself; it logs each attempt
    # with a traceback, which copss makes one line below debug level.
    caplog.set_level(logging.INFO)
    fake = FakeDiscord(token=TOKEN)
    discord_world(fake)
    await fake.start()
    port = fake.port
    with discord_at(port):
        dc = DiscordAdapter(TOKEN, commands=MENU, guild_ready_timeout=0.05)
        app = App(Config(storage=StorageConfig(url=sqlite_url(tmp_path / "copss.db"))), [dc])
        await app.__aenter__()
        task = asyncio.create_task(app.run(handle_signals=False))
        try:
            async with asyncio.timeout(10):
                await dc.caught_up.wait()
            await fake.stop()  # Discord goes away: the connection drops, reconnecting fails

            def lost() -> list[logging.LogRecord]:
                return _retry_records(caplog, "gateway connection lost")

            await until(lambda: len(lost()) >= 1, 15, lambda: caplog.text)
            with listening_on(port):
                await fake.start()
            await until(
                lambda: fake.resume_count + fake.identify_count >= 2, 15, lambda: caplog.text
            )
            await fake.user_message(GENERAL, DC_ALICE, QUESTION)
            await until(lambda: bool(fake.sent_messages(GENERAL)), 10, lambda: "no Discord reply")
        finally:
            await stop_app(app, task)
            await fake.stop()
    for record in lost():
        assert record.name == "discord.client" and not record.exc_info
        assert re.match(
            r"discord: gateway connection lost \(Cannot connect to host .*\); "
            r"Attempting a reconnect in [0-9.]+s$",
            record.getMessage(),
        ), record.getMessage()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_unreachable_platform_shows_the_traceback_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, quick_retries: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.app")
    port = closed_port()
    telegram = TelegramAdapter(DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{port}/bot")
    app = App(Config(storage=StorageConfig(url=sqlite_url(tmp_path / "copss.db"))), [telegram])
    await app.__aenter__()
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await until(
            lambda: len(_retry_records(caplog, "cannot reach Telegram")) >= 2,
            10,
            lambda: caplog.text,
        )
    finally:
        await stop_app(app, task)
    assert all(r.exc_info for r in _retry_records(caplog, "cannot reach Telegram"))


# -- a refused token still ends copss ----------------------------------------------------------


def test_refused_discord_token_is_one_clear_error(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    fake = FakeDiscord(token=TOKEN)
    loop.run_until_complete(fake.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    wrong = "copss-wrong-token-that-must-not-be-logged-4f1e"
    try:
        import subprocess

        out = subprocess.run(
            [sys.executable, str(SCRIPT), "run"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
            env={
                **os.environ,
                "COPSS_HOME": str(tmp_path),
                "COPSS_DISCORD_TOKEN": wrong,
                "COPSS_TEST_DISCORD": f"http://127.0.0.1:{fake.port}",
                "PYTHONPATH": str(REPO),
            },
        )
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert out.returncode == 1, out.stderr
    assert "copss: Discord refused the bot token (check COPSS_DISCORD_TOKEN)" in out.stderr
    assert "Traceback" not in out.stderr and "cannot reach" not in out.stderr
    assert wrong not in out.stderr + out.stdout
