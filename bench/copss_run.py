"""copss as its own process for bench/throughput.py and bench/soak.py: its configuration and
data folder, its CPU time and memory, its SQL statement counts, and read-only looks at its
store.

copss runs as ``python -m bench.copss_for_bench --config FILE run`` with its data folder
(``COPSS_HOME``) in a temporary directory, Telegram at the loopback fake (and Discord at its
fake when one is given), Telegram pacing off and semantic matching off unless a model folder
is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
#: What bench/copss_for_bench.py is imported as.
ENTRY = "bench.copss_for_bench"
#: The name copss knows the model of ``--model`` by (a folder in its data folder).
MODEL_NAME = "bench-model"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Setup:
    """What one copss runs with: ``store_url`` None for the default SQLite file in its data
    folder; ``model`` a model folder for semantic matching (None: words only); ``admins``
    user ids on the config's allow-list; ``count_statements``: count its SQL;
    ``discord_url`` and ``discord_token``: Discord as well, at a fake's address
    (``http://127.0.0.1:PORT``); ``memory_dir``: copss writes counts of its live objects there
    on request (:meth:`Copss.memory`), with a tracemalloc snapshot when ``tracemalloc_frames``
    is above 0 (tracing from the start, that many frames per allocation);
    ``sqlite_cache_kib``: each SQLite connection's page cache at most that many KiB (None:
    SQLite's default, 2,000 KiB)."""

    home: Path
    api_base_url: str
    token: str
    store_url: str | None = None
    model: Path | None = None
    admins: tuple[int, ...] = ()
    count_statements: bool = False
    discord_url: str | None = None
    discord_token: str | None = None
    memory_dir: Path | None = None
    tracemalloc_frames: int = 0
    sqlite_cache_kib: int | None = None


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def write_config(setup: Setup) -> Path:
    """The config file of ``setup`` in its data folder."""
    admins = ", ".join(_toml_string(f"telegram:{u}") for u in setup.admins)
    lines = [f"admins = [{admins}]", ""]
    if setup.store_url is not None:
        lines += ["[storage]", f"url = {_toml_string(setup.store_url)}", ""]
    model = MODEL_NAME if setup.model is not None else ""
    lines += [
        "[matching]",
        f"model = {_toml_string(model)}",
        "fetch_model = false",
        "",
        "[telegram]",
        f"base_url = {_toml_string(setup.api_base_url)}",
        "",
    ]
    path = setup.home / "config.toml"
    path.write_text("\n".join(lines))
    return path


class Copss:
    """A running copss process."""

    def __init__(self, proc: asyncio.subprocess.Process, setup: Setup) -> None:
        self.proc = proc
        self.setup = setup
        self.log = setup.home / "copss.log"
        self._counts = setup.home / "statements.json"
        self._seq = 0
        self._memory_seq = 0

    @classmethod
    async def start(cls, setup: Setup, repo: Path = REPO) -> Copss:
        """Start copss on ``setup`` (its data folder made if missing)."""
        setup.home.mkdir(parents=True, exist_ok=True)
        if setup.model is not None:
            models = setup.home / "models"
            models.mkdir(exist_ok=True)
            link = models / MODEL_NAME
            if not link.exists():
                link.symlink_to(setup.model.resolve(), target_is_directory=True)
        config = write_config(setup)
        env = {
            **os.environ,
            "COPSS_HOME": str(setup.home),
            "COPSS_TELEGRAM_TOKEN": setup.token,
            "COPSS_FETCH_MODEL": "0",
            "COPSS_BENCH_UNPACED": "1",
            "PYTHONPATH": str(repo),
        }
        for key in (
            "COPSS_DISCORD_TOKEN",
            "COPSS_DATABASE_URL",
            "COPSS_BENCH_STATEMENTS",
            "COPSS_BENCH_DISCORD",
            "COPSS_BENCH_MEMORY",
            "COPSS_BENCH_TRACEMALLOC",
            "COPSS_BENCH_SQLITE_CACHE_KIB",
        ):
            env.pop(key, None)
        if setup.count_statements:
            env["COPSS_BENCH_STATEMENTS"] = str(setup.home / "statements.json")
        if setup.discord_url is not None:
            env["COPSS_BENCH_DISCORD"] = setup.discord_url
            env["COPSS_DISCORD_TOKEN"] = setup.discord_token or ""
        if setup.memory_dir is not None:
            setup.memory_dir.mkdir(parents=True, exist_ok=True)
            env["COPSS_BENCH_MEMORY"] = str(setup.memory_dir)
            env["COPSS_BENCH_TRACEMALLOC"] = str(setup.tracemalloc_frames)
        if setup.sqlite_cache_kib is not None:
            env["COPSS_BENCH_SQLITE_CACHE_KIB"] = str(setup.sqlite_cache_kib)
        with (setup.home / "copss.log").open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                ENTRY,
                "--config",
                str(config),
                "run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=setup.home,
            )
        return cls(proc, setup)

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.returncode is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines copss logged."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far (all its threads)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        # Fields 14 and 15 of stat (utime, stime), counted from the state field (3rd).
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def _status_mb(self, field: str) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MB."""
        return self._status_mb("VmHWM")

    def rss_mb(self) -> float:
        """The process's resident memory now (VmRSS), in MB."""
        return self._status_mb("VmRSS")

    def rss_parts_mb(self) -> tuple[float, float]:
        """The process's resident memory now: anonymous (heap, Python's arenas, the threads'
        malloc arenas) and file-backed (code and data of the interpreter and libraries), MB."""
        return self._status_mb("RssAnon"), self._status_mb("RssFile")

    def mappings_mb(self) -> dict[str, float]:
        """Resident memory by kind of mapping (``/proc/PID/smaps``), MB: ``[heap]`` (brk),
        ``anonymous`` (other anonymous mappings: Python's arenas, the threads' malloc arenas,
        stacks), ``.so`` (shared libraries), ``other files``, and named ones such as
        ``[stack]``."""
        parts: dict[str, float] = {}
        kind = ""
        for line in Path(f"/proc/{self.proc.pid}/smaps").read_text().splitlines():
            head = line.split(None, 5)
            if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                name = head[5].strip() if len(head) == 6 else ""
                if not name:
                    kind = "anonymous"
                elif name.startswith("["):
                    kind = name
                elif ".so" in Path(name).name:
                    kind = ".so"
                else:
                    kind = "other files"
            elif line.startswith("Rss:"):
                parts[kind] = parts.get(kind, 0.0) + int(line.split()[1]) / 1024
        return parts

    async def memory(self, within: float = 120.0) -> Path:
        """Ask copss (``SIGUSR2``; needs ``memory_dir``) for counts of its live objects by type,
        its allocators' figures, and a tracemalloc snapshot if it traces; the JSON file it
        wrote (described in bench/copss_for_bench.py), which names the snapshot."""
        assert self.setup.memory_dir is not None
        self._memory_seq += 1
        path = self.setup.memory_dir / f"memory-{self._memory_seq}.json"
        self.proc.send_signal(signal.SIGUSR2)
        async with asyncio.timeout(within):
            while True:
                if path.exists():
                    return path
                await asyncio.sleep(0.05)

    async def statements(self, within: float = 10.0) -> tuple[dict[str, int], int]:
        """The SQL statements copss has sent so far, by first word, and its commits (needs
        ``count_statements``)."""
        self._seq += 1
        self.proc.send_signal(signal.SIGUSR1)
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(OSError, ValueError):
                    data = json.loads(self._counts.read_text())
                    if data["seq"] >= self._seq:
                        return dict(data["statements"]), int(data["commits"])
                await asyncio.sleep(0.02)

    async def stop(self, within: float = 30.0) -> int | None:
        """Stop copss (SIGTERM, then SIGKILL after ``within`` seconds); its exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), within)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


class StoreProbe(Protocol):
    """Read-only looks at a copss store while copss runs."""

    async def handled(self) -> int:
        """Inbox events handled so far (``handled_at`` set)."""
        ...

    async def backlog(self) -> tuple[int, int]:
        """(events not handled yet, outbox rows pending or being sent)."""
        ...

    async def close(self) -> None:
        """Let go of the store."""
        ...


class SqliteProbe:
    """Looks at a SQLite store through a read-only connection of Python's sqlite3 (a WAL
    reader: it never holds copss's write lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _query(self, sql: str) -> tuple[int, ...] | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            try:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
            except sqlite3.Error:
                return None
            conn.isolation_level = None  # no transaction kept open between looks
            self._conn = conn
        try:
            row = self._conn.execute(sql).fetchone()
        except sqlite3.OperationalError:
            return None  # copss has not made its tables yet
        return tuple(int(v or 0) for v in row)

    async def handled(self) -> int:
        row = self._query("SELECT count(*) FROM inbox WHERE handled_at IS NOT NULL")
        return row[0] if row else 0

    async def backlog(self) -> tuple[int, int]:
        row = self._query(
            "SELECT (SELECT count(*) FROM inbox WHERE handled_at IS NULL),"
            " (SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending'))"
        )
        return (row[0], row[1]) if row else (0, 0)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresProbe:
    """Looks at a PostgreSQL store through one asyncpg connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: Any = None

    async def _query(self, sql: str) -> tuple[int, ...] | None:
        import asyncpg  # type: ignore[import-untyped]

        if self._conn is None:
            self._conn = await asyncpg.connect(self.dsn)
        try:
            row = await self._conn.fetchrow(sql)
        except asyncpg.UndefinedTableError:
            return None
        assert row is not None
        return tuple(int(v or 0) for v in row.values())

    async def handled(self) -> int:
        row = await self._query("SELECT count(*) FROM inbox WHERE handled_at IS NOT NULL")
        return row[0] if row else 0

    async def backlog(self) -> tuple[int, int]:
        row = await self._query(
            "SELECT (SELECT count(*) FROM inbox WHERE handled_at IS NULL),"
            " (SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending'))"
        )
        return (row[0], row[1]) if row else (0, 0)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql")


@contextlib.asynccontextmanager
async def fresh_postgres(server_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on the server of ``server_url`` (any database on it),
    dropped afterwards."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"copss_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server_url.rsplit("/", 1)[0] + "/" + name
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def probe_for(setup: Setup) -> StoreProbe:
    """A probe of the store ``setup`` names."""
    if setup.store_url is None:
        return SqliteProbe(setup.home / "copss.db")
    return PostgresProbe(_dsn(setup.store_url))
