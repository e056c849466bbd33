"""Matching quality and latency with the real corpus mixed into many synthetic threads.

Usage::

    python -m bench.scale encode --semeval FILE --stackfaq FILE --model FOLDER --count 180000
    python -m bench.scale quality --semeval FILE --stackfaq FILE --model FOLDER \\
        --distractors 0,100000 [--clean]
    python -m bench.scale latency --semeval FILE --stackfaq FILE --model FOLDER \\
        --distractors 100000
    python -m bench.scale all ...   # quality, then latency on the same store

Distractors are ``bench.latency``'s synthetic expat-chat threads (seed 7): thread ``i`` is the
same whatever the count, so the first 100,000 of a million are the 100,000 set. ``encode``
embeds them with the real model in chunks of :data:`CHUNK` and caches the vectors (float16, as
the store keeps them) under ``--cache``; it resumes where it stopped, and the other commands
read the cache.

The real texts of both datasets go at random thread ids among the distractors, in one
community; each task sees only its own corpus. Quality is P@1 / MRR@10 per task for copss
semantic and lexical, plain BM25, and copss without its posting budget; a distractor that
rewords a real question stands for it (see :func:`stand_ins`), and ``--clean`` keeps only
distractors that hold no query (:func:`holds_a_query`). Latency is ``SemanticMatcher.match``
end to end on the same store (docs/benchmarks.md, "Semantic matching at scale").
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import insert, select, update

import storage.repos.search as search_module
from bench.latency import Source, load_source, percentile, traced_synthetic_threads
from bench.quality import (
    _EPOCH,
    Doc,
    Quality,
    Query,
    Store,
    Task,
    bm25_ranking,
    copss_ranked,
    load_semeval,
    load_stackfaq,
)
from faq.embedding import Embedder, OnnxEmbedder
from faq.matcher import LexicalMatcher, to_match
from faq.normalize import search_text
from faq.semantic import VECTOR_CANDIDATES, SemanticMatcher
from faq.vector_index import VectorIndex
from storage.engine import Database, sqlite_url
from storage.migrations import DEFAULT_COMMUNITY, upgrade
from storage.models import Community, Thread
from storage.repos.search import SearchRepo

#: Distractors per cached vector file.
CHUNK = 10_000
SEED = 7
DEFAULT_CACHE = Path("/tmp/copss-bench")


def distractor_texts(source: Source, count: int) -> tuple[list[int], list[str]]:
    """The first ``count`` synthetic threads: the source question each rewords, and its
    question text as the bot stores and embeds it ("subject. body")."""
    origins, texts = [], []
    for origin, subject, body in traced_synthetic_threads(source, count, SEED):
        origins.append(origin)
        texts.append(f"{subject}. {body}".strip())
    return origins, texts


def chunk_path(cache: Path, texts: Sequence[str], start: int) -> Path:
    """Where the vectors of ``texts[start:start + CHUNK]`` are cached (named by a digest of
    the texts, so a changed generator never reads stale vectors)."""
    digest = hashlib.sha256("\n".join(texts[start : start + CHUNK]).encode()).hexdigest()[:12]
    return cache / f"distractors-seed{SEED}-{start // CHUNK:04d}-{digest}.npy"


def load_vectors(cache: Path, texts: Sequence[str]) -> npt.NDArray[np.float16]:
    """The cached vectors of every text (``encode`` must have run over them)."""
    parts = []
    for start in range(0, len(texts), CHUNK):
        path = chunk_path(cache, texts, start)
        if not path.exists():
            raise SystemExit(f"{path} missing: run `python -m bench.scale encode` first")
        parts.append(np.load(path)[: min(CHUNK, len(texts) - start)])
    return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float16)


def holds_a_query(source: Source, origin: int, text: str, queries: frozenset[str]) -> bool:
    """Whether a distractor rewords a query of the quality tasks (its subject line is one) or
    quotes one word for word among its mixed-in sentences (the generator draws them from
    body sentences *and* subject lines). Such a distractor is the query itself -- counting it
    right makes the task trivial, leaving it out of the query's ranking can leave nothing
    else in it -- so ``--clean`` keeps distractors without one."""
    subject, body = source.questions[origin]
    if Doc("", (subject, body)).text in queries:
        return True
    mixed_in = text[len(" ".join(subject.split())) + 2 :]
    return any(q in mixed_in for q in queries)


def pick_distractors(
    source: Source, n: int, queries: frozenset[str] | None, cache: Path
) -> tuple[list[int], list[str], list[int], npt.NDArray[np.float16]]:
    """``n`` distractors: their origins, texts, numbers in the generator's sequence, and
    vectors. With ``queries``: the first ``n`` that hold none of them (read from a longer
    prefix of the cached vectors)."""
    if queries is None or n == 0:
        origins, texts = distractor_texts(source, n)
        return origins, texts, list(range(n)), load_vectors(cache, texts)
    # About 60% hold no query: read up to three times as many.
    origins, texts = distractor_texts(source, -(-3 * n // CHUNK) * CHUNK)
    keep: list[int] = []
    for start in range(0, len(texts), CHUNK):
        if len(keep) >= n or not chunk_path(cache, texts, start).exists():
            break
        keep += [
            i
            for i in range(start, start + CHUNK)
            if not holds_a_query(source, origins[i], texts[i], queries)
        ]
    keep = keep[:n]
    if len(keep) < n:
        raise SystemExit(f"only {len(keep):,} clean distractors among the cached vectors")
    # Whole chunks: a cached file is named by the digest of all its texts.
    vectors = load_vectors(cache, texts[: -(-(keep[-1] + 1) // CHUNK) * CHUNK])
    print(f"{n:,} distractors that hold no query: the first among {keep[-1] + 1:,}", flush=True)
    return [origins[i] for i in keep], [texts[i] for i in keep], keep, vectors[keep]


def encode(args: argparse.Namespace) -> int:
    source = load_source(args.semeval, args.stackfaq)
    # Whole chunks, so a smaller count later reads a prefix of the same files.
    total = -(-args.count // CHUNK) * CHUNK
    _, texts = distractor_texts(source, total)
    embedder = OnnxEmbedder.load(args.model, threads=args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    done = 0
    started = time.perf_counter()
    for start in range(0, total, CHUNK):
        path = chunk_path(args.cache, texts, start)
        if path.exists():
            continue
        t0 = time.perf_counter()
        vectors = embedder.encode(texts[start : start + CHUNK]).astype(np.float16)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.rename(path)
        done += len(vectors)
        took = time.perf_counter() - t0
        print(
            f"{start + CHUNK:,}/{total:,}: {len(vectors) / took:.0f} texts/s "
            f"({done / (time.perf_counter() - started):.0f}/s this run)",
            flush=True,
        )
    return 0


#: Threads inserted per transaction, and vectors added to the index per call (as
#: ``load_index`` does at start-up).
BATCH = 10_000
LOAD_BATCH = 5_000


@dataclass
class Corpus:
    """Every real text of both datasets (each task sees only its own: the others are taken out
    while it runs) and the tasks."""

    docs: list[Doc]
    tasks: list[Task]
    #: Corpus key of a real text, by its text (to name the question a distractor rewords).
    key_by_text: dict[str, str]


def load_corpus(semeval: Path, stackfaq: Path) -> Corpus:
    tasks = load_semeval(semeval) + load_stackfaq(stackfaq)
    docs: dict[str, Doc] = {}
    for task in tasks:
        for d in task.docs:
            docs.setdefault(d.key, d)
    return Corpus(list(docs.values()), tasks, {d.text: d.key for d in docs.values()})


def rss_mb() -> tuple[float, float]:
    """Resident and peak resident memory of this process, MiB (freed heap given back
    first)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    now = peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return now, peak


