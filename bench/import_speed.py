"""Import speed: a synthetic Telegram Desktop export of N messages into a fresh store.

    .venv/bin/python -m bench.import_speed [--messages 100000] [--dir /tmp/copss-import]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Writes ``result.json`` (a supergroup: a third questions, a third replies answering them, a
third unthreaded chat, some thanks and ✅ reactions), runs ``copss import telegram`` on it in a
subprocess (COPSS_HOME in the folder: a fresh SQLite store with the search index maintained by
its triggers) and reports messages/s, the child's CPU time and peak RSS. It then imports the
same file in-process into another fresh SQLite file to time the import alone and its longest
write transaction (what a copss running on the same file may have to wait for). With
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
import resource
import sqlite3
import subprocess
import sys
import time
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


def run_cli(export: Path, env: dict[str, str]) -> tuple[float, str, float]:
    """Wall seconds, stdout and CPU seconds of ``copss import telegram`` in a subprocess."""
    command = [sys.executable, "-m", "bot.cli", "import", "telegram", str(export), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, done.stdout.strip(), cpu


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


async def on_postgres(export: Path, server: str, env: dict[str, str]) -> tuple[float, str, float]:
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000)
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
    for suffix in ("", "-wal", "-shm"):
        (home / f"copss.db{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "COPSS_HOME": str(home), "COPSS_FETCH_MODEL": "0"}
    env.pop("COPSS_DATABASE_URL", None)
    print(f"command: COPSS_HOME={home} python -m bot.cli import telegram {export} --quiet")
    try:
        elapsed, said, cpu = run_cli(export, env)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(said)
    print(
        f"copss import, SQLite: {elapsed:.2f} s wall (process start, validation pass, import) "
        f"= {n / elapsed:,.0f} messages/s; {cpu:.2f} s CPU; peak RSS {peak_mb:.0f} MB"
    )
    store = folder / "inprocess.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    alone, longest, mean, stored = asyncio.run(in_process(export, store))
    print(
        f"import alone (in-process, SQLite): {alone:.2f} s = {n / alone:,.0f} messages/s "
        f"({stored} stored); transactions: longest {longest * 1000:.0f} ms, "
        f"mean {mean * 1000:.0f} ms"
    )
    if args.postgres:
        elapsed, said, cpu = asyncio.run(on_postgres(export, args.postgres, env))
        print(said)
        print(
            f"copss import, PostgreSQL: {elapsed:.2f} s wall = {n / elapsed:,.0f} messages/s; "
            f"{cpu:.2f} s CPU (the importing process only)"
        )
    raw = raw_sqlite(folder / "raw.db", n)
    print(f"raw sqlite3 executemany (1000 rows/transaction, same run): {raw:,.0f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
