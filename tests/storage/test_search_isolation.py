"""Search is scoped to the asking community inside the candidate query, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from faq.matcher import LexicalMatcher
from faq.normalize import search_text
from storage.engine import Database
from storage.migrations import upgrade
from storage.models import Channel, Community, FaqEntry, Member, Message, Thread
from storage.repos.search import SearchRepo

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PER_COMMUNITY = 500


async def _community(db: Database, name: str, questions: list[str]) -> tuple[int, list[int]]:
    """A community with one channel and an answered thread per question (bulk inserts)."""
    async with db.session() as s:
        community = Community(name=name, settings={})
        s.add(community)
        await s.flush()
        channel = Channel(community_id=community.id, platform="console", chat_id=name)
        member = Member(platform="console", user_id=f"{name}-asker", display_name="asker")
        s.add_all([channel, member])
        await s.flush()
        message_ids = list(
            (
                await s.scalars(
                    insert(Message).returning(Message.id),
                    [
                        {
                            "channel_id": channel.id,
                            "platform_message_id": f"q{i}",
                            "member_id": member.id,
                            "text": q,
                            "sent_at": NOW,
                        }
                        for i, q in enumerate(questions)
                    ],
                )
            ).all()
        )
        thread_ids = list(
            (
                await s.scalars(
                    insert(Thread).returning(Thread.id),
                    [
                        {
                            "community_id": community.id,
                            "question_message_id": mid,
                            "question_text": q,
                            "search_text": search_text([q]),
                            "status": "answered",
                            "asked_at": NOW,
                            "tags": [],
                        }
                        for mid, q in zip(message_ids, questions, strict=True)
                    ],
                )
            ).all()
        )
        return community.id, thread_ids


async def _isolation(db: Database) -> None:
    await upgrade(db)
    # Community A's threads use the same words, shorter, so they rank first for B's question.
    a_questions = [f"register scooter gemeente {i}" for i in range(PER_COMMUNITY)]
    b_questions = [
        f"register scooter gemeente office opening hours desk number {i}"
        for i in range(PER_COMMUNITY - 1)
    ] + ["register scooter gemeente kenteken"]
    a_id, a_threads = await _community(db, "a", a_questions)
    b_id, b_threads = await _community(db, "b", b_questions)
    b_best = b_threads[-1]
    matcher = LexicalMatcher(now=NOW)
    async with db.session() as s:
        repo = SearchRepo(s)
        for community, own in ((a_id, set(a_threads)), (b_id, set(b_threads))):
            hits = await repo.candidates(
                ["regist", "scooter", "gemeent", "kenteken"], community, limit=40
            )
            assert len(hits) == 40
            assert {h.ref_id for h in hits if h.kind == "thread"} <= own
        ranked = await matcher.rank(
            repo, "How do I register my scooter kenteken at the gemeente?", community_id=b_id
        )
        assert ranked and ranked[0].hit.ref_id == b_best
        assert all(r.hit.community_id == b_id for r in ranked if r.hit.kind == "thread")
        ranked = await matcher.rank(repo, "register scooter gemeente", community_id=a_id)
        assert ranked and all(r.hit.community_id == a_id for r in ranked)


async def test_search_is_isolated_per_community_sqlite(db: Database) -> None:
    await _isolation(db)


@pytest.mark.postgres
async def test_search_is_isolated_per_community_postgres(pg: Database) -> None:
    await _isolation(pg)


async def _entries(db: Database) -> None:
    """A community's own entry overrides the global one of the same slug, a hidden row hides
    it, and other communities see the global entry."""
    await upgrade(db)
    async with db.session() as s:
        a = Community(name="ca", settings={})
        b = Community(name="cb", settings={})
        s.add_all([a, b])
        await s.flush()
        text = "How do I apply for a parking permit (parkeervergunning)?"
        rows = [
            FaqEntry(community_id=None, slug="parking", question=text, answer="global"),
            FaqEntry(community_id=a.id, slug="parking", question=text, answer="a's own"),
            FaqEntry(community_id=b.id, slug="parking", question=text, answer="x", hidden=True),
        ]
        for row in rows:
            row.search_text = search_text([row.question])
        s.add_all(rows)
        await s.flush()
        ids = {row.answer: row.id for row in rows}
        c = Community(name="cc", settings={})
        s.add(c)
        await s.flush()
        ids_c = c.id
    terms = ["parkeervergunn", "permit"]
    async with db.session() as s:
        repo = SearchRepo(s)
        seen = {
            name: [h.ref_id for h in await repo.candidates(terms, cid) if h.kind == "faq"]
            for name, cid in (("a", a.id), ("b", b.id), ("c", ids_c), ("operator", None))
        }
        assert await s.scalar(select(FaqEntry.answer).where(FaqEntry.id == seen["a"][0]))
    assert seen["a"] == [ids["a's own"]]
    assert seen["b"] == []
    assert seen["c"] == [ids["global"]]
    assert seen["operator"] == [ids["global"]]


async def test_overrides_and_hidden_entries_sqlite(db: Database) -> None:
    await _entries(db)


@pytest.mark.postgres
async def test_overrides_and_hidden_entries_postgres(pg: Database) -> None:
    await _entries(pg)
