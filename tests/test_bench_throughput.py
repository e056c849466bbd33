"""bench/throughput.py runs end to end on a few messages: copss in its own process handles
every message queued in the fake Bot API, answers the FAQ questions among them, and the report
ends with the line the throughput requirement asks for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MESSAGES = 60


def test_the_bench_handles_every_message_and_ends_with_its_summary_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.throughput",
            "--messages",
            str(MESSAGES),
            "--store",
            "sqlite",
            "--skip-latency",
            "--skip-statements",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    last = re.fullmatch(
        r"handled: (\d+) msg/s; raw sqlite3 per-message transactions: (\d+) rows/s", lines[-1]
    )
    assert last is not None, lines[-1]
    assert int(last[1]) > 0 and int(last[2]) > 0
    row = next(line for line in lines if line.startswith("sqlite   off"))
    assert int(row.split()[2]) == MESSAGES  # handled == offered
    kb = re.search(r"kb (\d+)/(\d+)", row)
    assert kb is not None and int(kb[2]) > 0 and kb[1] == kb[2], row
