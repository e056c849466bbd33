"""Every incoming string is made storable once, at intake: NUL and other control characters
removed, lone surrogates replaced; a message holding them is stored and answered on SQLite and
on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.config import Config, StorageConfig
from bot.events import (
    MAX_KEY_CHARS,
    MAX_NAME_CHARS,
    Author,
    ChannelRef,
    CommandEvent,
    EditEvent,
    MessageEvent,
    ReactionEvent,
    dedup_key,
    intake_text,
    sanitized,
)
from storage.engine import Database
from storage.models import InboxEvent, Member, Message
from tests.engines import ENGINES, store_on

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HERE = ChannelRef("console", "c")


def test_intake_text_keeps_text_and_drops_what_no_store_or_terminal_should_get() -> None:
    assert intake_text("a\x00b") == "ab"
    assert intake_text("lone \ud800 and \udfff") == "lone \ufffd and \ufffd"
    # Two halves that belong together are the character they encode.
    assert intake_text("pair \ud83d\ude00") == "pair \U0001f600"
    assert intake_text("\x1b[2J\x1b]0;pwn\x07 hi") == "[2J]0;pwn hi"
    assert intake_text("a\r\nb\rc\td\ne") == "a\nb\nc\td\ne"
    assert intake_text("csi \x9b31m del \x7f") == "csi 31m del "
    kept = "bidi \u202e zero-width \u200b \u200d emoji 👩‍💻 ﷺ Ελληνικά 中文 </b><script>"
    assert intake_text(kept) == kept


def test_every_string_of_an_event_is_sanitized() -> None:
    author = Author("console", "u\x00", "Bob\x00\ud800" + "x" * 500)
    message = MessageEvent(
        ChannelRef("console", "c\x00", "t\x00"),
        "m\x00",
        author,
        "hi\x00",
        NOW,
        reply_to="r\x00",
        attachments=("https://x/\x00a",),
        origin="o\x00",
    )
    clean = sanitized(message)
    assert isinstance(clean, MessageEvent)
    assert clean.channel == ChannelRef("console", "c", "t")
    assert (clean.message_id, clean.text, clean.reply_to, clean.origin) == ("m", "hi", "r", "o")
    assert clean.attachments == ("https://x/a",)
    assert clean.author.user_id == "u"
    assert clean.author.display_name == ("Bob\ufffd" + "x" * 500)[:MAX_NAME_CHARS]
    edit = sanitized(EditEvent(HERE, "1", "new\x00", NOW, author))
    assert isinstance(edit, EditEvent) and edit.text == "new"
    command = sanitized(CommandEvent(HERE, "2", author, "ask\x00", "bsn\x00 \ud800", NOW))
    assert isinstance(command, CommandEvent)
    assert (command.name, command.args) == ("ask", "bsn \ufffd")
    reaction = sanitized(ReactionEvent(HERE, "3", author, "\x00👍", True))
    assert isinstance(reaction, ReactionEvent) and reaction.emoji == "👍"
    # Nothing to change: the very same event.
    plain = MessageEvent(HERE, "4", Author("console", "u", "Bob"), "hello", NOW)
    assert sanitized(plain) is plain


def test_dedup_keys_fit_their_column_and_stay_distinct() -> None:
    who = Author("console", "u", "u")
    long_a = ReactionEvent(HERE, "1", who, "a" * 1_000, True)
    long_b = ReactionEvent(HERE, "1", who, "a" * 999 + "b", True)
    keys = {dedup_key(long_a), dedup_key(long_b)}
    assert len(keys) == 2 and all(len(k) <= MAX_KEY_CHARS for k in keys)
    short = ReactionEvent(HERE, "1", who, "👍", True)
    assert dedup_key(short) == "reaction:console:c:1:u:👍:1"


@pytest.fixture(params=ENGINES)
async def copss_on(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[App]:
    """copss (console adapter, starter knowledge base) on each engine."""
    async with store_on(request.param, tmp_path, migrated=False) as db:
        url = db.url.render_as_string(hide_password=False)
        console = ConsoleAdapter("you")
        async with App(Config(storage=StorageConfig(url=url)), adapters=[console]) as app:
            task = asyncio.create_task(app.run(handle_signals=False))
            await app.started.wait()
            try:
                yield app
            finally:
                app.stop()
                await asyncio.wait_for(task, 30)


async def test_a_message_with_nul_and_a_lone_surrogate_is_stored_and_answered(
    copss_on: App,
) -> None:
    app = copss_on
    assert app.hub is not None and app.db is not None
    console = app.hub.adapters["console"]
    assert isinstance(console, ConsoleAdapter)
    text = "How do I get a BSN\x00 number? \ud800"
    name = "Mal\x00ory \udc00"
    await console.push(text, user=name)
    async with asyncio.timeout(20):
        await app.hub.settled()
    db: Database = app.db
    async with db.session() as s:
        stored = (await s.scalars(select(Message.text))).all()
        members = (await s.execute(select(Member.user_id, Member.display_name))).all()
        errors = (await s.scalars(select(InboxEvent.error))).all()
    assert "How do I get a BSN number? \ufffd" in stored
    assert errors == [None]
    assert ("malory \ufffd", "Malory \ufffd") in [tuple(m) for m in members]
    said = console.drain()
    assert said and "BSN" in said[0].text
