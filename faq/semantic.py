"""Semantic matching: sentence-embedding cosine as the main evidence, lexical features beside it.

Candidates are the lexical top-N (FTS5, as :class:`faq.matcher.LexicalMatcher` finds them)
together with the nearest neighbours of the question's embedding in the community's vector
index. Every candidate gets the four lexical similarities and the cosine; a fitted linear
blend of them plus the thread signals, through a logistic, is the confidence the gate reads.
Equal-weight rank fusion was measured to lose to cosine alone on English, so cosine is a
feature with a fitted weight, not one vote of two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal, Protocol

import numpy as np

from faq.embedding import Embedder
from faq.language import model_languages, outside
from faq.matcher import Features, Gate, LexicalMatcher, Scored, Weights
from faq.normalize import DEFAULT, Synonyms
from storage.repos.search import SearchHit, SearchRepo

#: How many nearest neighbours the vector index contributes to the candidates.
VECTOR_CANDIDATES = 50
#: How many lexical candidates (FTS5) join them.
LEXICAL_CANDIDATES = 50

#: The blend fitted by ``python -m bench.quality --semantic MODEL --fit`` on StackFAQ and
#: validated on Qatar Living (docs/benchmarks.md): cosine carries most of the weight; the
#: logistic makes the blend a probability that the top candidate is right.
SEMANTIC_WEIGHTS = Weights(
    bm25=-0.70,
    coverage=0.84,
    line_agreement=0.88,
    similarity=0.29,
    cosine=9.16,
    scale=1.28,
    bias=-7.82,
)


#: How a question in a language the model was not trained on is scored: the lexical
#: matcher's weights (fitted and calibrated on words alone).
FALLBACK_WEIGHTS = Weights()

#: The semantic gate reads the cosine of the best match and its margin to the best different
#: answer (the blend above only ranks). Fitted on StackFAQ by ``bench.quality --semantic
#: --gate-cv``, cross-validated by thread (docs/benchmarks.md): the answer level and margin that
#: auto-answer the most with at most 5% wrong auto-answers (questions the store cannot answer
#: counted), and the lowest suggest level at which at most 10% of those questions get
#: suggestions.
SEMANTIC_GATE = Gate(answer_at=0.73, suggest_at=0.58, margin=0.0, basis="cosine")


class VectorSearch(Protocol):
    """What semantic ranking needs of a vector index."""

    def search(
        self, vector: np.ndarray, community_id: int | None, k: int
    ) -> list[tuple[str, int, float]]:
        """The ``k`` nearest (kind, ref id, cosine) the community may see, best first."""
        ...

    def cosines(self, vector: np.ndarray, keys: Sequence[tuple[str, int]]) -> list[float | None]:
        """The cosine of ``vector`` with each stored item (None when not indexed)."""
        ...

    def vectors(self, keys: Sequence[tuple[str, int]]) -> list[np.ndarray | None]:
        """The stored vector of each item (None when not indexed)."""
        ...


class SemanticMatcher(LexicalMatcher):
    """:class:`LexicalMatcher` whose candidates and confidence also use sentence embeddings."""

    def __init__(
        self,
        embedder: Embedder,
        index: VectorSearch,
        synonyms: Synonyms = DEFAULT,
        weights: Weights | None = None,
        candidates: int = LEXICAL_CANDIDATES,
        vector_candidates: int = VECTOR_CANDIDATES,
        languages: frozenset[str] | Literal["model"] | None = "model",
        ready: Callable[[], bool] | None = None,
    ) -> None:
        """``languages``: what the model was trained on; ``"model"`` reads it from the
        model's :data:`faq.embedding.KNOWN_MODELS` entry, ``None`` means many (the cosine
        ranks every question). ``ready``: whether the index is loaded yet (None: always);
        until it is, questions are ranked on their words alone."""
        super().__init__(synonyms, weights or SEMANTIC_WEIGHTS, candidates)
        self.embedder = embedder
        self.index = index
        self.vector_candidates = vector_candidates
        self.languages = model_languages(embedder.model_id) if languages == "model" else languages
        self._lexical = LexicalMatcher(synonyms, FALLBACK_WEIGHTS, candidates)
        self.ready = ready

    def with_synonyms(self, synonyms: Synonyms) -> SemanticMatcher:
        """The same matcher reading queries with other synonyms."""
        return SemanticMatcher(
            self.embedder,
            self.index,
            synonyms,
            self.weights,
            self.candidates,
            self.vector_candidates,
            self.languages,
            self.ready,
        )

    async def rank(
        self,
        repo: SearchRepo,
        text: str,
        *,
        community_id: int | None,
        exclude_thread: int | None = None,
    ) -> list[Scored]:
        """Every candidate (lexical and nearest neighbours) with its features and
        confidence, best first."""
        if self.ready is not None and not self.ready():
            # The vector index is still loading (a large store, just started): a partial
            # index would miss most neighbours, so the words decide, as without a model.
            ranked = await self._lexical.rank(
                repo, text, community_id=community_id, exclude_thread=exclude_thread
            )
            return [replace(s, words_only=True) for s in ranked]
        # The encoder is pure computation; it runs in a worker thread (onnxruntime releases
        # the interpreter lock while it computes), while the lexical search waits on the store:
        # on two cores the two overlap instead of adding up (docs/benchmarks.md, scale).
        # Stripped as a thread's text is when it is embedded (the same vector, remembered).
        encoding = asyncio.ensure_future(asyncio.to_thread(self.embedder.encode, [text.strip()]))
        try:
            query = await self.prepare(repo, text)
            hits: list[SearchHit] = []
            if query is not None and query.queried_words:
                hits = await repo.candidates(
                    query.queried_words, community_id, self.candidates, query.frequencies
                )
        except BaseException:
            encoding.cancel()
            raise
        vector = (await encoding)[0]
        near = self.index.search(vector, community_id, self.vector_candidates)
        cosine: dict[tuple[str, int], float] = {(k, i): c for k, i, c in near}
        known = {(h.kind, h.ref_id) for h in hits}
        extra = [key for key in cosine if key not in known]
        if extra:
            hits += await repo.hits_for(extra, community_id)
        hits = [h for h in hits if not (h.kind == "thread" and h.ref_id == exclude_thread)]
        if not hits:
            return []
        missing = [(h.kind, h.ref_id) for h in hits if (h.kind, h.ref_id) not in cosine]
        for key, value in zip(missing, self.index.cosines(vector, missing), strict=True):
            cosine[key] = value if value is not None else 0.0
        if query is not None:
            lexical = await asyncio.to_thread(self.features, query, hits)
        else:
            lexical = [Features(0.0, 0.0, 0.0, 0.0) for _ in hits]
        # A question in a language the model was not trained on: its cosines are mostly
        # noise (a Dutch question against English threads ranks below plain BM25), so its
        # words decide (docs/benchmarks.md, Dutch <-> English probe).
        confidence = self._fallback_confidence if outside(self.languages, text) else None
        scored = []
        for hit, f in zip(hits, lexical, strict=True):
            f = replace(f, cosine=cosine[(hit.kind, hit.ref_id)])
            adjust = self.signal_adjustment(hit, community_id)
            score = confidence(f, adjust) if confidence else self.confidence(f, adjust)
            scored.append(Scored(hit, f, adjust, score, words_only=confidence is not None))
        scored.sort(key=lambda s: s.score, reverse=True)
        return self._mark_near_best(scored)

    def _fallback_confidence(self, f: Features, signals: float) -> float:
        """The confidence of a candidate for a question in a language the model does not
        know: the lexical matcher's own blend and calibration, the cosine left out."""
        return self._lexical.confidence(replace(f, cosine=0.0), signals)

    def _mark_near_best(self, scored: list[Scored]) -> list[Scored]:
        """Each candidate's closeness to the best one (for the gate's margin)."""
        if len(scored) < 2:
            return scored
        best = self.index.vectors([(scored[0].hit.kind, scored[0].hit.ref_id)])[0]
        if best is None:
            return scored
        keys = [(s.hit.kind, s.hit.ref_id) for s in scored[1:]]
        near = self.index.cosines(best, keys)
        return [scored[0]] + [
            replace(s, near_best=c) if c is not None else s
            for s, c in zip(scored[1:], near, strict=True)
        ]
