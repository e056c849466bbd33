"""End-to-end throughput of copss as its own process: messages handled per second, CPU per
message, reply latency under load and SQL statements per message.

Usage::

    python -m bench.throughput [--messages 20000] [--store sqlite|postgres|both]
        [--model DIR] [--skip-latency] [--skip-statements] [--latency-seconds 60]

copss runs as a separate process (``python -m bench.copss_for_bench ... run``, see that
module) with its data folder in a temporary directory, polling the loopback fake Telegram Bot
API of the test suite (``tests/fakes/telegram_api.py``), which this process runs. Its
Telegram pacing is off, so nothing waits for Telegram's flood limits; semantic matching is
off, and also run on with ``--model DIR`` (a model folder as bench/prepare_model.py makes).
The stores: a SQLite file in the data folder, and a new PostgreSQL database made on
``--pg-url``'s server and dropped afterwards.

The traffic is bench/chat_mix.py's: group messages over 50 chats of 20 members, 30% questions
(starter FAQ questions reworded, the chat's own questions, and answered ones asked again),
40% replies to earlier messages (answers, thanks, replies to chatter), 30% chatter.

1. Throughput: ``--messages`` updates are queued in the fake before copss starts. The clock
   and copss's CPU time (utime + stime of ``/proc/PID/stat``) start when copss's first
   ``getUpdates`` arrives, and stop at the first look (every 100 ms, read-only, at the
   inbox table) that finds every update handled (``inbox.handled_at`` set). Handled per
   second is messages / that time; CPU per message the CPU time over the same span / messages.
   Replies may still be on their way then; they are waited for and counted.
2. Latency: a fresh copss; the same mix is offered at ``--latency-rate`` messages a second for
   ``--latency-seconds``. For each question: from the moment it was queued in the fake for
   ``getUpdates`` until copss's ``sendMessage`` replying to it arrived at the fake. Questions
   copss did not answer (no match good enough) have no latency; their count is shown.
3. Statements: a fresh copss counting every SQL statement it sends (an SQLAlchemy
   ``before_cursor_execute`` listener, read by signal) and its commits. After a warm-up, one
   phase per kind: ``--statement-messages`` messages of that kind only, counted from before
   the first was queued until all are handled and every reply sent; the statements copss
   sends while idle (its outbox poll) over as long are taken off. Everything copss does for
   the message counts: storing it in the inbox, handling it, sending and recording a reply.
   ``/stats`` is sent by members on the config's admin allow-list (no platform call).

The last line printed is ``handled: N msg/s; raw sqlite3 per-message transactions: M rows/s``:
N from the SQLite run with semantic matching off (else the first store measured), M from
Python's sqlite3 inserting rows like copss's inbox rows into a temporary file in WAL mode with
``synchronous=NORMAL`` (copss's settings), one ``INSERT`` and ``COMMIT`` per row, in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import resource
import shlex
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.chat_mix import COMMAND_USER_BASE, ChatMix, Planned
from bench.copss_run import Copss, Setup, StoreProbe, fresh_postgres, probe_for
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, JSONDict

DEFAULT_PG_URL = os.environ.get(
    "COPSS_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
POLL = 0.1
SEED = 15


def log(text: str) -> None:
    """A progress line (on stderr: stdout is the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class BenchTelegram(FakeTelegramAPI):
    """The fake Bot API noting when copss first asks for updates (and copss's CPU time then)
    and when each reply arrives, by the (chat, message) it replies to."""

    def __init__(self) -> None:
        super().__init__(token=DEFAULT_TOKEN, strict_allowed_updates=False)
        self.first_poll: float | None = None
        self.first_poll_cpu = 0.0
        self.cpu_of: Callable[[], float] | None = None
        self.replies: dict[tuple[int, int], float] = {}
        self.sends = 0
        self.register_method("getUpdates", self._poll)
        self.register_method("sendMessage", self._send)

    async def _poll(self, params: JSONDict) -> list[JSONDict]:
        if self.first_poll is None:
            self.first_poll = time.monotonic()
            if self.cpu_of is not None:
                self.first_poll_cpu = self.cpu_of()
        return await self._m_get_updates(params)

    async def _send(self, params: JSONDict) -> JSONDict:
        arrived = time.monotonic()
        message = await self._m_send_message(params)
        self.sends += 1
        replied = message.get("reply_to_message")
        if replied is not None:
            self.replies.setdefault((int(message["chat"]["id"]), replied["message_id"]), arrived)
        return message


@dataclass(frozen=True)
class Variant:
    """A store (``sqlite`` or ``postgres``) and whether semantic matching is on."""

    store: str
    semantic: bool

    def __str__(self) -> str:
        return f"{self.store}, semantic {'on' if self.semantic else 'off'}"


@dataclass
class Run:
    """One fake Bot API and one copss on a fresh store (see :func:`running`)."""

    variant: Variant
    api: BenchTelegram
    home: Path
    store_url: str | None
    model: Path | None
    chats: int
    copss: Copss | None = None
    probe: StoreProbe | None = None
    #: Message id in the fake of each offered message, by its index in the mix's plan.
    ids: dict[int, int] = field(default_factory=dict)

    async def start(self, admins: Sequence[int] = (), count_statements: bool = False) -> None:
        """Start copss and wait for its first ``getUpdates``."""
        setup = Setup(
            home=self.home,
            api_base_url=self.api.base_url,
            token=DEFAULT_TOKEN,
            store_url=self.store_url,
            model=self.model if self.variant.semantic else None,
            admins=tuple(admins),
            count_statements=count_statements,
        )
        self.copss = await Copss.start(setup)
        self.api.cpu_of = self.copss.cpu_seconds
        self.probe = probe_for(setup)
        await self.until(lambda: self.api.first_poll is not None, 180, "copss to start polling")

    def offer(self, mix: ChatMix, planned: Planned) -> tuple[int, int]:
        """Queue ``planned`` (the last message ``mix`` planned) for ``getUpdates``; its (chat
        id, message id)."""
        reply_to = self.ids[planned.reply_to] if planned.reply_to is not None else None
        update = self.api.message_update(
            planned.chat_id,
            planned.user,
            planned.text,
            first_name=planned.name,
            reply_to_message_id=reply_to,
        )
        self.api.push_update(update)
        message_id = int(update["message"]["message_id"])
        self.ids[len(mix.plan) - 1] = message_id
        return planned.chat_id, message_id

    async def until(
        self, done: Callable[[], bool | Awaitable[bool]], within: float, what: str
    ) -> None:
        """Wait until ``done()``, looking every :data:`POLL` seconds; fails when copss ends."""
        deadline = time.monotonic() + within
        while True:
            result = done()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            if self.copss is not None and not self.copss.alive():
                raise RuntimeError(
                    f"copss ended while waiting for {what}:\n{self.copss.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {within:.0f} s for {what}")
            await asyncio.sleep(POLL)

    async def settled(self, offered: int) -> bool:
        """Whether every offered message is handled and every reply sent."""
        assert self.probe is not None
        if await self.probe.handled() < offered:
            return False
        return await self.probe.backlog() == (0, 0)


@contextlib.asynccontextmanager
async def running(variant: Variant, args: argparse.Namespace) -> AsyncIterator[Run]:
    """A fake Bot API with the benchmark's chats and a fresh store; copss is started by
    :meth:`Run.start` and stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="copss-throughput-") as tmp:
        api = BenchTelegram()
        for chat in range(args.chats):
            api.add_chat(Planned("chatter", "", chat, 0, "", "").chat_id, title=f"Group {chat}")
        async with api, contextlib.AsyncExitStack() as stack:
            url = None
            if variant.store == "postgres":
                url = await stack.enter_async_context(fresh_postgres(args.pg_url))
            run = Run(variant, api, Path(tmp) / "home", url, args.model, args.chats)
            try:
                yield run
            finally:
                if run.probe is not None:
                    await run.probe.close()
                if run.copss is not None:
                    code = await run.copss.stop()
                    if code not in (0, None):
                        log(f"copss exited with {code}:\n{run.copss.log_tail()}")


# -- 1. throughput -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """What one throughput run measured (``handled`` < ``messages`` when it timed out)."""

    variant: Variant
    messages: int
    handled: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    bench_cpu_seconds: float
    questions: Counter[str]
    replied: Counter[str]

    @property
    def rate(self) -> float:
        """Messages handled per second."""
        return self.handled / self.seconds if self.seconds else 0.0


async def measure_throughput(variant: Variant, args: argparse.Namespace) -> Throughput:
    """Queue ``args.messages`` updates, start copss, time until all are handled."""
    async with running(variant, args) as run:
        mix = ChatMix(args.chats, SEED)
        questions: dict[tuple[int, int], str] = {}
        for _ in range(args.messages):
            planned = mix.next()
            where = run.offer(mix, planned)
            if planned.kind == "question":
                questions[where] = planned.detail
        await run.start()
        assert run.copss is not None and run.probe is not None
        probe, copss = run.probe, run.copss
        assert run.api.first_poll is not None
        start, cpu_start = run.api.first_poll, run.api.first_poll_cpu
        bench_start = resource.getrusage(resource.RUSAGE_SELF)
        deadline = start + args.messages / args.min_rate + 60
        handled = 0
        while handled < args.messages:
            if not copss.alive():
                raise RuntimeError(f"copss ended:\n{copss.log_tail()}")
            if time.monotonic() > deadline:
                log(f"timed out: {handled} of {args.messages} handled")
                break
            await asyncio.sleep(POLL)
            handled = await probe.handled()
        end = time.monotonic()
        cpu = copss.cpu_seconds() - cpu_start
        bench_end = resource.getrusage(resource.RUSAGE_SELF)
        rss = copss.peak_rss_mb()
        log(f"{variant}: {handled} handled in {end - start:.1f} s; waiting for the replies")
        with contextlib.suppress(TimeoutError):
            await run.until(lambda: run.settled(handled), 600, "the replies")
        replied = Counter(d for k, d in questions.items() if k in run.api.replies)
        return Throughput(
            variant=variant,
            messages=args.messages,
            handled=handled,
            seconds=end - start,
            cpu_seconds=cpu,
            peak_rss_mb=rss,
            bench_cpu_seconds=(bench_end.ru_utime + bench_end.ru_stime)
            - (bench_start.ru_utime + bench_start.ru_stime),
            questions=Counter(questions.values()),
            replied=replied,
        )


# -- 2. latency ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Reply latencies (seconds) of one latency run."""

    variant: Variant
    offered: int
    offer_seconds: float
    caught_up_seconds: float
    questions: int
    latencies: list[float]


async def measure_latency(variant: Variant, args: argparse.Namespace) -> Latency:
    """Offer the mix at ``args.latency_rate`` for ``args.latency_seconds``; time the replies."""
    async with running(variant, args) as run:
        await run.start()
        mix = ChatMix(args.chats, SEED + 1)
        total = round(args.latency_rate * args.latency_seconds)
        asked: dict[tuple[int, int], float] = {}
        start = time.monotonic()
        for i in range(total):
            delay = start + i / args.latency_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            planned = mix.next()
            where = run.offer(mix, planned)
            if planned.kind == "question":
                asked[where] = time.monotonic()
        offered_at = time.monotonic()
        log(f"{variant}: offered {total} in {offered_at - start:.1f} s; waiting for copss")
        await run.until(lambda: run.settled(total), args.drain_seconds, "copss to catch up")
        caught_up = time.monotonic() - offered_at
        latencies = [run.api.replies[k] - t for k, t in asked.items() if k in run.api.replies]
        return Latency(variant, total, offered_at - start, caught_up, len(asked), latencies)


# -- 3. statements -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statements:
    """SQL statements copss sent over one phase of ``messages`` messages of one kind, the idle
    statements of as long already taken off."""

    variant: Variant
    kind: str
    messages: int
    seconds: float
    by_verb: dict[str, float]
    commits: float

    @property
    def total(self) -> float:
        """All statements of the phase."""
        return sum(self.by_verb.values())


PHASES: tuple[tuple[str, Callable[[ChatMix], Planned]], ...] = (
    ("chatter", lambda mix: mix.next("chatter")),
    ("question", lambda mix: mix.next("question")),
    ("reply", lambda mix: mix.next("reply")),
    ("command /help", lambda mix: mix.command("help")),
    ("command /stats", lambda mix: mix.command("stats")),
)


async def measure_statements(
    variant: Variant, args: argparse.Namespace
) -> tuple[list[Statements], float]:
    """Count copss's SQL statements per message, one phase per kind; also the statements a
    second copss sends while idle (taken off each phase)."""
    per_phase = args.statement_messages
    commands = sum(1 for name, _ in PHASES if name.startswith("command"))
    admins = range(COMMAND_USER_BASE + 1, COMMAND_USER_BASE + 1 + commands * per_phase)
    async with running(variant, args) as run:
        await run.start(admins=admins, count_statements=True)
        assert run.copss is not None
        copss = run.copss
        mix = ChatMix(args.chats, SEED + 2)
        offered = 0
        for _ in range(args.warmup):
            run.offer(mix, mix.next())
        offered += args.warmup
        await run.until(lambda: run.settled(offered), 600, "the warm-up")
        await asyncio.sleep(0.5)
        idle_before, idle_commits_before = await copss.statements()
        idle_seconds = 3.0
        await asyncio.sleep(idle_seconds)
        idle_after, idle_commits_after = await copss.statements()
        idle = {
            k: (idle_after.get(k, 0) - idle_before.get(k, 0)) / idle_seconds for k in idle_after
        }
        idle_commits = (idle_commits_after - idle_commits_before) / idle_seconds
        rows: list[Statements] = []
        for name, plan in PHASES:
            before, commits_before = await copss.statements()
            start = time.monotonic()
            kinds: Counter[str] = Counter()
            for _ in range(per_phase):
                planned = plan(mix)
                kinds[planned.kind] += 1
                run.offer(mix, planned)
            offered += per_phase
            await run.until(functools.partial(run.settled, offered), 600, f"the {name} phase")
            seconds = time.monotonic() - start
            after, commits_after = await copss.statements()
            if len(kinds) != 1:
                log(f"{name} phase: kinds {dict(kinds)}")
            verbs = {
                k: max(0.0, after.get(k, 0) - before.get(k, 0) - idle.get(k, 0.0) * seconds)
                / per_phase
                for k in after
            }
            spent = commits_after - commits_before - idle_commits * seconds
            rows.append(
                Statements(variant, name, per_phase, seconds, verbs, max(0.0, spent) / per_phase)
            )
            log(f"{variant}: {name}: {rows[-1].total:.1f} statements per message")
        return rows, sum(idle.values())


# -- raw sqlite3 ---------------------------------------------------------------------------------


def raw_sqlite_rate(rows: int = 20_000, within: float = 5.0) -> tuple[int, float]:
    """Rows a second Python's sqlite3 inserts into an inbox-like table of a temporary WAL
    file, one ``INSERT`` + ``COMMIT`` per row (at most ``rows``, for at most ``within`` s)."""
    payload = json.dumps(
        {
            "type": "message",
            "channel": {"platform": "telegram", "chat_id": "-1001000000007", "thread_id": None},
            "author": {"platform": "telegram", "user_id": "100712", "display_name": "Lotte"},
            "message_id": "4711",
            "text": "Which shop near Utrecht Centraal sells oat milk at a fair price?",
            "sent_at": "2026-01-01T12:00:00+00:00",
            "reply_to": None,
        }
    )
    with tempfile.TemporaryDirectory(prefix="copss-raw-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE inbox (id INTEGER PRIMARY KEY, dedup_key VARCHAR(300) UNIQUE,"
            " platform VARCHAR(16), payload JSON, received_at DATETIME, handled_at DATETIME,"
            " error TEXT, attempts INTEGER NOT NULL DEFAULT 0)"
        )
        conn.execute("CREATE INDEX ix_inbox_pending ON inbox (handled_at)")
        start = time.perf_counter()
        done = 0
        while done < rows and time.perf_counter() - start < within:
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO inbox (dedup_key, platform, payload, received_at)"
                " VALUES (?, ?, ?, ?)",
                (f"telegram:message:-1001000000007:{done}", "telegram", payload,
                 datetime.now(UTC).isoformat()),
            )  # fmt: skip
            conn.execute("COMMIT")
            done += 1
        seconds = time.perf_counter() - start
        conn.close()
    return done, done / seconds


