"""Hostile input end to end, on SQLite and PostgreSQL: through the real python-telegram-bot
client against the fake Bot API, and through the console adapter. Every message is stored, a
normal member's question asked right behind a burst of hostile ones is answered within a second,
and nothing invisible or controlling comes back out in copss's replies."""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.console import ConsoleAdapter, Said
from bot.app import App
from bot.config import Config, StorageConfig
from bot.events import intake_text
from storage.engine import Database
from storage.models import InboxEvent, Message
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.engines import ENGINES, store_on
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

pytestmark = pytest.mark.slow

#: A normal question, its answer, and a rewording that should find them.
QUESTION = "Where can I recycle old paint in Groningen?"
REWORDED = "where to recycle old paint around groningen?"
#: The answer, from a member whose words carry every kind of hidden or controlling character.
ANSWER = (
    "\u202eTake\u200b it to the\x00 Milieustraat\x1b[2J\x1b]0;pwn\x07 </b><script>x</script> "
    "\ud800 on Duinkerkenstraat"
)
VISIBLE_ANSWER = "Milieustraat"
HOSTILE_NAME = "\u202eMal\x00lory\u200b\x1b[31m \udc00"


def hostile(longest: int, emoji: int) -> list[str]:
    """The corpus: a platform's longest one-word message (as a question too), emoji, NUL,
    lone surrogates, bidi and zero-width characters, terminal escapes, HTML breakers, FTS5
    query syntax and SQL LIKE wildcards."""
    return [
        "w" * longest,
        "q" * (longest - 1) + "?",
        "\U0001f600" * emoji,
        "NUL\x00 in the middle\x00 of a question?",
        "lone \ud800 surrogates \udfff here?",
        "\u202eesrever \u200bhidden\u200b zero\u2066width\u2069 text?",
        "\x1b[2J\x1b]0;pwn\x07 terminal escape",
        "</b><script>alert(1)</script> <a href='x'>html</a> &amp; <<<",
        '"a" OR NEAR(b c) * ^x col:y AND NOT "',
        "%%%_ where is the %_% office?",
        "\\%\\_ '; DROP TABLE message; --",
    ]


