"""What matching the asking sentences does for messages that also greet or tell a story.

Usage::

    python -m bench.context --semeval FILE [--stackfaq FILE] [--semantic MODEL_DIR]

copss matches a new question's whole text first; only when the gate would stay quiet and the
message has sentences that ask beside others (``faq.detect.question_part``) does it match
those sentences alone (``bot.features.qa``). This prints, per task and matcher, what the gate
does with the whole text and with that fallback: auto-answers right and wrong, suggestions
holding a right item, and silence, on the normal queries and on *no-match* queries (their
relevant items taken out of the index, so anything answered there is wrong), plus how many
queries have a question part at all. The plain-BM25 P@1 of whole texts and of question parts
comes from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.quality import (
    GateFigures,
    Query,
    Store,
    Task,
    bm25_ranking,
    build_store,
    copss_ranked,
    index_corpus,
    load_semeval,
    load_stackfaq,
)
from bot.features.answers import fallback_gate
from faq.detect import question_part
from faq.embedding import OnnxEmbedder
from faq.matcher import Decision, Gate, LexicalMatcher, to_match
from faq.semantic import SEMANTIC_GATE, SemanticMatcher


def row(label: str, figures: GateFigures) -> str:
    """One table row of shares."""

    def pct(x: int) -> str:
        return f"{100 * figures.share(x):5.1f}" if figures.n else "   - "

    f = figures
    return (
        f"| {label} | {f.n} | {pct(f.auto_ok)} | {pct(f.auto_wrong)} | "
        f"{pct(f.suggest_hit)} | {pct(f.suggest_miss)} | {pct(f.quiet)} |"
    )


def tally(figures: GateFigures, store: Store, decision: Decision, rel: frozenset[str]) -> None:
    """Count one decision of the gate."""
    figures.count(decision.mode, [store.key_of(m) for m in decision.matches], rel)


async def decide(
    store: Store, matcher: LexicalMatcher, gate: Gate, query: Query, remove: frozenset[str]
) -> tuple[Decision, Decision]:
    """The gate's decision on the whole text, and with the question-part fallback."""
    ranked = await copss_ranked(store, matcher, query, remove=remove)
    whole = gate.decide([to_match(s) for s in ranked[:10]])
    if whole.mode != "quiet":
        return whole, whole
    part = question_part(query.text)
    if part is None:
        return whole, whole
    again = await copss_ranked(store, matcher, replace(query, text=part), remove=remove)
    return whole, fallback_gate(gate).decide([to_match(s) for s in again[:10]])


async def measure(task: Task, store: Store, name: str, matcher: LexicalMatcher, gate: Gate) -> None:
    """Print one matcher's table for one task."""
    kinds = ("whole", "fallback", "whole/no-match", "fallback/no-match")
    tallies = {k: GateFigures() for k in kinds}
    for query in task.queries:
        gone = query.relevant | ({query.itself} if query.itself else set())
        w, f = await decide(store, matcher, gate, query, frozenset())
        tally(tallies["whole"], store, w, query.relevant)
        tally(tallies["fallback"], store, f, query.relevant)
        w, f = await decide(store, matcher, gate, query, frozenset(gone))
        tally(tallies["whole/no-match"], store, w, frozenset())
        tally(tallies["fallback/no-match"], store, f, frozenset())
    print(
        f"\n{task.dataset} {task.name}, {name} (gate answer {gate.answer_at:.2f}, "
        f"suggest {gate.suggest_at:.2f})\n"
    )
    print(
        "| queries | n | auto right % | auto wrong % | suggest, one right % "
        "| suggest, none right % | quiet % |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, figures in tallies.items():
        print(row(label, figures))


async def bm25_p1(store: Store, task: Task) -> tuple[float, float, int]:
    """Plain BM25 P@1 of whole texts and of question parts (whole text where there is
    none), and how many queries have a question part."""
    whole = parts = with_part = 0
    for query in task.queries:
        ranked = await bm25_ranking(store, query)
        whole += bool(ranked) and ranked[0] in query.relevant
        part = question_part(query.text)
        with_part += part is not None
        if part is not None:
            ranked = await bm25_ranking(store, replace(query, text=part))
        parts += bool(ranked) and ranked[0] in query.relevant
    n = max(len(task.queries), 1)
    return whole / n, parts / n, with_part


async def run(args: argparse.Namespace) -> int:
    tasks: list[Task] = []
    if args.semeval:
        tasks += load_semeval(args.semeval)
    if args.stackfaq:
        tasks += load_stackfaq(args.stackfaq)
    if not tasks:
        print("give --semeval FILE and/or --stackfaq FILE", file=sys.stderr)
        return 2
    embedder = OnnxEmbedder.load(args.semantic) if args.semantic else None
    with tempfile.TemporaryDirectory(prefix="copss-context-") as folder:
        stores: dict[int, Store] = {}
        for task in tasks:
            if id(task.docs) not in stores:
                store, _ = await build_store(Path(folder) / f"c{len(stores)}.db", task.docs)
                if embedder is not None:
                    index_corpus(store, task.docs, embedder)
                stores[id(task.docs)] = store
            store = stores[id(task.docs)]
            whole, parts, with_part = await bm25_p1(store, task)
            print(
                f"\n## {task.dataset} {task.name}: {len(task.queries)} queries, "
                f"{with_part} with a question part; plain BM25 P@1 whole {whole:.3f}, "
                f"question part {parts:.3f}"
            )
            await measure(task, store, "lexical", LexicalMatcher(), Gate())
            if embedder is not None and store.index is not None:
                semantic = SemanticMatcher(embedder, store.index)
                await measure(task, store, "semantic", semantic, SEMANTIC_GATE)
        for store in stores.values():
            await store.db.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--semeval", type=Path)
    parser.add_argument("--stackfaq", type=Path)
    parser.add_argument("--semantic", type=Path, help="a model folder (bench/prepare_model.py)")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
