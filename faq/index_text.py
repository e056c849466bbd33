"""The one place that builds what the search index holds for a thread or an FAQ entry.

Questions, edits, ``faq`` commands, ``synonyms`` re-indexing and ``copss kb load`` all call
these, so a document is always indexed the same way as the queries that should find it.
"""

from __future__ import annotations

from collections.abc import Sequence

from faq.normalize import DEFAULT, Synonyms, search_text


def thread_search_text(question: str, synonyms: Synonyms = DEFAULT) -> str:
    """The indexed text of a thread: its question, normalised with ``synonyms``."""
    return search_text([question], synonyms)


def entry_search_text(question: str, aliases: Sequence[str], synonyms: Synonyms = DEFAULT) -> str:
    """The indexed text of an FAQ entry: its question and aliases, one line each. Global
    entries are always indexed with the built-in synonyms only."""
    return search_text([question, *aliases], synonyms)


def thread_embed_text(question: str) -> str:
    """The text embedded for a thread: its question as the member wrote it (the embedding
    model does its own tokenising; normalising first would only take words away from it)."""
    return question.strip()


def entry_embed_text(question: str, aliases: Sequence[str]) -> str:
    """The text embedded for an FAQ entry: its question and aliases, one line each."""
    return "\n".join(part.strip() for part in [question, *aliases] if part.strip())