#: What copss must never post: controls but newline and tab, bidi controls, zero-width and
#: other invisible formatting characters, surrogates.
def forbidden(text: str) -> list[str]:
    return [
        f"U+{ord(ch):04X}"
        for ch in text
        if (unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t")
        or unicodedata.category(ch) == "Cf"
    ]


async def stored_texts(db: Database) -> tuple[set[str], list[str | None]]:
    async with db.session() as s:
        texts = set((await s.scalars(select(Message.text))).all())
        errors = list((await s.scalars(select(InboxEvent.error))).all())
    return texts, errors


# -- Telegram -----------------------------------------------------------------------------------

MEMBER, HELPER, MALLORY, CAROL = 101, 102, 666, 103


@pytest.fixture(params=ENGINES)
async def telegram(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[TelegramHarness, dict[int, float]]]:
    """copss on the real PTB client against the fake, on each engine; with the time the
    fake handed each update to copss (its first getUpdates answer holding it)."""
    async with store_on(request.param, tmp_path, migrated=False) as db:
        url = db.url.render_as_string(hide_password=False)
        async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
            api.add_chat(GROUP, "supergroup", title="Expats NL")
            delivered: dict[int, float] = {}
            get_updates = api._m_get_updates

            async def timed(params: dict[str, Any]) -> list[dict[str, Any]]:
                updates = await get_updates(params)
                now = time.monotonic()
                for update in updates:
                    delivered.setdefault(int(update["update_id"]), now)
                return updates

            api.register_method("getUpdates", timed)
            harness = TelegramHarness(api, tmp_path, url=url)
            await harness.start()
            try:
                yield harness, delivered
            finally:
                await harness.stop()


def _reply_to(api: FakeTelegramAPI, message_id: int) -> dict[str, Any] | None:
    for m in api.sent_messages(GROUP):
        if (m.get("reply_to_message") or {}).get("message_id") == message_id:
            return m
    return None


async def test_hostile_messages_through_telegram(
    telegram: tuple[TelegramHarness, dict[int, float]],
) -> None:
    tg, delivered = telegram
    api = tg.api
    _, asked = await tg.push(api.message_update(GROUP, MEMBER, QUESTION, first_name="Ann"))
    await tg.push(
        api.message_update(
            GROUP,
            HELPER,
            ANSWER,
            first_name=HOSTILE_NAME,
            reply_to_message_id=asked,
            entities=[],
        )
    )
    # Telegram's own limits: 4,096 characters (UTF-16 code units) a message.
    corpus = hostile(longest=4096, emoji=2048)
    for text in corpus:
        api.push_update(
            api.message_update(GROUP, MALLORY, text, first_name=HOSTILE_NAME, entities=[])
        )
    update = api.message_update(GROUP, CAROL, REWORDED, first_name="Carol")
    question_update = api.push_update(update)
    question = int(update["message"]["message_id"])
    await api.wait_for(lambda: _reply_to(api, question) is not None, within=30)
    reply = _reply_to(api, question)
    assert reply is not None
    [sent] = [
        c
        for c in api.calls_to("sendMessage")
        if c.ok and c.response and c.response["result"]["message_id"] == reply["message_id"]
    ]
    # Handled alone it takes 0.1-0.2 s; before the hostile messages were bounded each one held
    # the loop for seconds, so the question behind them waited tens of seconds. The bound
    # leaves room for a loaded machine (PostgreSQL, other work) without hiding that.
    assert sent.at - delivered[question_update] < 3.0
    await tg.settle()

    texts, errors = await stored_texts(tg.db)
    assert all(error is None for error in errors), errors
    for text in [ANSWER, *corpus]:
        assert intake_text(text) in texts
    assert VISIBLE_ANSWER in reply["text"]
    for text in api.sent_texts(GROUP):
        assert not forbidden(text), (forbidden(text), text[:200])


# -- console ------------------------------------------------------------------------------------


@pytest.fixture(params=ENGINES)
async def console_copss(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[App, ConsoleAdapter]]:
    """copss on the console adapter (in-process), on each engine."""
    async with store_on(request.param, tmp_path, migrated=False) as db:
        url = db.url.render_as_string(hide_password=False)
        console = ConsoleAdapter("you")
        async with App(Config(storage=StorageConfig(url=url)), adapters=[console]) as app:
            task = asyncio.create_task(app.run(handle_signals=False))
            await app.started.wait()
            try:
                yield app, console
            finally:
                app.stop()
                await asyncio.wait_for(task, 30)


async def _reply(console: ConsoleAdapter, number: int, within: float = 30) -> Said:
    async with asyncio.timeout(within):
        while True:
            said = await console.pop(timeout=within)
            if said.reply_to == number:
                return said


async def _settle(app: App) -> None:
    assert app.hub is not None
    async with asyncio.timeout(30):
        await app.hub.settled()


async def test_hostile_messages_through_the_console(
    console_copss: tuple[App, ConsoleAdapter],
) -> None:
    app, console = console_copss
    assert app.db is not None
    asked = await console.push(QUESTION, user="ann")
    await console.push(ANSWER, user=HOSTILE_NAME, reply_to=asked)
    await _settle(app)
    console.drain()
    # The console has no length limit: a megabyte in one line, and 10,000 emoji.
    corpus: Sequence[str] = hostile(longest=1_000_000, emoji=10_000)
    for text in corpus:
        await console.push(text, user=HOSTILE_NAME)
    for args in ('"a" OR NEAR(b c) * ^x col:y', "%%%_", "\x00\ud800\u202e"):
        await console.command("ask", args, user=HOSTILE_NAME)
    await console.command("x" * 500 + "\x1b[2J", "args", user=HOSTILE_NAME)
    started = time.monotonic()
    question = await console.push(REWORDED, user="carol")
    reply = await _reply(console, question)
    # Not held up behind the hostile input (a stall would take many seconds); the bound leaves
    # room for a PostgreSQL server on the same two busy cores.
    assert time.monotonic() - started < 2.0
    await _settle(app)

    texts, errors = await stored_texts(app.db)
    assert all(error is None for error in errors), errors
    for text in [ANSWER, *corpus]:
        assert intake_text(text) in texts
    assert VISIBLE_ANSWER in reply.text
    for said in console.said:
        assert not forbidden(said.text), (forbidden(said.text), said.text[:200])
