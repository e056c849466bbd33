"""Several copss processes on one PostgreSQL store and one Telegram bot: one polls at a time.

Telegram ends a ``getUpdates`` with 409 Conflict when another one with the same token comes in
(the loopback fake does the same), so two processes that both poll keep interrupting each
other. The process holding the store's leadership polls; the others wait, and one of them takes
over within seconds when the poller is SIGKILLed: each copss here runs as its own process.
Skipped without a PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import column, func, select, table, text

from bot import leadership
from bot.leadership import LEADER_CLASS, Leadership
from storage.engine import Database
from storage.models import InboxEvent, Member, Message, OutboxMessage, Thread
from tests.fakes.telegram_api import DEFAULT_TOKEN, Call, FakeTelegramAPI

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.faults]

SCRIPT = Path(__file__).with_name("copss_for_tests.py")
REPO = SCRIPT.parent.parent
# Enough groups that copss's replies stay under Telegram's 20 messages a minute per group,
# which copss keeps to (a reply waits for its turn rather than provoke flood control).
GROUPS = [-1002000000000 - n for n in range(12)]
MEMBERS = list(range(6000, 6010))
QUESTIONS = [
    "How do I get a BSN number?",
    "Where do I apply for DigiD?",
    "Do I need Dutch health insurance?",
    "Which supermarket sells cheap oat milk near Utrecht Centraal?",
]
LEADS = "telegram receiver: this process leads now"
WAITS = "telegram receiver: another process leads"


def _config(home: Path, api: FakeTelegramAPI) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "config.toml"
    cfg.write_text(f"[telegram]\nbase_url = '{api.base_url}'\n")
    return cfg


class Copss:
    """copss run as its own process on the PostgreSQL store ``url``, Telegram at the fake;
    what it logs goes to ``home/copss.log``."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def start(cls, home: Path, api: FakeTelegramAPI, url: str) -> Copss:
        cfg = _config(home, api)
        env = {
            **os.environ,
            "COPSS_HOME": str(home),
            "COPSS_TELEGRAM_TOKEN": DEFAULT_TOKEN,
            "COPSS_DATABASE_URL": url,
            "PYTHONPATH": str(REPO),
        }
        env.pop("COPSS_DISCORD_TOKEN", None)
        log = home / "copss.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--config",
                str(cfg),
                "run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=out,
                env=env,
                cwd=home,
            )
        return cls(proc, log)

    def said(self, text: str) -> bool:
        """Whether the process has logged a line containing ``text``."""
        return text in self.log.read_text(errors="replace")

    async def wait_said(self, text: str, within: float = 30.0) -> None:
        """Wait until the process logs ``text`` (fails when it ends first)."""

        async def said() -> bool:
            assert self.proc.returncode is None, self.log.read_text(errors="replace")
            return self.said(text)

        await until(said, within)

    async def kill(self) -> float:
        """SIGKILL the process; returns the moment (``time.monotonic``) of the kill."""
        at = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 20)
        return at

    async def stop(self) -> None:
        """SIGTERM, and SIGKILL if it does not end."""
        if self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    fake = FakeTelegramAPI()
    for group in GROUPS:
        fake.add_chat(group, "supergroup")
    for member in MEMBERS:
        fake.add_user(member, f"Member{member}")
    async with fake:
        yield fake


async def two_processes(tmp_path: Path, api: FakeTelegramAPI, pg: Database) -> tuple[Copss, Copss]:
    """Start one copss, wait until it polls (it migrated the store meanwhile), then a second
    one; returns (the poller, the one waiting)."""
    url = pg.url.render_as_string(hide_password=False)
    first = await Copss.start(tmp_path / "a", api, url)
    await first.wait_said(LEADS, within=60)
    await api.wait_for(lambda: bool(api.calls_to("getUpdates")), within=30)
    second = await Copss.start(tmp_path / "b", api, url)
    await second.wait_said(WAITS, within=60)
    return first, second


def conflicts(api: FakeTelegramAPI) -> list[Call]:
    """``getUpdates`` calls ended by a concurrent one (409 Conflict)."""
    return [c for c in api.calls_to("getUpdates") if c.status == 409]


async def handled(pg: Database) -> int:
    async with pg.read() as s:
        return int(await s.scalar(select(func.count(InboxEvent.handled_at))) or 0)


async def until(check: Callable[[], Awaitable[bool]], within: float, every: float = 0.02) -> None:
    """Wait until ``check()`` is true (TimeoutError after ``within`` seconds)."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(every)


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``check`` for :func:`until`."""

    async def checked() -> bool:
        return check()

    return checked


async def at_least(pg: Database, count: int) -> bool:
    """Whether ``count`` events or more are handled."""
    return await handled(pg) >= count


