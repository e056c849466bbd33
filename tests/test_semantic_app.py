"""copss with semantic matching on: the model in its data folder is loaded at start, the
starter entries and new questions are embedded, and without a model copss matches on words."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.console import ConsoleAdapter
from bot.app import App
from faq.embedding import model_folder
from faq.semantic import SemanticMatcher
from storage.models import Channel, Embedding, FaqEntry, Thread
from tests.conftest import Harness, make_config
from tests.faq.tiny_model import make_tiny_model


@pytest.fixture
async def semantic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    home = tmp_path / "home"
    monkeypatch.setenv("COPSS_HOME", str(home))
    make_tiny_model(model_folder(home, "tiny-test"))
    console = ConsoleAdapter("you")
    config = make_config(tmp_path, model="tiny-test")
    async with App(config, adapters=[console]) as app:
        task = asyncio.create_task(app.run(handle_signals=False))
        await app.started.wait()
        yield Harness(app, console)
        app.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def _embedded(h: Harness, kind: str) -> int:
    async with h.db.session() as s:
        return int(
            await s.scalar(select(func.count(Embedding.id)).where(Embedding.kind == kind)) or 0
        )


async def test_starter_entries_and_new_questions_are_embedded(semantic: Harness) -> None:
    assert semantic.app.semantic is not None
    assert isinstance(semantic.app.hub.handlers[-1].matcher, SemanticMatcher)  # type: ignore[union-attr]
    async with semantic.db.session() as s:
        entries = int(await s.scalar(select(func.count(FaqEntry.id))) or 0)
    # The backfill job embeds the starter knowledge base in the background.
    async with asyncio.timeout(20):
        await semantic.app.embedded.wait()
    assert await _embedded(semantic, "faq") == entries
    await semantic.say("Where can I recycle old paint in Utrecht?", "alice")
    async with semantic.db.session() as s:
        thread = await s.scalar(select(Thread))
    assert thread is not None
    assert ("thread", thread.id) in semantic.app.semantic.index
    assert await _embedded(semantic, "thread") == 1


async def test_without_a_model_copss_matches_on_words_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("COPSS_HOME", str(tmp_path / "empty-home"))
    caplog.set_level(logging.WARNING)
    config = make_config(tmp_path, model="all-MiniLM-L6-v2")
    async with App(config, adapters=[ConsoleAdapter("you")]) as app:
        assert app.semantic is None
    lines = [r.getMessage() for r in caplog.records if "semantic matching is off" in r.getMessage()]
    assert len(lines) == 1 and "fetching is off" in lines[0]


def test_the_gate_defaults_to_the_levels_calibrated_for_the_matcher() -> None:
    from bot.config import Config, MatchingConfig
    from bot.semantic_setup import gate_of
    from faq.matcher import Gate
    from faq.semantic import SEMANTIC_GATE

    defaults = Config()
    assert gate_of(defaults, semantic=True).answer_at == SEMANTIC_GATE.answer_at
    assert gate_of(defaults, semantic=True).suggest_at == SEMANTIC_GATE.suggest_at
    assert gate_of(defaults, semantic=False).answer_at == Gate().answer_at
    # A level the operator set wins, whichever matcher runs.
    chosen = Config(matching=MatchingConfig(answer_at=0.9))
    assert gate_of(chosen, semantic=True).answer_at == 0.9
    assert gate_of(chosen, semantic=True).suggest_at == SEMANTIC_GATE.suggest_at


async def test_vector_index_follows_link_and_unlink(semantic: Harness) -> None:
    # The vector index serves each document in its community: after an unlink, one chat's
    # questions must not be found from the other (an isolation leak), and after a link they
    # must be found from both. Entries an unlink copies into a new community get embedded.
    from tests.test_communities import run, say

    app = semantic.app
    assert app.semantic is not None
    index = app.semantic.index
    async with asyncio.timeout(20):
        await app.embedded.wait()
    await say(semantic, "a", "Which gemeente office in Delft does registrations on Saturday?")
    await say(semantic, "b", "Which gemeente office in Leiden does registrations on Saturday?")
    await run(
        semantic, "a", "faq", "add delft-office | Delft office? | Stadskantoor. | https://d.nl"
    )

    async def placed() -> dict[str, int | None]:
        async with semantic.db.session() as s:
            chats = dict((await s.execute(select(Channel.chat_id, Channel.community_id))).all())
            rows = (await s.execute(select(Thread.id, Thread.question_text))).all()
        found = {}
        for thread_id, question in rows:
            place = index.place("thread", thread_id)
            found["Delft" if "Delft" in question else "Leiden"] = place[0] if place else None
        found["a"], found["b"] = chats["a"], chats["b"]
        return found

    before = await placed()
    assert before["Delft"] == before["a"] != before["Leiden"] == before["b"]
    assert (
        "Linked"
        in (
            await run(semantic, "a", "link", "console:b"),
            await run(semantic, "b", "link", "console:a"),
        )[1]
    )
    linked = await placed()
    assert linked["a"] == linked["b"] == linked["Delft"] == linked["Leiden"]

    assert "Unlinked" in await run(semantic, "a", "unlink", "console:b")
    parted = await placed()
    assert parted["a"] != parted["b"]
    assert parted["Delft"] == parted["a"] and parted["Leiden"] == parted["b"]
    async with semantic.db.session() as s:
        copies = (
            await s.execute(
                select(FaqEntry.id, FaqEntry.community_id).where(FaqEntry.slug == "delft-office")
            )
        ).all()
    assert {community for _, community in copies} == {parted["a"], parted["b"]}
    for entry_id, community in copies:
        assert index.place("faq", entry_id) == (community, True)


async def test_threshold_says_its_levels_are_cosines(semantic: Harness) -> None:
    from tests.test_communities import run

    shown = await run(semantic, "a", "threshold")
    assert "both on the cosine similarity of the question's and the match's" in shown


async def test_copss_answers_on_words_while_the_vector_index_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large store takes minutes to load its vector index; copss does not wait for it at
    # start: until it is loaded, questions are ranked on their words and the word-matching
    # gate decides (the reply's suggestion records basis "confidence"); then the cosine.
    import bot.semantic_setup
    from storage.models import Suggestion

    home = tmp_path / "home"
    monkeypatch.setenv("COPSS_HOME", str(home))
    make_tiny_model(model_folder(home, "tiny-test"))
    release = asyncio.Event()
    real_fill = bot.semantic_setup.fill_index

    async def slow_fill(db: object, index: object) -> int:
        await release.wait()
        return await real_fill(db, index)  # type: ignore[arg-type]

    monkeypatch.setattr(bot.semantic_setup, "fill_index", slow_fill)
    console = ConsoleAdapter("you")
    async with App(make_config(tmp_path, model="tiny-test"), adapters=[console]) as app:
        task = asyncio.create_task(app.run(handle_signals=False))
        await app.started.wait()  # started although the index is not loaded
        h = Harness(app, console)
        assert app.semantic is not None and not app.semantic.loaded.is_set()
        await h.say("How do I get a BSN number?", "alice")
        assert any("BSN" in r.text for r in h.said())
        release.set()
        async with asyncio.timeout(20):
            await app.embedded.wait()
        assert app.semantic.loaded.is_set()
        await h.say("How do I apply for DigiD?", "bob")
        h.said()
        async with h.db.session() as s:
            bases = [b for b in (await s.scalars(select(Suggestion.basis).order_by(Suggestion.id)))]
        app.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert bases[0] == "confidence" and bases[-1] == "cosine", bases