@dataclass
class Built:
    """A store holding the real texts among ``n`` distractors, and its vector index."""

    store: Store
    n: int
    #: Corpus key of the real question each distractor rewords (None: not a real one).
    origin: dict[str, str]
    #: Real thread id -> its text.
    real: dict[int, Doc]
    #: The sentences each distractor mixes in after its subject.
    mixed_in: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)
    _quoted: dict[str, frozenset[str]] = field(default_factory=dict)

    def quoted(self, key: str) -> frozenset[str]:
        """Corpus keys of the real questions whose subject line a distractor's mixed-in
        sentences quote word for word (the generator draws them from body sentences and
        subject lines alike)."""
        found = self._quoted.get(key)
        if found is None:
            body = self.mixed_in.get(key, "")
            found = frozenset(k for s, ks in _SUBJECT_KEYS.items() if s in body for k in ks)
            self._quoted[key] = found
        return found


async def build(
    path: Path,
    corpus: Corpus,
    source: Source,
    n: int,
    embedder: Embedder,
    cache: Path,
    *,
    clean: bool = False,
) -> Built:
    """A SQLite store (copss's migrations, FTS triggers) with the real texts at random places
    among ``n`` distractors -- so neither is always the newest, which the posting budget
    favours -- and the vector index of all of them, added as ``load_index`` adds them."""
    seconds: dict[str, float] = {}
    queries = frozenset(q.text for task in corpus.tasks for q in task.queries) if clean else None
    origins, texts, numbers, distractor_vectors = pick_distractors(source, n, queries, cache)
    db = Database(sqlite_url(path))
    await upgrade(db)
    async with db.session() as s:
        community = await s.scalar(select(Community.id).where(Community.name == DEFAULT_COMMUNITY))
    assert community is not None
    total = n + len(corpus.docs)
    real_ids = sorted(random.Random(SEED).sample(range(1, total + 1), len(corpus.docs)))
    real = dict(zip(real_ids, corpus.docs, strict=True))
    ids: dict[str, int] = {}
    keys: dict[int, str] = {}
    origin: dict[str, str] = {}
    mixed_in: dict[str, str] = {}
    order = np.empty(total, dtype=np.int64)  # row of each thread in [real vectors; distractors]
    started = time.perf_counter()
    normalise = 0.0
    rows: list[dict[str, object]] = []
    d = 0
    for thread_id in range(1, total + 1):
        t0 = time.perf_counter()
        doc = real.get(thread_id)
        if doc is not None:
            key = doc.key
            row: dict[str, object] = {
                "question_text": doc.text,
                "search_text": search_text(doc.parts),
                "status": "answered" if doc.answered else "open",
                "asked_at": doc.asked_at,
            }
        else:
            key = f"d{numbers[d]}"
            order[thread_id - 1] = len(corpus.docs) + d
            found = corpus.key_by_text.get(Doc("", source.questions[origins[d]]).text)
            if found is not None:
                origin[key] = found
            subject, _, body = texts[d].partition(". ")
            asked = " ".join(source.questions[origins[d]][0].split())
            mixed_in[key] = texts[d][len(asked) + 2 :]
            row = {
                "question_text": texts[d],
                "search_text": search_text([subject, body]),
                "status": "answered",
                "asked_at": _EPOCH,
            }
            d += 1
        ids[key] = thread_id
        keys[thread_id] = key
        row.update(id=thread_id, community_id=community, tags=[])
        rows.append(row)
        normalise += time.perf_counter() - t0
        if len(rows) == BATCH or thread_id == total:
            async with db.session() as s:
                await s.execute(insert(Thread), rows)
            rows = []
    seconds["normalise"] = normalise
    seconds["insert + FTS"] = time.perf_counter() - started - normalise
    del texts
    for i, thread_id in enumerate(real_ids):
        order[thread_id - 1] = i
    started = time.perf_counter()
    real_vectors = embedder.encode([doc.text for doc in corpus.docs])
    seconds["encode real texts"] = time.perf_counter() - started
    started = time.perf_counter()
    index = VectorIndex(embedder.model_id, embedder.dim)
    for first in range(0, total, LOAD_BATCH):
        rows_at = order[first : first + LOAD_BATCH]
        vectors = np.empty((len(rows_at), embedder.dim), dtype=np.float32)
        is_real = rows_at < len(corpus.docs)
        vectors[is_real] = real_vectors[rows_at[is_real]]
        vectors[~is_real] = distractor_vectors[rows_at[~is_real] - len(corpus.docs)]
        thread_ids = np.arange(first + 1, first + 1 + len(rows_at), dtype=np.int64)
        index.add_many(["thread"] * len(rows_at), thread_ids, [community] * len(rows_at), vectors)
    seconds["vector index"] = time.perf_counter() - started
    del distractor_vectors
    return Built(Store(db, community, ids, keys, index), n, origin, real, mixed_in, seconds)