async def sends_settled(pg: Database) -> bool:
    async with pg.read() as s:
        waiting = await s.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.state.in_(("pending", "sending"))
            )
        )
    return not waiting


async def test_two_processes_poll_one_at_a_time(
    tmp_path: Path, api: FakeTelegramAPI, pg: Database
) -> None:
    poller, waiting = await two_processes(tmp_path, api, pg)
    try:
        # One message at a time: each ends a long poll, and the poller starts the next one.
        for n in range(12):
            api.push_message(GROUPS[n % 2], MEMBERS[n % 3], f"{QUESTIONS[n % 4]} ({n})")
            await until(lambda n=n: at_least(pg, n + 1), within=30)
        assert len(api.calls_to("getUpdates")) > 12
        assert conflicts(api) == []
        assert not waiting.said(LEADS)
        assert poller.proc.returncode is None and waiting.proc.returncode is None
    finally:
        await poller.stop()
        await waiting.stop()


async def push_burst(api: FakeTelegramAPI, texts: list[str], count: int, every: float) -> None:
    """Questions, answers and chatter over the groups, one every ``every`` seconds; each
    text goes into ``texts`` as it is said."""
    rnd = random.Random(13)
    for n in range(count):
        group, member = rnd.choice(GROUPS), rnd.choice(MEMBERS)
        kind = rnd.random()
        if kind < 0.4:
            text = f"{rnd.choice(QUESTIONS)} (asking for the {n}th time)"
        elif kind < 0.7:
            text = f"Try the municipality office, it worked for me ({n})"
        else:
            text = f"Good morning everyone ({n})"
        api.push_message(group, member, text)
        texts.append(text)
        await asyncio.sleep(every)


BURST = 300


