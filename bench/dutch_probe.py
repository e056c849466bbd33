"""Dutch <-> English matching on the probe in ``tests/data/dutch_probe.json``.

Usage::

    python -m bench.dutch_probe [--semantic MODEL_DIR] [--multilingual MODEL_DIR]
                                [--kb FILE] [--probe FILE]

The store holds the starter knowledge base (``faq/data/starter_kb.json``, or ``--kb``: English
entries, some with Dutch aliases) as global FAQ entries and the probe's threads (Dutch and
English questions) in the default community, built by copss's own migrations and repositories
(so the FTS5 index, its triggers and the entries' search texts are the real ones). Every
probe question is ranked by

* ``FTS5 BM25 (plain)``: every cleaned query word OR-ed, best ``bm25()`` first;
* ``copss lexical``: :class:`faq.matcher.LexicalMatcher`;
* ``copss semantic``: :class:`faq.semantic.SemanticMatcher` on each model given, as copss runs
  it (for a model trained on English only, a question detected as Dutch is ranked mainly on its
  words, :mod:`faq.language`), and the same matcher with that fallback off, to show what it
  does;
* ``cosine only``: the model's cosine over every entry and thread.

It prints P@1 and MRR@10 over all questions and per direction (Dutch questions answered by
English entries and threads; English questions answered by Dutch threads). The entries are
embedded as the bot embeds them (question and aliases, one line each), threads as their
question text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select, text

from bench.quality import Doc, Quality, Store, build_store
from faq.embedding import Embedder, OnnxEmbedder
from faq.index_text import entry_embed_text, thread_embed_text
from faq.kb import KbEntry, read_file, starter_entries, store_entries
from faq.matcher import LexicalMatcher
from faq.normalize import clean
from faq.semantic import SemanticMatcher
from faq.vector_index import VectorIndex
from storage.models import FaqEntry
from storage.repos.faq import FaqRepo
from storage.repos.search import SearchRepo

PROBE = Path(__file__).resolve().parent.parent / "tests" / "data" / "dutch_probe.json"
TOP = 10
DIRECTIONS = {"nl": "Dutch -> English", "en": "English -> Dutch"}


@dataclass(frozen=True)
class ProbeQuery:
    """A probe question, its language and the keys (``kb:slug``, ``thread:key``) answering it."""

    text: str
    lang: str
    relevant: frozenset[str]


def load_probe(path: Path) -> tuple[list[Doc], list[ProbeQuery]]:
    """The probe's threads (as corpus documents keyed ``thread:<key>``) and questions."""
    data = json.loads(path.read_text(encoding="utf-8"))
    threads = [Doc(f"thread:{t['key']}", (t["text"],)) for t in data["threads"]]
    queries = [ProbeQuery(q["text"], q["lang"], frozenset(q["relevant"])) for q in data["queries"]]
    return threads, queries


@dataclass
class ProbeStore:
    """The temporary store: threads and global entries, and how to name what was found."""

    store: Store
    keys: dict[tuple[str, int], str]
    entries: dict[int, KbEntry]


async def build(folder: Path, threads: Sequence[Doc], entries: list[KbEntry]) -> ProbeStore:
    """A migrated SQLite store holding ``threads`` and ``entries`` (global, as ``copss kb
    load`` stores the starter set)."""
    store, _ = await build_store(folder / "probe.db", threads)
    async with store.db.session() as s:
        await store_entries(FaqRepo(s), entries)
    async with store.db.session() as s:
        rows = (await s.execute(select(FaqEntry.id, FaqEntry.slug))).all()
    by_slug = {e.slug: e for e in entries}
    keys = {("thread", i): k for k, i in store.ids.items()}
    keys.update({("faq", i): f"kb:{slug}" for i, slug in rows})
    return ProbeStore(store, keys, {i: by_slug[slug] for i, slug in rows})


def index(probe: ProbeStore, threads: Sequence[Doc], embedder: Embedder) -> VectorIndex:
    """Every thread and entry embedded as the bot embeds them."""
    vectors = embedder.encode(
        [thread_embed_text(d.text) for d in threads]
        + [entry_embed_text(e.question, e.aliases) for e in probe.entries.values()]
    )
    kinds = ["thread"] * len(threads) + ["faq"] * len(probe.entries)
    ids = [probe.store.ids[d.key] for d in threads] + list(probe.entries)
    communities: list[int | None] = [probe.store.community] * len(threads)
    communities += [None] * len(probe.entries)
    vindex = VectorIndex(embedder.model_id, embedder.dim)
    vindex.add_many(kinds, ids, communities, vectors)
    return vindex


