"""Soak: copss under a steady load on Telegram and Discord at once for a long run; its memory,
its handling latency and whether it keeps up, sampled over time.

Usage::

    python -m bench.soak [--rate 100] [--minutes 20 | --messages N] [--chats 50]
        [--discord-chats N] [--store sqlite|postgres] [--sample 5] [--memory-detail]
        [--tracemalloc FRAMES] [--sqlite-cache-kib N] [--keep DIR]

One copss runs as its own process (``python -m bench.copss_for_bench ... run``, see that
module) with both platforms configured: Telegram polling the loopback fake Bot API of the test
suite (``tests/fakes/telegram_api.py``) and discord.py on the loopback fake gateway and REST
API (``tests/fakes/discord_gateway.py``), both fakes run by this process. Its data folder and
store are in a temporary directory (SQLite, or with ``--store postgres`` a new database on
``--pg-url``'s server, dropped afterwards; ``--keep DIR`` copies the folder out at the end);
semantic matching is off; its Telegram pacing is off, and discord.py paces itself only by the
rate-limit headers the Discord fake answers with (5 posts per 5 s per channel), which the
replies stay well below. Nothing else waits: the load is whatever the fakes take at the
offered rate.

The traffic is bench/chat_mix.py's mix (30% questions, 40% replies, 30% chatter; 20 members a
chat) over ``--chats`` chats: ``--discord-chats`` of them (default half) are Discord channels,
five to a server, the rest Telegram supergroups. It is offered at ``--rate`` messages a second
from the first message on: no warm-up at a lower rate, no pause. ``--messages`` defaults to
``--minutes`` (20) at the rate: 120,000 at 100/s. An hour at 100/s ("hour-equivalent") is
``--messages 360000``; what was run, and why at a lower rate, is in docs/benchmarks.md.

Every ``--sample`` seconds: copss's resident memory (``VmRSS`` and ``RssAnon`` of
``/proc/PID/status``), its CPU time (utime + stime), the inbox rows handled so far and the
backlog (inbox rows waiting, outbox rows pending or sending), all read-only. What is measured:

- latency, of every message: from the moment it was offered (queued for ``getUpdates`` in the
  Telegram fake, sent as ``MESSAGE_CREATE`` on the Discord gateway) to its inbox row being
  stored (``received_at``) and handled (``handled_at``), both as copss's clock wrote them
  (the same clock as this process's: UTC on one machine). The rows are read as they are
  finished (bench/handled_rows.py). A message never stored has no latency and is counted;
- reply latency, of every question copss replied to: from offering it until the reply
  (``sendMessage``, a Discord message with a reference to it) arrived at the fake;
- memory: RSS after warm-up (the first sample once ``--warmup`` of the messages, 10%, have
  been offered) against RSS at the last sample of the offering; the growth in percent, the
  peak between, the least-squares slope over the samples after warm-up, and at both points the
  resident memory by kind of mapping (``/proc/PID/smaps``: heap, anonymous, libraries);
- keeping up: messages handled per second against offered, per quarter of the run, the
  backlog over time, how long copss took to finish once the offering stopped, and how many
  offered messages never reached the inbox. copss "kept up" when every message was handled
  and every reply sent within :data:`KEPT_UP_DRAIN` seconds of the last being offered.

``--memory-detail`` asks copss for counts of its live objects by type at the warm-up point and
at the end of the offering (it pauses a second or so each time) and prints the types that grew
most; ``--tracemalloc FRAMES`` also traces copss's allocations from its start (much slower)
and prints the source lines whose allocations grew most. ``--sqlite-cache-kib`` sets every
SQLite connection's page cache, to tell SQLite's caches filling up from growth elsewhere.

The report is printed on stdout: a table per quarter and per platform, the memory figures, a
time series (every 30 s) and last the line ``soak: RSS growth G% after warm-up (A -> B MB);
handling latency p50 P ms, p99 Q ms (last quarter); kept up: yes|no``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shlex
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bench.chat_mix import NAMES, USER_BASE, ChatMix, Planned
from bench.copss_run import Copss, Setup, StoreProbe, fresh_postgres, probe_for
from bench.handled_rows import HandledRows, PostgresHandledRows, SqliteHandledRows
from bench.throughput import DEFAULT_PG_URL, log, machine, percentile
from tests.fakes.discord_gateway import JSON, FakeDiscord
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, JSONDict

SEED = 23
DISCORD_TOKEN = "copss-soak-token-5d1c8e2a"
#: Discord ids: servers, channels and members are these plus a small number.
GUILD_BASE = 920_000_000_000_000_000
CHANNEL_BASE = 921_000_000_000_000_000
MEMBER_BASE = 922_000_000_000_000_000
#: Discord channels per server.
CHANNELS_PER_GUILD = 5
#: ApplicationFlags.gateway_message_content_limited: the portal's Message Content switch on.
CONTENT_LIMITED_FLAG = 1 << 19
#: copss kept up when it had handled every message and sent every reply within this many
#: seconds of the last being offered.
KEPT_UP_DRAIN = 30.0
#: After the offering, copss counts as done once nothing waits in its inbox or outbox and
#: no more messages come in for this many seconds (some may never arrive: they are reported).
STILL_SECONDS = 30.0
#: Seconds between two rows of the printed time series.
SERIES_STEP = 30.0


class SoakTelegram(FakeTelegramAPI):
    """The fake Bot API noting copss's first poll and when each reply arrives, by the (chat,
    message) it replies to."""

    def __init__(self) -> None:
        super().__init__(token=DEFAULT_TOKEN, strict_allowed_updates=False)
        self.first_poll: float | None = None
        self.replies: dict[tuple[str, str], float] = {}
        self.register_method("getUpdates", self._poll)
        self.register_method("sendMessage", self._send)

    async def _poll(self, params: JSONDict) -> list[JSONDict]:
        if self.first_poll is None:
            self.first_poll = time.monotonic()
        return await self._m_get_updates(params)

    async def _send(self, params: JSONDict) -> JSONDict:
        arrived = time.monotonic()
        message = await self._m_send_message(params)
        replied = message.get("reply_to_message")
        if replied is not None:
            key = (str(message["chat"]["id"]), str(replied["message_id"]))
            self.replies.setdefault(key, arrived)
        return message


class SoakDiscord(FakeDiscord):
    """The fake Discord with the Message Content switch on, noting when each message the bot
    posts in reply to another arrives, by the (channel, message) it replies to."""

    def __init__(self) -> None:
        super().__init__(token=DISCORD_TOKEN)
        self.replies: dict[tuple[str, str], float] = {}

    async def _r_application(self, req: Any) -> tuple[int, Any]:
        status, body = await super()._r_application(req)
        body["flags"] = CONTENT_LIMITED_FLAG
        return status, body

    def _store_message(self, msg: JSON) -> None:
        super()._store_message(msg)
        reference = msg.get("message_reference")
        if reference is not None and msg["author"]["id"] == str(self.bot_id):
            key = (str(reference["channel_id"]), str(reference["message_id"]))
            self.replies.setdefault(key, time.monotonic())

    def forget_records(self, keep: int = 2000) -> None:
        """Drop what the fake records only for tests to look at (every REST call, every
        dispatch) and all but the last ``keep`` dispatches a session keeps for a RESUME, so
        that a long run does not fill this process."""
        self.calls.clear()
        self.dispatched.clear()
        for session in self._sessions.values():
            del session.events[:-keep]


@dataclass(frozen=True)
class World:
    """Which chat of the mix is where: the first ``telegram`` chats are Telegram supergroups,
    the rest Discord channels."""

    chats: int
    telegram: int

    def on_discord(self, chat: int) -> bool:
        """Whether chat ``chat`` (its index in the mix) is a Discord channel."""
        return chat >= self.telegram

    def channel(self, chat: int) -> int:
        """The Discord channel id of chat ``chat``."""
        return CHANNEL_BASE + chat

    def guild(self, chat: int) -> int:
        """The Discord server of chat ``chat``."""
        return GUILD_BASE + (chat - self.telegram) // CHANNELS_PER_GUILD

    @staticmethod
    def member(user: int) -> int:
        """The Discord user id of the mix's member ``user``."""
        return MEMBER_BASE + user

    def build(self, tg: SoakTelegram, dc: SoakDiscord) -> None:
        """The chats, servers, channels and members in the two fakes."""
        for chat in range(self.chats):
            if not self.on_discord(chat):
                tg.add_chat(Planned("chatter", "", chat, 0, "", "").chat_id, title=f"Group {chat}")
                continue
            guild = self.guild(chat)
            if guild not in dc._guilds:
                dc.add_guild(guild, f"Server {guild - GUILD_BASE}")
            dc.add_channel(guild, self.channel(chat), f"chat-{chat}")
            for k in range(20):
                user = USER_BASE + chat * 100 + k
                dc.add_member(guild, self.member(user), NAMES[k % len(NAMES)])