# -- report --------------------------------------------------------------------------------------


def machine() -> str:
    """CPU model and count, load average, Python, SQLite, OS."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, load average {load}; Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.release()}"
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def throughput_table(results: Sequence[Throughput]) -> list[str]:
    """The throughput rows."""
    lines = [
        f"{'store':<9}{'semantic':<10}{'handled':>9}{'msg/s':>9}{'wall s':>8}"
        f"{'CPU ms/msg':>12}{'CPU %':>7}{'peak MB':>9}{'bench CPU s':>13}  questions replied",
    ]
    for r in results:
        busy = 100 * r.cpu_seconds / r.seconds if r.seconds else 0.0
        per_msg = 1000 * r.cpu_seconds / r.handled if r.handled else 0.0
        replied = ", ".join(
            f"{kind} {r.replied[kind]}/{count}" for kind, count in sorted(r.questions.items())
        )
        lines.append(
            f"{r.variant.store:<9}{'on' if r.variant.semantic else 'off':<10}"
            f"{r.handled:>9}{r.rate:>9.1f}{r.seconds:>8.1f}{per_msg:>12.2f}{busy:>7.0f}"
            f"{r.peak_rss_mb:>9.0f}{r.bench_cpu_seconds:>13.1f}  {replied}"
        )
    return lines


def latency_table(results: Sequence[Latency], rate: float) -> list[str]:
    """The latency rows."""
    lines = [
        f"{'store':<9}{'semantic':<10}{'offered':>8}{'in s':>7}{'questions':>10}{'replied':>9}"
        f"{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}  caught up after offering stopped",
    ]
    for r in results:
        ms = [v * 1000 for v in r.latencies] or [float("nan")]
        lines.append(
            f"{r.variant.store:<9}{'on' if r.variant.semantic else 'off':<10}{r.offered:>8}"
            f"{r.offer_seconds:>7.1f}{r.questions:>10}{len(r.latencies):>9}"
            f"{percentile(ms, 0.5):>10.0f}{percentile(ms, 0.99):>10.0f}{max(ms):>10.0f}"
            f"  {r.caught_up_seconds:.1f} s"
        )
    return lines


VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def statements_table(results: Sequence[Statements]) -> list[str]:
    """The statements rows."""
    lines = [
        f"{'store':<9}{'semantic':<10}{'kind':<16}{'msgs':>6}{'stmts/msg':>11}"
        + "".join(f"{v:>8}" for v in VERBS)
        + f"{'other':>8}{'commits':>9}",
    ]
    for r in results:
        other = r.total - sum(r.by_verb.get(v, 0.0) for v in VERBS)
        lines.append(
            f"{r.variant.store:<9}{'on' if r.variant.semantic else 'off':<10}{r.kind:<16}"
            f"{r.messages:>6}{r.total:>11.1f}"
            + "".join(f"{r.by_verb.get(v, 0.0):>8.1f}" for v in VERBS)
            + f"{other:>8.1f}{r.commits:>9.1f}"
        )
    # What 'other' is, per store: each statement word's count per message, kind by kind.
    for variant in dict.fromkeys(r.variant for r in results):
        rows = [r for r in results if r.variant == variant]
        words = sorted({w for r in rows for w, n in r.by_verb.items() if w not in VERBS and n})
        parts = [f"{w} " + "/".join(f"{r.by_verb.get(w, 0.0):.1f}" for r in rows) for w in words]
        lines.append(
            f"  other, {variant.store} ({'/'.join(r.kind for r in rows)}): " + "; ".join(parts)
        )
    return lines


async def run(args: argparse.Namespace) -> list[str]:
    """Every measurement asked for; the report's lines."""
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    semantic = [False, True] if args.model is not None else [False]
    variants = [Variant(s, m) for s in stores for m in semantic]
    command = shlex.join([Path(sys.executable).name, "-m", "bench.throughput", *sys.argv[1:]])
    lines = [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine at start: {machine()}",
        f"command: {command}",
        "",
    ]
    throughputs: list[Throughput] = []
    for variant in variants:
        log(f"throughput: {variant}, {args.messages} messages")
        throughputs.append(await measure_throughput(variant, args))
    latencies: list[Latency] = []
    if not args.skip_latency:
        for variant in variants:
            log(f"latency: {variant}, {args.latency_rate:g}/s for {args.latency_seconds:g} s")
            latencies.append(await measure_latency(variant, args))
    statements: list[Statements] = []
    idle: list[str] = []
    if not args.skip_statements:
        for variant in variants:
            log(f"statements: {variant}")
            rows, idle_rate = await measure_statements(variant, args)
            statements += rows
            idle.append(f"{variant.store} {idle_rate:.1f}/s")
    log("raw sqlite3")
    raw_rows, raw_rate = raw_sqlite_rate()

    lines += [
        f"throughput: {args.messages} messages queued before copss starts ({args.chats} chats;"
        " 30% questions, 40% replies, 30% chatter); CPU = copss's user + system time",
        *throughput_table(throughputs),
    ]
    if latencies:
        lines += [
            "",
            f"reply latency: a fresh copss offered the same mix at {args.latency_rate:g} msg/s "
            f"for {args.latency_seconds:g} s; question queued in the fake -> copss's reply "
            "arriving at the fake",
            *latency_table(latencies, args.latency_rate),
        ]
    if statements:
        lines += [
            "",
            f"SQL statements per message: a fresh copss, {args.warmup} mixed messages first, "
            f"then {args.statement_messages} of each kind (idle statements taken off; "
            "'other': BEGIN, SAVEPOINT, RELEASE, ...)",
            *statements_table(statements),
            f"idle copss (its outbox poll): {', '.join(idle)}",
        ]
    lines += [
        "",
        f"raw sqlite3: {raw_rows} rows, one INSERT + COMMIT each, WAL, synchronous=NORMAL",
        f"machine at end: {machine()}",
    ]
    main_result = next(
        (t for t in throughputs if t.variant == Variant("sqlite", False)), throughputs[0]
    )
    lines.append(
        f"handled: {main_result.rate:.0f} msg/s; "
        f"raw sqlite3 per-message transactions: {raw_rate:.0f} rows/s"
    )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--messages", type=int, default=20_000, help="messages of the throughput run")
    p.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a database on the PostgreSQL server")
    p.add_argument("--model", type=Path, help="a model folder: semantic matching on, as well")
    p.add_argument("--chats", type=int, default=50)
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--latency-rate", type=float, default=200.0, help="messages a second")
    p.add_argument("--latency-seconds", type=float, default=60.0)
    p.add_argument(
        "--drain-seconds", type=float, default=900.0, help="longest wait for copss to catch up"
    )
    p.add_argument("--skip-statements", action="store_true")
    p.add_argument("--statement-messages", type=int, default=500, help="messages per kind")
    p.add_argument("--warmup", type=int, default=200, help="mixed messages before the phases")
    p.add_argument(
        "--min-rate",
        type=float,
        default=5.0,
        help="the throughput run gives up after messages / this + 60 seconds",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the report."""
    args = parse_args(argv)
    if args.model is not None and not (args.model / "model.onnx").is_file():
        raise SystemExit(f"--model {args.model}: no model.onnx there")
    for line in asyncio.run(run(args)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
