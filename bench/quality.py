"""Matching quality on real duplicate-question data (see ``../shared/data/README.md``).

Usage::

    python -m bench.quality --semeval FILE --stackfaq FILE [--calibrate]

Either file may be left out. For each dataset the corpus is loaded as threads into a temporary
SQLite store built by copss's own migrations (so the FTS5 index and its triggers are the real
ones), then every query is ranked by

* ``copss``: :class:`faq.matcher.LexicalMatcher` through :class:`storage.repos.search.SearchRepo`,
* ``FTS5 BM25``: the same index queried with every query word OR-ed, ordered by ``bm25()``,
* ``rapidfuzz WRatio`` / ``rapidfuzz token_sort_ratio``: ``process.extract`` over all texts
  (``utils.default_process`` on both sides), i.e. ``extractOne`` extended to a top 10.

It prints P@1 and MRR@10 per task and method (over queries with at least one relevant item),
then what the confidence gate (:class:`faq.matcher.Gate`) does with copss's matches: on the
normal queries and on *no-match* queries, where the query's relevant items are taken out of the
index first (marked deleted inside a transaction that is rolled back), so any auto-answer there
is wrong. ``--calibrate`` sweeps the gate thresholds over the same runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process, utils
from sqlalchemy import insert, select, text, update

from faq.embedding import Embedder, OnnxEmbedder
from faq.matcher import Features, Gate, LexicalMatcher, Match, Scored, Weights, to_match
from faq.normalize import clean, search_text
from faq.semantic import SEMANTIC_GATE, SEMANTIC_WEIGHTS, SemanticMatcher
from faq.vector_index import VectorIndex
from storage.engine import Database, sqlite_url
from storage.migrations import DEFAULT_COMMUNITY, upgrade
from storage.models import Community, Thread
from storage.repos.search import SearchRepo

TOP = 10
#: The wrong auto-answer rate the default gate is calibrated to stay under.
MAX_WRONG_AUTO = 0.05
_EPOCH = datetime(2015, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Doc:
    """One corpus text; ``parts`` become the lines of its search text (subject, body)."""

    key: str
    parts: tuple[str, ...]
    asked_at: datetime = _EPOCH
    answered: bool = True

    @property
    def text(self) -> str:
        """The text as one message: parts joined by ". "."""
        return ". ".join(p.strip() for p in self.parts if p.strip())


@dataclass(frozen=True)
class Query:
    """A new question, the keys of the corpus texts that answer it, and its own key (if the
    query is itself in the corpus, as in leave-one-out)."""

    text: str
    relevant: frozenset[str]
    itself: str | None = None
    #: The thread the query belongs to (StackFAQ: its thread; Qatar Living: the new question
    #: itself): cross-validation splits by it, so no thread is on both sides.
    thread: str = ""


@dataclass
class Task:
    """Queries over one corpus."""

    dataset: str
    name: str
    docs: list[Doc]
    queries: list[Query]


def _date(value: str | None) -> datetime:
    try:
        return datetime.fromisoformat(value or "").replace(tzinfo=UTC)
    except ValueError:
        return _EPOCH


def load_semeval(path: Path) -> list[Task]:
    """SemEval-2016 task 3 subtask B: corpus = distinct RelQuestion texts (subject, body),
    queries = distinct OrgQuestion texts; strict relevance = PerfectMatch, lenient =
    PerfectMatch or Relevant. Only queries with at least one relevant text are kept; a corpus
    text identical to the query is the query itself and is left out of its ranking."""
    root = ET.parse(path).getroot()
    docs: dict[str, Doc] = {}
    strict: dict[str, set[str]] = {}
    lenient: dict[str, set[str]] = {}
    for org in root.iter("OrgQuestion"):
        qtext = Doc("", (org.findtext("OrgQSubject") or "", org.findtext("OrgQBody") or "")).text
        strict.setdefault(qtext, set())
        lenient.setdefault(qtext, set())
        for thread in org.iter("Thread"):
            rel = thread.find("RelQuestion")
            if rel is None:
                continue
            parts = (rel.findtext("RelQSubject") or "", rel.findtext("RelQBody") or "")
            doc = Doc(
                "",
                parts,
                _date(rel.get("RELQ_DATE")),
                answered=thread.find("RelComment") is not None,
            )
            # Distinct texts: the same question posted twice is one corpus entry.
            key = doc.text
            if key not in docs:
                docs[key] = Doc(key, doc.parts, doc.asked_at, doc.answered)
            label = rel.get("RELQ_RELEVANCE2ORGQ")
            if label == "PerfectMatch":
                strict[qtext].add(key)
            if label in ("PerfectMatch", "Relevant"):
                lenient[qtext].add(key)
    corpus = list(docs.values())
    # One new question is also in the corpus word for word (the same post): like the
    # leave-one-out task, a query never counts itself, as a match or as a miss.
    tasks = []
    for name, labels in (("strict", strict), ("lenient", lenient)):
        queries = []
        for q, keys in labels.items():
            itself = q if q in docs else None
            relevant = frozenset(keys - {q})
            if relevant:
                queries.append(Query(q, relevant, itself, thread=q))
        tasks.append(Task("Qatar Living", name, corpus, queries))
    return tasks


def load_stackfaq(path: Path) -> list[Task]:
    """StackFAQ: task 1 ranks titles for each rephrasing; task 2 (leave-one-out) ranks titles
    and rephrasings for each rephrasing, any other text of its thread being relevant."""
    data = json.loads(path.read_text(encoding="utf-8"))
    pairs: list[dict[str, Any]] = data["root"]["qapair"] if "root" in data else data["qapair"]
    titles: list[Doc] = []
    rephrasings: list[Doc] = []
    members: dict[int, list[str]] = {}
    for i, pair in enumerate(pairs):
        title = Doc(f"t{i}", (str(pair["question"]),))
        titles.append(title)
        members[i] = [title.key]
        for j, reph in enumerate(pair.get("rephr") or []):
            if not isinstance(reph, str) or not reph.strip() or reph.strip() == "*":
                continue
            doc = Doc(f"r{i}.{j}", (reph,))
            rephrasings.append(doc)
            members[i].append(doc.key)
    task1, task2 = [], []
    for d in rephrasings:
        thread = int(d.key[1:].split(".")[0])
        task1.append(Query(d.text, frozenset({f"t{thread}"}), thread=f"s{thread}"))
        others = frozenset(k for k in members[thread] if k != d.key)
        task2.append(Query(d.text, others, d.key, thread=f"s{thread}"))
    return [
        Task("StackFAQ", "reph->title", titles, task1),
        Task("StackFAQ", "leave-one-out", titles + rephrasings, task2),
    ]


@dataclass
class Store:
    """A temporary copss store holding one corpus as threads (and, for semantic matching, the
    threads' embeddings in a vector index)."""

    db: Database
    community: int
    ids: dict[str, int]
    keys: dict[int, str]
    index: VectorIndex | None = None

    def key_of(self, m: Match) -> str | None:
        """The corpus key of a thread match."""
        return self.keys.get(m.ref_id) if m.kind == "thread" else None


async def build_store(path: Path, docs: Sequence[Doc]) -> tuple[Store, float]:
    """Migrate a new SQLite file and bulk-insert ``docs`` as threads (the FTS triggers index
    them); returns the store and the seconds the insert took."""
    db = Database(sqlite_url(path))
    await upgrade(db)
    async with db.session() as s:
        community = await s.scalar(select(Community.id).where(Community.name == DEFAULT_COMMUNITY))
    assert community is not None
    rows: list[dict[str, Any]] = [
        {
            "community_id": community,
            "question_text": d.text,
            "search_text": search_text(d.parts),
            "status": "answered" if d.answered else "open",
            "asked_at": d.asked_at,
            "tags": [],
        }
        for d in docs
    ]
    started = time.perf_counter()
    async with db.session() as s:
        await s.execute(insert(Thread), rows)
    took = time.perf_counter() - started
    async with db.session() as s:
        ids = list((await s.scalars(select(Thread.id).order_by(Thread.id))).all())
    by_key = {d.key: i for d, i in zip(docs, ids, strict=True)}
    return Store(db, community, by_key, {i: k for k, i in by_key.items()}), took


async def copss_ranked(
    store: Store,
    matcher: LexicalMatcher,
    query: Query,
    *,
    remove: frozenset[str] = frozenset(),
) -> list[Scored]:
    """copss's scored candidates for ``query``, best first; ``remove`` keys are taken out of
    the index for this one query (marked deleted in a transaction that is rolled back, and out
    of the vector index until it returns)."""
    ids = [store.ids[k] for k in remove if k in store.ids]
    if store.index is not None:
        for i in ids:
            store.index.set_searchable("thread", i, False)
    try:
        async with store.db.sessions() as s:
            if ids:
                await s.execute(update(Thread).where(Thread.id.in_(ids)).values(status="deleted"))
            ranked = await matcher.rank(
                SearchRepo(s),
                query.text,
                community_id=store.community,
                exclude_thread=store.ids.get(query.itself) if query.itself else None,
            )
            await s.rollback()
    finally:
        if store.index is not None:
            for i in ids:
                store.index.set_searchable("thread", i, True)
    return ranked


def index_corpus(store: Store, docs: Sequence[Doc], embedder: Embedder) -> float:
    """Embed every corpus text (as the bot embeds a thread: its question text) into a vector
    index on ``store``; returns the seconds it took."""
    started = time.perf_counter()
    vectors = embedder.encode([d.text for d in docs])
    index = VectorIndex(embedder.model_id, embedder.dim)
    ids = [store.ids[d.key] for d in docs]
    index.add_many(["thread"] * len(ids), ids, [store.community] * len(ids), vectors)
    store.index = index
    return time.perf_counter() - started


async def bm25_ranking(store: Store, query: Query) -> list[str]:
    """Plain FTS5: every cleaned query word OR-ed, best ``bm25()`` first."""
    return [k for k, _ in await bm25_scored(store, query)]


async def bm25_scored(
    store: Store, query: Query, *, remove: frozenset[str] = frozenset()
) -> list[tuple[str, float]]:
    """Plain FTS5 ranking with its scores (``-bm25()``, larger is better), best first; the
    ``remove`` keys are left out (as copss's no-match runs take them out of the index; the
    index statistics keep them, as copss's FTS table does for deleted threads)."""
    words = clean(query.text).split()
    if not words:
        return []
    fts = " OR ".join('"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words))
    async with store.db.session() as s:
        rows = await s.execute(
            text(
                "SELECT rowid, -bm25(search_fts) FROM search_fts WHERE search_fts MATCH :q "
                "ORDER BY bm25(search_fts) LIMIT :n"
            ),
            {"q": fts, "n": TOP + 1 + len(remove)},
        )
        found = [(store.keys.get(int(r) // 2), float(score)) for r, score in rows.all()]
    return [
        (k, score) for k, score in found if k is not None and k != query.itself and k not in remove
    ][:TOP]


def fuzzy_ranking(
    docs: Sequence[Doc], scorer: Callable[..., float]
) -> Callable[[Query], list[str]]:
    """A ``process.extract`` ranking over every text (``extractOne`` widened to a top 10)."""
    choices = [d.text for d in docs]
    keys = [d.key for d in docs]

    def rank(query: Query) -> list[str]:
        found = process.extract(
            query.text, choices, scorer=scorer, processor=utils.default_process, limit=TOP + 1
        )
        ranked = [keys[i] for _, _, i in found]
        return [k for k in ranked if k != query.itself][:TOP]

    return rank


@dataclass
class Quality:
    """P@1 and MRR@10 over a task's queries."""

    n: int = 0
    hits_at_1: int = 0
    rr: float = 0.0

    def add(self, ranked: Sequence[str | None], relevant: frozenset[str]) -> None:
        """Score one ranked list (best first)."""
        self.n += 1
        for i, key in enumerate(ranked[:TOP]):
            if key in relevant:
                self.hits_at_1 += i == 0
                self.rr += 1.0 / (i + 1)
                break

    @property
    def p1(self) -> float:
        """Precision at 1."""
        return self.hits_at_1 / self.n if self.n else 0.0

    @property
    def mrr(self) -> float:
        """Mean reciprocal rank within the top 10."""
        return self.rr / self.n if self.n else 0.0


Ranked = list[tuple[str | None, Scored]]


@dataclass
class GateRun:
    """copss's scored candidates (with corpus keys) for each query of a task, with and without
    the query's relevant items in the index."""

    task: Task
    normal: list[tuple[Ranked, frozenset[str]]] = field(default_factory=list)
    nomatch: list[tuple[Ranked, frozenset[str]]] = field(default_factory=list)
    #: Plain BM25's matches (kind ``thread``, score = ``-bm25()``) for the same queries, when
    #: the run also measures a gate on the BM25 score (``--gate-cv``).
    bm25_normal: list[list[tuple[str, Match]]] = field(default_factory=list)
    bm25_nomatch: list[list[tuple[str, Match]]] = field(default_factory=list)


def rescore(matcher: LexicalMatcher, ranked: Ranked) -> Ranked:
    """``ranked`` scored again with ``matcher``'s weights (the features do not change)."""
    again = [(k, replace(s, score=matcher.confidence(s.features, s.signals))) for k, s in ranked]
    again.sort(key=lambda ks: ks[1].score, reverse=True)
    return again


@dataclass
class GateFigures:
    """Shares of queries by what the gate did."""

    n: int = 0
    auto_ok: int = 0
    auto_wrong: int = 0
    suggest_hit: int = 0
    suggest_miss: int = 0
    quiet: int = 0

    def add(self, gate: Gate, ranked: Ranked, rel: frozenset[str]) -> None:
        """Apply ``gate`` to one query's matches."""
        top = ranked[:TOP]
        matches = [to_match(s) for _, s in top]
        decision = gate.decide(matches)
        self.count(decision.mode, [top[matches.index(m)][0] for m in decision.matches], rel)

    def count(self, mode: str, shown: Sequence[str | None], rel: frozenset[str]) -> None:
        """Count one decision: its mode and the corpus keys of the items it showed."""
        self.n += 1
        if mode == "answer":
            if shown[0] in rel:
                self.auto_ok += 1
            else:
                self.auto_wrong += 1
        elif mode == "suggest":
            if any(k in rel for k in shown):
                self.suggest_hit += 1
            else:
                self.suggest_miss += 1
        else:
            self.quiet += 1

    def share(self, count: int) -> float:
        """``count`` as a share of the queries."""
        return count / self.n if self.n else 0.0


def gate_figures(run: GateRun, gate: Gate) -> tuple[GateFigures, GateFigures]:
    """The gate's decisions on the normal and the no-match queries of a run."""
    normal, nomatch = GateFigures(), GateFigures()
    for ranked, rel in run.normal:
        normal.add(gate, ranked, rel)
    for ranked, rel in run.nomatch:
        nomatch.add(gate, ranked, rel)
    return normal, nomatch


def wrong_auto_rate(normal: GateFigures, nomatch: GateFigures) -> float:
    """Wrong auto-answers (normal queries answered with a wrong item, plus any auto-answer to a
    no-match query) as a share of all auto-answers."""
    wrong = normal.auto_wrong + nomatch.auto_ok + nomatch.auto_wrong
    total = wrong + normal.auto_ok
    return wrong / total if total else 0.0


async def evaluate(
    tasks: Sequence[Task],
    matcher: LexicalMatcher,
    methods: Sequence[str],
    folder: Path,
    embedder: Embedder | None = None,
    bm25_gate: bool = False,
) -> tuple[dict[tuple[str, str, str], Quality], dict[str, list[GateRun]], dict[str, float]]:
    """Run every method on every task; returns qualities keyed (dataset, task, method), the
    gate runs of copss's matchers (by method; with ``bm25_gate``, also plain BM25's scored
    matches for the same queries), and seconds per method."""
    quality: dict[tuple[str, str, str], Quality] = {}
    runs: dict[str, list[GateRun]] = {}
    seconds: dict[str, float] = {}
    stores: dict[int, Store] = {}
    try:
        for task in tasks:
            corpus_id = id(task.docs)
            if corpus_id not in stores:
                path = folder / f"corpus{len(stores)}.db"
                stores[corpus_id], _ = await build_store(path, task.docs)
                if embedder is not None:
                    took = index_corpus(stores[corpus_id], task.docs, embedder)
                    seconds["embedding the corpora"] = (
                        seconds.get("embedding the corpora", 0.0) + took
                    )
            store = stores[corpus_id]
            for method in methods:
                q = quality.setdefault((task.dataset, task.name, method), Quality())
                started = time.perf_counter()
                if method in ("copss", "semantic"):
                    ranker = matcher
                    if method == "semantic":
                        assert embedder is not None and store.index is not None
                        ranker = SemanticMatcher(embedder, store.index)
                    run = GateRun(task)
                    if bm25_gate:
                        for query in task.queries:
                            gone = query.relevant | ({query.itself} if query.itself else set())
                            for remove, into in (
                                (frozenset(), run.bm25_normal),
                                (frozenset(gone), run.bm25_nomatch),
                            ):
                                found_bm25 = await bm25_scored(store, query, remove=remove)
                                into.append(
                                    [
                                        (k, Match("thread", store.ids[k], v, "bm25"))
                                        for k, v in found_bm25
                                    ]
                                )
                    for query in task.queries:
                        found = await copss_ranked(store, ranker, query)
                        ranked = [(store.key_of(to_match(x)), x) for x in found]
                        q.add([k for k, _ in ranked], query.relevant)
                        run.normal.append((ranked, query.relevant))
                        gone = query.relevant | ({query.itself} if query.itself else set())
                        found = await copss_ranked(store, ranker, query, remove=frozenset(gone))
                        ranked = [(store.key_of(to_match(x)), x) for x in found]
                        run.nomatch.append((ranked, frozenset()))
                    runs.setdefault(method, []).append(run)
                elif method == "bm25":
                    for query in task.queries:
                        q.add(await bm25_ranking(store, query), query.relevant)
                else:
                    scorer = {"wratio": fuzz.WRatio, "token_sort": fuzz.token_sort_ratio}[method]
                    rank = fuzzy_ranking(task.docs, scorer)
                    for query in task.queries:
                        q.add(rank(query), query.relevant)
                seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - started
    finally:
        for store in stores.values():
            await store.db.close()
    return quality, runs, seconds


METHOD_NAMES = {
    "copss": "copss LexicalMatcher",
    "semantic": "copss SemanticMatcher",
    "bm25": "FTS5 BM25 (plain)",
    "token_sort": "rapidfuzz token_sort_ratio",
    "wratio": "rapidfuzz WRatio",
}


def quality_table(quality: dict[tuple[str, str, str], Quality], methods: Sequence[str]) -> str:
    """Markdown: one row per dataset/task/method."""
    lines = ["| dataset | task | queries | method | P@1 | MRR@10 |", "|---|---|---|---|---|---|"]
    for (dataset, task, method), q in quality.items():
        if method in methods:
            name = METHOD_NAMES[method]
            lines.append(f"| {dataset} | {task} | {q.n} | {name} | {q.p1:.3f} | {q.mrr:.3f} |")
    return "\n".join(lines)


def gate_table(runs: Sequence[GateRun], gate: Gate) -> str:
    """Markdown: what the gate did per task, on normal and on no-match queries."""
    lines = [
        f"Gate answer_at={gate.answer_at:.2f} suggest_at={gate.suggest_at:.2f} "
        f"margin={gate.margin:.2f}",
        "",
        "| dataset | task | queries | auto, correct | auto, wrong | suggested, correct among "
        "them | suggested, none correct | quiet | no-match: auto | no-match: suggested | "
        "no-match: quiet | wrong share of auto-answers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        n, x = gate_figures(run, gate)
        lines.append(
            f"| {run.task.dataset} | {run.task.name} | {n.n} | {n.share(n.auto_ok):.1%} | "
            f"{n.share(n.auto_wrong):.1%} | {n.share(n.suggest_hit):.1%} | "
            f"{n.share(n.suggest_miss):.1%} | {n.share(n.quiet):.1%} | "
            f"{x.share(x.auto_ok + x.auto_wrong):.1%} | "
            f"{x.share(x.suggest_hit + x.suggest_miss):.1%} | {x.share(x.quiet):.1%} | "
            f"{wrong_auto_rate(n, x):.1%} |"
        )
    return "\n".join(lines)


def calibrate(runs: Sequence[GateRun], base: Gate) -> str:
    """Sweep ``answer_at``: the lowest threshold whose wrong auto-answer share stays within
    :data:`MAX_WRONG_AUTO` on every task, and the figures on the way there."""
    lines = [
        "| answer_at | "
        + " | ".join(f"{r.task.dataset} {r.task.name}: correct auto / wrong share" for r in runs)
        + " | all tasks pooled: wrong share |",
        "|---|" + "---|" * (len(runs) + 1),
    ]
    chosen: float | None = None
    chosen_pooled: float | None = None
    for step in range(30, 100):
        at = step / 100
        gate = replace(base, answer_at=at, suggest_at=min(base.suggest_at, at))
        cells, ok = [], True
        for run in runs:
            n, x = gate_figures(run, gate)
            rate = wrong_auto_rate(n, x)
            ok = ok and rate <= MAX_WRONG_AUTO
            cells.append(f"{n.share(n.auto_ok):.1%} / {rate:.1%}")
        pooled = [gate_figures(run, gate) for run in runs]
        wrong = sum(n.auto_wrong + x.auto_ok + x.auto_wrong for n, x in pooled)
        right = sum(n.auto_ok for n, _ in pooled)
        rate_all = wrong / (wrong + right) if wrong + right else 0.0
        cells.append(f"{rate_all:.1%}")
        if ok and chosen is None:
            chosen = at
        if rate_all <= MAX_WRONG_AUTO and chosen_pooled is None:
            chosen_pooled = at
        if step % 5 == 0 or at in (chosen, chosen_pooled):
            lines.append(f"| {at:.2f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"lowest answer_at with wrong auto-answers <= {MAX_WRONG_AUTO:.0%} on every task: "
        f"{chosen if chosen is not None else 'none'}; pooled over all tasks: "
        f"{chosen_pooled if chosen_pooled is not None else 'none'}"
    )
    # suggest_at: how often no-match queries would still get a suggestion list.
    lines.append("")
    lines.append(
        "| suggest_at | "
        + " | ".join(f"{r.task.dataset} {r.task.name}: hit / no-match suggested" for r in runs)
        + " |"
    )
    lines.append("|---|" + "---|" * len(runs))
    # Leave-one-out keeps sibling threads (two StackFAQ threads about deleting Gmail mail), so a
    # "no-match" suggestion there is often still useful; the rule looks at the other tasks.
    strict_runs = [r for r in runs if r.task.name != "leave-one-out"]
    chosen_suggest: float | None = None
    for step in range(20, 80):
        at = step / 100
        gate = replace(base, answer_at=max(base.answer_at, at), suggest_at=at)
        replied = [gate_figures(run, gate)[1] for run in strict_runs]
        if all(x.share(x.n - x.quiet) <= 0.10 for x in replied):
            chosen_suggest = at
            break
    for step in range(20, 80, 5):
        at = step / 100
        gate = replace(base, answer_at=max(base.answer_at, at), suggest_at=at)
        cells = []
        for run in runs:
            n, x = gate_figures(run, gate)
            cells.append(
                f"{n.share(n.auto_ok + n.suggest_hit):.1%} / "
                f"{x.share(x.suggest_hit + x.suggest_miss + x.auto_ok + x.auto_wrong):.1%}"
            )
        lines.append(f"| {at:.2f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "lowest suggest_at with at most 10% of no-match queries getting a reply (all tasks but "
        f"leave-one-out): {chosen_suggest if chosen_suggest is not None else 'none'}"
    )
    return "\n".join(lines)


def score_summary(runs: Sequence[GateRun]) -> str:
    """Median top score for correct, wrong and no-match tops (to read the scale)."""

    def med(xs: list[float]) -> float:
        return statistics.median(xs) if xs else math.nan

    lines = []
    for run in runs:
        right = [r[0][1].score for r, rel in run.normal if r and r[0][0] in rel]
        wrong = [r[0][1].score for r, rel in run.normal if r and r[0][0] not in rel]
        none = [r[0][1].score for r, _ in run.nomatch if r]
        lines.append(
            f"{run.task.dataset} {run.task.name}: top score median correct {med(right):.3f} "
            f"(n={len(right)}), wrong {med(wrong):.3f} (n={len(wrong)}), "
            f"no-match {med(none):.3f} (n={len(none)})"
        )
    return "\n".join(lines)


FEATURES = 5


def _vector(f: Features) -> tuple[float, ...]:
    return (f.bm25, f.coverage, f.line_agreement, f.similarity, f.cosine)


def fit_blend(
    runs: Sequence[GateRun], datasets: set[str], epochs: int = 300, lr: float = 0.5
) -> tuple[float, ...]:
    """Listwise (softmax cross-entropy) fit of the similarity weights (the four lexical ones
    and the cosine; the cosine is 0 for the lexical matcher, so its weight stays 0) on the
    normal queries of ``datasets``: each query's candidates compete for its relevant ones."""
    groups: list[tuple[list[tuple[float, ...]], list[bool]]] = []
    for run in runs:
        if run.task.dataset not in datasets:
            continue
        for ranked, rel in run.normal:
            labels = [k in rel for k, _ in ranked]
            if any(labels):
                groups.append(([_vector(s.features) for _, s in ranked], labels))
    w = [0.0] * FEATURES
    l2 = 1e-3
    for _ in range(epochs):
        grad = [0.0] * FEATURES
        for xs, labels in groups:
            scores = [sum(wj * xj for wj, xj in zip(w, x, strict=True)) for x in xs]
            top = max(scores)
            exps = [math.exp(v - top) for v in scores]
            z = sum(exps)
            share = 1.0 / sum(labels)
            for x, e, label in zip(xs, exps, labels, strict=True):
                g = e / z - (share if label else 0.0)
                for j in range(FEATURES):
                    grad[j] += g * x[j]
        for j in range(FEATURES):
            w[j] -= lr * (grad[j] / len(groups) + l2 * w[j])
    return tuple(w)


def fit_confidence(runs: Sequence[GateRun], matcher: LexicalMatcher) -> tuple[float, float]:
    """Logistic fit of "the top candidate is right" on the blend (plus signals) of the top
    candidate, over normal and no-match queries, each task weighing the same."""
    points: list[tuple[float, bool, float]] = []
    for run in runs:
        cases = run.normal + run.nomatch
        for ranked, rel in cases:
            if not ranked:
                continue
            key, best = max(ranked, key=lambda ks: matcher.blend(ks[1].features) + ks[1].signals)
            points.append((matcher.blend(best.features) + best.signals, key in rel, 1 / len(cases)))

    def loss(a: float, b: float) -> float:
        total = 0.0
        for x, y, weight in points:
            z = a * x + b
            # log(1 + e^-z) for a right answer, log(1 + e^z) for a wrong one, computed stably.
            m = -z if y else z
            total += weight * (max(m, 0.0) + math.log1p(math.exp(-abs(m))))
        return total

    a, b = 1.0, -statistics.fmean(x for x, _, _ in points)
    # Damped Newton on the weighted log-loss: two parameters, a few dozen steps.
    for _ in range(100):
        ga = gb = haa = hab = hbb = 0.0
        for x, y, weight in points:
            p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, a * x + b))))
            err = (p - (1.0 if y else 0.0)) * weight
            ga += err * x
            gb += err
            v = p * (1 - p) * weight
            haa += v * x * x
            hab += v * x
            hbb += v
        det = haa * hbb - hab * hab
        if abs(det) < 1e-12:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        step, before = 1.0, loss(a, b)
        while step > 1e-4 and loss(a - step * da, b - step * db) > before:
            step /= 2
        a, b = a - step * da, b - step * db
        if abs(step * da) + abs(step * db) < 1e-7:
            break
    return a, b


def fitted(runs: Sequence[GateRun], datasets: set[str]) -> LexicalMatcher:
    """A matcher whose blend is fit on ``datasets`` and whose confidence is calibrated on
    every run."""
    bm25, coverage, line_agreement, similarity, cosine = fit_blend(runs, datasets)
    base = Weights(
        bm25=bm25,
        coverage=coverage,
        line_agreement=line_agreement,
        similarity=similarity,
        cosine=cosine,
    )
    scale, bias = fit_confidence(runs, LexicalMatcher(weights=base))
    return LexicalMatcher(weights=replace(base, scale=scale, bias=bias))


def refit_report(runs: Sequence[GateRun]) -> str:
    """Fit on each dataset, validate on the other(s): P@1/MRR@10 per task."""
    datasets = sorted({r.task.dataset for r in runs})
    lines = [
        "| fit on | weights (bm25, coverage, line agreement, similarity, cosine; scale, bias) | "
        + " | ".join(f"{r.task.dataset} {r.task.name}" for r in runs)
        + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    for fit_on in [*({d} for d in datasets), set(datasets)]:
        matcher = fitted(runs, fit_on)
        w = matcher.weights
        cells = []
        for run in runs:
            q = Quality()
            for ranked, rel in run.normal:
                q.add([k for k, _ in rescore(matcher, ranked)], rel)
            held_out = "" if run.task.dataset in fit_on else " (held out)"
            cells.append(f"{q.p1:.3f} / {q.mrr:.3f}{held_out}")
        lines.append(
            f"| {' + '.join(sorted(fit_on))} | {w.bm25:.2f}, {w.coverage:.2f}, "
            f"{w.line_agreement:.2f}, {w.similarity:.2f}, {w.cosine:.2f}; "
            f"{w.scale:.2f}, {w.bias:.2f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    tasks: list[Task] = []
    if args.semeval:
        tasks += load_semeval(args.semeval)
    if args.stackfaq:
        tasks += load_stackfaq(args.stackfaq)
    if not tasks:
        print("nothing to do: give --semeval FILE and/or --stackfaq FILE", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        print(f"unknown method(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    embedder: Embedder | None = None
    if args.semantic:
        started = time.perf_counter()
        embedder = OnnxEmbedder.load(args.semantic)
        print(f"model {embedder.model_id} loaded in {time.perf_counter() - started:.2f} s")
    elif "semantic" in methods:
        methods.remove("semantic")
    with tempfile.TemporaryDirectory(prefix="copss-bench-") as folder:
        matcher = LexicalMatcher(candidates=args.candidates)
        quality, by_method, seconds = await evaluate(
            tasks, matcher, methods, Path(folder), embedder, bm25_gate=args.gate_cv
        )
    for task in tasks:
        print(f"{task.dataset} {task.name}: {len(task.docs)} docs, {len(task.queries)} queries")
    print()
    print(quality_table(quality, methods))
    print()
    print(
        "seconds per method (all tasks): " + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
    )
    for method, runs in by_method.items():
        gate = SEMANTIC_GATE if method == "semantic" else Gate()
        print()
        print(f"## {METHOD_NAMES[method]}")
        if method == "semantic":
            w = SEMANTIC_WEIGHTS
            print(
                f"blend: cosine {w.cosine:.2f}, bm25 {w.bm25:.2f}, coverage {w.coverage:.2f}, "
                f"line agreement {w.line_agreement:.2f}, similarity {w.similarity:.2f}; "
                f"scale {w.scale:.2f}, bias {w.bias:.2f}"
            )
        print()
        print(gate_table(runs, gate))
        print()
        print(score_summary(runs))
        if args.calibrate:
            print()
            print(calibrate(runs, gate))
        if args.fit:
            print()
            print(refit_report(runs))
    if args.gate_cv:
        from bench.gate_cv import report

        print()
        print("## Gates cross-validated by thread (fit on one half, measured on the other)")
        print()
        print(report(by_method))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality", description="Matching quality on duplicate-question data."
    )
    parser.add_argument("--semeval", type=Path, help="SemEval-2016 task 3 XML file")
    parser.add_argument("--stackfaq", type=Path, help="StackFAQ JSON file")
    parser.add_argument(
        "--methods",
        default=",".join(METHOD_NAMES),
        help="comma-separated subset of: " + ", ".join(METHOD_NAMES),
    )
    parser.add_argument("--calibrate", action="store_true", help="sweep the gate thresholds")
    parser.add_argument(
        "--candidates", type=int, default=50, help="full-text candidates the matcher re-ranks"
    )
    parser.add_argument(
        "--semantic",
        type=Path,
        help="a model folder (model.onnx + tokenizer.json, see bench/prepare_model.py): "
        "also rank with the semantic matcher",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="fit the blend weights on each dataset and validate on the other",
    )
    parser.add_argument(
        "--gate-cv",
        action="store_true",
        help="fit the gates of copss semantic, copss lexical and a plain BM25 score on half of "
        "each dataset's threads and measure them on the other half (bench/gate_cv.py)",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
