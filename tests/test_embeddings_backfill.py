"""The embedding backfill job, the index built from the store, and embedding on write, on
SQLite and PostgreSQL with a deterministic fake embedder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, insert, select, update

from bot.features.embeddings import (
    Backfill,
    embed_now,
    follow_communities,
    forget_other_models,
    load_index,
)
from faq.vector_index import VectorIndex
from storage.engine import Database
from storage.models import Community, Embedding, FaqEntry, Thread
from tests.engines import ENGINES, store_on
from tests.fakes.embedder import HashingEmbedder

TOPICS = ["bike", "tax", "visa", "housing", "doctor", "train", "bank", "school"]


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with store_on(request.param, tmp_path) as db:
        yield db


async def communities(db: Database) -> tuple[int, int]:
    async with db.session() as s:
        a, b = Community(name="a", settings={}), Community(name="b", settings={})
        s.add_all([a, b])
        await s.flush()
        return a.id, b.id


async def fill(db: Database, threads: int) -> tuple[int, int]:
    """``threads`` threads alternating between two communities, one entry each, one global."""
    a, b = await communities(db)
    async with db.session() as s:
        await s.execute(
            insert(Thread),
            [
                {
                    "community_id": a if i % 2 else b,
                    "question_text": f"question {i} about the {TOPICS[i % len(TOPICS)]}?",
                    "search_text": "",
                    "status": "answered",
                    "tags": [],
                }
                for i in range(threads)
            ],
        )
        s.add_all(
            [
                FaqEntry(community_id=a, slug="bike", question="Bike parking?", answer="Here."),
                FaqEntry(community_id=b, slug="bike", question="Bike rules?", answer="There."),
                FaqEntry(community_id=None, slug="digid", question="DigiD?", answer="Apply."),
            ]
        )
    return a, b


async def embedding_rows(db: Database) -> list[tuple[str, int]]:
    async with db.session() as s:
        found = await s.execute(select(Embedding.kind, Embedding.ref_id))
        return sorted((k, int(r)) for k, r in found.all())


async def documents(db: Database) -> list[tuple[str, int]]:
    async with db.session() as s:
        threads = (await s.scalars(select(Thread.id).where(Thread.status != "deleted"))).all()
        entries = (await s.scalars(select(FaqEntry.id))).all()
    return sorted([("thread", int(t)) for t in threads] + [("faq", int(e)) for e in entries])


async def test_backfill_embeds_everything_once(store: Database) -> None:
    await fill(store, 150)
    embedder = HashingEmbedder()
    index = VectorIndex(embedder.model_id, embedder.dim)
    progress = await Backfill(store, embedder, index, batch=32, scan=50).run()
    assert progress.finished and progress.embedded == 153
    assert progress.remaining_at_start == 153
    assert await embedding_rows(store) == await documents(store)
    assert len(index) == 153
    # Batches of at most 32, never a bare string, every text encoded once.
    assert all(1 <= len(call) <= 32 for call in embedder.calls)
    assert embedder.encoded == 153
    # Nothing to do the second time: no text is encoded again.
    again = await Backfill(store, embedder, index, batch=32).run()
    assert again.embedded == 0 and embedder.encoded == 153


async def test_backfill_resumes_after_being_cancelled(store: Database) -> None:
    await fill(store, 200)
    total = len(await documents(store))
    embedder = HashingEmbedder()
    embedder.gate = threading.Event()
    embedder.open_calls = 2  # the third batch is held while being encoded
    index = VectorIndex(embedder.model_id, embedder.dim)
    task = asyncio.create_task(Backfill(store, embedder, index, batch=32).run())
    await asyncio.wait_for(asyncio.to_thread(embedder.waiting.wait, 10), 15)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    embedder.gate.set()
    # Two batches were finished and stored (the three entries, then 32 threads); the one
    # cancelled while encoding was not.
    stored = await embedding_rows(store)
    assert len(stored) == 35
    assert len(index) == 35
    embedder.gate = None
    before = embedder.encoded
    progress = await Backfill(store, embedder, index, batch=32).run()
    # The rest, and only the rest, is encoded the second time.
    assert progress.embedded == total - 35
    assert embedder.encoded - before == total - 35
    rows = await embedding_rows(store)
    assert rows == await documents(store)
    assert len(rows) == len(set(rows)) == total
    assert len(index) == total


async def test_edited_question_is_embedded_again(store: Database) -> None:
    a, _ = await fill(store, 10)
    embedder = HashingEmbedder()
    index = VectorIndex(embedder.model_id, embedder.dim)
    await Backfill(store, embedder, index).run()
    async with store.session() as s:
        thread_id = await s.scalar(select(func.min(Thread.id)).where(Thread.community_id == a))
        assert thread_id is not None
        await s.execute(
            update(Thread)
            .where(Thread.id == thread_id)
            .values(question_text="How do I recycle paint in Delft?")
        )
    before = embedder.encoded
    progress = await Backfill(store, embedder, index).run()
    assert progress.embedded == 1 and embedder.encoded == before + 1
    assert embedder.calls[-1] == ["How do I recycle paint in Delft?"]
    hits = index.search(embedder.vector("recycle paint Delft"), a, k=1)
    assert hits[0][:2] == ("thread", thread_id)
    # The stored row was replaced, not added to.
    assert len(await embedding_rows(store)) == 13


async def test_embed_now_on_write_edit_and_delete(store: Database) -> None:
    a, b = await communities(store)
    embedder = HashingEmbedder()
    index = VectorIndex(embedder.model_id, embedder.dim)
    async with store.session() as s:
        thread = Thread(community_id=a, question_text="Where do I register my bike?")
        s.add(thread)
        await s.flush()
        assert await embed_now(s, embedder, index, "thread", thread.id) is True
        thread_id = thread.id
    assert ("thread", thread_id) in await embedding_rows(store)
    assert index.search(embedder.vector("register bike"), a, k=1)[0][:2] == ("thread", thread_id)
    async with store.session() as s:
        # Unchanged text: not encoded again, but the index learns where it is served.
        assert await embed_now(s, embedder, index, "thread", thread_id) is False
        assert len(embedder.calls) == 1
        # Edited (the caller's transaction, not yet committed): encoded again.
        await s.execute(
            update(Thread).where(Thread.id == thread_id).values(question_text="Tax return help")
        )
        assert await embed_now(s, embedder, index, "thread", thread_id) is True
    async with store.session() as s:
        stored = await s.scalar(select(Embedding).where(Embedding.ref_id == thread_id))
        assert stored is not None
        np.testing.assert_allclose(
            np.frombuffer(stored.vector, dtype="<f2"), embedder.vector("Tax return help"), atol=1e-3
        )
    assert index.search(embedder.vector("tax return help"), a, k=1)[0][2] > 0.99
    async with store.session() as s:
        entry = FaqEntry(community_id=b, slug="x", question="Bike?", aliases=["fiets"], answer="!")
        s.add(entry)
        await s.flush()
        await embed_now(s, embedder, index, "faq", entry.id)
        entry_id = entry.id
    assert embedder.calls[-1] == ["Bike?\nfiets"]
    assert index.place("faq", entry_id) == (b, True)
    async with store.session() as s:
        # The question is deleted on the platform: out of the index, and its row goes.
        await s.execute(update(Thread).where(Thread.id == thread_id).values(status="deleted"))
        assert await embed_now(s, embedder, index, "thread", thread_id) is False
    assert ("thread", thread_id) not in index
    assert await embedding_rows(store) == [("faq", entry_id)]


async def test_load_index_rebuilds_what_the_store_holds(store: Database) -> None:
    a, b = await fill(store, 120)
    embedder = HashingEmbedder(dim=256)
    live = VectorIndex(embedder.model_id, embedder.dim)
    await Backfill(store, embedder, live).run()
    async with store.session() as s:
        # A community's row that hides a global entry is stored but never served.
        s.add(FaqEntry(community_id=a, slug="digid", question="DigiD?", answer="", hidden=True))
        await s.flush()
    await Backfill(store, embedder, live).run()
    loaded = await load_index(store, embedder.model_id, batch=50)
    assert loaded.dim == embedder.dim
    assert len(loaded) == len(live) == 123
    query = embedder.vector("question about the visa")
    for community in (a, b, None):
        # The same documents score the same, up to float16 storage (ties may swap).
        got = loaded.search(query, community, k=20)
        want = {(kind, ref): score for kind, ref, score in live.search(query, community, k=40)}
        assert len(got) == 20
        top = sorted(want.values(), reverse=True)[:20]
        assert [score for _, _, score in got] == pytest.approx(top, abs=2e-3)
        for kind, ref, score in got:
            assert score == pytest.approx(want[(kind, ref)], abs=2e-3)
    hidden = [r for (kind, r) in await documents(store) if kind == "faq"][-1]
    assert loaded.place("faq", hidden) == (a, False)
    # Another model has nothing stored.
    assert len(await load_index(store, "other:1")) == 0


async def test_backfill_logs_progress(store: Database, caplog: pytest.LogCaptureFixture) -> None:
    await fill(store, 40)
    embedder = HashingEmbedder()
    ticks = iter(range(0, 10_000, 3))
    job = Backfill(
        store,
        embedder,
        VectorIndex(embedder.model_id),
        batch=8,
        log_every=5.0,
        clock=lambda: float(next(ticks)),
    )
    with caplog.at_level(logging.INFO, logger="bot.features.embeddings"):
        await job.run()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == f"embedding 43 questions and FAQ entries with {embedder.model_id}"
    assert any(line.startswith(f"embedding with {embedder.model_id}: ") for line in lines)
    assert "/s, about " in next(line for line in lines if "to go" in line)
    assert lines[-1].startswith(f"embeddings up to date for {embedder.model_id}: 43 embedded")


async def test_backfill_refuses_an_index_of_another_model(store: Database) -> None:
    with pytest.raises(ValueError, match="model"):
        Backfill(store, HashingEmbedder(), VectorIndex("other:1"))


async def test_index_follows_communities_merged_or_split(store: Database) -> None:
    a, b = await fill(store, 20)
    embedder = HashingEmbedder(dim=128)
    index = VectorIndex(embedder.model_id, embedder.dim)
    await Backfill(store, embedder, index).run()
    async with store.session() as s:
        moving = await s.scalar(select(func.min(Thread.id)).where(Thread.community_id == a))
        assert moving is not None
        text = await s.scalar(select(Thread.question_text).where(Thread.id == moving))
        # What linking does in the store: community a's thread now belongs to b, and b gets
        # a copy of a's entry.
        await s.execute(update(Thread).where(Thread.id == moving).values(community_id=b))
        s.add(FaqEntry(community_id=b, slug="copied", question="Copied entry?", answer="."))
    assert text is not None
    query = embedder.vector(text)
    assert index.search(query, a, k=1)[0][:2] == ("thread", moving)
    assert await follow_communities(store, index, [b]) == 1
    assert index.search(query, b, k=1)[0][:2] == ("thread", moving)
    assert ("thread", moving) not in [h[:2] for h in index.search(query, a, k=50)]
    # Nothing left to move; the copied entry is embedded by the next backfill.
    assert await follow_communities(store, index) == 0
    assert (await Backfill(store, embedder, index).run()).embedded == 1
    assert index.search(embedder.vector("Copied entry?"), b, k=1)[0][2] > 0.99


async def test_forget_other_models(store: Database) -> None:
    await fill(store, 5)
    old, new = HashingEmbedder(model_id="old:1"), HashingEmbedder(model_id="new:1")
    await Backfill(store, old, VectorIndex(old.model_id)).run()
    await Backfill(store, new, VectorIndex(new.model_id)).run()
    assert await forget_other_models(store, new.model_id) == {"old:1": 8}
    async with store.session() as s:
        models = (await s.scalars(select(Embedding.model_id).distinct())).all()
    assert models == ["new:1"]
