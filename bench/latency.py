"""Matching latency, index build time, memory and index freshness at scale.

Usage::

    python -m bench.latency --semeval FILE --stackfaq FILE [--sizes 10000,100000,1000000]

The corpus is made from real question text: every question of the two datasets (SemEval
subjects and bodies, StackFAQ titles and rephrasings) is split into sentences, and each
synthetic thread is built from a real question's subject with its words lightly shuffled, one
to three sentences drawn from other real questions, and a numeric suffix (``#123456``) that
makes it unique -- so term frequencies stay those of real questions while the vocabulary grows
with a long tail like a real store's. Threads are bulk-inserted into a real SQLite store
(copss's migrations, FTS5 triggers) in batches of 10,000.

For each size it prints

* build time: normalising the texts (``search_text``) and inserting them (FTS triggers
  included), separately;
* per-query p50/p99 of ``LexicalMatcher().match`` in its own session, over real questions that
  are not in the corpus verbatim (StackFAQ rephrasings and SemEval new questions);
* the same for naive ``process.extractOne(query, corpus, scorer=WRatio)`` over the raw texts,
  run in a child process so that its in-memory corpus does not count towards copss's memory
  (fewer queries at the larger sizes: the number is printed);
* peak RSS of the copss process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the high-water
  mark of the whole run up to that size: loading, indexing and querying);
* freshness: time from the start of the transaction that records a new thread (message +
  ``ThreadRepo.create``, committed) until ``match`` in a new session returns it first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import re
import resource
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rapidfuzz import fuzz, process
from sqlalchemy import insert, select

from faq.matcher import LexicalMatcher
from faq.normalize import search_text
from storage.engine import Database, sqlite_url
from storage.migrations import DEFAULT_COMMUNITY, upgrade
from storage.models import Community, Thread
from storage.repos.conversation import ConversationRepo
from storage.repos.search import SearchRepo
from storage.repos.threads import ThreadRepo

BATCH = 10_000
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Source:
    """Real question text: (subject, body) pairs to build threads from, sentences to mix in,
    and queries (real questions whose exact text is not in the corpus)."""

    questions: list[tuple[str, str]]
    sentences: list[str]
    queries: list[str]


def load_source(semeval: Path | None, stackfaq: Path | None) -> Source:
    """Collect question texts from the datasets."""
    questions: list[tuple[str, str]] = []
    queries: list[str] = []
    if semeval:
        root = ET.parse(semeval).getroot()
        seen: set[str] = set()
        for org in root.iter("OrgQuestion"):
            text = f"{org.findtext('OrgQSubject') or ''}. {org.findtext('OrgQBody') or ''}"
            if text not in seen:
                seen.add(text)
                queries.append(text)
        for rel in root.iter("RelQuestion"):
            questions.append((rel.findtext("RelQSubject") or "", rel.findtext("RelQBody") or ""))
    if stackfaq:
        data = json.loads(stackfaq.read_text(encoding="utf-8"))
        pairs = data["root"]["qapair"] if "root" in data else data["qapair"]
        for pair in pairs:
            questions.append((str(pair["question"]), ""))
            rephrasings = [r for r in pair.get("rephr") or [] if isinstance(r, str) and r != "*"]
            # Half the rephrasings become corpus text, the other half queries.
            questions.extend((r, "") for r in rephrasings[::2])
            queries.extend(rephrasings[1::2])
    sentences = [
        s.strip() for subject, body in questions for s in _SENTENCE.split(body) if s.strip()
    ]
    sentences += [subject for subject, _ in questions if subject.strip()]
    return Source(questions, sentences, queries)


def synthetic_threads(source: Source, count: int, seed: int = 7) -> Iterator[tuple[str, str]]:
    """``count`` (subject, body) pairs recombined from real questions (see module doc)."""
    for _, subject, body in traced_synthetic_threads(source, count, seed):
        yield subject, body


def traced_synthetic_threads(
    source: Source, count: int, seed: int = 7
) -> Iterator[tuple[int, str, str]]:
    """:func:`synthetic_threads` with the index in ``source.questions`` of the question each
    thread rewords (a quality benchmark counts such a thread as asking that question again)."""
    rng = random.Random(seed)
    for i in range(count):
        origin = rng.randrange(len(source.questions))
        subject, body = source.questions[origin]
        words = subject.split()
        if len(words) > 3 and rng.random() < 0.5:
            # Swap two neighbouring words: the same question, worded a little differently.
            j = rng.randrange(len(words) - 1)
            words[j], words[j + 1] = words[j + 1], words[j]
        parts = [body] if body and rng.random() < 0.5 else []
        parts += [
            source.sentences[rng.randrange(len(source.sentences))] for _ in range(rng.randint(1, 3))
        ]
        yield origin, " ".join(words), " ".join(parts) + f" #{i}"


def _rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class SizeResult:
    """What one corpus size measured."""

    size: int
    normalise_s: float
    insert_s: float
    copss_ms: list[float]
    session_ms: list[float]
    naive_ms: list[float]
    fresh_ms: list[float]
    rss_mb: float


async def build(db: Database, source: Source, size: int) -> tuple[int, float, float]:
    """Bulk-load ``size`` synthetic threads; returns (community id, normalise s, insert s)."""
    await upgrade(db)
    async with db.session() as s:
        community = await s.scalar(select(Community.id).where(Community.name == DEFAULT_COMMUNITY))
    assert community is not None
    normalise = inserting = 0.0
    batch: list[dict[str, object]] = []
    threads = synthetic_threads(source, size)
    for n, (subject, body) in enumerate(threads, 1):
        started = time.perf_counter()
        batch.append(
            {
                "community_id": community,
                "question_text": f"{subject}. {body}",
                "search_text": search_text([subject, body]),
                "status": "answered",
                "asked_at": _NOW - timedelta(minutes=n),
                "tags": [],
            }
        )
        normalise += time.perf_counter() - started
        if len(batch) == BATCH or n == size:
            started = time.perf_counter()
            async with db.session() as s:
                await s.execute(insert(Thread), batch)
            inserting += time.perf_counter() - started
            batch = []
    return community, normalise, inserting


async def time_queries(
    db: Database, matcher: LexicalMatcher, community: int, queries: Sequence[str]
) -> tuple[list[float], list[float]]:
    """Milliseconds per ``match`` call: the call alone (what a handler pays inside the
    transaction it already has) and including opening and committing a session for it."""
    alone, with_session = [], []
    for query in queries:
        started = time.perf_counter()
        async with db.session() as s:
            called = time.perf_counter()
            await matcher.match(SearchRepo(s), query, community_id=community, limit=3)
            alone.append((time.perf_counter() - called) * 1000)
        with_session.append((time.perf_counter() - started) * 1000)
    return alone, with_session


async def time_freshness(
    db: Database, matcher: LexicalMatcher, source: Source, rounds: int
) -> list[float]:
    """Milliseconds from recording a new thread to the matcher returning it first."""
    rng = random.Random(11)
    out = []
    for i in range(rounds):
        subject, _ = source.questions[rng.randrange(len(source.questions))]
        text = f"{subject} freshcheck{i}x"
        started = time.perf_counter()
        async with db.session() as s:
            repo = ConversationRepo(s)
            channel = await repo.ensure_channel("console", "bench", None)
            member = await repo.ensure_member("console", "bench", "bench")
            message, _ = await repo.add_message(channel, f"fresh-{i}", member, text, _NOW)
            thread = await ThreadRepo(s).create(
                channel.community_id, message, text, search_text([text]), _NOW
            )
            thread_id, community = thread.id, channel.community_id
        while True:
            async with db.session() as s:
                found = await matcher.match(SearchRepo(s), text, community_id=community, limit=1)
            if found and found[0].kind == "thread" and found[0].ref_id == thread_id:
                break
            if time.perf_counter() - started > 10:
                raise RuntimeError(f"thread {thread_id} not findable after 10 s")
        out.append((time.perf_counter() - started) * 1000)
    return out


def _naive_worker(
    semeval: Path | None,
    stackfaq: Path | None,
    size: int,
    queries: list[str],
    out: multiprocessing.Queue[list[float]],
) -> None:
    source = load_source(semeval, stackfaq)
    corpus = [f"{subject}. {body}" for subject, body in synthetic_threads(source, size)]
    times = []
    for query in queries:
        started = time.perf_counter()
        process.extractOne(query, corpus, scorer=fuzz.WRatio)
        times.append((time.perf_counter() - started) * 1000)
    out.put(times)


def time_naive(
    semeval: Path | None, stackfaq: Path | None, size: int, queries: list[str]
) -> list[float]:
    """Naive ``extractOne`` timings, measured in a child process."""
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[float]] = ctx.Queue()
    child = ctx.Process(target=_naive_worker, args=(semeval, stackfaq, size, queries, results))
    child.start()
    times = results.get()
    child.join()
    return times


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run_size(args: argparse.Namespace, source: Source, size: int, folder: Path) -> SizeResult:
    """Build, time and measure one corpus size."""
    db = Database(sqlite_url(folder / f"latency-{size}.db"))
    try:
        community, normalise_s, insert_s = await build(db, source, size)
        matcher = LexicalMatcher(now=_NOW)
        rng = random.Random(3)
        queries = rng.sample(source.queries, min(args.queries, len(source.queries)))
        await time_queries(db, matcher, community, queries[:20])  # warm caches
        copss_ms, session_ms = await time_queries(db, matcher, community, queries)
        fresh_ms = await time_freshness(db, matcher, source, args.fresh)
        rss = _rss_mb()
    finally:
        await db.close()
    naive_n = args.naive_queries if size < 1_000_000 else max(5, args.naive_queries // 5)
    naive_ms = time_naive(args.semeval, args.stackfaq, size, queries[:naive_n])
    return SizeResult(size, normalise_s, insert_s, copss_ms, session_ms, naive_ms, fresh_ms, rss)


def report(results: Sequence[SizeResult]) -> str:
    """Markdown table of the results."""
    lines = [
        "| threads | build: normalise s | build: insert + index s | copss p50 / p99 ms "
        "| with session p50 / p99 ms | queries | naive extractOne p50 / p99 ms "
        "| naive queries | speed-up (p50) | peak RSS MB | new thread findable p50 / max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c50, c99 = percentile(r.copss_ms, 0.5), percentile(r.copss_ms, 0.99)
        s50, s99 = percentile(r.session_ms, 0.5), percentile(r.session_ms, 0.99)
        n50, n99 = percentile(r.naive_ms, 0.5), percentile(r.naive_ms, 0.99)
        lines.append(
            f"| {r.size:,} | {r.normalise_s:.1f} | {r.insert_s:.1f} | {c50:.2f} / {c99:.2f} | "
            f"{s50:.2f} / {s99:.2f} | {len(r.copss_ms)} | {n50:.0f} / {n99:.0f} | "
            f"{len(r.naive_ms)} | {n50 / c50:.0f}x | {r.rss_mb:.0f} | "
            f"{percentile(r.fresh_ms, 0.5):.1f} / {max(r.fresh_ms):.1f} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    if not args.semeval and not args.stackfaq:
        print("nothing to do: give --semeval FILE and/or --stackfaq FILE", file=sys.stderr)
        return 2
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    source = load_source(args.semeval, args.stackfaq)
    print(
        f"source: {len(source.questions)} questions, {len(source.sentences)} sentences, "
        f"{len(source.queries)} queries",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="copss-latency-", dir=args.tmp) as folder:
        for size in sizes:
            started = time.perf_counter()
            result = await run_size(args, source, size, Path(folder))
            results.append(result)
            print(f"size {size:,} done in {time.perf_counter() - started:.0f} s", flush=True)
            print(report([result]), flush=True)
    print()
    print(report(results))
    print(
        "\npeak RSS is the copss process's high-water mark up to that size (ru_maxrss); the "
        "naive baseline runs in a child process."
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency", description="Matching latency and index freshness."
    )
    parser.add_argument("--semeval", type=Path, help="SemEval-2016 task 3 XML file")
    parser.add_argument("--stackfaq", type=Path, help="StackFAQ JSON file")
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated corpus sizes"
    )
    parser.add_argument("--queries", type=int, default=300, help="copss queries per size")
    parser.add_argument(
        "--naive-queries", type=int, default=50, help="naive queries per size (1/5 at 1M)"
    )
    parser.add_argument("--fresh", type=int, default=20, help="freshness rounds per size")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary stores")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
