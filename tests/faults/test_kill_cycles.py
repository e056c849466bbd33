"""copss as its own process, bridging a Telegram group and a Discord channel while members of
both talk, SIGKILLed again and again: at a random moment, or right after Telegram or Discord
accepted one of its sends (the fake made the message and holds its answer back), then
started again; members go on talking throughout, also while copss is down. A last run
settles everything, and the store and both fakes are checked: every member message stored
once, no event lost or parked, no reply posted twice, no bridged copy lost, and each copy
posted twice explained by a send the kill interrupted (at-least-once: docs/reliability.md).

``COPSS_FAULT_CYCLES`` sets the number of kills (default 100; each kill ends a process that
serves both platforms, so it is a kill cycle for each of them). Each next process is started
while the current one runs and waits, its modules imported, for the kill (see
copss_for_faults.py): that is what keeps 100 cycles within a few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from storage.models import BridgeLink, Channel
from storage.repos.conversation import ConversationRepo
from tests.adapters.bridge_harness import (
    DC_ALICE,
    DC_BOB,
    DC_CAROL,
    DISCORD_TOKEN,
    GENERAL,
    LOBBY,
    TG_ANNA,
    TG_BEN,
    build_worlds,
)
from tests.adapters.dc_harness import PortalFake
from tests.adapters.tg_harness import GROUP
from tests.fakes.discord_gateway import JSON
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, JSONDict

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("copss_for_faults.py")
REPO = SCRIPT.parent.parent.parent
CYCLES = int(os.environ.get("COPSS_FAULT_CYCLES", "100"))
#: What each kill waits for, in turn: a random moment 0.05-1.5 s after copss started (while
#: it prepares its store and logs in, or soon after), the same after it began to serve, or a
#: send that the platform accepted and has not answered.
MODES = ("random, after start", "telegram send", "random, while serving", "discord send")
#: Questions the starter knowledge base answers, and chatter it does not.
QUESTIONS = (
    "How do I get a BSN number?",
    "Where do I apply for DigiD?",
    "Do I need Dutch health insurance?",
    "How do I file my income tax return?",
)
CHATTER = ("Good morning everyone", "Thanks, that helped", "See you at the meetup")
TG_MEMBERS = {TG_ANNA: "Anna", TG_BEN: "Ben"}
DC_MEMBERS = (DC_ALICE, DC_BOB, DC_CAROL)
#: A bridged copy on Telegram: the Discord author's name in bold, then the text.
TG_COPY = re.compile(r"<b>[^<]*\(Discord\)</b>: (?P<text>.*)", re.S)


class Hold:
    """Holds back the answer to one send the fake accepted (the message is made), so that a
    test can kill copss between the platform taking a send and copss hearing of it."""

    def __init__(self) -> None:
        self.armed = False
        self.accepted = asyncio.Event()
        self._release = asyncio.Event()
        #: What was held, per kill: ("telegram" | "discord", "copy" | "reply").
        self.held: list[tuple[str, str]] = []

    def arm(self) -> None:
        self.accepted.clear()
        self._release.clear()
        self.armed = True

    def release(self) -> None:
        self.armed = False
        self._release.set()

    async def take(self, platform: str, kind: str) -> None:
        if not self.armed:
            return
        self.armed = False
        self.held.append((platform, kind))
        self.accepted.set()
        await self._release.wait()


class HoldingTelegram(FakeTelegramAPI):
    """The Bot API fake; ``hold`` may hold back one ``sendMessage`` answer."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.hold = Hold()
        self.register_method("sendMessage", self._send)

    async def _send(self, params: JSONDict) -> JSONDict:
        message = await self._m_send_message(params)
        kind = "copy" if TG_COPY.fullmatch(str(message.get("text", ""))) else "reply"
        await self.hold.take("telegram", kind)
        return message


#: REST calls that post a message: the bot's own sends, and webhook executions (copies).
POSTS = re.compile(r"/channels/\d+/messages|/webhooks/\d+/[^/]+")


class HoldingDiscord(PortalFake):
    """The Discord fake; ``hold`` may hold back the answer to one message post."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.hold = Hold()

    async def _route(
        self, call: Any, request: web.Request, body: Any, files: list[JSON]
    ) -> web.Response:
        response = await super()._route(call, request, body, files)
        if call.method == "POST" and call.status == 200 and POSTS.fullmatch(call.path):
            kind = "copy" if call.path.startswith("/webhooks/") else "reply"
            await self.hold.take("discord", kind)
        return response


@dataclass
class Said:
    """A member's message: where, its platform id, its text."""

    platform: str
    message_id: str
    text: str
    #: When (time.monotonic()).
    at: float = field(default_factory=time.monotonic)


