"""Two copss processes sharing one PostgreSQL store: one runs Telegram, the other the console,
and a bridge between them works through the shared outbox (skipped without a server)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import select

import bot.sender
from adapters.console import ConsoleAdapter
from bot.app import App
from bot.config import Config, StorageConfig
from storage.engine import Database
from storage.models import Answer, InboxEvent, Thread
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ALICE, ADMIN = 501, 502


async def test_two_processes_bridge_through_one_postgres_store(
    pg: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.sender, "SENDER_POLL", 0.1)
    url = pg.url.render_as_string(hide_password=False)
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL")
        api.set_member_status(GROUP, ADMIN, "administrator")
        telegram_side = TelegramHarness(api, tmp_path, url=url)
        await telegram_side.start()  # migrates the shared store and loads the starter KB
        console = ConsoleAdapter("bob")
        console_side = App(Config(storage=StorageConfig(url=url)), adapters=[console])
        await console_side.__aenter__()
        task = asyncio.create_task(console_side.run(handle_signals=False))
        await console_side.started.wait()
        try:
            await console.command("link", f"telegram:{GROUP}", user="bob")
            assert "must confirm" in (await console.pop(5)).text
            await telegram_side.push(api.message_update(GROUP, ADMIN, "/link console:console"))
            assert "Linked" in api.sent_messages(GROUP)[-1]["text"]

            _, q = await telegram_side.push(
                api.message_update(
                    GROUP, ALICE, "Where can I buy a cheap e-bike in Zwolle?", first_name="Alice"
                )
            )
            copy = await console.pop(5)  # sent by the console process, queued by the other
            assert copy.text == "Alice (Telegram): Where can I buy a cheap e-bike in Zwolle?"
            await console.push("Fietsenwinkel Zwolle-Zuid sells used ones.", "bob", copy.number)
            await api.wait_for_sent_messages(2, chat_id=GROUP, within=10)
            relayed = api.sent_messages(GROUP)[-1]
            assert relayed["reply_to_message"]["message_id"] == q
            assert "Fietsenwinkel Zwolle-Zuid" in relayed["text"]

            async with pg.session() as s:
                thread = await s.scalar(select(Thread))
                answers = (await s.scalars(select(Answer))).all()
                unhandled = (
                    await s.scalars(select(InboxEvent).where(InboxEvent.handled_at.is_(None)))
                ).all()
            assert thread is not None and thread.status == "answered" and len(answers) == 1
            assert unhandled == []
        finally:
            console_side.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
            await console_side.__aexit__(None, None, None)
            await telegram_side.stop()