async def show_only(built: Built, task: Task | None) -> None:
    """Take every real text not in ``task``'s corpus out of the store and the index (None:
    put every real text back)."""
    mine = None if task is None else {d.key for d in task.docs}
    index = built.store.index
    assert index is not None
    hide = [i for i, d in built.real.items() if mine is not None and d.key not in mine]
    show = [i for i in built.real if i not in set(hide)]
    async with built.store.db.session() as s:
        await s.execute(update(Thread).where(Thread.id.in_(hide)).values(status="deleted"))
        for status, answered in (("answered", True), ("open", False)):
            ids = [i for i in show if built.real[i].answered == answered]
            await s.execute(update(Thread).where(Thread.id.in_(ids)).values(status=status))
    for i in hide:
        index.set_searchable("thread", i, False)
    for i in show:
        index.set_searchable("thread", i, True)


@dataclass
class Scores:
    """P@1 and MRR@10 two ways: a distractor that rewords a real question standing for that
    question (``same``: it asks it again), and every distractor counted wrong (``raw``)."""

    same: Quality = field(default_factory=Quality)
    raw: Quality = field(default_factory=Quality)


def stand_ins(
    built: Built, task: Task, query: Query, ranked: Sequence[str | None]
) -> list[str | None]:
    """``ranked`` with each distractor standing for the real question it rewords: that
    question's key (a StackFAQ rephrasing stands for its thread's title in reph->title), or
    None (wrong) if it rewords nothing relevant. A distractor that rewords or quotes the query
    itself is left out, as the query's own text is; so is one that quotes a relevant text
    verbatim among its mixed-in sentences (neither right nor wrong: it holds the answer's
    words, not its thread)."""
    corpus_keys = {d.key for d in task.docs}

    def in_task(key: str | None) -> str | None:
        if key is None or key in corpus_keys:
            return key
        if task.dataset == "StackFAQ" and key.startswith("r"):
            return "t" + key[1:].split(".")[0]
        return None

    own = {k for k in (query.itself, _KEY_OF_TEXT.get(query.text)) if k is not None}
    out: list[str | None] = []
    for key in ranked:
        if key is None or not key.startswith("d"):
            out.append(key)
            continue
        was = built.origin.get(key)
        quoted = built.quoted(key)
        if was in own or quoted & own:
            continue
        mapped = in_task(was)
        if mapped not in query.relevant and any(in_task(k) in query.relevant for k in quoted):
            continue
        out.append(mapped)
    return out


