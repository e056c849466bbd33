"""Find the thread or entry that already answers a question.

Pipeline: normalise -> full-text candidates (BM25, top 50) -> re-rank by a blend of term
coverage, rapidfuzz ``token_sort_ratio`` and the BM25 rank, plus small thread signals ->
confidence gate. ``Matcher`` is a protocol so another ranker (e.g. a semantic one) can replace
or wrap :class:`LexicalMatcher` without touching callers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from rapidfuzz import fuzz

from faq.normalize import DEFAULT, Synonyms, search_terms
from storage.repos.search import SearchHit, SearchRepo

Kind = Literal["thread", "faq"]


@dataclass(frozen=True)
class Match:
    """A candidate answer: ``score`` in [0, 1] is the confidence, ``why`` says what matched."""

    kind: str
    ref_id: int
    score: float
    why: str


class Matcher(Protocol):
    """Ranks stored threads and entries against a question."""

    async def match(
        self,
        repo: SearchRepo,
        text: str,
        *,
        community_id: int | None,
        limit: int = 3,
        exclude_thread: int | None = None,
    ) -> list[Match]:
        """The best matches for ``text``, best first."""
        ...


def _stem(word: str) -> str:
    # A crude prefix stem: enough to see "registering" and "registration" as one term.
    return word[:6]


def _coverage(query: list[str], weights: dict[str, float], doc: list[str]) -> float:
    total = sum(weights[w] for w in query)
    if total <= 0:
        return 0.0
    stems = {_stem(w) for w in doc}
    return sum(weights[w] for w in query if _stem(w) in stems) / total


def idf_weights(terms: list[str], freq: dict[str, int], total: int) -> dict[str, float]:
    """BM25-style inverse document frequency of each term; a term no document has weighs most,
    so a question about something the store never heard of is not matched on its filler."""
    return {
        t: math.log((total - freq.get(t, 0) + 0.5) / (freq.get(t, 0) + 0.5) + 1.0) for t in terms
    }


@dataclass(frozen=True)
class Weights:
    """How the ranking signals blend into one confidence."""

    coverage: float = 0.60
    fuzz: float = 0.25
    bm25: float = 0.15
    solved_bonus: float = 0.03
    vote_bonus: float = 0.01


class LexicalMatcher:
    """BM25 candidates re-ranked with term coverage and rapidfuzz similarity."""

    def __init__(
        self, synonyms: Synonyms = DEFAULT, weights: Weights | None = None, candidates: int = 50
    ) -> None:
        self.synonyms = synonyms
        self.weights = weights or Weights()
        self.candidates = candidates

    def score(
        self,
        query_terms: list[str],
        weights: dict[str, float],
        hit: SearchHit,
        best_rank: float,
    ) -> Match:
        """Score one candidate against the query's terms."""
        w = self.weights
        q = " ".join(query_terms)
        best_cov, best_fuzz = 0.0, 0.0
        for line in hit.search_text.splitlines() or [""]:
            words = line.split()
            best_cov = max(best_cov, _coverage(query_terms, weights, words))
            best_fuzz = max(best_fuzz, fuzz.token_sort_ratio(q, line) / 100.0)
        rel = hit.rank / best_rank if best_rank > 0 else 0.0
        # Similarity and BM25 only count as far as the query's weighty terms are covered: a
        # short entry sharing one common word must not look like a match.
        score = best_cov * (w.coverage + w.fuzz * best_fuzz + w.bm25 * rel)
        if hit.status == "solved":
            score += w.solved_bonus
        score += w.vote_bonus * max(-3, min(3, hit.votes))
        score = max(0.0, min(1.0, score))
        why = f"coverage {best_cov:.2f}, similarity {best_fuzz:.2f}, bm25 {rel:.2f}"
        return Match(hit.kind, hit.ref_id, round(score, 4), why)

    async def match(
        self,
        repo: SearchRepo,
        text: str,
        *,
        community_id: int | None,
        limit: int = 3,
        exclude_thread: int | None = None,
    ) -> list[Match]:
        """The best matches for ``text``, best first."""
        terms = search_terms(text, self.synonyms)
        if not terms:
            return []
        freq, total = await repo.document_frequencies(terms)
        weights = idf_weights(terms, freq, total)
        hits = await repo.candidates(terms, community_id, self.candidates, freq)
        hits = [h for h in hits if not (h.kind == "thread" and h.ref_id == exclude_thread)]
        if not hits:
            return []
        best_rank = max(h.rank for h in hits)
        scored = [self.score(terms, weights, h, best_rank) for h in hits]
        scored.sort(key=lambda m: m.score, reverse=True)
        return scored[:limit]


Mode = Literal["answer", "suggest", "quiet"]


@dataclass(frozen=True)
class Decision:
    """What to do with a question's matches."""

    mode: Mode
    matches: tuple[Match, ...]


@dataclass(frozen=True)
class Gate:
    """Auto-answer above ``answer_at`` (when clearly ahead of the runner-up), suggest up to
    ``max_suggestions`` above ``suggest_at``, otherwise stay quiet."""

    answer_at: float = 0.70
    suggest_at: float = 0.45
    margin: float = 0.05
    max_suggestions: int = 3

    def decide(self, matches: list[Match]) -> Decision:
        """Apply the thresholds to matches sorted best first."""
        if not matches or matches[0].score < self.suggest_at:
            return Decision("quiet", ())
        top = matches[0]
        runner_up = matches[1].score if len(matches) > 1 else 0.0
        if top.score >= self.answer_at and top.score - runner_up >= self.margin:
            return Decision("answer", (top,))
        kept = tuple(m for m in matches[: self.max_suggestions] if m.score >= self.suggest_at)
        return Decision("suggest", kept)
