"""Worst-case matching cost: hostile 4,096-character messages against a large store.

Usage::

    python -m bench.worst_case --semeval FILE --stackfaq FILE [--sizes 10000,100000]

The store is built like ``bench.latency``'s (synthetic threads recombined from real question
text, bulk-inserted into a migrated SQLite file). Each shape below is a message of exactly
``--chars`` characters (Telegram's limit by default); every repetition draws a new message of
that shape, so no cache makes a repeat cheaper:

* ``one word``: one word of random letters;
* ``question + word``: a real question followed by one word of random letters (its terms find
  candidates, so the long word is compared with their stems: what froze copss before);
* ``random words``: distinct random "words" of 3-12 letters;
* ``real words``: distinct words drawn from the corpus vocabulary (each one is in the index, so
  every term is looked up, near-matched and scored);
* ``glued words``: 40-letter "words" glued from corpus words (every piece is a stem the
  candidates have: the containment search's worst case);
* ``common words``: the corpus's most frequent words, repeated;
* ``emoji``: emoji only;
* ``mixed scripts``: words in Latin with accents, Cyrillic, Greek, Arabic, Hebrew, Devanagari,
  CJK and Hangul, with zero-width and bidi characters between them.

For each it reports ``LexicalMatcher.match`` p50 / p99 / max (in an open session, like a
handler), how long the event loop was kept from running while it ran (a ticker task that asks
to wake every millisecond records how late it woke), and the handler's two other pure
computations: question detection (which the handler runs in a worker thread) and the thread's
search text (on the loop). With ``--e2e`` it also pushes each shape through copss (console
adapter, the same store) next to a ticker, and reports the loop stalls and the time to handle
the message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import random
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from adapters.console import ConsoleAdapter
from bench.latency import Source, build, load_source, percentile
from bot.app import App
from bot.config import Config, MatchingConfig, StorageConfig
from faq.detect import detect_question
from faq.index_text import thread_search_text
from faq.matcher import LexicalMatcher
from faq.normalize import search_terms
from storage.engine import Database, sqlite_url
from storage.repos.search import SearchRepo

#: Fixed "now" for the matcher's recency signal (as in ``bench.latency``).
_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_EMOJI = [chr(c) for c in range(0x1F600, 0x1F650)] + [chr(c) for c in range(0x1F300, 0x1F3F0)]
_SCRIPTS = [
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "אבגדהוזחטיכלמנסעפצקרשת",
    "कखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह",
    "的一是不了人我在有他这中大来上个们到说国和地也子时道出就那要下以",
    "가나다라마바사아자차카타파하",
]
_INVISIBLE = ["\u200b", "\u200d", "\u202e", "\u2066", "\ufeff"]


def _fill(rng: random.Random, chars: int, word: Callable[[], str], sep: str = " ") -> str:
    parts: list[str] = []
    size = 0
    while size <= chars:
        w = word()
        parts.append(w)
        size += len(w) + len(sep)
    return sep.join(parts)[:chars]


def shapes(source: Source, chars: int) -> dict[str, Callable[[random.Random], str]]:
    """Message makers by shape name; each takes a random generator."""
    vocabulary = Counter(
        w for subject, body in source.questions for w in search_terms(f"{subject} {body}")
    )
    words = sorted(vocabulary)
    long_words = [w for w in words if len(w) >= 4]
    common = " ".join(w for w, _ in vocabulary.most_common(50))

    def letters(rng: random.Random, n: int) -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))

    def distinct(rng: random.Random, make: Callable[[], str]) -> str:
        seen: set[str] = set()

        def fresh() -> str:
            while True:
                w = make()
                if w not in seen:
                    seen.add(w)
                    return w

        return _fill(rng, chars, fresh)

    def glued(rng: random.Random) -> str:
        word = ""
        while len(word) < 40:
            word += rng.choice(long_words)
        return word[:40]

    def mixed(rng: random.Random) -> str:
        def one() -> str:
            script = rng.choice(_SCRIPTS)
            w = "".join(rng.choice(script) for _ in range(rng.randint(2, 9)))
            return w + rng.choice(["", "", "\u0301", *_INVISIBLE])

        return _fill(rng, chars, one)

    questions = [q for q in source.queries if len(q) < chars // 2]

    def with_word(rng: random.Random) -> str:
        question = rng.choice(questions) + " "
        return question + letters(rng, chars - len(question))

    return {
        "one word": lambda rng: letters(rng, chars),
        "question + word": with_word,
        "random words": lambda rng: distinct(rng, lambda: letters(rng, rng.randint(3, 12))),
        "real words": lambda rng: distinct(rng, lambda: rng.choice(words)),
        "glued words": lambda rng: _fill(rng, chars, lambda: glued(rng)),
        "common words": lambda rng: (common + " ") * (chars // len(common) + 1),
        "emoji": lambda rng: "".join(rng.choice(_EMOJI) for _ in range(chars)),
        "mixed scripts": mixed,
    }


class LoopWatch:
    """The longest the event loop was late to wake a task that sleeps ``tick`` seconds."""

    def __init__(self, tick: float = 0.001) -> None:
        self.tick = tick
        self.worst = 0.0
        self._since = 0.0

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[LoopWatch]:
        """Watch while the body runs; :attr:`worst` is the longest stall seen (seconds)."""
        loop = asyncio.get_running_loop()
        self.worst = 0.0
        self._since = loop.time()
        task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # let the ticker take its first reading
        try:
            yield self
        finally:
            # The stall the body may end with: the ticker has not woken from it yet.
            self.worst = max(self.worst, loop.time() - self._since - self.tick)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._since = loop.time()
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, loop.time() - self._since - self.tick)


@dataclass
class ShapeResult:
    """What one shape measured at one store size."""

    size: int
    shape: str
    match_ms: list[float] = field(default_factory=list)
    stall_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)
    index_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    e2e_stall_ms: list[float] = field(default_factory=list)


async def time_shape(
    db: Database,
    community: int,
    matcher: LexicalMatcher,
    make: Callable[[random.Random], str],
    result: ShapeResult,
    reps: int,
    chars: int,
) -> None:
    """Match ``reps`` fresh messages of one shape, timing and watching the loop."""
    rng = random.Random(f"{result.shape}-{result.size}")
    watch = LoopWatch()
    for _ in range(reps):
        text = make(rng)[:chars]
        assert len(text) == chars
        started = time.perf_counter()
        detect_question(text)
        result.detect_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        thread_search_text(text)
        result.index_ms.append((time.perf_counter() - started) * 1000)
        async with db.session() as s, watch.watching():
            started = time.perf_counter()
            await matcher.match(SearchRepo(s), text, community_id=community, limit=6)
            result.match_ms.append((time.perf_counter() - started) * 1000)
        result.stall_ms.append(watch.worst * 1000)


async def time_e2e(
    path: Path, makers: dict[str, Callable[[random.Random], str]], results: dict[str, ShapeResult]
) -> None:
    """Push each shape through copss (console adapter, the same store) next to a ticker."""
    console = ConsoleAdapter("bench")
    config = Config(
        storage=StorageConfig(url=sqlite_url(path)),
        matching=MatchingConfig(load_starter_kb=False),
    )
    watch = LoopWatch()
    async with App(config, adapters=[console]) as app:
        task = asyncio.create_task(app.run(handle_signals=False))
        await app.started.wait()
        hub = app.hub
        assert hub is not None
        for shape, make in makers.items():
            rng = random.Random(f"e2e-{shape}")
            result = results[shape]
            for _ in range(5):
                text = make(rng)
                async with watch.watching():
                    started = time.perf_counter()
                    await console.push(text, user=f"member{rng.randrange(1000)}")
                    await hub.settled()
                    result.e2e_ms.append((time.perf_counter() - started) * 1000)
                result.e2e_stall_ms.append(watch.worst * 1000)
                console.drain()
        app.stop()
        await asyncio.wait_for(task, 30)


def report(results: Sequence[ShapeResult], e2e: bool) -> str:
    """Markdown table of the results."""
    head = (
        "| threads | shape | match p50 / p99 / max ms | loop stall during match p50 / max ms "
        "| question detection p50 / max ms | thread search text p50 / max ms |"
    )
    rule = "|---|---|---|---|---|---|"
    if e2e:
        head += " handled end to end p50 / max ms | loop stall end to end p50 / max ms |"
        rule += "---|---|"
    lines = [head, rule]
    for r in results:
        m = r.match_ms
        line = (
            f"| {r.size:,} | {r.shape} | {percentile(m, 0.5):.1f} / {percentile(m, 0.99):.1f} / "
            f"{max(m):.1f} | {percentile(r.stall_ms, 0.5):.1f} / {max(r.stall_ms):.1f} | "
            f"{percentile(r.detect_ms, 0.5):.1f} / "
            f"{max(r.detect_ms):.1f} | {percentile(r.index_ms, 0.5):.1f} / {max(r.index_ms):.1f} |"
        )
        if e2e:
            line += (
                f" {percentile(r.e2e_ms, 0.5):.0f} / {max(r.e2e_ms):.0f} | "
                f"{percentile(r.e2e_stall_ms, 0.5):.1f} / {max(r.e2e_stall_ms):.1f} |"
                if r.e2e_ms
                else " - | - |"
            )
        lines.append(line)
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    if not args.semeval and not args.stackfaq:
        print("nothing to do: give --semeval FILE and/or --stackfaq FILE", file=sys.stderr)
        return 2
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    source = load_source(args.semeval, args.stackfaq)
    makers = shapes(source, args.chars)
    if args.shapes:
        wanted = [s.strip() for s in args.shapes.split(",")]
        makers = {name: makers[name] for name in wanted}
    print(f"{platform.platform()}, Python {platform.python_version()}", flush=True)
    watch = LoopWatch()
    async with watch.watching():
        await asyncio.sleep(1.0)
    print(f"idle loop (nothing running): longest stall {watch.worst * 1000:.1f} ms in 1 s")
    all_results: list[ShapeResult] = []
    with tempfile.TemporaryDirectory(prefix="copss-worst-", dir=args.tmp) as folder:
        for size in sizes:
            path = Path(folder) / f"worst-{size}.db"
            db = Database(sqlite_url(path))
            results = {shape: ShapeResult(size, shape) for shape in makers}
            try:
                community, _, _ = await build(db, source, size)
                matcher = LexicalMatcher(now=_NOW)
                for query in source.queries[:20]:  # warm the caches with normal questions
                    async with db.session() as s:
                        await matcher.match(SearchRepo(s), query, community_id=community)
                for shape, make in makers.items():
                    await time_shape(
                        db, community, matcher, make, results[shape], args.reps, args.chars
                    )
            finally:
                await db.close()
            if args.e2e:
                await time_e2e(path, makers, results)
            all_results.extend(results.values())
            print(report(list(results.values()), args.e2e), flush=True)
    print()
    print(report(all_results, args.e2e))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.worst_case", description="Worst-case matching cost."
    )
    parser.add_argument("--semeval", type=Path, help="SemEval-2016 task 3 XML file")
    parser.add_argument("--stackfaq", type=Path, help="StackFAQ JSON file")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated store sizes")
    parser.add_argument("--chars", type=int, default=4096, help="characters per message")
    parser.add_argument("--reps", type=int, default=50, help="messages per shape and size")
    parser.add_argument("--shapes", default="", help="comma-separated shapes (default: all)")
    parser.add_argument("--e2e", action="store_true", help="also push each shape through copss")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary stores")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
