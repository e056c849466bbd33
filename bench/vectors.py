"""Vector search cost: exact (numpy float32) against usearch HNSW (float16), through
``faq.vector_index.VectorIndex``.

Usage::

    python -m bench.vectors [--sizes 10000,100000,1000000] [--dim 384] [--queries 500]
                            [--data clustered|uniform] [--crossover] [--load 100000,1000000]

For each size and each method a child process builds an index of that many vectors in one
community (the worst case: every thread in one community) and reports:

* build: adding the vectors in batches of 5,000, as ``load_index`` does at start-up;
* search p50 / p99 / max: one query at a time, ``k=50`` (what the ranker asks for);
* recall@10: the share of the exact top 10 that the index returns in its top 10 (exact search
  is 1.0 by construction; it is checked against an independent brute force); near@10: the
  share of its top 10 that score within 0.005 of the exact 10th (as good for ranking: near
  ties swap under float16); recall@1: how often its first is the exact first; for HNSW the
  same graph is also searched at other depths (``ef``);
* RSS: resident memory of the process after the build minus before it (the vectors are made
  in chunks and dropped once added, so this is the index), and the peak during the build.

Vectors are made from a seed: ``clustered`` (default) draws unit vectors around ``n / 20``
questions, themselves around ``n / 2000`` subjects (cosine ~0.9 between two askings of a
question, ~0.5 within a subject, ~0 between subjects): roughly the shape sentence embeddings of
a forum have; queries are stored vectors with noise added (a reworded question). ``uniform``
draws every vector independently on the sphere: no structure at all, HNSW's hardest case.

``--crossover`` times both methods at a few small sizes in-process (where HNSW starts to pay:
``faq.vector_index.HNSW_ABOVE``). ``--load`` stores that many embeddings (with their threads)
in a SQLite file and times ``bot.features.embeddings.load_index``: copss's start-up.

``--backfill N --stackfaq FILE`` runs ``bot.features.embeddings.Backfill`` over ``N`` threads
recombined from real questions (``bench.latency``'s generator) in a SQLite file and reports
sentences per second: with ``--model FOLDER`` (a model folder, e.g. made by
``bench.prepare_model``) on the real encoder, otherwise with a free stand-in (random vectors),
which measures the job's own cost (scanning, hashing, writing, indexing).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faq import vector_index
from faq.vector_index import VectorIndex

CHUNK = 5000
#: Other HNSW search depths tried on the same graph (recall against cost).
EF_SWEEP = (48, 256, 512)
SEED = 20260101
Matrix = npt.NDArray[np.float32]


def rss_mb() -> tuple[float, float]:
    """Resident and peak resident memory of this process, MiB (freed heap given back first,
    so that what earlier steps freed is not counted)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    now = peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return now, peak