async def bm25_ranking(probe: ProbeStore, query: ProbeQuery) -> list[str]:
    """Plain FTS5 over threads and entries: cleaned query words OR-ed, best ``bm25()`` first."""
    words = clean(query.text).split()
    if not words:
        return []
    fts = " OR ".join('"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words))
    async with probe.store.db.session() as s:
        rows = await s.execute(
            text(
                "SELECT rowid FROM search_fts WHERE search_fts MATCH :q "
                "ORDER BY bm25(search_fts) LIMIT :n"
            ),
            {"q": fts, "n": TOP},
        )
        found = [int(r) for (r,) in rows.all()]
    keys = [probe.keys.get(("faq" if r % 2 else "thread", r // 2)) for r in found]
    return [k for k in keys if k is not None]


def matcher_ranking(
    probe: ProbeStore, matcher: LexicalMatcher
) -> Callable[[ProbeQuery], Awaitable[list[str]]]:
    """A copss matcher's ranking, as probe keys."""

    async def rank(query: ProbeQuery) -> list[str]:
        async with probe.store.db.session() as s:
            ranked = await matcher.rank(
                SearchRepo(s), query.text, community_id=probe.store.community
            )
        keys = [probe.keys.get((x.hit.kind, x.hit.ref_id)) for x in ranked[:TOP]]
        return [k for k in keys if k is not None]

    return rank


def cosine_ranking(
    probe: ProbeStore, vindex: VectorIndex, embedder: Embedder
) -> Callable[[ProbeQuery], Awaitable[list[str]]]:
    """Cosine alone: the nearest entries and threads the community sees."""

    async def rank(query: ProbeQuery) -> list[str]:
        vector = embedder.encode([query.text.strip()])[0]
        near = vindex.search(np.asarray(vector), probe.store.community, TOP)
        return [probe.keys[(kind, ref)] for kind, ref, _ in near]

    return rank


async def run(args: argparse.Namespace) -> int:
    threads, queries = load_probe(args.probe)
    entries = read_file(args.kb) if args.kb else starter_entries()
    methods: list[tuple[str, Callable[[ProbeQuery], Awaitable[list[str]]]]] = []
    qualities: dict[tuple[str, str], Quality] = {}
    with tempfile.TemporaryDirectory(prefix="copss-probe-") as folder:
        probe = await build(Path(folder), threads, entries)
        try:
            methods.append(("FTS5 BM25 (plain)", lambda q: bm25_ranking(probe, q)))
            methods.append(("copss lexical", matcher_ranking(probe, LexicalMatcher())))
            for path in [p for p in (args.semantic, args.multilingual) if p is not None]:
                started = time.perf_counter()
                embedder = OnnxEmbedder.load(path)
                vindex = index(probe, threads, embedder)
                name = embedder.model_id.split(":")[0]
                print(
                    f"model {embedder.model_id}: loaded and {len(threads) + len(entries)} "
                    f"texts embedded in {time.perf_counter() - started:.1f} s"
                )
                semantic = SemanticMatcher(embedder, vindex)
                methods.append((f"copss semantic, {name}", matcher_ranking(probe, semantic)))
                if semantic.languages is not None:
                    plain = SemanticMatcher(embedder, vindex, languages=None)
                    methods.append(
                        (f"copss semantic, {name}, fallback off", matcher_ranking(probe, plain))
                    )
                methods.append((f"cosine only, {name}", cosine_ranking(probe, vindex, embedder)))
            for name, rank in methods:
                for query in queries:
                    ranked = await rank(query)
                    for part in ("all", query.lang):
                        qualities.setdefault((name, part), Quality()).add(ranked, query.relevant)
        finally:
            await probe.store.db.close()
    source = args.kb or "faq/data/starter_kb.json"
    print(
        f"probe {args.probe.name}: {len(queries)} questions, {len(threads)} threads; "
        f"knowledge base {source}: {len(entries)} entries"
    )
    print()
    counts = {part: qualities[(methods[0][0], part)].n for part in ("all", "nl", "en")}
    print(
        f"| method | all ({counts['all']}) P@1 / MRR@10 | "
        f"{DIRECTIONS['nl']} ({counts['nl']}) | {DIRECTIONS['en']} ({counts['en']}) |"
    )
    print("|---|---|---|---|")
    for name, _ in methods:
        cells = [
            f"{qualities[(name, part)].p1:.3f} / {qualities[(name, part)].mrr:.3f}"
            for part in ("all", "nl", "en")
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.dutch_probe", description="Dutch <-> English matching quality."
    )
    parser.add_argument("--probe", type=Path, default=PROBE, help="the probe JSON file")
    parser.add_argument("--kb", type=Path, help="a knowledge-base file instead of the starter set")
    parser.add_argument(
        "--semantic", type=Path, help="the default model's folder (see bench/prepare_model.py)"
    )
    parser.add_argument("--multilingual", type=Path, help="a multilingual model's folder")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