_KEY_OF_TEXT: dict[str, str] = {}
#: Subject line -> corpus keys of the real questions that have it.
_SUBJECT_KEYS: dict[str, set[str]] = {}

#: Methods measured: copss semantic and lexical, plain BM25, and copss without its posting
#: budget (every term queried over every row), to see what the budget costs.
METHODS = ("semantic", "lexical", "bm25", "semantic-nobudget", "lexical-nobudget")


#: Nearest neighbours the semantic matcher asks for (``--vector-candidates``).
VECTOR_K = [VECTOR_CANDIDATES]


def matcher_for(method: str, built: Built, embedder: Embedder) -> LexicalMatcher | None:
    if method.startswith("semantic"):
        assert built.store.index is not None
        return SemanticMatcher(embedder, built.store.index, vector_candidates=VECTOR_K[0])
    if method.startswith("lexical"):
        return LexicalMatcher()
    return None


async def ranking(
    built: Built, method: str, matcher: LexicalMatcher | None, query: Query
) -> list[str | None]:
    """Corpus keys (``d<i>`` for distractors) best first."""
    if matcher is None:
        return list(await bm25_ranking(built.store, query))
    budget = search_module.POSTING_BUDGET
    if method.endswith("-nobudget"):
        search_module.POSTING_BUDGET = 1 << 40
    try:
        found = await copss_ranked(built.store, matcher, query)
    finally:
        search_module.POSTING_BUDGET = budget
    return [built.store.key_of(to_match(x)) for x in found]


