"""``copss`` as bench/throughput.py runs it: ``python -m bench.copss_for_bench ARGS`` with
copss's own arguments (``PYTHONPATH`` the repository), and these settings no user has:

- ``COPSS_BENCH_UNPACED=1``: copss's Telegram pacing without any gap or cap worth the name
  (what bench/relay.py calls unpaced), so that the benchmark measures copss and not the wait
  Telegram's flood limits ask for; copss has no configuration key for its pacing;
- ``COPSS_BENCH_STATEMENTS=FILE``: every SQL statement copss sends is counted by its first word
  (``SELECT``, ``INSERT``, ``BEGIN``, ...), and every commit and rollback; on ``SIGUSR1`` the
  counts are written to FILE as JSON (``{"seq": n, "statements": {...}, "commits": c,
  "rollbacks": r}``, ``seq`` counting the signals), replacing it whole.
"""

from __future__ import annotations

import json
import os
import signal
import sys
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


if __name__ == "__main__":
    if os.environ.get("COPSS_BENCH_UNPACED") == "1":
        _unpaced()
    counts = os.environ.get("COPSS_BENCH_STATEMENTS")
    if counts:
        _count_statements(Path(counts))
    sys.exit(cli.main(sys.argv[1:]))
