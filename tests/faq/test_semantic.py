"""Semantic ranking: nearest neighbours join the lexical candidates, within the community's
scope, and the cosine is part of every candidate's evidence."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from faq.index_text import thread_search_text
from faq.semantic import SemanticMatcher
from faq.vector_index import VectorIndex
from storage.engine import Database
from storage.models import Community, FaqEntry, Thread
from storage.repos.conversation import ConversationRepo
from storage.repos.search import SearchHit, SearchRepo
from storage.repos.threads import ThreadRepo
from tests.fakes.embedder import HashingEmbedder

NOW = datetime(2026, 1, 1, tzinfo=UTC)
#: Dutch words and their English meaning: what a multilingual encoder knows and FTS does not.
MEANING = {"fiets": "bike", "gestolen": "stolen", "waar": "where", "melden": "report"}


class MeaningEmbedder(HashingEmbedder):
    """Hashes words after mapping Dutch to English: texts that mean the same but share no
    word get the same vector."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        mapped = [" ".join(MEANING.get(w, w) for w in t.casefold().split()) for t in texts]
        return super().encode(mapped)


async def _thread(db: Database, chat: str, text: str, community: int | None = None) -> int:
    async with db.session() as s:
        repo = ConversationRepo(s)
        channel = await repo.ensure_channel("console", chat, None)
        if community is not None:
            channel.community_id = community
        asker = await repo.ensure_member("console", "alice", "alice")
        n = await ThreadRepo(s).count()
        message, _ = await repo.add_message(channel, f"q{n}", asker, text, NOW)
        thread = await ThreadRepo(s).create(
            channel.community_id, message, text, thread_search_text(text), NOW
        )
        helper = await repo.ensure_member("console", "bob", "bob")
        reply, _ = await repo.add_message(channel, f"a{n}", helper, "At the police.", NOW)
        await ThreadRepo(s).add_answer(thread, reply)
        return thread.id


async def _setup(db: Database) -> tuple[MeaningEmbedder, VectorIndex, dict[str, int]]:
    embedder = MeaningEmbedder(dim=64)
    index = VectorIndex(embedder.model_id, embedder.dim)
    ids = {
        "a": await _thread(db, "a", "where to report a stolen bike"),
        "a-other": await _thread(db, "a", "which supermarket sells oat milk"),
        "b": await _thread(db, "b", "where to report a stolen bike"),
    }
    async with db.session() as s:
        rows = (
            await s.execute(
                update(Thread).where(Thread.id.in_(ids.values())).values(status="answered")
            )
        ).rowcount
        assert rows == 3
        threads = {i: await s.get(Thread, i) for i in ids.values()}
    for thread in threads.values():
        assert thread is not None
        vector = embedder.encode([thread.question_text])
        index.add_many(["thread"], [thread.id], [thread.community_id], vector)
    return embedder, index, ids


async def _community(db: Database, thread_id: int) -> int:
    async with db.session() as s:
        thread = await s.get(Thread, thread_id)
        assert thread is not None
        return thread.community_id


async def test_a_rewording_with_no_shared_word_is_found_by_meaning(db: Database) -> None:
    embedder, index, ids = await _setup(db)
    community = await _community(db, ids["a"])
    matcher = SemanticMatcher(embedder, index)
    async with db.session() as s:
        lexical = await matcher.prepare(SearchRepo(s), "fiets gestolen waar melden")
        assert lexical is None or not await SearchRepo(s).candidates(
            lexical.queried_words, community
        )
        ranked = await matcher.rank(
            SearchRepo(s), "fiets gestolen waar melden", community_id=community
        )
    assert ranked, "the vector index found it"
    top = ranked[0]
    assert (top.hit.kind, top.hit.ref_id) == ("thread", ids["a"])
    assert top.features.cosine > 0.8
    # Only community a's threads: b's identical thread is not offered to a.
    assert all(r.hit.community_id == community for r in ranked)