async def measure_quality(
    built: Built, corpus: Corpus, embedder: Embedder, methods: Sequence[str]
) -> dict[tuple[str, str, str], Scores]:
    """P@1 / MRR@10 per (task, method), keyed (dataset, task, method)."""
    out: dict[tuple[str, str, str], Scores] = {}
    for task in corpus.tasks:
        await show_only(built, task)
        for method in methods:
            matcher = matcher_for(method, built, embedder)
            scores = out.setdefault((task.dataset, task.name, method), Scores())
            for query in task.queries:
                ranked = await ranking(built, method, matcher, query)
                scores.raw.add(ranked, query.relevant)
                scores.same.add(stand_ins(built, task, query, ranked), query.relevant)
    await show_only(built, None)
    return out


@dataclass
class Latency:
    """Milliseconds per question at one size."""

    encode: list[float] = field(default_factory=list)
    semantic: list[float] = field(default_factory=list)
    semantic_session: list[float] = field(default_factory=list)
    lexical: list[float] = field(default_factory=list)
    lexical_nobudget: list[float] = field(default_factory=list)


async def measure_latency(built: Built, embedder: Embedder, queries: Sequence[str]) -> Latency:
    """``SemanticMatcher.match`` end to end (encode, both searches, loading the hits, rerank),
    the call alone and with opening its session; the encoder alone and ``LexicalMatcher``
    beside it. Every real text is shown."""
    store = built.store
    assert store.index is not None
    semantic = SemanticMatcher(embedder, store.index, vector_candidates=VECTOR_K[0])
    lexical = LexicalMatcher()
    out = Latency()

    async def timed(matcher: LexicalMatcher, query: str) -> tuple[float, float]:
        started = time.perf_counter()
        async with store.db.session() as s:
            called = time.perf_counter()
            await matcher.match(SearchRepo(s), query, community_id=store.community, limit=3)
            done = time.perf_counter()
        return (done - called) * 1000, (time.perf_counter() - started) * 1000

    for query in queries[:20]:  # warm the caches
        await timed(semantic, query)
        await timed(lexical, query)
    for query in queries:
        started = time.perf_counter()
        embedder.encode([query.strip()])
        out.encode.append((time.perf_counter() - started) * 1000)
        alone, with_session = await timed(semantic, query)
        out.semantic.append(alone)
        out.semantic_session.append(with_session)
        out.lexical.append((await timed(lexical, query))[0])
        budget = search_module.POSTING_BUDGET
        search_module.POSTING_BUDGET = 1 << 40
        try:
            out.lexical_nobudget.append((await timed(lexical, query))[0])
        finally:
            search_module.POSTING_BUDGET = budget
    return out


def quality_table(results: dict[int, dict[tuple[str, str, str], Scores]]) -> str:
    """Markdown: P@1 per task and method at each size, and its drop from no distractors."""
    sizes = sorted(results)
    base = results[sizes[0]]
    head = "| dataset | task | queries | method | " + " | ".join(
        f"P@1 at {n:,} (raw) / MRR@10" for n in sizes
    )
    head += " | " + " | ".join(f"drop at {n:,}" for n in sizes[1:]) + " |"
    lines = [head, "|---|---|---|---|" + "---|" * (2 * len(sizes) - 1)]
    for key, first in base.items():
        dataset, task, method = key
        cells = []
        for n in sizes:
            sc = results[n][key]
            cells.append(f"{sc.same.p1:.3f} ({sc.raw.p1:.3f}) / {sc.same.mrr:.3f}")
        drops = [f"{(first.same.p1 - results[n][key].same.p1) * 100:+.1f}" for n in sizes[1:]]
        lines.append(
            f"| {dataset} | {task} | {first.same.n} | {method} | "
            + " | ".join(cells + drops)
            + " |"
        )
    return "\n".join(lines)


