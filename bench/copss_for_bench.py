"""``copss`` as bench/throughput.py and bench/soak.py run it: ``python -m
bench.copss_for_bench ARGS`` with copss's own arguments (``PYTHONPATH`` the repository), and
these settings no user has:

- ``COPSS_BENCH_UNPACED=1``: copss's Telegram pacing without any gap or cap worth the name
  (what bench/relay.py calls unpaced), so that the benchmark measures copss and not the wait
  Telegram's flood limits ask for; copss has no configuration key for its pacing;
- ``COPSS_BENCH_STATEMENTS=FILE``: every SQL statement copss sends is counted by its first word
  (``SELECT``, ``INSERT``, ``BEGIN``, ...), and every commit and rollback; on ``SIGUSR1`` the
  counts are written to FILE as JSON (``{"seq": n, "statements": {...}, "commits": c,
  "rollbacks": r}``, ``seq`` counting the signals), replacing it whole;
- ``COPSS_BENCH_DISCORD=http://127.0.0.1:PORT``: discord.py's REST API and gateway at that
  address (the loopback fake of the test suite);
- ``COPSS_BENCH_MEMORY=DIR``: on ``SIGUSR2`` copss counts its live objects by type (after a
  full garbage collection) and writes ``DIR/memory-N.json`` (``{"seq": n, "total": t,
  "objects": {type: count}, "tracemalloc": file or null, "pymalloc_blocks": b, "malloc_mb":
  {"in_use": u, "free_in_arenas": f}}``, N counting the signals; ``malloc_mb`` is glibc's
  ``mallinfo2``, SQLite's memory and Python's larger objects among it); with
  ``COPSS_BENCH_TRACEMALLOC=FRAMES`` above 0, tracemalloc traces every allocation from the
  start (that many frames each) and a snapshot is dumped to ``DIR/trace-N.pickle`` first;
- ``COPSS_BENCH_SQLITE_CACHE_KIB=N``: every SQLite connection's page cache is at most N KiB
  (``PRAGMA cache_size=-N``; SQLite's default is 2,000 KiB per connection);
- ``COPSS_BENCH_PROFILE=FILE``: copss's main thread (the event loop, where handlers run) runs
  under cProfile (its CPU time), whose statistics are written to FILE when copss exits
  (``SIGTERM``).
"""

from __future__ import annotations

import cProfile
import ctypes
import gc
import json
import os
import signal
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot import cli

_statements: Counter[str] = Counter()
_transactions: Counter[str] = Counter()


def _unpaced() -> None:
    from adapters.telegram import adapter as telegram

    unpaced = telegram.TelegramLimits(
        per_chat_interval=0.0,
        group_per_window=1_000_000,
        group_window=1.0,
        overall_per_second=1_000_000.0,
    )
    original = telegram.TelegramAdapter.__init__

    def init(self: telegram.TelegramAdapter, *args: Any, **kwargs: Any) -> None:
        kwargs["limits"] = unpaced
        original(self, *args, **kwargs)

    telegram.TelegramAdapter.__init__ = init  # type: ignore[method-assign]


def _count_statements(path: Path) -> None:
    def on_statement(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        head = statement.lstrip().split(None, 1)
        _statements[head[0].upper() if head else ""] += 1

    event.listen(Engine, "before_cursor_execute", on_statement)
    event.listen(Engine, "commit", lambda conn: _transactions.update(("commits",)))
    event.listen(Engine, "rollback", lambda conn: _transactions.update(("rollbacks",)))
    seq = [0]

    def dump(signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between two bytecodes of the event loop, which is where the
        # counters change: the copy below is consistent.
        seq[0] += 1
        data = {
            "seq": seq[0],
            "statements": dict(_statements),
            "commits": _transactions["commits"],
            "rollbacks": _transactions["rollbacks"],
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    signal.signal(signal.SIGUSR1, dump)


def _sqlite_cache(kib: int) -> None:
    def on_connect(dbapi_conn: Any, record: Any) -> None:
        if "sqlite" not in type(dbapi_conn).__module__:
            return  # PostgreSQL has no such pragma
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA cache_size=-{kib}")
        cursor.close()

    # On the Engine class: every pool of every engine copss makes later.
    event.listen(Engine, "connect", on_connect)


def _discord_at(address: str) -> None:
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = f"{address}/api/v10"
    gateway = yarl.URL(address).with_scheme("ws") / "gateway"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


class _MallInfo2(ctypes.Structure):
    # glibc's struct mallinfo2 (glibc 2.33 and later), summed over every malloc arena.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _malloc_mb() -> dict[str, float] | None:
    """glibc malloc's bytes in use (in arenas and in blocks of their own mapping) and free
    within its arenas, MB; None where there is no mallinfo2."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {
        "in_use": (info.uordblks + info.hblkhd) / 1e6,
        "free_in_arenas": info.fordblks / 1e6,
    }


def _memory_on_signal(folder: Path, frames: int) -> None:
    if frames > 0:
        tracemalloc.start(frames)
    seq = [0]

    def dump(signum: int, frame: FrameType | None) -> None:
        # On the main thread between two bytecodes: the event loop stands still meanwhile,
        # so copss pauses for as long as this takes (a second or so).
        seq[0] += 1
        trace = None
        if tracemalloc.is_tracing():
            trace = folder / f"trace-{seq[0]}.pickle"
            tracemalloc.take_snapshot().dump(str(trace))
        gc.collect()
        objects = gc.get_objects()
        counts = Counter(_type_name(o) for o in objects)
        data = {
            "seq": seq[0],
            "total": len(objects),
            "objects": dict(counts),
            "tracemalloc": None if trace is None else str(trace),
            # Python's small-object allocator: blocks in use (objects up to 512 bytes).
            "pymalloc_blocks": sys.getallocatedblocks(),
            "malloc_mb": _malloc_mb(),
        }
        del objects
        path = folder / f"memory-{seq[0]}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    signal.signal(signal.SIGUSR2, dump)


if __name__ == "__main__":
    memory = os.environ.get("COPSS_BENCH_MEMORY")
    if memory:
        _memory_on_signal(Path(memory), int(os.environ.get("COPSS_BENCH_TRACEMALLOC") or 0))
    cache = os.environ.get("COPSS_BENCH_SQLITE_CACHE_KIB")
    if cache:
        _sqlite_cache(int(cache))
    discord_at = os.environ.get("COPSS_BENCH_DISCORD")
    if discord_at:
        _discord_at(discord_at)
    if os.environ.get("COPSS_BENCH_UNPACED") == "1":
        _unpaced()
    counts = os.environ.get("COPSS_BENCH_STATEMENTS")
    if counts:
        _count_statements(Path(counts))
    profile_to = os.environ.get("COPSS_BENCH_PROFILE")
    if not profile_to:
        sys.exit(cli.main(sys.argv[1:]))
    # CPU time of the main thread, not wall time: waits (epoll, the store's threads) are left out.
    profiler = cProfile.Profile(time.thread_time)
    try:
        code = profiler.runcall(cli.main, sys.argv[1:])
    finally:
        profiler.dump_stats(profile_to)
    sys.exit(code)
