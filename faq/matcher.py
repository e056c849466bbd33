"""Find the thread or entry that already answers a question.

Pipeline: normalise -> full-text candidates (the query's rarest terms, BM25, top 50) ->
re-rank every candidate by a learned linear blend of four similarities -> add thread signals ->
a confidence in [0, 1] -> the :class:`Gate` decides between answering, suggesting and staying
quiet. ``Matcher`` is a protocol so another ranker (e.g. a semantic one) can replace or wrap
:class:`LexicalMatcher` without touching callers.

The four similarities, all computed on Porter stems (the index's own stemmer, so the Python side
sees what the index matched):

* ``bm25``: Okapi BM25 of the queried terms, divided by the sum of their IDFs (so it is
  comparable across queries; about 1 when every term matches a short document);
* ``coverage``: the IDF-weighted share of the query's terms the document has (a term the index
  has never seen weighs most, so a question about something unknown never looks covered);
* ``line agreement``: for the best line (a KB alias, a thread subject), the harmonic mean of
  how much of the query the line covers and how much of the line the query covers -- high only
  when the two say the same thing, so a one-word alias does not match every question that
  mentions its word;
* ``similarity``: rapidfuzz ``token_sort_ratio`` of the query's and the best line's stems.

Both coverages give partial credit to near terms (a shared prefix: "doc"/"document", containment:
"mail"/"email", a close spelling: "recepient"/"recipient"), which BM25 cannot. The blend weights
were fit by ``python -m bench.quality --fit`` on Qatar Living (expat-forum questions, the closest
data to our users) and validated on StackFAQ, which they did not see; the confidence scale is a
logistic fit over both (see ``docs/benchmarks.md``).

Whatever a member sends, the work is bounded: only a text's first 4,096 characters are
normalised, "words" over 40 characters are dropped (``faq.normalize``), the first
:data:`MAX_QUERY_WORDS` search terms are matched and candidates are read up to
:data:`MAX_DOC_CHARS`; normalising the query and scoring the candidates run in a worker
thread, so the event loop only waits for the store (``bench/worst_case.py``).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal, Protocol

from rapidfuzz import fuzz, process

from faq.normalize import DEFAULT, MAX_TERM_CHARS, MAX_TEXT_CHARS, Synonyms, search_terms
from storage.repos.search import MAX_QUERY_TERMS, SearchHit, SearchRepo
from storage.stemmer import stem

Kind = Literal["thread", "faq"]

_TOKEN = re.compile(r"[^\W_]+")

#: A question's first this many distinct search terms are matched (real questions have a few
#: dozen at most); with terms of at most ``MAX_TERM_CHARS`` characters this bounds the work
#: for any message, and the number of document-frequency look-ups.
MAX_QUERY_WORDS = 64
#: Characters of a candidate's search text that are compared (documents are indexed from at
#: most ``MAX_TEXT_CHARS`` of each part; older rows may hold more).
MAX_DOC_CHARS = 2 * MAX_TEXT_CHARS


@dataclass(frozen=True)
class Match:
    """A candidate answer: ``score`` in [0, 1] is the confidence, ``why`` says what matched and
    ``signals`` holds the numbers behind it."""

    kind: str
    ref_id: int
    score: float
    why: str
    signals: tuple[tuple[str, float], ...] = ()


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


def idf(doc_freq: int, total: int) -> float:
    """Smoothed inverse document frequency (never negative; highest for unseen terms)."""
    return math.log((total - doc_freq + 0.5) / (doc_freq + 0.5) + 1.0)


def bm25_idf(doc_freq: int, total: int) -> float:
    """The IDF SQLite's ``bm25()`` uses (floored just above zero for very common terms).
    ``total`` may be an estimate below the true number of documents (see
    :meth:`storage.repos.search.SearchRepo.document_frequencies`): a term in more documents
    than that counts as in all of them."""
    doc_freq = min(doc_freq, total)
    return max(1e-6, math.log((total - doc_freq + 0.5) / (doc_freq + 0.5)))


def idf_weights(terms: list[str], freq: dict[str, int], total: int) -> dict[str, float]:
    """:func:`idf` of each term; a term no document has weighs most, so a question about
    something the store never heard of is not matched on its filler."""
    return {t: idf(freq.get(t, 0), total) for t in terms}


def term_similarity(a: str, b: str) -> float:
    """How far two stems count as the same term: 1 when equal, 0.7 when one begins the other
    ("doc"/"document"), 0.6 when one contains the other ("mail"/"email"), up to 0.8 for a close
    spelling of a longer word ("recepi"/"recipi"), else 0."""
    if a == b:
        return 1.0
    if len(a) >= 3 and len(b) >= 3 and (a.startswith(b) or b.startswith(a)):
        return 0.7
    if len(a) >= 4 and len(b) >= 4 and (a in b or b in a):
        return 0.6
    if min(len(a), len(b)) >= 5:
        ratio = fuzz.ratio(a, b, score_cutoff=80) / 100.0
        if ratio:
            return 0.8 * ratio
    return 0.0


@dataclass(frozen=True)
class Universe:
    """The distinct stems of a set of candidate documents, arranged for :func:`_near_terms`."""

    #: Sorted stems.
    words: list[str]
    #: The same stems as a set, and the lengths (of four or more) that occur among them.
    members: frozenset[str]
    lengths: tuple[int, ...]
    #: The stems joined by newlines, and where each starts in that text.
    joined: str
    starts: list[int]

    @classmethod
    def of(cls, stems: Iterable[str]) -> Universe:
        """The universe of ``stems``."""
        words = sorted(set(stems))
        starts, offset = [], 0
        for word in words:
            starts.append(offset)
            offset += len(word) + 1
        return cls(
            words,
            frozenset(words),
            tuple(sorted({len(w) for w in words if len(w) >= 4})),
            "\n".join(words),
            starts,
        )


def _near_terms(term: str, universe: Universe) -> dict[str, float]:
    """``term_similarity`` of ``term`` to every stem of ``universe`` it is near, found without
    comparing against each: prefixes by bisection and set look-ups, containment by substring
    search over the joined universe and by look-ups of the term's pieces of the lengths the
    universe has, spellings by rapidfuzz's C loop. Terms are at most
    :data:`~faq.normalize.MAX_TERM_CHARS` long, so the look-ups per term are bounded."""
    near: dict[str, float] = {}
    if len(term) < 3:
        return near
    words, members = universe.words, universe.members
    at = bisect.bisect_left(words, term)
    while at < len(words) and words[at].startswith(term):
        if words[at] != term:
            near[words[at]] = 0.7
        at += 1
    for size in range(3, len(term)):
        head = term[:size]
        if head in members:
            near[head] = 0.7
    if len(term) >= 4:
        joined, starts = universe.joined, universe.starts
        found = joined.find(term)
        while found >= 0:
            index = bisect.bisect_right(starts, found) - 1
            word = words[index]
            if word != term and word not in near:
                near[word] = 0.6
            found = joined.find(term, starts[index] + len(word))
        # Stems inside the term (not at its start, those are prefixes): only the lengths some
        # stem has are tried.
        for size in universe.lengths:
            if size >= len(term):
                break
            for begin in range(1, len(term) - size + 1):
                part = term[begin : begin + size]
                if part in members and part not in near:
                    near[part] = 0.6
    if len(term) >= 5:
        for word, ratio, _ in process.extract(
            term, words, scorer=fuzz.ratio, score_cutoff=80, limit=None
        ):
            if len(word) >= 5 and word != term and word not in near:
                near[word] = 0.8 * ratio / 100.0
    return near


@dataclass(frozen=True)
class Weights:
    """How the ranking signals blend into a confidence.

    ``bm25``, ``coverage``, ``line_agreement`` and ``similarity`` weigh the four similarities
    (fit as a listwise ranker); ``scale`` and ``bias`` turn the blend into a probability-like
    confidence (a logistic fit of "the top match is right" over answerable and unanswerable
    questions). The thread signals are added to the blend before that; they cannot be fit on
    the public data (it has no votes or acceptance) and are set small, as tie-breakers.
    """

    bm25: float = 4.66
    coverage: float = 4.15
    line_agreement: float = 5.67
    similarity: float = 0.86
    scale: float = 0.51
    bias: float = -3.02
    #: Solved thread or accepted answer (curated FAQ entries count as accepted).
    accepted: float = 0.3
    #: A thread nobody answered yet is a poor thing to point someone at.
    unanswered: float = -0.7
    #: Per net vote (helpful minus not helpful, answer votes), at most three either way.
    vote: float = 0.1
    #: For a thread asked today, fading with a half-life of :attr:`half_life_days`.
    recency: float = 0.2
    half_life_days: float = 365.0
    #: An entry the community curated itself, over the global starter set.
    own_community: float = 0.2
    #: The sentence-embedding cosine (semantic matching only; the lexical matcher has none).
    cosine: float = 0.0


@dataclass(frozen=True)
class Features:
    """The similarities of one candidate (see the module docstring): four lexical ones, and
    the cosine of the sentence embeddings when a semantic matcher ranks (else 0)."""

    bm25: float
    coverage: float
    line_agreement: float
    similarity: float
    cosine: float = 0.0


@dataclass(frozen=True)
class Scored:
    """A candidate with its similarities, signal adjustment and final confidence."""

    hit: SearchHit
    features: Features
    signals: float
    score: float
    #: How close this candidate is to the best one (cosine of their embeddings; semantic
    #: matching only): a near-copy of the best is the same answer, not a rival to it.
    near_best: float = 0.0
    #: Ranked on its words alone: a semantic matcher met a question in a language its model
    #: was not trained on, or its vector index is still loading; the cosine says nothing, so
    #: the gate reads the confidence.
    words_only: bool = False


@dataclass(frozen=True)
class PreparedQuery:
    """A question reduced to what ranking needs."""

    #: The normalised words (as the index is queried).
    words: list[str]
    #: Unique stems in query order, and their IDF weights.
    stems: list[str]
    weights: dict[str, float]
    #: The stems actually queried (the rarest present ones), with their BM25 IDFs.
    queried: dict[str, float]
    #: Words to send to the full-text query, and how many documents hold each.
    queried_words: list[str]
    frequencies: dict[str, int]
    #: Stems the index has at all.
    present: frozenset[str]
    total: int


@lru_cache(maxsize=8192)
def _doc_tokens(search_text: str) -> tuple[tuple[str, ...], ...]:
    # The same threads come back for many questions; their stems are worth keeping. Bounded
    # like a query, so a huge row stored before the bounds existed costs no more than a new one.
    lines = tuple(
        tuple(stem(w) for w in _TOKEN.findall(line) if len(w) <= MAX_TERM_CHARS)
        for line in search_text[:MAX_DOC_CHARS].splitlines()
    )
    return lines or ((),)


def _query_terms(text: str, synonyms: Synonyms) -> tuple[list[str], list[str]]:
    # Pure computation, run in a worker thread: the first MAX_QUERY_WORDS search terms of
    # ``text`` and their stems.
    words = search_terms(text, synonyms)[:MAX_QUERY_WORDS]
    return words, [stem(w) for w in words]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class LexicalMatcher:
    """BM25 candidates re-ranked by a blend of BM25, soft term coverage and rapidfuzz
    similarity, plus thread signals."""

    def __init__(
        self,
        synonyms: Synonyms = DEFAULT,
        weights: Weights | None = None,
        candidates: int = 30,
        now: datetime | None = None,
    ) -> None:
        self.synonyms = synonyms
        self.weights = weights or Weights()
        self.candidates = candidates
        #: Fixed "now" for reproducible recency (benchmarks, tests); the clock otherwise.
        self.now = now

    async def prepare(self, repo: SearchRepo, text: str) -> PreparedQuery | None:
        """Normalise ``text`` (its first :data:`MAX_QUERY_WORDS` search terms, in a worker
        thread) and look up its terms' document frequencies."""
        words, word_stems = await asyncio.to_thread(_query_terms, text, self.synonyms)
        if not words:
            return None
        freq, total = await repo.document_frequencies(words)
        stems: dict[str, int] = {}
        stem_word: dict[str, str] = {}
        for word, s in zip(words, word_stems, strict=True):
            if s not in stems:
                stems[s] = freq.get(word, 0)
                stem_word[s] = word
        present = sorted((s for s, n in stems.items() if n > 0), key=lambda s: stems[s])
        queried = present[:MAX_QUERY_TERMS]
        return PreparedQuery(
            words=words,
            stems=list(stems),
            weights={s: idf(n, total) for s, n in stems.items()},
            queried={s: bm25_idf(stems[s], total) for s in queried},
            queried_words=[stem_word[s] for s in queried],
            frequencies={stem_word[s]: stems[s] for s in queried},
            present=frozenset(present),
            total=total,
        )

    def features(self, query: PreparedQuery, hits: Sequence[SearchHit]) -> list[Features]:
        """The four similarities of each hit to the query (pure computation: :meth:`rank`
        runs it in a worker thread)."""
        docs = [_doc_tokens(h.search_text) for h in hits]
        universe = Universe.of(t for lines in docs for line in lines for t in line)
        present = universe.members
        # links[d]: the query stems that document stem d stands in for, and how well.
        links: dict[str, list[tuple[str, float]]] = {}
        for q in query.stems:
            row = _near_terms(q, universe)
            if q in present:
                row[q] = 1.0
            for d, s in row.items():
                links.setdefault(d, []).append((q, s))
        weights = query.weights
        weight_total = sum(weights.values()) or 1.0
        # A document's own terms that the query lacks: their IDF is not looked up (it would
        # cost a vocabulary read per term); a fairly rare term's weight stands in for them.
        other_weight = idf(max(1, query.total // 100), query.total)
        # BM25 is divided by what a document matching every query term would get, unknown
        # terms included: matching the one word of a question the index knows is not a match.
        bm25_total = sum(query.queried.values()) + sum(
            bm25_idf(0, query.total) for s in query.stems if s not in query.present
        )
        lengths = [sum(len(line) for line in lines) for lines in docs]
        avg_len = (sum(lengths) / len(lengths)) if lengths else 1.0
        q_text = " ".join(query.stems)
        out: list[Features] = []
        for lines, length in zip(docs, lengths, strict=True):
            tf: dict[str, int] = {}
            for line in lines:
                for t in line:
                    tf[t] = tf.get(t, 0) + 1
            bm25 = 0.0
            norm = 1.2 * (0.25 + 0.75 * length / (avg_len or 1.0))
            for term, w in query.queried.items():
                f = tf.get(term, 0)
                if f:
                    bm25 += w * f * 2.2 / (f + norm)
            # Coverage: each query stem counts with its best stand-in anywhere in the document.
            got: dict[str, float] = {}
            for d in tf:
                for q, s in links.get(d, ()):
                    if s > got.get(q, 0.0):
                        got[q] = s
            coverage = sum(weights[q] * s for q, s in got.items()) / weight_total
            agreement, similarity = 0.0, 0.0
            for line in lines:
                if not line:
                    continue
                # The line's side: how much of what it says the query says too; the query's
                # side: how much of the query this one line covers.
                num = den = 0.0
                got_line: dict[str, float] = {}
                for d in set(line):
                    w = weights.get(d, other_weight)
                    den += w
                    best = 0.0
                    for q, s in links.get(d, ()):
                        best = max(best, s)
                        if s > got_line.get(q, 0.0):
                            got_line[q] = s
                    num += w * best
                said = num / den
                covered = sum(weights[q] * s for q, s in got_line.items()) / weight_total
                if said + covered > 0:
                    agreement = max(agreement, 2 * said * covered / (said + covered))
                similarity = max(similarity, fuzz.token_sort_ratio(q_text, " ".join(line)) / 100)
            out.append(Features(bm25 / bm25_total, coverage, agreement, similarity))
        return out

    def signal_adjustment(self, hit: SearchHit, community_id: int | None) -> float:
        """What the thread signals add to the blend (before the confidence is taken)."""
        w = self.weights
        adjust = 0.0
        if hit.accepted or hit.status == "solved":
            adjust += w.accepted
        if hit.answers == 0:
            adjust += w.unanswered
        adjust += w.vote * max(-3, min(3, hit.votes))
        if hit.when is not None and w.recency:
            now = self.now or datetime.now(UTC)
            when = hit.when if hit.when.tzinfo else hit.when.replace(tzinfo=UTC)
            age = max(0.0, (now - when).total_seconds() / 86400)
            adjust += w.recency * 0.5 ** (age / w.half_life_days)
        if hit.kind == "faq" and community_id is not None and hit.community_id == community_id:
            adjust += w.own_community
        return adjust

    def blend(self, f: Features) -> float:
        """The learned linear blend of the similarities (before signals and scaling)."""
        w = self.weights
        return (
            w.bm25 * f.bm25
            + w.coverage * f.coverage
            + w.line_agreement * f.line_agreement
            + w.similarity * f.similarity
            + w.cosine * f.cosine
        )

    def confidence(self, f: Features, signals: float) -> float:
        """The confidence in [0, 1] of a candidate with similarities ``f`` and signal
        adjustment ``signals``."""
        w = self.weights
        return _sigmoid(w.scale * (self.blend(f) + signals) + w.bias)

    async def rank(
        self,
        repo: SearchRepo,
        text: str,
        *,
        community_id: int | None,
        exclude_thread: int | None = None,
    ) -> list[Scored]:
        """Every candidate with its features and confidence, best first."""
        query = await self.prepare(repo, text)
        if query is None or not query.queried_words:
            return []
        hits = await repo.candidates(
            query.queried_words, community_id, self.candidates, query.frequencies
        )
        hits = [h for h in hits if not (h.kind == "thread" and h.ref_id == exclude_thread)]
        if not hits:
            return []
        # The CPU-heavy part runs off the event loop; the store is only touched above.
        features = await asyncio.to_thread(self.features, query, hits)
        scored = []
        for hit, f in zip(hits, features, strict=True):
            adjust = self.signal_adjustment(hit, community_id)
            scored.append(Scored(hit, f, adjust, self.confidence(f, adjust)))
        scored.sort(key=lambda s: s.score, reverse=True)
        return scored

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
        ranked = await self.rank(
            repo, text, community_id=community_id, exclude_thread=exclude_thread
        )
        return [to_match(s) for s in ranked[:limit]]


#: The signal of a match ranked on its words alone (see :attr:`Scored.words_only`).
WORDS_ONLY = "words_only"


def to_match(s: Scored) -> Match:
    """The :class:`Match` (data and explanation) of a scored candidate."""
    f = s.features
    why = (
        f"bm25 {f.bm25:.2f}, coverage {f.coverage:.2f}, line agreement {f.line_agreement:.2f}, "
        f"similarity {f.similarity:.2f}"
    )
    if f.cosine:
        why = f"cosine {f.cosine:.2f}, " + why
    if s.signals:
        why += f", signals {s.signals:+.2f}"
    signals: tuple[tuple[str, float], ...] = (
        ("bm25", round(f.bm25, 4)),
        ("coverage", round(f.coverage, 4)),
        ("line_agreement", round(f.line_agreement, 4)),
        ("similarity", round(f.similarity, 4)),
        ("cosine", round(f.cosine, 4)),
        ("signals", round(s.signals, 4)),
    )
    if s.near_best:
        signals += (("near_best", round(s.near_best, 4)),)
    if s.words_only:
        signals += ((WORDS_ONLY, 1.0),)
    return Match(s.hit.kind, s.hit.ref_id, round(s.score, 4), why, signals)


Mode = Literal["answer", "suggest", "quiet"]


@dataclass(frozen=True)
class Decision:
    """What to do with a question's matches."""

    mode: Mode
    matches: tuple[Match, ...]
    #: Why, in one line (shown by ``copss ask``).
    reason: str = ""


#: Candidates whose embeddings are at least this close to the best one's say the same thing (the
#: same question asked again, another wording of it): they lead to the same answer, so they are
#: not its rival. Chosen on StackFAQ (``bench.quality --gate-cv``): leave-one-out auto-answers
#: more at 0.85 than at 0.9, and Qatar Living loses nothing above 0.8.
NEAR_COPY = 0.85

#: A candidate whose best line says what the question says, word for word near enough: the
#: runner-up margin does not apply to it (a sibling FAQ entry scoring close behind must not turn
#: the entry's own question into a list of suggestions).
NEAR_EXACT = 0.95


def near_exact(match: Match) -> bool:
    """Whether ``match`` is a near-exact wording of the question (by its similarity signals)."""
    signals = dict(match.signals)
    return (
        signals.get("similarity", 0.0) >= NEAR_EXACT
        and signals.get("line_agreement", 0.0) >= NEAR_EXACT
    )


#: What a gate's levels are compared with: the matcher's confidence (``Match.score``, the
#: logistic blend) or the sentence-embedding cosine of the match (semantic matching).
Basis = Literal["confidence", "cosine"]


@dataclass(frozen=True)
class Gate:
    """Auto-answer when the best match's level is at least ``answer_at`` and at least ``margin``
    ahead of the best *different* answer; suggest up to ``max_suggestions`` at or above
    ``suggest_at``; otherwise stay quiet.

    The level is ``basis``: the confidence (lexical matching; the defaults here are calibrated
    by ``python -m bench.quality --calibrate``: ``answer_at`` the lowest threshold at which wrong
    auto-answers, answers to questions the store cannot answer included, stay at or under 5% of
    auto-answers on every task; ``suggest_at`` the lowest at which at most 10% of unanswerable
    questions still get suggestions) or the cosine of the sentence embeddings (semantic
    matching: :data:`faq.semantic.SEMANTIC_GATE`, cross-validated by ``--gate-cv``). The
    matches stay in the matcher's order; only what is compared changes. A candidate is a rival
    unless it is the best one again or a near-copy of it (:data:`NEAR_COPY`). See
    ``docs/benchmarks.md``.
    """

    answer_at: float = 0.82
    suggest_at: float = 0.42
    margin: float = 0.05
    max_suggestions: int = 3
    basis: Basis = "confidence"

    def level(self, match: Match) -> float:
        """What the thresholds are compared with for ``match``."""
        if self.basis == "cosine":
            return dict(match.signals).get("cosine", 0.0)
        return match.score

    def rival(self, matches: Sequence[Match]) -> Match | None:
        """The best-levelled candidate after the first that is a different answer: not the
        same item again and not a near-copy of it."""
        top = matches[0]
        rivals = [
            m
            for m in matches[1:]
            if (m.kind, m.ref_id) != (top.kind, top.ref_id)
            and dict(m.signals).get("near_best", 0.0) < NEAR_COPY
        ]
        return max(rivals, key=self.level, default=None)

    def for_matches(self, matches: Sequence[Match]) -> Gate:
        """The gate that decides on ``matches``: this one, or, when a cosine gate meets
        matches ranked on their words alone (a question in a language the model does not
        know), the word-matching gate with its own calibrated levels."""
        if self.basis == "cosine" and matches and dict(matches[0].signals).get(WORDS_ONLY):
            return Gate(max_suggestions=self.max_suggestions)
        return self

    def decide(self, matches: list[Match]) -> Decision:
        """Apply the thresholds to matches sorted best first."""
        if not matches:
            return Decision("quiet", (), "nothing in the store shares a word with it")
        gate = self.for_matches(matches)
        if gate is not self:
            decided = gate.decide(matches)
            return replace(
                decided,
                reason=f"{decided.reason} (ranked on its words alone)",
            )
        top = matches[0]
        best = self.level(top)
        # Say what is compared, so a level read in the reason is the one an admin sets.
        what = "cosine" if self.basis == "cosine" else "confidence"
        if best < self.suggest_at:
            return Decision(
                "quiet",
                (),
                f"best {what} {best:.2f} is below the suggest level {self.suggest_at:.2f}",
            )
        second = self.rival(matches)
        ahead = best - (self.level(second) if second is not None else 0.0)
        if best >= self.answer_at:
            if ahead >= self.margin:
                return Decision(
                    "answer",
                    (top,),
                    f"best {what} {best:.2f} is above the answer level {self.answer_at:.2f} and "
                    f"{ahead:.2f} ahead of the next different answer (margin {self.margin:.2f})",
                )
            if near_exact(top) and not (second is not None and near_exact(second)):
                return Decision(
                    "answer",
                    (top,),
                    f"best {what} {best:.2f} is above the answer level {self.answer_at:.2f} and "
                    "is the question itself, nearly word for word",
                )
            why = (
                f"best {what} {best:.2f} is above the answer level {self.answer_at:.2f} but only "
                f"{ahead:.2f} ahead of the next different answer (margin {self.margin:.2f})"
            )
        else:
            why = (
                f"best {what} {best:.2f} is between the suggest level {self.suggest_at:.2f} and "
                f"the answer level {self.answer_at:.2f}"
            )
        kept = tuple(m for m in matches[: self.max_suggestions] if self.level(m) >= self.suggest_at)
        return Decision("suggest", kept, why)
