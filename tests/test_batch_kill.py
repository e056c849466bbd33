"""copss as its own process, SIGKILLed while it handles a burst in batches, then restarted:
nothing is lost, nothing is handled twice, no reply is posted twice."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.dispatch import BATCH_CUT
from storage.engine import Database, sqlite_url
from storage.models import InboxEvent, Member, Message, Thread
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.test_delivery_policy import Process

pytestmark = [pytest.mark.slow, pytest.mark.faults]

GROUPS = [-1001000000000 - n for n in range(8)]
MEMBERS = list(range(5000, 5012))
QUESTIONS = [
    "How do I get a BSN number?",
    "Where do I apply for DigiD?",
    "Do I need Dutch health insurance?",
    "How do I file my income tax return?",
    "Which supermarket sells cheap oat milk near Utrecht Centraal?",
]
BURST = 600


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    fake = FakeTelegramAPI()
    for group in GROUPS:
        fake.add_chat(group, "supergroup")
    for member in MEMBERS:
        fake.add_user(member, f"Member{member}")
    async with fake:
        yield fake


def push_burst(api: FakeTelegramAPI) -> list[str]:
    """A burst of questions, replies and chatter over the groups; returns the texts."""
    rnd = random.Random(7)
    texts = []
    said: dict[int, list[int]] = {g: [] for g in GROUPS}
    for n in range(BURST):
        group, member = rnd.choice(GROUPS), rnd.choice(MEMBERS)
        kind = rnd.random()
        reply = None
        if kind < 0.3:
            text = f"{rnd.choice(QUESTIONS)} (asking for the {n}th time)"
        elif kind < 0.7 and said[group]:
            text = f"Try the municipality office, it worked for me ({n})"
            reply = rnd.choice(said[group][-5:])
        else:
            text = f"Good morning everyone ({n})"
        update = api.push_message(group, member, text, reply_to_message_id=reply)
        said[group].append(update["message"]["message_id"])
        texts.append(text)
    return texts


def counts(path: Path) -> tuple[int, int]:
    """(events handled, events claimed for handling and not handled yet), read without taking
    the write lock (copss's own sessions take it)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        done, claimed = conn.execute(
            "SELECT count(handled_at), count(*) FILTER "
            "(WHERE handled_at IS NULL AND attempts > 0) FROM inbox"
        ).fetchone()
    return int(done), int(claimed)


def cut_batch(path: Path) -> set[int]:
    """The inbox rows of a batch copss was handling when it stopped (they say so)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT id FROM inbox WHERE handled_at IS NULL AND attempts = 1 AND error = ?",
            (BATCH_CUT,),
        ).fetchall()
    return {int(row_id) for (row_id,) in rows}


async def wait_until(path: Path, handled: int, claimed: int = 0) -> int:
    """Wait until at least ``handled`` events are handled and ``claimed`` are under way."""
    while True:
        done, under_way = await asyncio.to_thread(counts, path)
        if done >= handled and under_way >= claimed:
            return done
        await asyncio.sleep(0.005)


async def test_killed_during_a_batch_loses_nothing_and_handles_nothing_twice(
    tmp_path: Path, api: FakeTelegramAPI
) -> None:
    store = tmp_path / "copss.db"
    copss = await Process.start(tmp_path, api)
    db = Database(sqlite_url(store))
    try:
        await api.wait_for(lambda: bool(api.calls_to("getUpdates")), within=30)
        texts = push_burst(api)
        # Killed once a batch is done and the next one is under way.
        async with asyncio.timeout(60):
            await wait_until(store, handled=100, claimed=2)
        await copss.kill()
        at_kill = counts(store)[0]
        assert at_kill < BURST, "the burst was handled before the kill"
        cut = cut_batch(store)
        assert len(cut) >= 2, "no batch was under way at the kill"

        copss = await Process.start(tmp_path, api)
        async with asyncio.timeout(90):
            await wait_until(store, handled=BURST)
            # Replies still queued are sent before copss is stopped.
            await asyncio.sleep(1.0)
        await copss.kill()

        async with db.session() as s:
            events = (await s.scalars(select(InboxEvent))).all()
            stored = (
                await s.scalars(select(Message.text).join(Member).where(Member.is_bot.is_(False)))
            ).all()
            threads = (await s.scalars(select(Thread.question_message_id))).all()
    finally:
        await db.close()
    # Every message stored once, every event handled and none given up.
    assert len(events) == BURST
    assert [(e.dedup_key, e.error) for e in events if e.handled_at is None or e.error] == []
    assert sorted(stored) == sorted(texts)
    # The kill cut a batch short: its events, which said so, were handled alone after the
    # restart as the batch's try (a kill during a batch counts against none of them); nothing
    # was tried more often.
    assert {e.attempts for e in events} == {1}, (at_kill, Counter(e.attempts for e in events))
    assert {e.id for e in events if e.id in cut and e.handled_at and e.error is None} == cut
    # No question opened two threads, no reply was posted twice.
    assert len(threads) == len(set(threads)) > 0
    replied = Counter(
        (m["chat"]["id"], m["reply_to_message"]["message_id"])
        for m in api.sent_messages()
        if m.get("reply_to_message")
    )
    assert replied and max(replied.values()) == 1
