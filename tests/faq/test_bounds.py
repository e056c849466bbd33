"""Hostile text costs bounded time: long words, long messages and many terms are cut to size,
and the matcher's CPU work runs off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from faq.detect import detect_question
from faq.matcher import MAX_QUERY_WORDS, Features, LexicalMatcher, PreparedQuery
from faq.normalize import MAX_TERM_CHARS, MAX_TEXT_CHARS, clean, search_terms, search_text
from storage.engine import Database
from storage.repos.conversation import ConversationRepo
from storage.repos.search import SearchHit, SearchRepo
from storage.repos.threads import ThreadRepo

NOW = datetime(2026, 1, 1, tzinfo=UTC)
QUESTIONS = (
    "Where can I recycle old paint in Groningen?",
    "How do I register at the gemeente after moving house?",
    "Which documents does the IND want for a residence permit renewal?",
)


async def _store(db: Database, texts: Sequence[str] = QUESTIONS) -> None:
    async with db.session() as s:
        repo = ConversationRepo(s)
        channel = await repo.ensure_channel("console", "c", None)
        asker = await repo.ensure_member("console", "alice", "alice")
        for n, text in enumerate(texts):
            message, _ = await repo.add_message(channel, f"q{n}", asker, text, NOW)
            await ThreadRepo(s).create(
                channel.community_id, message, text, search_text([text]), NOW
            )


def test_words_longer_than_the_cap_are_not_search_terms() -> None:
    assert search_terms("x" * MAX_TERM_CHARS) == ["x" * MAX_TERM_CHARS]
    assert search_terms("paint " + "y" * (MAX_TERM_CHARS + 1) + " groningen") == [
        "paint",
        "groningen",
    ]


def test_only_the_first_max_text_chars_are_normalised() -> None:
    text = "paint " * (MAX_TEXT_CHARS // 6) + "groningen"
    assert "groningen" not in clean(text)
    # One character that NFKC expands eighteen-fold is still cut to the same size.
    assert len(clean("\ufdfa" * MAX_TEXT_CHARS)) <= MAX_TEXT_CHARS


def test_question_detection_is_linear_on_repeated_guarded_cues() -> None:
    # Each "need help" is negated, so every cue's guard runs; it used to search everything
    # before each cue (22 s for 100k characters).
    text = "no need help " * 80_000
    started = time.perf_counter()
    assert not detect_question(text).is_question
    assert time.perf_counter() - started < 1.0
    # Judging is unchanged where the cues are.
    assert not detect_question("I really don't need help with this, thanks").is_question
    assert detect_question("hi all, I need help with my tax return").is_question
    assert not detect_question("Not sure how it works but you can just call them").is_question


async def test_one_long_word_in_a_question_costs_little(db: Database) -> None:
    await _store(db)
    # A 5,000-character word used to cost 12.5 million bisections (seconds; 20,000: minutes).
    for size in (5_000, 20_000, 1_000_000):
        started = time.perf_counter()
        async with db.session() as s:
            await LexicalMatcher(now=NOW).match(
                SearchRepo(s), "recycle old paint " + "p" * size, community_id=None
            )
        assert time.perf_counter() - started < 1.0, size


async def test_glued_known_words_are_bounded(db: Database) -> None:
    # Words made of indexed stems are the containment search's worst case.
    await _store(db)
    glued = " ".join(("paintgroningenregistergemeente" * 2)[i : i + 40] for i in range(200))
    started = time.perf_counter()
    async with db.session() as s:
        await LexicalMatcher(now=NOW).match(SearchRepo(s), glued[:4096], community_id=None)
    assert time.perf_counter() - started < 1.5


class _Recording(LexicalMatcher):
    """A matcher that notes which thread scored the candidates and what it was asked."""

    def __init__(self) -> None:
        super().__init__(now=NOW)
        self.threads: list[int] = []
        self.queries: list[PreparedQuery] = []

    def features(self, query: PreparedQuery, hits: Sequence[SearchHit]) -> list[Features]:
        self.threads.append(threading.get_ident())
        self.queries.append(query)
        return super().features(query, hits)


async def test_scoring_runs_off_the_event_loop_with_a_bounded_query(db: Database) -> None:
    await _store(db)
    matcher = _Recording()
    words = " ".join(f"paint{n}x" for n in range(500))
    async with db.session() as s:
        await matcher.match(SearchRepo(s), f"recycle old paint {words}", community_id=None)
    assert matcher.threads and threading.get_ident() not in matcher.threads
    [query] = matcher.queries
    assert len(query.words) == MAX_QUERY_WORDS
    assert query.words[:3] == ["recycle", "old", "paint"]


async def test_a_worst_case_message_does_not_stall_the_loop(db: Database) -> None:
    await _store(db)
    glued = " ".join(("paintgroningenregistergemeente" * 2)[i : i + 40] for i in range(200))
    one_word = "recycle old paint in groningen " + "p" * 4_000
    loop = asyncio.get_running_loop()
    stalls: list[float] = []
    since = loop.time()

    async def tick() -> None:
        nonlocal since
        while True:
            since = loop.time()
            await asyncio.sleep(0.001)
            stalls.append(loop.time() - since - 0.001)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        for text in (glued[:4096], one_word):
            async with db.session() as s:
                await LexicalMatcher(now=NOW).match(SearchRepo(s), text, community_id=None)
    finally:
        # A stall the matching ended with, which the ticker has not woken from yet.
        stalls.append(loop.time() - since - 0.001)
        ticker.cancel()
    # The scoring holds the interpreter lock for at most a switch interval (5 ms) at a time;
    # a generous bound, far under what scoring everything on the loop took (seconds).
    assert stalls and max(stalls) < 0.05