async def test_the_poller_killed_mid_burst_is_taken_over(
    tmp_path: Path, api: FakeTelegramAPI, pg: Database
) -> None:
    leader, follower = await two_processes(tmp_path, api, pg)
    texts: list[str] = []
    burst = asyncio.create_task(push_burst(api, texts, BURST, every=0.01))
    try:
        # A third of the burst said, and the poller busy with it.
        await until(holds(lambda: len(texts) >= BURST // 3), within=60, every=0.005)
        await api.wait_for(lambda: api.confirmed_offset > 20, within=60)
        # Anywhere in the waiting process's retry interval (it started trying just before
        # the burst, so the kill would otherwise land at the same point of it every time).
        await asyncio.sleep(random.uniform(0, leadership.RETRY))
        killed_at = await leader.kill()
        said_at_kill, confirmed_at_kill = len(texts), api.confirmed_offset - 1
        # Polls from another connection than the killed poller's: the process taking over.
        # (A poll the killed one sent just before the kill may still come in after it.)
        killed = {c.peer for c in api.calls_to("getUpdates") if c.at <= killed_at}
        await api.wait_for(lambda: bool(new_polls(api, killed)), within=30)
        took_over = new_polls(api, killed)[0].at
        await follower.wait_said(LEADS, within=5)
        await burst
        outbox = await all_once(pg, api, texts)
    finally:
        burst.cancel()
        await leader.stop()
        await follower.stop()
    takeover = took_over - killed_at
    again = sum(1 for u in range(1, BURST + 1) if api.delivery_count(u) > 1)
    print(
        f"\ntake-over {takeover:.3f}s after the kill; at the kill {said_at_kill} of {BURST} "
        f"said, {confirmed_at_kill} confirmed; {again} fetched again by the new poller; "
        f"outbox {dict(outbox)}"
    )
    # Killed mid-burst, with updates Telegram still held for the next poller.
    assert confirmed_at_kill < said_at_kill < BURST
    assert takeover < 5.0
    # Only the killed poller's last long poll was ended by the new one.
    assert all(c.peer in killed for c in conflicts(api))


async def test_what_the_killed_poller_stored_is_handled_by_the_other(
    tmp_path: Path, api: FakeTelegramAPI, pg: Database
) -> None:
    leader, follower = await two_processes(tmp_path, api, pg)
    texts: list[str] = []
    try:
        await push_burst(api, texts, BURST, every=0)
        # Killed once every message is stored and most wait to be handled; nothing more is
        # said, so only what the poller stored is left for the other process.
        await until(lambda: stored_events(pg, BURST), within=60, every=0.005)
        killed_at = await leader.kill()
        handled_at_kill = await handled(pg)
        await follower.wait_said(LEADS, within=30)
        outbox = await all_once(pg, api, texts)
        done_at = time.monotonic()
    finally:
        await leader.stop()
        await follower.stop()
    print(
        f"\n{handled_at_kill} of {BURST} handled at the kill, the rest {done_at - killed_at:.1f}s "
        f"later by the other process; outbox {dict(outbox)}"
    )
    assert handled_at_kill < BURST // 2


async def stored_events(pg: Database, count: int) -> bool:
    """Whether ``count`` events or more are stored."""
    async with pg.read() as s:
        return int(await s.scalar(select(func.count(InboxEvent.id))) or 0) >= count


async def all_once(pg: Database, api: FakeTelegramAPI, texts: list[str]) -> Counter[str]:
    """Wait until every event is handled and every reply sent; check that each message was
    stored once and handled once and no reply posted twice. Returns the outbox by state."""
    await until(lambda: at_least(pg, len(texts)), within=120)
    await until(lambda: sends_settled(pg), within=90)
    async with pg.read() as s:
        events = (await s.scalars(select(InboxEvent))).all()
        stored = (
            await s.scalars(select(Message.text).join(Member).where(Member.is_bot.is_(False)))
        ).all()
        threads = (await s.scalars(select(Thread.question_message_id))).all()
        outbox = Counter((await s.scalars(select(OutboxMessage.state))).all())
    # Every message stored once and handled once, none given up.
    assert len(events) == len(texts)
    assert [(e.dedup_key, e.error) for e in events if e.handled_at is None or e.error] == []
    assert sorted(stored) == sorted(texts)
    assert len(threads) == len(set(threads)) > 0
    # No reply posted twice.
    replied = Counter(
        (m["chat"]["id"], m["reply_to_message"]["message_id"])
        for m in api.sent_messages()
        if m.get("reply_to_message")
    )
    assert replied and max(replied.values()) == 1
    return outbox


def new_polls(api: FakeTelegramAPI, old: set[tuple[str, int] | None]) -> list[Call]:
    """``getUpdates`` calls from connections not in ``old``."""
    return [c for c in api.calls_to("getUpdates") if c.peer not in old]


# -- the leadership itself, in one process ------------------------------------------------------

#: Leadership locks held in this database (other tests' databases on the server have theirs).
LEADER_LOCKS = (
    select(column("pid"), column("objid"))
    .select_from(table("pg_locks"))
    .where(
        column("locktype") == "advisory",
        column("classid") == LEADER_CLASS,
        column("database")
        == select(column("oid"))
        .select_from(table("pg_database"))
        .where(column("datname") == func.current_database())
        .scalar_subquery(),
    )
)


async def test_a_lost_lock_connection_stops_the_job_and_another_takes_over(
    pg: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.leadership")
    first = Leadership(pg, "test job", retry=0.05, check=0.05)
    second = Leadership(pg, "test job", retry=0.05, check=0.05)
    running: list[str] = []
    stopped: list[str] = []

    def job(name: str) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            running.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append(name)

        return work

    a = asyncio.create_task(first.run(job("first")))
    await until(holds(lambda: first.leading), within=10)
    b = asyncio.create_task(second.run(job("second")))
    await until(holds(lambda: "another process leads" in caplog.text), within=10)
    assert running == ["first"] and not second.leading
    try:
        # The server ends the leader's connection (a restart, an idle timeout, a network cut):
        # its lock is gone, so it must stop; then one of the two leads (the first tries again
        # too, and may win).
        async with pg.read() as s:
            holder = await s.scalar(LEADER_LOCKS.with_only_columns(column("pid")))
        async with pg.session() as s:
            await s.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder})
        await until(holds(lambda: stopped == ["first"] and len(running) == 2), within=10)
        assert "test job: lost the lead" in caplog.text
        await asyncio.sleep(0.3)
        assert [x.leading for x in (first, second)].count(True) == 1
        assert running[1] == ("first" if first.leading else "second") and len(running) == 2
    finally:
        a.cancel()
        b.cancel()
        await asyncio.gather(a, b, return_exceptions=True)
    # Cancelled (copss stopping): the lead is given up, and the lock with it.
    async with pg.read() as s:
        held = (await s.execute(LEADER_LOCKS)).all()
    assert held == []


async def test_a_job_that_ends_gives_the_lead_up(pg: Database) -> None:
    first = Leadership(pg, "test job", retry=0.05)
    second = Leadership(pg, "test job", retry=0.05)
    done = asyncio.Event()
    order: list[str] = []

    async def short() -> None:
        order.append("first")
        await done.wait()

    async def other() -> None:
        order.append("second")

    a = asyncio.create_task(first.run(short))
    await until(holds(lambda: first.leading), within=10)
    b = asyncio.create_task(second.run(other))
    await asyncio.sleep(0.2)
    assert order == ["first"]
    done.set()
    async with asyncio.timeout(10):
        await a
        await b
    assert order == ["first", "second"] and not first.leading and not second.leading
