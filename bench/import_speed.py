"""Import speed: a synthetic Telegram Desktop export of N messages into a fresh store.

    .venv/bin/python -m bench.import_speed [--messages 100000] [--runs 3]
        [--dir /tmp/copss-import] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Writes ``result.json`` (a supergroup: a third questions, a third replies answering them, a
third unthreaded chat, some thanks and ✅ reactions), runs ``copss import telegram`` on it in a
subprocess (COPSS_HOME in the folder: a fresh SQLite store with the search index maintained by
its triggers) and reports messages/s, the child's CPU time (also per 100k messages: the
steadier figure on a shared machine), its peak RSS and the load average. Each run then imports
the same file in-process into another fresh SQLite file to time the import alone and its
longest write transaction (what a copss running on the same file may have to wait for). With
``--postgres`` (a server URL; a fresh database is made there and dropped) the subprocess run is
repeated against PostgreSQL. For comparison it inserts the same number of message rows with
plain ``sqlite3`` ``executemany`` into a fresh file in the same run: the floor of what storing
them can cost, without parsing, threads or the index.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TOPICS = [
    ("register my bike against theft", "the police bike depot website"),
    ("get a BSN number as a student", "the gemeente desk with your rental contract"),
    ("buy cheap oat milk near the station", "the Lidl at Vredenburg"),
    ("apply for a parking permit", "the municipality's online form"),
    ("find a GP who takes new patients", "the zorgkaart site"),
    ("open a bank account without a BSN", "bunq, it accepts a passport"),
]


def generate(path: Path, n: int, seed: int = 7) -> None:
    """A single-chat Telegram Desktop export of ``n`` messages."""
    rnd = random.Random(seed)
    t0 = 1_600_000_000
    with path.open("w", encoding="utf-8") as f:
        f.write('{\n "name": "Expats NL",\n "type": "private_supergroup",\n "id": 1234567890,')
        f.write('\n "messages": [')
        for i in range(1, n + 1):
            user = rnd.randrange(2000)
            topic, answer = TOPICS[rnd.randrange(len(TOPICS))]
            m: dict[str, object] = {
                "id": i,
                "type": "message",
                "date": "2020-09-13T12:26:40",
                "date_unixtime": str(t0 + i * 40),
                "from": f"Member {user}",
                "from_id": f"user{user}",
            }
            kind = i % 3
            if kind == 1:
                m["text"] = f"How do I {topic} in district {rnd.randrange(90)}?"
            elif kind == 2:
                m["text"] = [
                    "Try ",
                    {"type": "bold", "text": answer},
                    f", it took me {i % 9} days.",
                ]
                m["reply_to_message_id"] = i - 1
                if rnd.random() < 0.2:
                    m["reactions"] = [
                        {
                            "type": "emoji",
                            "count": 1,
                            "emoji": "✅",
                            "recent": [{"from_id": "user1"}],
                        }
                    ]
            else:
                m["text"] = rnd.choice(
                    ["thanks, that worked!", "good morning all", f"same here, {answer} helped me"]
                )
            f.write(("\n  " if i == 1 else ",\n  ") + json.dumps(m, ensure_ascii=False))
        f.write("\n ]\n}\n")


def raw_sqlite(path: Path, n: int) -> float:
    """Rows per second of plain sqlite3 executemany into a message-like table."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE message (id INTEGER PRIMARY KEY, channel_id INTEGER, platform_message_id "
        "TEXT, member_id INTEGER, text TEXT, reply_to TEXT, sent_at TEXT, "
        "UNIQUE (channel_id, platform_message_id))"
    )
    rows = [
        (1, str(i), i % 2000, f"How do I register my bike number {i}?", None, "2020-09-13 12:26:40")
        for i in range(1, n + 1)
    ]
    start = time.perf_counter()
    for k in range(0, n, 1000):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO message (channel_id, platform_message_id, member_id, text, reply_to, "
            "sent_at) VALUES (?, ?, ?, ?, ?, ?)",
            rows[k : k + 1000],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return n / elapsed


@dataclass(frozen=True)
class Run:
    """One measured subprocess: its wall time, CPU time (user + sys, every thread), peak RSS
    and what it printed."""

    wall: float
    cpu: float
    peak_mb: float
    stdout: str


def measured(command: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    """Run ``command`` and measure that process alone (``wait4`` gives its own resource
    use, where the children's totals would mix every run)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(err.read())
        return Run(
            wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read().strip()
        )


def run_cli(export: Path, env: dict[str, str]) -> Run:
    """``copss import telegram`` of ``export`` in a subprocess."""
    command = [sys.executable, "-m", "bot.cli", "import", "telegram", str(export), "--quiet"]
    return measured(command, env)


async def in_process(export: Path, store: Path) -> tuple[float, float, float, int]:
    """Seconds of the import alone into a fresh SQLite file, its longest and its mean
    transaction, and how many messages it stored."""
    from bot.importing.telegram_export import read
    from bot.importing.writer import Writer
    from storage.engine import Database, sqlite_url
    from storage.migrations import upgrade

    db = Database(sqlite_url(store))
    try:
        await upgrade(db)
        writer = Writer(db)
        start = time.perf_counter()
        stats = await writer.write(read(export))
        mean = writer.in_transactions / max(1, writer.transactions)
        return time.perf_counter() - start, writer.longest, mean, stats.messages
    finally:
        await db.close()


async def on_postgres(export: Path, server: str, env: dict[str, str]) -> Run:
    """The subprocess import into a fresh database on the PostgreSQL server ``server``."""
    import asyncpg

    name = f"copss_bench_{os.getpid()}"
    admin = await asyncpg.connect(server.replace("postgresql+asyncpg", "postgresql"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.rsplit("/", 1)[0] + "/" + name
        return await asyncio.to_thread(run_cli, export, {**env, "COPSS_DATABASE_URL": url})
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def fresh_sqlite(path: Path) -> None:
    """Remove a SQLite file and its -wal and -shm files."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3, help="runs of each measurement (default 3)")
    p.add_argument("--dir", type=Path, default=Path("/tmp/copss-import-bench"))
    p.add_argument("--postgres", help="PostgreSQL server URL to repeat the import on")
    args = p.parse_args()
    folder: Path = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / "result.json"
    generate(export, args.messages)
    n = args.messages
    print(f"export: {n} messages, {export.stat().st_size / 1e6:.1f} MB")
    home = folder / "home"
    env = {**os.environ, "COPSS_HOME": str(home), "COPSS_FETCH_MODEL": "0"}
    env.pop("COPSS_DATABASE_URL", None)
    print(f"command: COPSS_HOME={home} python -m bot.cli import telegram {export} --quiet")
    per = 100_000 / n
    for i in range(1, args.runs + 1):
        fresh_sqlite(home / "copss.db")
        load = os.getloadavg()[0]
        try:
            run = run_cli(export, env)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(
            f"run {i}: copss import, SQLite: {run.wall:.2f} s wall (process start, validation "
            f"pass, import) = {n / run.wall:,.0f} messages/s; {run.cpu:.2f} s CPU "
            f"({run.cpu * per:.2f} s per 100k messages); peak RSS {run.peak_mb:.0f} MB "
            f"(load average {load:.2f} -> {os.getloadavg()[0]:.2f})"
        )
        store = folder / "inprocess.db"
        fresh_sqlite(store)
        alone, longest, mean, stored = asyncio.run(in_process(export, store))
        print(
            f"run {i}: import alone (in-process, SQLite): {alone:.2f} s = "
            f"{n / alone:,.0f} messages/s ({stored} stored); transactions: longest "
            f"{longest * 1000:.0f} ms, mean {mean * 1000:.0f} ms"
        )
    print(run.stdout)
    if args.postgres:
        run = asyncio.run(on_postgres(export, args.postgres, env))
        print(run.stdout)
        print(
            f"copss import, PostgreSQL: {run.wall:.2f} s wall = {n / run.wall:,.0f} messages/s; "
            f"{run.cpu:.2f} s CPU (the importing process only)"
        )
    raw = raw_sqlite(folder / "raw.db", n)
    print(f"raw sqlite3 executemany (1000 rows/transaction, same run): {raw:,.0f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
