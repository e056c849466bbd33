"""Telegram webhook mode: always behind a secret, local by default, the secret never logged."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from adapters.telegram import TelegramAdapter
from bot.app import App, build_adapters
from bot.config import Config, ConfigError, Secret, StorageConfig, TelegramConfig, load_config
from storage.engine import sqlite_url
from storage.models import FaqEntry, InboxEvent
from tests.adapters.app_runner import stop_app
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.fakes.telegram_api import DEFAULT_TOKEN, SECRET_HEADER, FakeTelegramAPI

ADMIN, NOBODY = 104, 999
SLUG = "town-hall-hours"
#: The public address Telegram calls; a reverse proxy forwards its path to copss.
PUBLIC_URL = "https://bot.example.org/telegram/hook"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Hooked:
    tg: TelegramHarness
    #: copss's own server, as the reverse proxy reaches it.
    local: str

    @property
    def api(self) -> FakeTelegramAPI:
        return self.tg.api

    async def deliver(self, chat: int, user: int, text: str, **kw: object) -> int:
        """Telegram calls the webhook (with the registered secret); returns the status after
        copss has handled the update."""
        status = await self.api.deliver_webhook(
            self.api.message_update(chat, user, text, **kw),  # type: ignore[arg-type]
            via=self.local,
        )
        assert self.tg.app is not None and self.tg.app.hub is not None
        await self.tg.app.hub.settled()
        return status


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[Hooked]:
    port = free_port()
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL")
        api.set_member_status(GROUP, ADMIN, "administrator")
        # No secret configured and no listen address given: the defaults are under test.
        harness = TelegramHarness(api, tmp_path, mode="webhook", webhook_url=PUBLIC_URL, port=port)
        await harness.start_webhook()
        world = Hooked(harness, f"http://127.0.0.1:{port}")
        try:
            added = await world.deliver(
                GROUP,
                ADMIN,
                f"/faq add {SLUG} | When is the town hall open? | Weekdays 9-17 | "
                "https://example.org/town-hall",
            )
            assert added == 200
            assert "Added" in api.sent_texts(GROUP)[-1]
            yield world
        finally:
            await harness.stop()


async def entries(tg: TelegramHarness) -> list[str]:
    async with tg.db.session() as s:
        return list((await s.scalars(select(FaqEntry.slug).where(FaqEntry.slug == SLUG))).all())


async def test_webhook_without_a_configured_secret_makes_one_and_registers_it(
    hooked: Hooked,
) -> None:
    [hook] = hooked.api.calls_to("setWebhook")
    assert hook.ok and hook.params["url"] == PUBLIC_URL
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", str(hook.params["secret_token"]))  # 256 bits
    assert hooked.tg.app is not None and hooked.tg.app.hub is not None
    adapter = hooked.tg.app.hub.adapters["telegram"]
    assert isinstance(adapter, TelegramAdapter) and adapter.listen == "127.0.0.1"


async def test_forged_update_as_anonymous_admin_is_refused_unread(hooked: Hooked) -> None:
    """Before: with no secret configured any POST was taken as coming from Telegram, so
    anyone who found the address could pose as the group's anonymous admin."""
    api, tg = hooked.api, hooked.tg
    [hook] = api.calls_to("setWebhook")
    secret = str(hook.params.get("secret_token", ""))
    forged = api.message_update(GROUP, NOBODY, f"/faq remove {SLUG}", sender_chat=GROUP)
    forged["update_id"] = 10_000
    async with tg.db.session() as s:
        stored_before = await s.scalar(select(func.count(InboxEvent.id)))
    calls_before = len(api.calls)
    url = hooked.local + "/telegram/hook"
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {SECRET_HEADER: ""},
            {SECRET_HEADER: "wrong"},
            {SECRET_HEADER: secret[:-1]},
            {SECRET_HEADER: secret + "x"},
            {SECRET_HEADER: secret.swapcase()},
        ):
            async with http.post(url, json=forged, headers=headers) as answer:
                assert answer.status == 403, headers
        # Refused before the body is read: not even a malformed one gets a 400.
        async with http.post(url, data=b"{not json") as answer:
            assert answer.status == 403
    async with tg.db.session() as s:
        assert await s.scalar(select(func.count(InboxEvent.id))) == stored_before
    assert await entries(tg) == [SLUG]
    assert api.calls[calls_before:] == []  # no getChatMember, no reply: nothing at all

    # The same command from Telegram itself (the right secret) is an anonymous admin's.
    assert await hooked.deliver(GROUP, NOBODY, f"/faq remove {SLUG}", sender_chat=GROUP) == 200
    assert await entries(tg) == []
    assert f"Removed FAQ entry '{SLUG}'" in api.sent_texts(GROUP)[-1]


