"""Keeping a community's threads and FAQ entries indexed with that community's synonyms."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.features.embeddings import embed_now, follow_in_session
from bot.features.settings import community_synonyms
from faq.index_text import entry_search_text, thread_search_text
from faq.matcher import LexicalMatcher, Matcher
from faq.normalize import DEFAULT, Synonyms
from faq.semantic import SemanticMatcher
from faq.vector_index import VectorIndex
from storage.models import Community, FaqEntry, Thread


async def synonyms_for(session: AsyncSession, community_id: int | None) -> Synonyms:
    """The synonyms a community's documents and queries use (built-in ones for the global
    entries)."""
    if community_id is None:
        return DEFAULT
    return community_synonyms(await session.get(Community, community_id))


async def index_thread(session: AsyncSession, thread: Thread) -> None:
    """Set a thread's indexed text from its question."""
    synonyms = await synonyms_for(session, thread.community_id)
    thread.search_text = thread_search_text(thread.question_text, synonyms)


async def index_entry(session: AsyncSession, entry: FaqEntry) -> None:
    """Set an FAQ entry's indexed text from its question and aliases."""
    synonyms = await synonyms_for(session, entry.community_id)
    entry.search_text = entry_search_text(entry.question, entry.aliases, synonyms)


async def reindex_community(session: AsyncSession, community_id: int) -> int:
    """Re-index a community's own threads and entries (never the global ones); returns how
    many documents were re-indexed."""
    synonyms = await synonyms_for(session, community_id)
    threads = (
        await session.scalars(select(Thread).where(Thread.community_id == community_id))
    ).all()
    for thread in threads:
        thread.search_text = thread_search_text(thread.question_text, synonyms)
    entries = (
        await session.scalars(select(FaqEntry).where(FaqEntry.community_id == community_id))
    ).all()
    for entry in entries:
        entry.search_text = entry_search_text(entry.question, entry.aliases, synonyms)
    return len(threads) + len(entries)


def matcher_for(matcher: Matcher, synonyms: Synonyms) -> Matcher:
    """``matcher`` reading queries with a community's synonyms (the same weights)."""
    if synonyms is DEFAULT:
        return matcher
    if isinstance(matcher, SemanticMatcher):
        return matcher.with_synonyms(synonyms)
    if isinstance(matcher, LexicalMatcher):
        return LexicalMatcher(synonyms, matcher.weights, matcher.candidates, matcher.now)
    return matcher


async def embed_document(session: AsyncSession, matcher: Matcher, kind: str, ref_id: int) -> None:
    """Keep a thread's or entry's embedding current after it was written or edited (when the
    matcher is semantic; the lexical index follows by itself through the store)."""
    if isinstance(matcher, SemanticMatcher) and isinstance(matcher.index, VectorIndex):
        await embed_now(session, matcher.embedder, matcher.index, kind, ref_id)


async def follow_moves(session: AsyncSession, matcher: Matcher, community_ids: list[int]) -> None:
    """After a link merged communities or an unlink split one: serve each moved thread and
    entry in its new community (when the matcher is semantic; the lexical index reads the
    community from the store)."""
    if isinstance(matcher, SemanticMatcher) and isinstance(matcher.index, VectorIndex):
        await follow_in_session(session, matcher.embedder, matcher.index, community_ids)
