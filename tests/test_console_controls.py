"""The console's /react, /edit and /delete: each says what it did, and only a message's author
may edit or delete it (copss's messages are nobody's to change)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.base import AdapterError
from adapters.console import ConsoleAdapter
from bot.app import App
from storage.models import InboxEvent, Message
from tests.conftest import Harness, make_config

QUESTION = "How do I get a BSN number?"


async def run_script(tmp_path: Path, lines: list[str]) -> list[str]:
    """Pipe ``lines`` into a terminal console on copss; what it printed, line by line."""
    stdin, screen = io.StringIO("".join(line + "\n" for line in lines)), io.StringIO()
    console = ConsoleAdapter("you", terminal=True, stdin=stdin, stdout=screen)
    async with App(make_config(tmp_path), adapters=[console]) as app:
        # The console ends copss at the end of its input, once every line is handled.
        await asyncio.wait_for(app.run(handle_signals=False), 30)
    return [line for line in screen.getvalue().splitlines() if not line.startswith("#")]


async def test_react_edit_delete_confirm_in_one_line(tmp_path: Path) -> None:
    printed = await run_script(
        tmp_path,
        [QUESTION, "/react 2 ✅", "/edit 1 How do I get a BSN?", "/delete 1"],
    )
    notes = [line for line in printed if line.startswith("(")]
    assert notes == ["(reacted ✅ to #2)", "(#1 edited)", "(#1 deleted)"]


async def test_only_the_author_edits_or_deletes(tmp_path: Path) -> None:
    printed = await run_script(
        tmp_path,
        [
            QUESTION,
            "/edit 2 hacked",
            "/delete 2",
            "/as alice",
            "/edit 1 hacked",
            "/delete #1",
            "/as You",
            "/edit 1 How do I get a BSN?",
            "/delete 1",
            "/edit 1 again",
            "/edit 9 nothing there",
        ],
    )
    notes = [line for line in printed if line.startswith("(") or line.startswith("there")]
    assert notes == [
        "(sorry, #2 was written by copss: only its author may edit it)",
        "(sorry, #2 was written by copss: only its author may delete it)",
        "(you are now alice)",
        "(sorry, #1 was written by you: only its author may edit it)",
        "(sorry, #1 was written by you: only its author may delete it)",
        "(you are now You)",
        "(#1 edited)",
        "(#1 deleted)",
        "(#1 was deleted)",
        "there is no message #9 in this console session",
    ]


async def stored(copss: Harness) -> tuple[list[tuple[Any, ...]], int]:
    async with copss.db.session() as s:
        rows = (await s.execute(select(Message).order_by(Message.id))).scalars().all()
        events = await s.scalar(select(func.count()).select_from(InboxEvent))
    return [(m.id, m.text, m.edited_at, m.deleted) for m in rows], int(events or 0)


async def test_refused_edit_or_delete_changes_nothing(copss: Harness) -> None:
    question = await copss.say(QUESTION, "alice")
    [reply] = copss.said()
    before = await stored(copss)
    assert any(text == reply.text for _, text, _, _ in before[0])  # copss's answer is stored

    for attempt in (
        copss.console.edit_message(reply.number, "hacked", user="mallory"),
        copss.console.edit_message(reply.number, "hacked", user="alice"),
        copss.console.delete_message(reply.number, user="alice"),
        copss.console.edit_message(question, "hacked", user="mallory"),
        copss.console.delete_message(question, user="mallory"),
    ):
        with pytest.raises(AdapterError, match=r"only its author may (edit|delete) it"):
            await attempt
    await copss.settle()
    assert await stored(copss) == before

    # The author may (a name is the same member whatever its case).
    await copss.console.edit_message(question, "How do I get a BSN?", user="Alice")
    await copss.settle()
    async with copss.db.session() as s:
        texts = set((await s.scalars(select(Message.text))).all())
    assert "How do I get a BSN?" in texts and QUESTION not in texts