async def test_webhook_secret_never_logged(tmp_path: Path) -> None:
    """At DEBUG, PTB logs every request's parameters, setWebhook's secret_token included."""
    from bot.logs import setup_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("DEBUG", stream=stream)
    port = free_port()
    try:
        async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
            api.add_chat(GROUP, "supergroup", title="Expats NL")
            config = Config(
                storage=StorageConfig(url=sqlite_url(tmp_path / "copss.db")),
                telegram=TelegramConfig(
                    token=Secret(DEFAULT_TOKEN),
                    base_url=api.base_url,
                    mode="webhook",
                    webhook_url=PUBLIC_URL,
                    port=port,
                ),
            )
            app = App(config, adapters=build_adapters(config))
            await app.__aenter__()
            task = asyncio.create_task(app.run(handle_signals=False))
            try:
                await api.wait_for_calls("setWebhook", within=10)
                status = await api.deliver_webhook(
                    api.message_update(GROUP, 101, "How do I get a BSN number?"),
                    via=f"http://127.0.0.1:{port}",
                )
                assert status == 200
            finally:
                await stop_app(app, task)
            [hook] = api.calls_to("setWebhook")
            secret = str(hook.params.get("secret_token", ""))
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    output = stream.getvalue()
    assert "setWebhook" in output  # the request was logged ...
    assert len(secret) == 43 and secret not in output  # ... with its secret masked


def test_config_defaults_keep_the_webhook_local() -> None:
    config = load_config(None, env={})
    assert config.telegram.listen == "127.0.0.1"
    assert TelegramAdapter(DEFAULT_TOKEN).listen == "127.0.0.1"


@pytest.mark.parametrize(
    ("telegram", "message"),
    [
        ('mode = "webhook"', "'telegram.webhook_url' must be the public https://"),
        ('mode = "webhook"\nwebhook_url = "http://bot.example.org/x"', "https://"),
        ('webhook_secret = "has spaces and : colons"', "'telegram.webhook_secret' must be"),
        (f'webhook_secret = "{"x" * 257}"', "'telegram.webhook_secret' must be"),
    ],
)
def test_config_refuses_unsafe_webhooks(tmp_path: Path, telegram: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[telegram]\n{telegram}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_config(path, env={})
    assert "colons" not in str(caught.value)  # a secret is never repeated back


def test_config_accepts_a_webhook_with_or_without_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    base = f'[telegram]\nmode = "webhook"\nwebhook_url = "{PUBLIC_URL}"\n'
    path.write_text(base, encoding="utf-8")
    assert load_config(path, env={}).telegram.webhook_secret is None
    path.write_text(base + 'webhook_secret = "Abc_-09"\n', encoding="utf-8")
    assert load_config(path, env={}).telegram.webhook_secret == Secret("Abc_-09")


def test_adapter_refuses_a_secret_telegram_would_refuse() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        TelegramAdapter(DEFAULT_TOKEN, mode="webhook", webhook_secret="bad secret")
    made = TelegramAdapter(DEFAULT_TOKEN, mode="webhook", webhook_url=PUBLIC_URL)
    again = TelegramAdapter(DEFAULT_TOKEN, mode="webhook", webhook_url=PUBLIC_URL)
    assert made.webhook_secret and again.webhook_secret
    assert made.webhook_secret != again.webhook_secret  # a new one at every start
    assert TelegramAdapter(DEFAULT_TOKEN).webhook_secret is None  # polling needs none
