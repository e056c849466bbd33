"""Stored embeddings (migration 6, ``storage/repos/embeddings.py``) on SQLite and PostgreSQL:
float16 round trip, what needs embedding, bulk upsert, and rows leaving with their thread or
FAQ entry whichever way it is deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, func, inspect, select, text, update

from bot.features.embeddings import embed_text
from storage.engine import Database, sqlite_url
from storage.migrations import MIGRATIONS, upgrade
from storage.models import Community, Embedding, FaqEntry, Thread
from storage.repos.embeddings import EmbeddingRepo, NewVector, from_blobs, text_hash, to_blob
from tests.engines import ENGINES, store_on
from tests.fakes.embedder import HashingEmbedder

MODEL = "hashing-test:1"


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with store_on(request.param, tmp_path) as db:
        yield db


async def seed(db: Database) -> dict[str, int]:
    """A community with two threads and an entry of its own, and one global entry."""
    async with db.session() as s:
        community = Community(name="seed", settings={})
        s.add(community)
        await s.flush()
        first = Thread(community_id=community.id, question_text="How do I register at the city?")
        second = Thread(community_id=community.id, question_text="Where do I get a BSN number?")
        own = FaqEntry(
            community_id=community.id,
            slug="bike",
            question="Where can I park my bike?",
            aliases=["bike parking", "fietsenstalling"],
            answer="At the station.",
        )
        shared = FaqEntry(
            community_id=None, slug="digid", question="How do I get DigiD?", answer="Apply."
        )
        s.add_all([first, second, own, shared])
        await s.flush()
        return {
            "community": community.id,
            "first": first.id,
            "second": second.id,
            "own": own.id,
            "shared": shared.id,
        }


async def embed_all(db: Database, embedder: HashingEmbedder) -> int:
    """Store an embedding for everything pending (the repository alone, no job)."""
    done = 0
    async with db.session() as s:
        repo = EmbeddingRepo(s)
        for kind in ("thread", "faq"):
            page = await repo.pending(embedder.model_id, kind, embed_text)
            vectors = embedder.encode([p.text for p in page.pending])
            done += await repo.upsert_many(
                embedder.model_id,
                [NewVector(kind, p.source.ref_id, p.text_hash) for p in page.pending],
                vectors.reshape(len(page.pending), embedder.dim),
            )
    return done


async def rows(db: Database) -> list[tuple[str, int, str]]:
    async with db.session() as s:
        found = await s.execute(
            select(Embedding.kind, Embedding.ref_id, Embedding.model_id).order_by(
                Embedding.kind, Embedding.ref_id
            )
        )
        return [(k, int(r), m) for k, r, m in found.all()]


def test_blob_is_float16_little_endian() -> None:
    vector = np.array([1.0, -0.5, 0.333333, 2.0e-5], dtype=np.float32)
    blob = to_blob(vector)
    assert len(blob) == 8
    assert blob[:2] == b"\x00\x3c"  # 1.0 as IEEE half, little-endian
    back = from_blobs([blob], 4)[0]
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, vector, rtol=1e-3, atol=1e-6)


async def test_round_trip_float16(store: Database) -> None:
    ids = await seed(store)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with store.session() as s:
        written = await EmbeddingRepo(s).upsert_many(
            MODEL,
            [
                NewVector("thread", ids["first"], "a" * 64),
                NewVector("faq", ids["shared"], "b" * 64),
            ],
            vectors,
        )
    assert written == 2
    async with store.session() as s:
        repo = EmbeddingRepo(s)
        stored = await s.scalar(select(Embedding).where(Embedding.kind == "thread"))
        assert stored is not None
        assert stored.dim == 384 and len(stored.vector) == 384 * 2
        assert stored.updated_at.tzinfo is not None
        batches = [b async for b in repo.load_all(MODEL, batch=1)]
        one = await repo.stored("faq", ids["shared"], MODEL)
    assert [len(b) for b in batches] == [1, 1]
    assert [b.kinds[0] for b in batches] == ["thread", "faq"]
    assert [int(b.ref_ids[0]) for b in batches] == [ids["first"], ids["shared"]]
    assert [b.community_ids[0] for b in batches] == [ids["community"], None]
    assert [b.statuses[0] for b in batches] == ["open", "entry"]
    loaded = np.vstack([b.vectors for b in batches])
    assert loaded.dtype == np.float32
    # float16 keeps ~3 significant digits; cosine to the original stays above 0.9999.
    np.testing.assert_allclose(loaded, vectors, atol=2e-3)
    cos = (loaded * vectors).sum(axis=1) / np.linalg.norm(loaded, axis=1)
    assert cos.min() > 0.9999
    assert one is not None and one[0] == "b" * 64
    np.testing.assert_allclose(one[1], vectors[1], atol=2e-3)


async def test_upsert_replaces_one_row_per_document_and_model(store: Database) -> None:
    ids = await seed(store)
    ones = np.ones((1, 4), dtype=np.float32)
    async with store.session() as s:
        repo = EmbeddingRepo(s)
        await repo.upsert_many(MODEL, [NewVector("thread", ids["first"], "old")], ones)
        await repo.upsert_many(MODEL, [NewVector("thread", ids["first"], "new")], -ones)
        await repo.upsert_many("other:1", [NewVector("thread", ids["first"], "x")], ones)
    async with store.session() as s:
        repo = EmbeddingRepo(s)
        mine = await repo.stored("thread", ids["first"], MODEL)
        assert await repo.models() == {MODEL: 1, "other:1": 1}
        assert await repo.delete_model("other:1") == 1
        assert await repo.models() == {MODEL: 1}
    assert mine is not None and mine[0] == "new"
    np.testing.assert_array_equal(mine[1], -ones[0])


async def test_pending_is_missing_or_changed_text(store: Database) -> None:
    ids = await seed(store)
    embedder = HashingEmbedder()
    async with store.session() as s:
        repo = EmbeddingRepo(s)
        threads = await repo.pending(MODEL, "thread", embed_text)
        entries = await repo.pending(MODEL, "faq", embed_text)
        assert await repo.remaining(MODEL) == 4
    # Newest first; the entry's text is its question and aliases, one per line.
    assert [p.source.ref_id for p in threads.pending] == [ids["second"], ids["first"]]
    assert threads.next_after is None and threads.scanned == 2
    own = next(p for p in entries.pending if p.source.ref_id == ids["own"])
    assert own.text == "Where can I park my bike?\nbike parking\nfietsenstalling"
    assert own.text_hash == text_hash(own.text)
    assert await embed_all(store, embedder) == 4
    async with store.session() as s:
        repo = EmbeddingRepo(s)
        assert (await repo.pending(MODEL, "thread", embed_text)).pending == []
        assert (await repo.pending("another:1", "thread", embed_text)).scanned == 2
        assert await repo.remaining(MODEL) == 0
        # An edited question and edited aliases are pending again; the others are not.
        await s.execute(
            update(Thread).where(Thread.id == ids["first"]).values(question_text="Register how?")
        )
        await s.execute(
            update(FaqEntry).where(FaqEntry.id == ids["own"]).values(aliases=["bicycle"])
        )
        assert [
            p.source.ref_id for p in (await repo.pending(MODEL, "thread", embed_text)).pending
        ] == [ids["first"]]
        assert [
            p.source.ref_id for p in (await repo.pending(MODEL, "faq", embed_text)).pending
        ] == [ids["own"]]
        # Paging: one row per page, continuing below the last id seen.
        page = await repo.pending(MODEL, "thread", embed_text, scan=1)
        assert page.pending == [] and page.next_after == ids["second"]
        page = await repo.pending(MODEL, "thread", embed_text, after=page.next_after, scan=1)
        assert [p.source.ref_id for p in page.pending] == [ids["first"]]


async def test_deleting_a_thread_or_entry_removes_its_embeddings(store: Database) -> None:
    ids = await seed(store)
    embedder = HashingEmbedder()
    await embed_all(store, embedder)
    async with store.session() as s:
        await EmbeddingRepo(s).upsert_many(
            "other:1", [NewVector("thread", ids["first"], "h")], np.ones((1, 4), np.float32)
        )
    assert len(await rows(store)) == 5
    async with store.session() as s:
        # The ORM's delete (forget me, faq remove) ...
        thread = await s.get(Thread, ids["first"])
        await s.delete(thread)
        entry = await s.get(FaqEntry, ids["own"])
        await s.delete(entry)
    async with store.session() as s:
        # ... a bulk delete (kb load) ...
        await s.execute(delete(FaqEntry).where(FaqEntry.id == ids["shared"]))
        # ... and a question deleted on the platform (the thread row stays).
        await s.execute(update(Thread).where(Thread.id == ids["second"]).values(status="deleted"))
    assert await rows(store) == []
    async with store.session() as s:
        assert await s.scalar(select(func.count(Thread.id))) == 1
        # A deleted question is not pending either.
        assert (await EmbeddingRepo(s).pending(MODEL, "thread", embed_text)).pending == []


async def test_answering_or_solving_a_thread_keeps_its_embedding(store: Database) -> None:
    ids = await seed(store)
    await embed_all(store, HashingEmbedder())
    async with store.session() as s:
        await s.execute(update(Thread).where(Thread.id == ids["first"]).values(status="solved"))
    assert ("thread", ids["first"], MODEL) in await rows(store)


async def check_migration_6(db: Database) -> None:
    await upgrade(db)
    ids = await seed(db)
    # What a store before version 6 looked like: no embedding table, no triggers.
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            for trigger in ("thread_embedding_ad", "thread_embedding_au", "faq_embedding_ad"):
                await conn.execute(text(f"DROP TRIGGER {trigger}"))
        else:
            await conn.execute(text("DROP TRIGGER thread_embedding_ad ON thread"))
            await conn.execute(text("DROP TRIGGER thread_embedding_au ON thread"))
            await conn.execute(text("DROP TRIGGER faq_embedding_ad ON faq_entry"))
            await conn.execute(text("DROP FUNCTION copss_embedding_forget()"))
        await conn.execute(text("DROP TABLE embedding"))
        await conn.execute(text("DELETE FROM schema_version WHERE version >= 6"))
    assert await upgrade(db) == [m.version for m in MIGRATIONS if m.version >= 6]
    assert await upgrade(db) == []
    # The table has the model's columns and keys, and the triggers work.
    async with db.engine.connect() as conn:
        shape = await conn.run_sync(
            lambda c: (
                {col["name"] for col in inspect(c).get_columns("embedding")},
                [u["column_names"] for u in inspect(c).get_unique_constraints("embedding")],
                [i["column_names"] for i in inspect(c).get_indexes("embedding")],
            )
        )
    assert shape[0] == {c.name for c in Embedding.__table__.columns}
    assert shape[1] == [["kind", "ref_id", "model_id"]]
    assert ["model_id", "id"] in shape[2]
    await embed_all(db, HashingEmbedder())
    async with db.session() as s:
        await s.execute(delete(Thread).where(Thread.id == ids["first"]))
        await s.execute(delete(FaqEntry).where(FaqEntry.id == ids["own"]))
    assert await rows(db) == [("faq", ids["shared"], MODEL), ("thread", ids["second"], MODEL)]


async def test_migration_6_on_sqlite(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "old.db"))
    try:
        await check_migration_6(db)
    finally:
        await db.close()


@pytest.mark.postgres
async def test_migration_6_on_postgres(pg: Database) -> None:
    await check_migration_6(pg)


async def check_table_from_current_models(db: Database) -> None:
    """Migration 1 creates the table from the models; migration 6 adds the triggers and clears
    rows whose thread is gone."""
    await upgrade(db)
    ids = await seed(db)
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            await conn.execute(text("DROP TRIGGER thread_embedding_ad"))
        else:
            await conn.execute(text("DROP TRIGGER thread_embedding_ad ON thread"))
        await conn.execute(text("DELETE FROM schema_version WHERE version >= 6"))
    await embed_all(db, HashingEmbedder())
    async with db.session() as s:
        await s.execute(delete(Thread).where(Thread.id == ids["first"]))
    assert ("thread", ids["first"], MODEL) in await rows(db)
    assert await upgrade(db) == [m.version for m in MIGRATIONS if m.version >= 6]
    assert ("thread", ids["first"], MODEL) not in await rows(db)
    async with db.session() as s:
        await s.execute(delete(Thread).where(Thread.id == ids["second"]))
    assert ("thread", ids["second"], MODEL) not in await rows(db)


async def test_migration_6_when_the_table_exists_sqlite(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "new.db"))
    try:
        await check_table_from_current_models(db)
    finally:
        await db.close()


@pytest.mark.postgres
async def test_migration_6_when_the_table_exists_postgres(pg: Database) -> None:
    await check_table_from_current_models(pg)