@dataclass
class Members:
    """Members of both chats taking turns, each message numbered (so its text is unique)."""

    tg: HoldingTelegram
    dc: HoldingDiscord
    rnd: random.Random
    said: list[Said] = field(default_factory=list)

    async def say(self) -> None:
        n = len(self.said)
        text = self.rnd.choice(QUESTIONS if self.rnd.random() < 0.5 else CHATTER)
        if n % 2 == 0:
            user = self.rnd.choice(list(TG_MEMBERS))
            text = f"{text} (t{n})"
            update = self.tg.push_message(GROUP, user, text, first_name=TG_MEMBERS[user])
            self.said.append(Said("telegram", str(update["message"]["message_id"]), text))
        else:
            text = f"{text} (d{n})"
            message = await self.dc.user_message(GENERAL, self.rnd.choice(DC_MEMBERS), text)
            self.said.append(Said("discord", str(message["id"]), text))

    async def talk(self, pause: tuple[float, float]) -> None:
        """Say something every ``pause`` seconds (a random span), until cancelled."""
        while True:
            await self.say()
            await asyncio.sleep(self.rnd.uniform(*pause))

    def of(self, platform: str) -> list[Said]:
        return [s for s in self.said if s.platform == platform]


async def linked_store(home: Path) -> None:
    """A store where GROUP and #general are one community, bridged."""
    db = Database(sqlite_url(home / "copss.db"))
    try:
        await upgrade(db)
        async with db.session() as s:
            group = await ConversationRepo(s).ensure_channel("telegram", str(GROUP), None)
            general = Channel(
                community_id=group.community_id,
                platform="discord",
                chat_id=str(GENERAL),
                thread_id="",
            )
            s.add(general)
            await s.flush()
            s.add(BridgeLink(channel_a_id=group.id, channel_b_id=general.id, status="active"))
    finally:
        await db.close()