def latency_table(results: dict[int, tuple[Latency, float, float, dict[str, float]]]) -> str:
    lines = [
        "| threads | questions | SemanticMatcher.match p50 / p99 ms | with session p50 / p99 "
        "| encoder alone p50 / p99 | LexicalMatcher.match p50 / p99 "
        "| LexicalMatcher, no posting budget | RSS / peak MiB "
        "| build s (normalise, insert + FTS, vector index) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, (lat, rss, peak, seconds) in sorted(results.items()):

        def pp(xs: list[float]) -> str:
            return f"{percentile(xs, 0.5):.1f} / {percentile(xs, 0.99):.1f}"

        build = ", ".join(
            f"{seconds.get(k, 0):.0f}" for k in ("normalise", "insert + FTS", "vector index")
        )
        lines.append(
            f"| {n:,} | {len(lat.semantic)} | {pp(lat.semantic)} | {pp(lat.semantic_session)} | "
            f"{pp(lat.encode)} | {pp(lat.lexical)} | {pp(lat.lexical_nobudget)} | "
            f"{rss:.0f} / {peak:.0f} | {build} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    corpus = load_corpus(args.semeval, args.stackfaq)
    _KEY_OF_TEXT.update(corpus.key_by_text)
    source = load_source(args.semeval, args.stackfaq)
    for subject, body in source.questions:
        found = corpus.key_by_text.get(Doc("", (subject, body)).text)
        if found is not None and len(subject.strip()) >= 12:
            _SUBJECT_KEYS.setdefault(subject, set()).add(found)
    embedder = OnnxEmbedder.load(args.model)
    sizes = [int(x.replace("_", "")) for x in args.distractors.split(",") if x.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    VECTOR_K[0] = args.vector_candidates
    quality: dict[int, dict[tuple[str, str, str], Scores]] = {}
    latency: dict[int, tuple[Latency, float, float, dict[str, float]]] = {}
    queries = random.Random(3).sample(source.queries, min(args.queries, len(source.queries)))
    with tempfile.TemporaryDirectory(prefix="copss-scale-", dir=args.tmp) as folder:
        for n in sizes:
            started = time.perf_counter()
            built = await build(
                Path(folder) / f"scale-{n}.db",
                corpus,
                source,
                n,
                embedder,
                args.cache,
                clean=args.command in ("quality", "all") and args.clean,
            )
            if args.ef and built.store.index is not None:
                built.store.index.set_expansion_search(args.ef)
            groups = built.store.index.groups() if built.store.index else {}
            print(
                f"{n:,} distractors: built in {time.perf_counter() - started:.0f} s "
                f"({', '.join(f'{k} {v:.1f}' for k, v in built.seconds.items())}); "
                f"index groups {groups}",
                flush=True,
            )
            try:
                if args.command in ("quality", "all"):
                    started = time.perf_counter()
                    quality[n] = await measure_quality(built, corpus, embedder, methods)
                    print(f"quality at {n:,} in {time.perf_counter() - started:.0f} s", flush=True)
                    print(quality_table({n: quality[n]}), flush=True)
                if args.command in ("latency", "all"):
                    lat = await measure_latency(built, embedder, queries)
                    rss, peak = rss_mb()
                    latency[n] = (lat, rss, peak, built.seconds)
                    print(latency_table({n: latency[n]}), flush=True)
            finally:
                await built.store.db.close()
                del built
    if quality:
        print()
        print(quality_table(quality))
        print(
            "\nP@1 counts a distractor that rewords a real question as that question (it asks "
            "it again); (raw) counts every distractor wrong."
        )
    if latency:
        print()
        print(latency_table(latency))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("encode", "quality", "latency", "all"):
        p = sub.add_parser(name)
        p.add_argument("--semeval", type=Path, required=True, help="SemEval-2016 task 3 XML")
        p.add_argument("--stackfaq", type=Path, required=True, help="StackFAQ JSON file")
        p.add_argument("--model", type=Path, required=True, help="model folder")
        p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="vector cache folder")
        if name == "encode":
            p.add_argument("--count", type=int, default=100_000, help="distractors to encode")
            p.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
        else:
            p.add_argument(
                "--distractors", default="0,100000", help="comma-separated distractor counts"
            )
            p.add_argument("--methods", default=",".join(METHODS), help="quality methods")
            p.add_argument("--queries", type=int, default=300, help="latency questions")
            p.add_argument(
                "--vector-candidates",
                type=int,
                default=VECTOR_CANDIDATES,
                help="nearest neighbours the semantic matcher asks for",
            )
            p.add_argument("--ef", type=int, default=0, help="HNSW search depth (0: copss's)")
            p.add_argument("--tmp", type=Path, default=None, help="folder for the stores")
            p.add_argument(
                "--clean",
                action="store_true",
                help="only distractors that neither reword nor quote a query of the quality "
                "tasks (about 60%%: needs more encoded)",
            )
    args = parser.parse_args(argv)
    if args.command == "encode":
        return encode(args)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