async def test_lexical_candidates_get_their_cosine_too(db: Database) -> None:
    embedder, index, ids = await _setup(db)
    community = await _community(db, ids["a"])
    matcher = SemanticMatcher(embedder, index, vector_candidates=1)
    async with db.session() as s:
        ranked = await matcher.rank(
            SearchRepo(s), "which supermarket sells oat milk", community_id=community
        )
    by_id = {r.hit.ref_id: r for r in ranked}
    assert by_id[ids["a-other"]].features.cosine > 0.99
    assert ranked[0].hit.ref_id == ids["a-other"]


async def test_deleted_and_hidden_documents_are_not_served_from_the_index(db: Database) -> None:
    embedder, index, ids = await _setup(db)
    community = await _community(db, ids["a"])
    async with db.session() as s:
        await s.execute(update(Thread).where(Thread.id == ids["a"]).values(status="deleted"))
        text = "Where do I report a stolen bike?"
        hidden = FaqEntry(
            community_id=community, slug="bike", question=text, answer="x", hidden=True
        )
        shared = FaqEntry(community_id=None, slug="bike", question=text, answer="police")
        s.add_all([hidden, shared])
        await s.flush()
        for entry in (hidden, shared):
            index.add_many(
                ["faq"], [entry.id], [entry.community_id], embedder.encode([entry.question])
            )
        other = Community(name="other", settings={})
        s.add(other)
    matcher = SemanticMatcher(embedder, index)
    async with db.session() as s:
        ranked = await matcher.rank(
            SearchRepo(s), "fiets gestolen waar melden", community_id=community
        )
    served = {(r.hit.kind, r.hit.ref_id) for r in ranked}
    assert ("thread", ids["a"]) not in served  # deleted in the store
    assert ("faq", shared.id) not in served  # hidden by the community's own row
    assert ("faq", hidden.id) not in served


async def test_a_new_question_is_encoded_once_to_store_and_match(db: Database) -> None:
    from bot.features.embeddings import embed_now
    from faq.embedding import RecentVectors

    inner = MeaningEmbedder(dim=64)
    embedder = RecentVectors(inner)
    index = VectorIndex(embedder.model_id, embedder.dim)
    question = "where to report a stolen bike"
    thread_id = await _thread(db, "a", question)
    community = await _community(db, thread_id)
    async with db.session() as s:
        await embed_now(s, embedder, index, "thread", thread_id)
        await SemanticMatcher(embedder, index).rank(
            SearchRepo(s), question + "\n", community_id=community, exclude_thread=thread_id
        )
    encoded = [t for call in inner.calls for t in call]
    assert encoded.count(question) == 1
    # Rows come back in the order asked, remembered or not, and empty input stays empty.
    rows = embedder.encode(["other text", question])
    assert np.allclose(rows[1], inner.vector(" ".join(question.split())))
    assert embedder.encode([]).shape == (0, 64)


class _WaitsForTheStore(MeaningEmbedder):
    """An encoder that finishes only once the lexical search has reached the store."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim=dim)
        self.store_reached = threading.Event()
        self.encoded_before_store: bool | None = None

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.encoded_before_store = not self.store_reached.wait(timeout=2)
        return super().encode(texts)


class _SignallingRepo(SearchRepo):
    def __init__(self, session: AsyncSession, reached: threading.Event) -> None:
        super().__init__(session)
        self.reached = reached

    async def candidates(self, *args: Any, **kwargs: Any) -> list[SearchHit]:
        self.reached.set()
        return await super().candidates(*args, **kwargs)


async def test_the_question_is_encoded_while_the_lexical_search_runs(db: Database) -> None:
    _, index, ids = await _setup(db)
    community = await _community(db, ids["a"])
    embedder = _WaitsForTheStore(dim=64)
    matcher = SemanticMatcher(embedder, index)
    async with db.session() as s:
        ranked = await matcher.rank(
            _SignallingRepo(s, embedder.store_reached),
            "where to report a stolen bike",
            community_id=community,
        )
    # Encoding first and searching after would have the encoder wait out its timeout.
    assert embedder.encoded_before_store is False
    assert ranked[0].hit.ref_id == ids["a"]
