"""Storing knowledge-base entries by slug: new ones created, stored ones updated, each scope
(the global set, a community) on its own, and the search index kept in step."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select, text

from faq.kb import KbEntry, starter_entries, store_entries
from storage.engine import Database
from storage.models import FaqEntry
from storage.repos.communities import new_community
from storage.repos.faq import FaqRepo


def entry(slug: str, question: str) -> KbEntry:
    return KbEntry(slug, question, (), f"Answer to {question}", None, (), None, None)


async def test_new_and_stored_entries_by_slug(db: Database) -> None:
    async with db.session() as s:
        assert await store_entries(FaqRepo(s), [entry("a", "first question")]) == (1, 0)
    async with db.session() as s:
        created, updated = await store_entries(
            FaqRepo(s), [entry("a", "first question, reworded"), entry("b", "second question")]
        )
    assert (created, updated) == (1, 1)
    async with db.session() as s:
        rows = {e.slug: e for e in await FaqRepo(s).all()}
    assert set(rows) == {"a", "b"}
    assert rows["a"].question == "first question, reworded"
    assert rows["a"].search_text.split() == ["first", "question", "reworded"]


async def test_a_community_scope_is_apart_from_the_global_set(db: Database) -> None:
    async with db.session() as s:
        community = await s.run_sync(
            lambda sync: new_community(sync.connection(), "telegram", "-1", {})
        )
    async with db.session() as s:
        await store_entries(FaqRepo(s), [entry("a", "global question")])
        # The same slug in a community is that community's own entry, not an update.
        assert await store_entries(FaqRepo(s), [entry("a", "community question")], community) == (
            1,
            0,
        )
    async with db.session() as s:
        rows = (await s.scalars(select(FaqEntry).order_by(FaqEntry.id))).all()
    assert [(e.community_id, e.question) for e in rows] == [
        (None, "global question"),
        (community, "community question"),
    ]


async def test_a_slug_given_twice_is_one_entry(db: Database) -> None:
    async with db.session() as s:
        created, updated = await store_entries(
            FaqRepo(s), [entry("a", "first wording"), entry("a", "second wording")]
        )
    assert (created, updated) == (1, 1)
    async with db.session() as s:
        rows = await FaqRepo(s).all()
    assert [e.question for e in rows] == ["second wording"]


async def test_the_starter_set_is_indexed(sqlite_db: Database) -> None:
    entries = starter_entries()
    async with sqlite_db.session() as s:
        assert await store_entries(FaqRepo(s), entries) == (len(entries), 0)
        changed = [replace(e, question=e.question + " (revised)") for e in entries[:3]]
        assert await store_entries(FaqRepo(s), changed) == (0, 3)
    async with sqlite_db.session() as s:
        indexed = await s.scalar(text("SELECT count(*) FROM search_fts WHERE rowid % 2 = 1"))
        found = await s.scalar(
            text("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'revised'")
        )
    assert indexed == len(entries)
    assert found == 3