def _unit(rows: Matrix) -> Matrix:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def chunks(n: int, dim: int, data: str) -> Iterator[tuple[int, Matrix]]:
    """The ``n`` vectors, ``CHUNK`` at a time, the same on every call."""
    centres: Matrix | None = None
    if data == "clustered":
        rng = np.random.default_rng(SEED)
        # Broad subjects (one per 2,000 vectors), questions on each (one per 20 vectors),
        # and the ways each question is asked: similarity runs from ~0 between subjects
        # through ~0.5 within one to ~0.9 between two askings of a question.
        broad = _unit(rng.standard_normal((max(1, n // 2000), dim), dtype=np.float32))
        picks = rng.integers(0, len(broad), max(1, n // 20))
        noise = _unit(rng.standard_normal((len(picks), dim), dtype=np.float32))
        centres = _unit(broad[picks] + 0.8 * noise)
    for start in range(0, n, CHUNK):
        rng = np.random.default_rng([SEED, start])
        size = min(CHUNK, n - start)
        noise = rng.standard_normal((size, dim), dtype=np.float32)
        if centres is None:
            yield start, _unit(noise)
        else:
            topic = rng.integers(0, len(centres), size)
            yield start, _unit(centres[topic] + 0.35 * _unit(noise))


def make_queries(n: int, dim: int, data: str, count: int) -> Matrix:
    """``count`` stored vectors with noise added (cosine ~0.98 to their source)."""
    rng = np.random.default_rng(SEED + 1)
    picks = np.sort(rng.choice(n, size=count, replace=False))
    out = np.empty((count, dim), dtype=np.float32)
    for start, block in chunks(n, dim, data):
        inside = (picks >= start) & (picks < start + len(block))
        out[inside] = block[picks[inside] - start]
    return _unit(out + 0.2 * _unit(rng.standard_normal((count, dim), dtype=np.float32)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def one(n: int, method: str, dim: int, data: str, count: int) -> dict[str, Any]:
    """Build and measure one index (run in a child process, so RSS is its own)."""
    queries = make_queries(n, dim, data, count)
    # Ground truth by brute force, kept as a running top 10 while the chunks go by.
    truth_ids = np.full((count, 10), -1, dtype=np.int64)
    truth_scores = np.full((count, 10), -np.inf, dtype=np.float32)
    for start, block in chunks(n, dim, data):
        scores = queries @ block.T
        ids = np.concatenate(
            [truth_ids, np.arange(start, start + len(block))[None, :].repeat(count, 0)], 1
        )
        both = np.concatenate([truth_scores, scores], 1)
        top = np.argpartition(-both, 9, axis=1)[:, :10]
        truth_ids = np.take_along_axis(ids, top, 1)
        truth_scores = np.take_along_axis(both, top, 1)
        del block, scores, ids, both
    above = 0 if method == "hnsw" else n + 1
    index = VectorIndex("bench", dim, hnsw_above=above)
    # A second pass makes the same vectors again: the build is measured on its own.
    rss_before, _ = rss_mb()
    build = 0.0
    for start, block in chunks(n, dim, data):
        ref_ids = np.arange(start, start + len(block), dtype=np.int64)
        t0 = time.perf_counter()
        index.add_many(["thread"] * len(block), ref_ids, [1] * len(block), block)
        build += time.perf_counter() - t0
        del block
    rss_after, peak = rss_mb()
    for q in queries[:20]:
        index.search(q, 1, k=50)
    times = []
    for q in queries:
        t0 = time.perf_counter_ns()
        index.search(q, 1, k=50)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    order = np.argsort(-truth_scores, axis=1)
    truth_ids = np.take_along_axis(truth_ids, order, 1)
    truth_scores = np.take_along_axis(truth_scores, order, 1)
    sweep = {}
    for ef in sorted({vector_index.HNSW_EXPANSION_SEARCH, *EF_SWEEP}) if method == "hnsw" else [0]:
        if ef:
            index.set_expansion_search(ef)
        found = near = first = 0
        ef_times = []
        for i, q in enumerate(queries):
            t0 = time.perf_counter_ns()
            hits = index.search(q, 1, k=10)
            ef_times.append((time.perf_counter_ns() - t0) / 1e6)
            got = {ref for _, ref, _ in hits}
            found += len(got & set(truth_ids[i].tolist()))
            # A hit outside the exact top 10 scoring within 0.005 of its 10th is as good for
            # ranking: near-ties swap places under float16 anyway.
            near += sum(1 for _, _, score in hits if score >= truth_scores[i, 9] - 0.005)
            first += int(bool(hits) and hits[0][1] == truth_ids[i, 0])
        sweep[ef] = {
            "recall10": round(found / (10 * count), 4),
            "near10": round(min(near, 10 * count) / (10 * count), 4),
            "recall1": round(first / count, 4),
            "p50_ms": round(percentile(ef_times, 50), 3),
        }
    main = sweep[vector_index.HNSW_EXPANSION_SEARCH if method == "hnsw" else 0]
    return {
        "n": n,
        "method": method,
        "dim": dim,
        "data": data,
        "queries": count,
        "build_s": round(build, 2),
        "p50_ms": round(percentile(times, 50), 3),
        "p99_ms": round(percentile(times, 99), 3),
        "max_ms": round(max(times), 3),
        "recall10": main["recall10"],
        "near10": main["near10"],
        "recall1": main["recall1"],
        "sweep": sweep,
        "index_mb": round(index.memory_bytes() / 2**20),
        "rss_mb": round(rss_after - rss_before),
        "peak_mb": round(peak - rss_before),
        "process_mb": round(rss_after),
        "groups": index.groups(),
    }


def crossover(dim: int, data: str, sizes: list[int], count: int = 300) -> list[dict[str, Any]]:
    """Search p50 of both methods at small sizes, in-process."""
    out = []
    for n in sizes:
        queries = make_queries(n, dim, data, count)
        row: dict[str, Any] = {"n": n}
        for method in ("exact", "hnsw"):
            index = VectorIndex("bench", dim, hnsw_above=0 if method == "hnsw" else n + 1)
            for start, block in chunks(n, dim, data):
                ids = np.arange(start, start + len(block), dtype=np.int64)
                index.add_many(["thread"] * len(block), ids, [1] * len(block), block)
            for q in queries[:20]:
                index.search(q, 1, k=50)
            times = []
            for q in queries:
                t0 = time.perf_counter_ns()
                index.search(q, 1, k=50)
                times.append((time.perf_counter_ns() - t0) / 1e6)
            row[f"{method}_p50_ms"] = round(percentile(times, 50), 3)
            row[f"{method}_p99_ms"] = round(percentile(times, 99), 3)
        out.append(row)
    return out


def load(n: int, dim: int, data: str) -> dict[str, Any]:
    """Time ``load_index`` over ``n`` stored embeddings in a SQLite file."""
    from bot.features.embeddings import load_index
    from storage.engine import Database, sqlite_url
    from storage.migrations import upgrade
    from storage.repos.embeddings import STORED_DTYPE

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "copss.db"
        db = Database(sqlite_url(path))
        asyncio.run(upgrade(db))
        asyncio.run(db.close())
        con = sqlite3.connect(path)
        t0 = time.perf_counter()
        for start, block in chunks(n, dim, data):
            ids = range(start + 1, start + len(block) + 1)
            con.executemany(
                "INSERT INTO thread (id, community_id, question_text, search_text, status, "
                "asked_at, tags) VALUES (?, 1, '', '', 'answered', '2026-01-01', '[]')",
                [(i,) for i in ids],
            )
            blobs = block.astype(STORED_DTYPE)
            con.executemany(
                "INSERT INTO embedding (kind, ref_id, model_id, dim, vector, text_hash, "
                "updated_at) VALUES ('thread', ?, 'bench', ?, ?, '', '2026-01-01')",
                [(i, dim, blobs[j].tobytes()) for j, i in enumerate(ids)],
            )
        con.commit()
        con.close()
        fill = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20

        async def timed() -> tuple[float, int, dict[str, int]]:
            database = Database(sqlite_url(path))
            try:
                t1 = time.perf_counter()
                index = await load_index(database, "bench", dim)
                return time.perf_counter() - t1, len(index), index.groups()
            finally:
                await database.close()

        rss_before, _ = rss_mb()
        seconds, count, groups = asyncio.run(timed())
        rss_after, peak = rss_mb()
    return {
        "n": n,
        "store_mb": round(size_mb),
        "fill_s": round(fill, 1),
        "load_s": round(seconds, 2),
        "loaded": count,
        "groups": groups,
        "rss_mb": round(rss_after - rss_before),
        "peak_mb": round(peak - rss_before),
    }


class _Free:
    """An embedder that costs nothing: what the job itself costs."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.model_id = "free:1"
        self._rng = np.random.default_rng(SEED)

    def encode(self, texts: Any) -> Matrix:
        return _unit(self._rng.standard_normal((len(texts), self.dim), dtype=np.float32))


def backfill(n: int, stackfaq: Path, model: Path | None, dim: int) -> dict[str, Any]:
    """Sentences per second of the backfill job over ``n`` threads."""
    from sqlalchemy import insert

    from bench.latency import load_source, synthetic_threads
    from bot.features.embeddings import Backfill
    from faq.embedding import OnnxEmbedder
    from storage.engine import Database, sqlite_url
    from storage.migrations import upgrade
    from storage.models import Thread

    embedder: Any = OnnxEmbedder.load(model) if model else _Free(dim)
    source = load_source(None, stackfaq)

    async def run(path: Path) -> dict[str, Any]:
        db = Database(sqlite_url(path))
        try:
            await upgrade(db)
            rows = [
                {
                    "community_id": 1,
                    "question_text": f"{subject}. {body}",
                    "search_text": "",
                    "status": "answered",
                    "tags": [],
                }
                for subject, body in synthetic_threads(source, n)
            ]
            for start in range(0, n, 5000):
                async with db.session() as s:
                    await s.execute(insert(Thread), rows[start : start + 5000])
            chars = sum(len(r["question_text"]) for r in rows)  # type: ignore[arg-type]
            index = VectorIndex(embedder.model_id, embedder.dim)
            t0 = time.perf_counter()
            progress = await Backfill(db, embedder, index, log_every=1e9).run()
            first = time.perf_counter() - t0
            t1 = time.perf_counter()
            again = await Backfill(db, embedder, index, log_every=1e9).run()
            rescan = time.perf_counter() - t1
            return {
                "n": n,
                "embedder": embedder.model_id,
                "mean_chars": round(chars / n),
                "embedded": progress.embedded,
                "seconds": round(first, 1),
                "per_s": round(progress.embedded / first),
                "rescan_s": round(rescan, 2),
                "rescan_embedded": again.embedded,
            }
        finally:
            await db.close()

    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(run(Path(folder) / "copss.db"))


def child(args: list[str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.vectors", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    # The version from the package metadata: importing usearch here, before onnxruntime,
    # would crash --backfill --model (see faq.vector_index._usearch_index).
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}, usearch {metadata.version('usearch')}; HNSW M="
        f"{vector_index.HNSW_CONNECTIVITY}, ef_add={vector_index.HNSW_EXPANSION_ADD}, "
        f"ef={vector_index.HNSW_EXPANSION_SEARCH}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--data", choices=["clustered", "uniform"], default="clustered")
    parser.add_argument("--methods", default="exact,hnsw")
    parser.add_argument("--crossover", action="store_true")
    parser.add_argument("--load", default="", help="sizes to time load_index at")
    parser.add_argument("--connectivity", type=int, default=vector_index.HNSW_CONNECTIVITY)
    parser.add_argument("--ef-add", type=int, default=vector_index.HNSW_EXPANSION_ADD)
    parser.add_argument("--ef", type=int, default=vector_index.HNSW_EXPANSION_SEARCH)
    parser.add_argument("--backfill", type=int, default=0, help="threads to backfill")
    parser.add_argument("--stackfaq", type=Path, help="StackFAQ JSON (question text)")
    parser.add_argument("--model", type=Path, help="model folder for --backfill")
    parser.add_argument("--one", nargs=2, metavar=("N", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--load-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Trying other HNSW settings than copss's (the children are told them too).
    vector_index.HNSW_CONNECTIVITY = args.connectivity
    vector_index.HNSW_EXPANSION_ADD = args.ef_add
    vector_index.HNSW_EXPANSION_SEARCH = args.ef
    hnsw = [
        "--connectivity",
        str(args.connectivity),
        "--ef-add",
        str(args.ef_add),
        "--ef",
        str(args.ef),
    ]
    if args.one:
        n, method = int(args.one[0]), args.one[1]
        print(json.dumps(one(n, method, args.dim, args.data, args.queries)))
        return
    if args.load_one:
        print(json.dumps(load(args.load_one, args.dim, args.data)))
        return
    print(f"machine: {machine()}")
    print(f"data: {args.data}, {args.dim} dims, {args.queries} queries, k=50 (recall at 10)")
    if args.crossover:
        print("\ncrossover (search ms, in-process):")
        print(f"{'n':>9} {'exact p50':>10} {'exact p99':>10} {'hnsw p50':>9} {'hnsw p99':>9}")
        for row in crossover(args.dim, args.data, [2000, 5000, 10000, 20000, 50000]):
            print(
                f"{row['n']:>9,} {row['exact_p50_ms']:>10} {row['exact_p99_ms']:>10} "
                f"{row['hnsw_p50_ms']:>9} {row['hnsw_p99_ms']:>9}"
            )
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        print(
            f"\n{'n':>9} {'method':>6} {'build s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'max ms':>7} {'recall@10':>9} {'near@10':>7} {'recall@1':>8} {'index MiB':>9} "
            f"{'RSS MiB':>8} {'peak MiB':>8} {'process MiB':>11}"
        )
    for n in sizes:
        for method in args.methods.split(","):
            r = child(
                [
                    "--one",
                    str(n),
                    method,
                    "--dim",
                    str(args.dim),
                    "--data",
                    args.data,
                    "--queries",
                    str(args.queries),
                    *hnsw,
                ]
            )
            print(
                f"{n:>9,} {method:>6} {r['build_s']:>8} {r['p50_ms']:>7} {r['p99_ms']:>7} "
                f"{r['max_ms']:>7} {r['recall10']:>9} {r['near10']:>7} {r['recall1']:>8} "
                f"{r['index_mb']:>9} {r['rss_mb']:>8} {r['peak_mb']:>8} {r['process_mb']:>11}",
                flush=True,
            )
            if method == "hnsw":
                print(
                    "{:>16} ".format("ef sweep:")
                    + "; ".join(
                        f"ef {ef}: p50 {v['p50_ms']} ms, recall@10 {v['recall10']}, "
                        f"near@10 {v['near10']}, recall@1 {v['recall1']}"
                        for ef, v in r["sweep"].items()
                    ),
                    flush=True,
                )
    loads = [int(s) for s in args.load.split(",") if s]
    if loads:
        print(
            f"\nload_index from SQLite:\n{'n':>9} {'store MiB':>9} {'load s':>7} "
            f"{'groups':>22} {'RSS MiB':>8} {'peak MiB':>8}"
        )
    for n in loads:
        r = child(["--load-one", str(n), "--dim", str(args.dim), "--data", args.data, *hnsw])
        print(
            f"{n:>9,} {r['store_mb']:>9} {r['load_s']:>7} {json.dumps(r['groups']):>22} "
            f"{r['rss_mb']:>8} {r['peak_mb']:>8}",
            flush=True,
        )
    if args.backfill:
        if args.stackfaq is None:
            parser.error("--backfill needs --stackfaq")
        r = backfill(args.backfill, args.stackfaq, args.model, args.dim)
        print(
            f"\nbackfill of {r['n']:,} threads ({r['mean_chars']} characters on average) with "
            f"{r['embedder']}: {r['embedded']:,} in {r['seconds']} s = {r['per_s']} sentences/s; "
            f"a second run finds nothing to do in {r['rescan_s']} s "
            f"({r['rescan_embedded']} embedded)"
        )


if __name__ == "__main__":
    main()
