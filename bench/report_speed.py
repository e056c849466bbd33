"""Report speed: ``copss report`` on the store the import benchmark builds.

    .venv/bin/python -m bench.report_speed [--messages 100000] [--runs 3]
        [--dir /tmp/copss-report-bench]

Writes the synthetic Telegram Desktop export of ``bench.import_speed`` (a supergroup: a third
questions, a third replies answering them, a third unthreaded chat), imports it with
``copss import telegram`` into a fresh SQLite store (COPSS_HOME in the folder), then runs
``copss report --out DIR`` on that store ``--runs`` times, each in a subprocess, and reports
each run's wall time, CPU time (user + sys) and peak RSS, with the load average before and
after it (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.import_speed import generate, measured, run_cli


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--dir", type=Path, default=Path("/tmp/copss-report-bench"))
    args = p.parse_args()
    folder: Path = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / "result.json"
    generate(export, args.messages)
    home = folder / "home"
    for suffix in ("", "-wal", "-shm"):
        (home / f"copss.db{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "COPSS_HOME": str(home), "COPSS_FETCH_MODEL": "0"}
    env.pop("COPSS_DATABASE_URL", None)
    imported = run_cli(export, env)
    print(f"store: {imported.stdout} ({imported.wall:.1f} s)")
    out = folder / "out"
    command = [sys.executable, "-m", "bot.cli", "report", "--out", str(out)]
    print(f"command: COPSS_HOME={home} python -m bot.cli report --out {out}")
    for i in range(1, args.runs + 1):
        before = os.getloadavg()[0]
        run = measured(command, env, folder)
        after = os.getloadavg()[0]
        print(
            f"run {i}: {run.wall:.2f} s wall, {run.cpu:.2f} s CPU, peak RSS {run.peak_mb:.0f} MB"
            f" (load average {before:.2f} -> {after:.2f})"
        )
    print(run.stdout.splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