@dataclass
class Sample:
    """One look at copss: ``t`` seconds since the offering began."""

    t: float
    offered: int
    handled: int
    inbox_waiting: int
    outbox_waiting: int
    rss_mb: float
    anon_mb: float
    cpu_s: float
    load1: float


@dataclass
class Soak:
    """One soak run: the fakes, copss, what was offered when, and what was measured."""

    args: argparse.Namespace
    world: World
    tg: SoakTelegram
    dc: SoakDiscord
    copss: Copss
    probe: StoreProbe
    rows: HandledRows
    total: int
    #: Per offered message (by its place in the run): its inbox key, when it was offered
    #: (wall clock and monotonic), its platform, and when copss handled it (wall clock).
    keys: list[str] = field(default_factory=list)
    offered_wall: list[float] = field(default_factory=list)
    offered_mono: list[float] = field(default_factory=list)
    on_discord: list[bool] = field(default_factory=list)
    handled_wall: list[float] = field(default_factory=list)
    stored_wall: list[float] = field(default_factory=list)
    index_of: dict[str, int] = field(default_factory=dict)
    #: Questions: (place in the run, where a reply to it is noted, its detail).
    questions: list[tuple[int, tuple[str, str], str]] = field(default_factory=list)
    #: Platform message id of each planned message, by its index in the mix's plan.
    ids: dict[int, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    start: float = 0.0
    handled_before: int = 0
    offering_done: float | None = None
    drained_after: float | None = None
    warm_sample: Sample | None = None
    memory_files: list[Path] = field(default_factory=list)
    #: copss's resident memory by kind of mapping, after warm-up and at the end of the offering.
    mappings: list[dict[str, float]] = field(default_factory=list)

    async def offer(self, mix: ChatMix, planned: Planned) -> None:
        """Put the message ``mix`` has just planned into its fake and note it."""
        reply_to = self.ids[planned.reply_to] if planned.reply_to is not None else None
        if self.world.on_discord(planned.chat):
            channel = self.world.channel(planned.chat)
            wall, mono = time.time(), time.monotonic()
            message = await self.dc.user_message(
                channel, self.world.member(planned.user), planned.text, message_reference=reply_to
            )
            message_id, chat, platform = int(message["id"]), str(channel), "discord"
        else:
            update = self.tg.message_update(
                planned.chat_id,
                planned.user,
                planned.text,
                first_name=planned.name,
                reply_to_message_id=reply_to,
            )
            wall, mono = time.time(), time.monotonic()
            self.tg.push_update(update)
            message_id = int(update["message"]["message_id"])
            chat, platform = str(planned.chat_id), "telegram"
        self.ids[len(mix.plan) - 1] = message_id
        key = f"message:{platform}:{chat}:{message_id}"
        place = len(self.keys)
        self.keys.append(key)
        self.index_of[key] = place
        self.offered_wall.append(wall)
        self.offered_mono.append(mono)
        self.on_discord.append(platform == "discord")
        self.handled_wall.append(math.nan)
        self.stored_wall.append(math.nan)
        if planned.kind == "question":
            self.questions.append((place, (chat, str(message_id)), planned.detail))

    def latencies(
        self, places: Iterable[int], until: Literal["stored", "handled"] = "handled"
    ) -> list[float]:
        """Seconds from offering to the inbox row being stored or handled, of the messages at
        ``places`` that were."""
        done = self.stored_wall if until == "stored" else self.handled_wall
        return [done[i] - self.offered_wall[i] for i in places if not math.isnan(done[i])]

    async def read_handled(self) -> None:
        """Note when copss handled the rows it has finished since the last look."""
        while True:
            rows = await self.rows.read()
            for row in rows:
                place = self.index_of.get(row.key)
                if place is not None:
                    self.stored_wall[place] = row.received_at.timestamp()
                    self.handled_wall[place] = row.handled_at.timestamp()
            if len(rows) < 1000:
                return

    async def sample(self) -> Sample:
        """Look at copss once (and trim the fakes' records)."""
        handled = await self.probe.handled()
        inbox, outbox = await self.probe.backlog()
        await self.read_handled()
        self.tg.calls.clear()
        self.dc.forget_records()
        s = Sample(
            t=time.monotonic() - self.start,
            offered=len(self.keys),
            handled=handled - self.handled_before,
            inbox_waiting=inbox,
            outbox_waiting=outbox,
            rss_mb=self.copss.rss_mb(),
            anon_mb=self.copss.rss_parts_mb()[0],
            cpu_s=self.copss.cpu_seconds(),
            load1=os.getloadavg()[0],
        )
        self.samples.append(s)
        return s

    def alive_or_fail(self) -> None:
        """Fail when copss has ended."""
        if not self.copss.alive():
            raise RuntimeError(f"copss ended:\n{self.copss.log_tail()}")


async def _until(soak: Soak, what: str, within: float, done: Any) -> None:
    deadline = time.monotonic() + within
    while not await done():
        soak.alive_or_fail()
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {within:.0f} s for {what}")
        await asyncio.sleep(0.1)


async def ready(soak: Soak) -> None:
    """Wait until copss polls Telegram and is on the Discord gateway, then until one message
    on each platform (not counted) has been handled."""
    tg, dc = soak.tg, soak.dc

    async def connected() -> bool:
        return tg.first_poll is not None and dc.identify_count > 0

    await _until(soak, "copss to reach both fakes", 180, connected)
    await asyncio.sleep(1.0)  # discord.py waits a moment for the servers after READY
    world, hellos = soak.world, 0
    if world.telegram > 0:
        tg.push_update(tg.message_update(Planned("chatter", "", 0, 0, "", "").chat_id, 1, "hi"))
        hellos += 1
    if world.telegram < world.chats:
        last = world.chats - 1
        await dc.user_message(world.channel(last), world.member(USER_BASE + last * 100), "hi")
        hellos += 1

    async def both_handled() -> bool:
        return await soak.probe.handled() >= hellos and await soak.probe.backlog() == (0, 0)

    await _until(soak, "the first messages to be handled", 120, both_handled)
    await asyncio.sleep(2.0)
    soak.handled_before = await soak.probe.handled()


async def offer_all(soak: Soak) -> None:
    """Offer the run's messages at the rate, catching up at once when this process fell
    behind the schedule (so the rate holds on average)."""
    mix = ChatMix(soak.world.chats, SEED)
    rate = soak.args.rate
    done = 0
    while done < soak.total:
        due = min(soak.total, int((time.monotonic() - soak.start) * rate) + 1)
        while done < due:
            await soak.offer(mix, mix.next())
            done += 1
        soak.alive_or_fail()
        wait = soak.start + done / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    soak.offering_done = time.monotonic() - soak.start


async def sample_all(soak: Soak) -> None:
    """Sample every ``--sample`` seconds until the run is drained (or the drain wait ends)."""
    args = soak.args
    warm_at = math.ceil(soak.total * args.warmup)
    next_log = 0.0
    last_handled, still_since = -1, 0.0
    while True:
        s = await soak.sample()
        if soak.warm_sample is None and s.offered >= warm_at:
            soak.warm_sample = s
            soak.mappings.append(soak.copss.mappings_mb())
            if args.memory_detail:
                soak.memory_files.append(await soak.copss.memory())
        if s.t >= next_log:
            log(
                f"t {s.t:6.0f} s: offered {s.offered}, handled {s.handled}, waiting "
                f"{s.inbox_waiting}/{s.outbox_waiting}, RSS {s.rss_mb:.0f} MB, load {s.load1:.1f}"
            )
            next_log = s.t + 60
        if soak.offering_done is not None:
            if len(soak.mappings) < 2:
                soak.mappings.append(soak.copss.mappings_mb())
            if args.memory_detail and len(soak.memory_files) < 2:
                soak.memory_files.append(await soak.copss.memory())
            idle = (s.inbox_waiting, s.outbox_waiting) == (0, 0)
            if s.handled != last_handled or not idle:
                last_handled, still_since = s.handled, s.t
            if idle and (s.handled >= soak.total or s.t - still_since >= STILL_SECONDS):
                # Done: everything handled, or nothing waits and nothing more comes in.
                soak.drained_after = still_since - soak.offering_done
                return
            if s.t - soak.offering_done > args.drain_seconds:
                log(f"gave up waiting for copss after {args.drain_seconds:g} s")
                return
        soak.alive_or_fail()
        await asyncio.sleep(max(0.0, s.t + args.sample - (time.monotonic() - soak.start)))


@contextlib.asynccontextmanager
async def running(args: argparse.Namespace, total: int) -> AsyncIterator[Soak]:
    """The fakes, a fresh store and copss on both, ready for the run; stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="copss-soak-") as tmp:
        world = World(args.chats, args.chats - args.discord_chats)
        tg, dc = SoakTelegram(), SoakDiscord()
        world.build(tg, dc)
        async with tg, dc, contextlib.AsyncExitStack() as stack:
            url = None
            if args.store == "postgres":
                url = await stack.enter_async_context(fresh_postgres(args.pg_url))
            home = Path(tmp) / "home"
            setup = Setup(
                home=home,
                api_base_url=tg.base_url,
                token=DEFAULT_TOKEN,
                store_url=url,
                discord_url=f"http://127.0.0.1:{dc.port}",
                discord_token=DISCORD_TOKEN,
                memory_dir=Path(tmp) / "memory" if args.memory_detail else None,
                tracemalloc_frames=args.tracemalloc,
                sqlite_cache_kib=args.sqlite_cache_kib,
            )
            copss = await Copss.start(setup)
            rows: HandledRows
            if url is None:
                rows = SqliteHandledRows(home / "copss.db")
            else:
                rows = PostgresHandledRows(url.replace("postgresql+asyncpg", "postgresql"))
            soak = Soak(args, world, tg, dc, copss, probe_for(setup), rows, total)
            try:
                yield soak
            finally:
                await soak.probe.close()
                await soak.rows.close()
                code = await copss.stop()
                if code not in (0, None):
                    log(f"copss exited with {code}:\n{copss.log_tail()}")
                if args.keep is not None:
                    shutil.copytree(home, args.keep, dirs_exist_ok=True)
                    log(f"copss's data folder (log, SQLite store) copied to {args.keep}")


# -- the report ----------------------------------------------------------------------------------


def _ms(values: Sequence[float], q: float) -> str:
    return f"{1000 * percentile(values, q):,.0f}" if values else "-"


def _sample_at(samples: Sequence[Sample], t: float) -> Sample:
    """The first sample at or after ``t`` (else the last)."""
    return next((s for s in samples if s.t >= t), samples[-1])


def phase_table(soak: Soak) -> list[str]:
    """Per phase (warm-up, quarters, all after warm-up): offered and handled per second, the
    latency to the inbox row stored, to it handled and to the reply, RSS at the phase's end."""
    n = len(soak.keys)
    warm = math.ceil(n * soak.args.warmup)
    quarter = [round(n * i / 4) for i in range(5)]
    phases = [("warm-up", 0, warm)]
    phases += [(f"quarter {i + 1}", quarter[i], quarter[i + 1]) for i in range(4)]
    phases.append(("after warm-up", warm, n))
    replied = _reply_latencies(soak)
    lines = [
        f"{'':<15}{'':>9}{'':>10}{'':>10}{'stored ms':>16}{'handled ms':>24}{'reply ms':>26}",
        f"{'phase':<15}{'messages':>9}{'offered/s':>10}{'handled/s':>10}{'p50':>8}{'p99':>8}"
        f"{'p50':>8}{'p99':>8}{'max':>8}{'replies':>8}{'p50':>9}{'p99':>9}{'RSS MB':>8}",
    ]
    for name, lo, hi in phases:
        if hi <= lo:
            continue
        t1 = soak.offered_mono[hi - 1] - soak.start
        span = max(soak.offered_mono[hi - 1] - soak.offered_mono[lo], 1e-9)
        w0, w1 = soak.offered_wall[lo], soak.offered_wall[hi - 1]
        handled_in = sum(1 for h in soak.handled_wall if w0 <= h <= w1)
        stored = soak.latencies(range(lo, hi), "stored")
        handled = soak.latencies(range(lo, hi))
        replies = [v for place, v in replied if lo <= place < hi]
        lines.append(
            f"{name:<15}{hi - lo:>9}{(hi - lo) / span:>10.1f}{handled_in / span:>10.1f}"
            f"{_ms(stored, 0.5):>8}{_ms(stored, 0.99):>8}"
            f"{_ms(handled, 0.5):>8}{_ms(handled, 0.99):>8}{_ms(handled, 1.0):>8}"
            f"{len(replies):>8}{_ms(replies, 0.5):>9}{_ms(replies, 0.99):>9}"
            f"{_sample_at(soak.samples, t1).rss_mb:>8.0f}"
        )
    return lines


def platform_table(soak: Soak) -> list[str]:
    """After warm-up, per platform: latency to the inbox row stored, handled, and replies."""
    n = len(soak.keys)
    warm = math.ceil(n * soak.args.warmup)
    replied = _reply_latencies(soak)
    lines = [
        f"{'platform':<10}{'messages':>9}{'stored p50':>11}{'p99 ms':>8}{'handled p50':>12}"
        f"{'p99 ms':>8}{'replies':>8}{'reply p50':>10}{'p99 ms':>8}",
    ]
    for name, discord in (("Telegram", False), ("Discord", True)):
        places = [i for i in range(warm, n) if soak.on_discord[i] == discord]
        if not places:
            continue
        stored = soak.latencies(places, "stored")
        handled = soak.latencies(places)
        replies = [v for place, v in replied if place >= warm and soak.on_discord[place] == discord]
        lines.append(
            f"{name:<10}{len(places):>9}{_ms(stored, 0.5):>11}{_ms(stored, 0.99):>8}"
            f"{_ms(handled, 0.5):>12}{_ms(handled, 0.99):>8}{len(replies):>8}"
            f"{_ms(replies, 0.5):>10}{_ms(replies, 0.99):>8}"
        )
    return lines


def _reply_latencies(soak: Soak) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for place, where, _ in soak.questions:
        stamps = soak.dc.replies if soak.on_discord[place] else soak.tg.replies
        arrived = stamps.get(where)
        if arrived is not None:
            out.append((place, arrived - soak.offered_mono[place]))
    return out


def replies_by_kind(soak: Soak) -> str:
    """Questions replied to, by platform and kind of question."""
    asked: Counter[tuple[str, str]] = Counter()
    replied: Counter[tuple[str, str]] = Counter()
    for place, where, detail in soak.questions:
        platform = "Discord" if soak.on_discord[place] else "Telegram"
        asked[platform, detail] += 1
        stamps = soak.dc.replies if soak.on_discord[place] else soak.tg.replies
        replied[platform, detail] += where in stamps
    return "; ".join(
        f"{platform} {detail} {replied[platform, detail]}/{count}"
        for (platform, detail), count in sorted(asked.items())
    )


@dataclass(frozen=True)
class Memory:
    """copss's RSS after warm-up and at the end of the offering (MB), the peak between, after
    draining, and the slope over the samples after warm-up (MB per 10,000 messages)."""

    warm: Sample
    end: Sample
    peak: float
    drained: float
    slope: float

    @property
    def growth(self) -> float:
        """Growth from warm-up to the end of the offering, in percent."""
        return 100 * (self.end.rss_mb - self.warm.rss_mb) / self.warm.rss_mb


def memory(soak: Soak) -> Memory:
    """The memory figures of the run."""
    assert soak.warm_sample is not None and soak.offering_done is not None
    warm = soak.warm_sample
    during = [s for s in soak.samples if warm.t <= s.t <= soak.offering_done]
    end = during[-1] if during else soak.samples[-1]
    xs = [s.offered for s in during]
    ys = [s.rss_mb for s in during]
    slope = 0.0
    if len(xs) > 2:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx:
            slope = 10_000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return Memory(
        warm=warm,
        end=end,
        peak=max(ys) if ys else warm.rss_mb,
        drained=soak.samples[-1].rss_mb,
        slope=slope,
    )


def series(soak: Soak) -> list[str]:
    """Every :data:`SERIES_STEP` seconds: messages offered and handled (in all and per second
    over the step), the backlog, copss's CPU and RSS, the handling latency of the messages
    offered in the step, the load average."""
    lines = [
        f"{'t s':>6}{'offered':>9}{'handled':>9}{'in/s':>7}{'out/s':>7}{'inbox':>7}"
        f"{'outbox':>7}{'CPU %':>7}{'RSS MB':>8}{'anon':>6}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'load':>6}",
    ]
    picked: list[Sample] = []
    for s in soak.samples:
        if not picked or s.t - picked[-1].t >= SERIES_STEP - 0.5 or s is soak.samples[-1]:
            picked.append(s)
    first = soak.samples[0]
    previous = Sample(0.0, 0, 0, 0, 0, first.rss_mb, first.anon_mb, first.cpu_s, first.load1)
    mono = soak.offered_mono
    place = 0
    for s in picked:
        dt = max(s.t - previous.t, 1e-9)
        end = place
        while end < len(mono) and mono[end] - soak.start <= s.t:
            end += 1
        latencies = soak.latencies(range(place, end))
        lines.append(
            f"{s.t:>6.0f}{s.offered:>9}{s.handled:>9}{(s.offered - previous.offered) / dt:>7.1f}"
            f"{(s.handled - previous.handled) / dt:>7.1f}{s.inbox_waiting:>7}"
            f"{s.outbox_waiting:>7}{100 * (s.cpu_s - previous.cpu_s) / dt:>7.0f}"
            f"{s.rss_mb:>8.0f}{s.anon_mb:>6.0f}{_ms(latencies, 0.5):>9}{_ms(latencies, 0.99):>9}"
            f"{s.load1:>6.1f}"
        )
        previous, place = s, end
    return lines


def mapping_lines(mappings: Sequence[dict[str, float]]) -> list[str]:
    """copss's resident memory by kind of mapping after warm-up and at the end of the
    offering, with the difference."""
    if len(mappings) < 2:
        return []
    before, after = mappings[:2]
    kinds = sorted(set(before) | set(after), key=lambda k: -after.get(k, 0.0))
    parts = [
        f"{k} {before.get(k, 0.0):.1f} -> {after.get(k, 0.0):.1f} "
        f"({after.get(k, 0.0) - before.get(k, 0.0):+.1f})"
        for k in kinds
        if max(before.get(k, 0.0), after.get(k, 0.0)) >= 0.5
    ]
    return ["resident MB by mapping (/proc/PID/smaps), after warm-up -> end: " + "; ".join(parts)]


def memory_detail(files: Sequence[Path], top: int = 15) -> list[str]:
    """The object types (and, when traced, source lines) that grew most between the two
    memory reports."""
    if len(files) < 2:
        return []
    before, after = (json.loads(p.read_text()) for p in files[:2])
    grown = Counter(after["objects"])
    grown.subtract(before["objects"])
    lines = [
        "",
        f"live objects (after a full collection): {before['total']:,} after warm-up, "
        f"{after['total']:,} at the end of the offering; grown most:",
    ]
    for name, diff in grown.most_common(top):
        lines.append(f"  {diff:>+10,}  {name} ({after['objects'].get(name, 0):,} now)")
    lines.append(
        f"Python's small-object blocks in use: {before['pymalloc_blocks']:,} -> "
        f"{after['pymalloc_blocks']:,}"
    )
    if before.get("malloc_mb") and after.get("malloc_mb"):
        b, a = before["malloc_mb"], after["malloc_mb"]
        lines.append(
            f"glibc malloc (SQLite, Python objects over 512 bytes, ...): in use "
            f"{b['in_use']:.1f} -> {a['in_use']:.1f} MB, free within its arenas "
            f"{b['free_in_arenas']:.1f} -> {a['free_in_arenas']:.1f} MB"
        )
    if before["tracemalloc"] and after["tracemalloc"]:
        old = tracemalloc.Snapshot.load(before["tracemalloc"])
        new = tracemalloc.Snapshot.load(after["tracemalloc"])
        by = "traceback" if len(new.traces) and new.traceback_limit > 1 else "lineno"
        stats = new.compare_to(old, by)
        total = sum(st.size_diff for st in stats)
        lines.append(f"traced allocations: {total / 1e6:+.1f} MB in all; grown most:")
        for st in stats[:top]:
            lines.append(f"  {st.size_diff / 1e6:>+8.2f} MB {st.count_diff:>+9,} blocks")
            for frame in st.traceback.format()[-2 * min(4, len(st.traceback)) :]:
                lines.append(f"      {frame.strip()}")
    return lines


def report(soak: Soak, started: str, machine_start: str) -> list[str]:
    """The report's lines."""
    args = soak.args
    n = len(soak.keys)
    assert soak.offering_done is not None
    found = sum(1 for h in soak.handled_wall if not math.isnan(h))
    discord = sum(soak.on_discord)
    found_discord = sum(
        1
        for h, d in zip(soak.handled_wall, soak.on_discord, strict=True)
        if d and not math.isnan(h)
    )
    mem = memory(soak)
    warm_at = soak.warm_sample.offered if soak.warm_sample else 0
    last_quarter = soak.latencies(range(round(3 * n / 4), n))
    peak_backlog = max(
        (s.inbox_waiting for s in soak.samples if soak.warm_sample and s.t >= soak.warm_sample.t),
        default=0,
    )
    end_sample = mem.end
    drained = soak.drained_after
    kept_up = drained is not None and drained <= KEPT_UP_DRAIN and found == n
    command = shlex.join([Path(sys.executable).name, "-m", "bench.soak", *sys.argv[1:]])
    bench = resource.getrusage(resource.RUSAGE_SELF)
    verdict = "met" if mem.growth <= 10 else "NOT met"
    lines = [
        f"date: {started} UTC",
        f"machine at start: {machine_start}",
        f"command: {command}",
        "",
        f"copss: Telegram ({soak.world.telegram} supergroups) and Discord "
        f"({args.chats - soak.world.telegram} channels in "
        f"{math.ceil((args.chats - soak.world.telegram) / CHANNELS_PER_GUILD)} servers), "
        f"store {args.store}, semantic matching off, Telegram pacing off",
        f"offered: {n:,} messages ({n - discord:,} Telegram, {discord:,} Discord) at "
        f"{args.rate:g}/s in {soak.offering_done:.0f} s ({n / soak.offering_done:.1f}/s); "
        + (
            f"all handled and sent {drained:.1f} s after the last was offered"
            if drained is not None
            else "NOT drained within the wait"
        ),
        f"handled: {found:,} of the offered messages found handled in the inbox (Telegram "
        f"{found - found_discord:,} of {n - discord:,}, Discord {found_discord:,} of "
        f"{discord:,}); questions replied: {replies_by_kind(soak)}",
        "",
        "latency from offering a message to its inbox row stored (received_at) and handled "
        "(handled_at), and to copss's reply to it arriving at the fake (questions)",
        *phase_table(soak),
        "",
        *platform_table(soak),
        "",
        f"RSS after warm-up ({warm_at:,} messages offered, t {mem.warm.t:.0f} s): "
        f"{mem.warm.rss_mb:.1f} MB; at the end of the offering (t {mem.end.t:.0f} s): "
        f"{mem.end.rss_mb:.1f} MB; growth {mem.growth:+.1f}% (target <= 10%: {verdict}); "
        f"peak between {mem.peak:.1f} MB; after draining {mem.drained:.1f} MB; "
        f"slope after warm-up {mem.slope:+.2f} MB per 10,000 messages",
        *mapping_lines(soak.mappings),
        f"backlog after warm-up: at most {peak_backlog:,} inbox rows waiting; at the end of the "
        f"offering {end_sample.inbox_waiting:,} inbox / {end_sample.outbox_waiting:,} outbox; "
        f"copss CPU {soak.samples[-1].cpu_s - soak.samples[0].cpu_s:.0f} s over the run "
        f"({1000 * (soak.samples[-1].cpu_s - soak.samples[0].cpu_s) / max(n, 1):.2f} ms per "
        "message)",
        f"this process (both fakes and the offering): CPU "
        f"{bench.ru_utime + bench.ru_stime:.0f} s, peak RSS {bench.ru_maxrss / 1024:.0f} MB",
        *memory_detail(soak.memory_files),
        "",
        f"time series (every {SERIES_STEP:g} s; in/s offered, out/s handled; inbox/outbox "
        "waiting; p50/p99 handling latency of the messages offered in the step)",
        *series(soak),
        "",
        f"machine at end: {machine()}",
        f"soak: RSS growth {mem.growth:+.1f}% after warm-up ({mem.warm.rss_mb:.0f} -> "
        f"{mem.end.rss_mb:.0f} MB); handling latency p50 {_ms(last_quarter, 0.5)} ms, p99 "
        f"{_ms(last_quarter, 0.99)} ms (last quarter); kept up: {'yes' if kept_up else 'no'}",
    ]
    return lines


async def run(args: argparse.Namespace) -> list[str]:
    """The soak run; the report's lines."""
    total = args.messages if args.messages else round(args.rate * args.minutes * 60)
    started = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    machine_start = machine()
    log(f"soak: {total} messages at {args.rate:g}/s over {args.chats} chats, {args.store}")
    # Stopped from outside, the run still stops copss and removes its folder.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with running(args, total) as soak:
        await ready(soak)
        log("copss is ready; offering")
        soak.start = time.monotonic()
        sampler = asyncio.create_task(sample_all(soak))
        try:
            await offer_all(soak)
            log(f"offered {total} in {soak.offering_done:.0f} s; waiting for copss")
            await sampler
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        # A last pass over every row: on PostgreSQL a row may have come into sight after the
        # looks had passed its id.
        soak.rows.rewind()
        await soak.read_handled()
        return report(soak, started, machine_start)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100.0, help="messages offered a second")
    p.add_argument("--minutes", type=float, default=20.0, help="length of the offering")
    p.add_argument("--messages", type=int, help="messages in all (instead of --minutes)")
    p.add_argument("--chats", type=int, default=50)
    p.add_argument(
        "--discord-chats", type=int, help="chats on Discord (the rest on Telegram); default half"
    )
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a database on the PostgreSQL server")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between two looks")
    p.add_argument(
        "--warmup", type=float, default=0.1, help="share of the messages that is warm-up"
    )
    p.add_argument(
        "--drain-seconds", type=float, default=600.0, help="longest wait for copss to catch up"
    )
    p.add_argument(
        "--memory-detail", action="store_true", help="copss's live objects by type, compared"
    )
    p.add_argument("--keep", type=Path, help="copy copss's data folder here at the end")
    p.add_argument(
        "--sqlite-cache-kib",
        type=int,
        help="each SQLite connection's page cache at most this many KiB (SQLite's default 2000)",
    )
    p.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace copss's allocations (implies --memory-detail)",
    )
    args = p.parse_args(argv)
    if args.tracemalloc > 0:
        args.memory_detail = True
    if args.discord_chats is None:
        args.discord_chats = args.chats // 2
    if not 0 <= args.discord_chats <= args.chats:
        p.error("--discord-chats: between 0 and --chats")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the soak and print the report."""
    args = parse_args(argv)
    for line in asyncio.run(run(args)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