@contextlib.contextmanager
def reading(store: Path) -> Iterator[sqlite3.Connection]:
    """The store, read-only (copss's own sessions take the write lock)."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
        yield conn


class Copss:
    """One copss process on ``home``, serving both fakes; its log in ``log``. Started ahead
    (its modules imported, copss not running) and set going with :meth:`go`."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def spawn(cls, home: Path, tg: FakeTelegramAPI, dc: PortalFake, log: Path) -> Copss:
        cfg = home / "config.toml"
        if not cfg.exists():  # written once: a process may be reading it as the next starts
            cfg.write_text(f"[telegram]\nbase_url = '{tg.base_url}'\n")
        env = {
            **os.environ,
            "COPSS_HOME": str(home),
            "COPSS_TELEGRAM_TOKEN": DEFAULT_TOKEN,
            "COPSS_DISCORD_TOKEN": DISCORD_TOKEN,
            "COPSS_TEST_DISCORD": f"http://127.0.0.1:{dc.port}",
            "COPSS_FAULT_GO": "1",
            "PYTHONPATH": str(REPO),
        }
        with log.open("w") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--config",
                str(cfg),
                "run",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=home,
            )
        return cls(proc, log)

    async def go(self) -> None:
        """Run copss; returns once it started (its modules were imported by then)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(30):
            said = await self.proc.stdout.readline()
        assert said == b"started\n", self.tail()

    async def up(self, tg: FakeTelegramAPI, polls: int) -> None:
        """Wait until copss polls Telegram (more than ``polls`` calls in all): it is up, and
        connecting to Discord."""
        try:
            await tg.wait_for(lambda: len(tg.calls_to("getUpdates")) > polls, within=30)
        except TimeoutError:
            pytest.fail(f"copss did not come up:\n{self.tail()}")

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 20)

    async def stop(self) -> int:
        """SIGTERM (copss stops cleanly), or end a process never set going."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def counts(store: Path, discord_ids: set[str]) -> tuple[int, int, int]:
    """(events not handled, messages waiting to be sent, of ``discord_ids`` those stored)."""
    with reading(store) as conn:
        unhandled = conn.execute("SELECT count(*) FROM inbox WHERE handled_at IS NULL").fetchone()
        waiting = conn.execute(
            "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"
        ).fetchone()
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT m.platform_message_id FROM message m JOIN channel c"
                " ON c.id = m.channel_id WHERE c.platform = 'discord'"
            )
        }
    return int(unhandled[0]), int(waiting[0]), len(discord_ids & stored)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds (the caller bounds the wait)."""
    while True:
        if await check():
            return
        await asyncio.sleep(0.1)


async def settled(store: Path, tg: FakeTelegramAPI, discord_ids: set[str]) -> None:
    """Wait until Telegram's updates are confirmed, ``discord_ids`` stored, every event
    handled and every message sent."""
    last_update = tg._next_update_id - 1
    await tg.wait_until_confirmed(last_update, within=60)

    async def done() -> bool:
        left = await asyncio.to_thread(counts, store, discord_ids)
        return left == (0, 0, len(discord_ids))

    await until(done)


async def caught_up(copss: Copss, dc: PortalFake, store: Path) -> None:
    """Wait until this copss read what was said on Discord while it was away, and then
    took in everything Discord sent it before now: a message posted now in a channel nobody
    links reaches copss after all of it (the intake takes Discord's events in order)."""

    async def read_history() -> bool:
        return "discord: caught up on" in copss.log.read_text(errors="replace")

    await until(read_history)
    barrier = await dc.user_message(LOBBY, DC_CAROL, "barrier")

    async def took_barrier() -> bool:
        return (await asyncio.to_thread(counts, store, {barrier["id"]}))[2] == 1

    await until(took_barrier)


@pytest.fixture
async def worlds() -> AsyncIterator[tuple[HoldingTelegram, HoldingDiscord]]:
    tg, dc = HoldingTelegram(token=DEFAULT_TOKEN), HoldingDiscord(token=DISCORD_TOKEN)
    async with tg, dc:
        build_worlds(tg, dc)
        try:
            yield tg, dc
        finally:
            tg.hold.release()
            dc.hold.release()


@pytest.mark.timeout(180 + 5 * CYCLES)
async def test_killed_again_and_again_loses_nothing_and_repeats_no_reply(
    tmp_path: Path, worlds: tuple[HoldingTelegram, HoldingDiscord]
) -> None:
    tg, dc = worlds
    home, logs = tmp_path / "home", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    store = home / "copss.db"
    await linked_store(home)
    rnd = random.Random(int(os.environ.get("COPSS_FAULT_SEED", "13")))
    members = Members(tg, dc, rnd)
    holds = {"telegram send": tg.hold, "discord send": dc.hold}
    kills: Counter[str] = Counter()

    # copss serves the bridge before the kills begin: a message each way, settled.
    copss = await Copss.spawn(home, tg, dc, logs / "first.log")
    await copss.go()
    await copss.up(tg, 0)
    await members.say()
    await members.say()
    async with asyncio.timeout(60):
        await settled(store, tg, {s.message_id for s in members.of("discord")})
    assert await copss.stop() == 0, copss.tail()

    started = time.monotonic()
    following = await Copss.spawn(home, tg, dc, logs / "000.log")
    talking = asyncio.create_task(members.talk((0.15, 0.45)))
    try:
        for n in range(CYCLES):
            mode = MODES[n % len(MODES)]
            copss = following
            polls = len(tg.calls_to("getUpdates"))
            await copss.go()
            # The next process imports its modules meanwhile, and waits.
            following = await Copss.spawn(home, tg, dc, logs / f"{n + 1:03d}.log")
            try:
                hold = holds.get(mode)
                if mode == "random, after start":
                    await asyncio.sleep(rnd.uniform(0.05, 1.5))
                    kills[mode] += 1
                elif mode == "random, while serving":
                    await copss.up(tg, polls)
                    await asyncio.sleep(rnd.uniform(0.05, 1.5))
                    kills[mode] += 1
                elif hold is not None:
                    await copss.up(tg, polls)
                    hold.arm()
                    try:
                        await asyncio.wait_for(hold.accepted.wait(), 10)
                        platform, kind = hold.held[-1]
                        kills[f"after {platform} accepted a {kind}"] += 1
                    except TimeoutError:
                        kills[f"waiting for a {mode} (none came)"] += 1
            finally:
                await copss.kill()
                tg.hold.release()
                dc.hold.release()
    except BaseException:
        await following.stop()
        raise
    finally:
        talking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talking
    cycles_took = time.monotonic() - started
    # What was said, beside the logs, for looking into a failure.
    (tmp_path / "said.json").write_text(json.dumps([vars(s) for s in members.said], indent=1))

    # A last run, not killed: everything said is taken in, handled and sent.
    copss = following
    polls = len(tg.calls_to("getUpdates"))
    await copss.go()
    await copss.up(tg, polls)
    try:
        async with asyncio.timeout(120):
            await caught_up(copss, dc, store)
            await settled(store, tg, set())
    except TimeoutError:
        pytest.fail(f"not settled: {counts(store, set())}\n{copss.tail()}")
    finally:
        code = await copss.stop()
    assert code == 0, copss.tail()

    figures = check(store, tg, dc, members)
    figures["kills"] = dict(kills)
    figures["seconds per cycle"] = round(cycles_took / max(CYCLES, 1), 2)
    print(f"\nkill cycles: {CYCLES} (each on both platforms)", *figures.items(), sep="\n  ")


def check(store: Path, tg: HoldingTelegram, dc: HoldingDiscord, members: Members) -> dict[str, Any]:
    """Assert what the kills must not have done; return the figures."""
    said = members.said
    with reading(store) as conn:
        stored = Counter(
            (platform, mid)
            for platform, mid in conn.execute(
                "SELECT c.platform, m.platform_message_id FROM message m"
                " JOIN channel c ON c.id = m.channel_id"
            )
        )
        inbox = conn.execute("SELECT dedup_key, handled_at, error, attempts FROM inbox").fetchall()
        outbox = conn.execute(
            "SELECT platform, text, as_name, state, attempts, delivery, last_error FROM outbox"
        ).fetchall()

    # Every member message stored once; every event handled, none given up (kills from
    # outside are no reason to park one), none lost.
    assert len({key for key, *_ in inbox}) == len(inbox)
    unhandled = [key for key, handled, *_ in inbox if handled is None]
    assert unhandled == []
    parked = {key: error for key, _, error, _ in inbox if error}
    assert parked == {}
    keys = {key for key, *_ in inbox}
    chat = {"telegram": GROUP, "discord": GENERAL}
    lost = [s for s in said if stored[(s.platform, s.message_id)] == 0]
    never_read = [
        s for s in lost if f"message:{s.platform}:{chat[s.platform]}:{s.message_id}" not in keys
    ]
    assert lost == [], f"{len(never_read)} of them never read: {never_read}"
    twice = [s for s in said if stored[(s.platform, s.message_id)] > 1]
    assert twice == []

    # copss's replies: none posted twice (copss's own words are at-most-once).
    tg_replies = Counter(
        m["reply_to_message"]["message_id"]
        for m in tg.sent_messages(GROUP)
        if m.get("reply_to_message") and not TG_COPY.fullmatch(m["text"])
    )
    dc_replies = Counter(
        (m.get("message_reference") or {}).get("message_id")
        for m in dc.sent_messages(GENERAL)
        if m.get("message_reference")
    )
    replies_twice = {k: v for k, v in (tg_replies + dc_replies).items() if v > 1}
    assert replies_twice == {}

    # Bridged copies: every member message has its copy on the other side; a copy posted
    # more than once was sent again after a kill interrupted a send the platform had taken
    # (at most once more per interrupted attempt).
    on_telegram = Counter(
        match["text"]
        for text in tg.sent_texts(GROUP)
        if (match := TG_COPY.fullmatch(text)) is not None
    )
    on_discord = Counter(m["content"] for m in dc.webhook_messages(GENERAL))
    on_discord.update(
        m["content"] for m in dc.sent_messages(GENERAL) if not m.get("message_reference")
    )
    # (A message copss never read has no copy: it counts as lost above.)
    copies = {
        s.text: (on_discord if s.platform == "telegram" else on_telegram)[s.text]
        for s in said
        if s not in lost
    }
    copies_lost = [text for text, count in copies.items() if count == 0]
    assert copies_lost == []
    attempts = {text: tries for _, text, as_name, _, tries, *_ in outbox if as_name}
    twice_copies = {text: count for text, count in copies.items() if count > 1}
    unexplained = {t: (c, attempts.get(t)) for t, c in twice_copies.items() if c > attempts[t]}
    assert unexplained == {}
    # And a chat's copies go out one at a time: a kill interrupts one send per chat at most.
    for platform in ("telegram", "discord"):
        extra = sum(
            copies[s.text] - 1 for s in said if s.platform != platform and s.text in twice_copies
        )
        assert extra <= CYCLES, (platform, extra)

    states = Counter(state for _, _, _, state, *_ in outbox)
    assert set(states) <= {"sent", "unsure"}, states
    return {
        "messages said (telegram, discord)": (
            len(members.of("telegram")),
            len(members.of("discord")),
        ),
        "messages lost (telegram, discord)": (
            len([s for s in lost if s.platform == "telegram"]),
            len([s for s in lost if s.platform == "discord"]),
        ),
        "events parked": len(parked),
        "messages stored twice": len(twice),
        "replies posted (telegram, discord)": (sum(tg_replies.values()), sum(dc_replies.values())),
        "replies posted twice": len(replies_twice),
        "replies not sent (unsure, at-most-once; telegram, discord)": (
            sum(1 for p, _, _, state, *_ in outbox if p == "telegram" and state == "unsure"),
            sum(1 for p, _, _, state, *_ in outbox if p == "discord" and state == "unsure"),
        ),
        "copies lost": len(copies_lost),
        "copies posted more than once (on telegram, on discord)": (
            sum(1 for s in said if s.platform == "discord" and copies.get(s.text, 0) > 1),
            sum(1 for s in said if s.platform == "telegram" and copies.get(s.text, 0) > 1),
        ),
        "extra copies posted (on telegram, on discord)": (
            sum(max(0, copies.get(s.text, 0) - 1) for s in said if s.platform == "discord"),
            sum(max(0, copies.get(s.text, 0) - 1) for s in said if s.platform == "telegram"),
        ),
        "events tried more than once": sum(1 for *_, tries in inbox if tries > 1),
    }
