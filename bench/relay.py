"""Bridge relay latency and burst throughput, Discord <-> Telegram.

Usage::

    python -m bench.relay [--messages 1000] [--warmup 20]

One copss (both adapters, a real SQLite file) runs against the two loopback fakes of the test
suite, the real discord.py and python-telegram-bot clients talking to them over HTTP and a
websocket, with #general linked to a Telegram group the way admins link them.

1. Latency, not rate-limited: the fakes enforce no limits and copss's Telegram pacing is set
   to "unpaced" (no gap per chat, no group window, no overall cap), so what is measured is
   copss itself. One message at a time: a member's message is pushed into one fake (a
   Telegram update queued for the long poll, a Discord MESSAGE_CREATE sent on the gateway)
   and the clock stops when its copy reaches the other fake (the webhook execution stored on
   the Discord fake, the ``sendMessage`` request arriving at the Telegram fake). copss settles
   before the next message, so each one crosses an idle bridge. Warm-up messages (the webhook
   being made, first connections) are not counted.
2. Burst, rate-limited: a fresh copss and fakes; the Telegram fake enforces Telegram's flood
   limits (1 message/s per chat, 20/min per group, 30/s overall) on a clock running
   ``TIME_SCALE`` times faster, and copss's pacing is scaled the same way. ``--messages``
   messages are pushed each way as fast as the fakes take them; the time until the last copy
   arrives is reported per direction, with a check that every copy arrived exactly once and
   in order, and how often Telegram refused a send (429).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.telegram import TelegramLimits
from tests.adapters.bridge_harness import (
    DC_BOB,
    DISCORD_TOKEN,
    GENERAL,
    GROUP,
    TG_BEN,
    BridgeHarness,
    build_worlds,
)
from tests.adapters.tg_harness import TIME_SCALE, scaled_limits
from tests.fakes.discord_gateway import JSON, FakeDiscord
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

#: "Not rate-limited": copss's Telegram pacing without any gap or cap worth the name.
UNPACED = TelegramLimits(
    per_chat_interval=0.0,
    group_per_window=1_000_000,
    group_window=1.0,
    overall_per_second=1_000_000.0,
)
TARGET_P99_MS = 50.0


class Arrivals:
    """Copies as they arrive at a fake, with the time each arrived (no copying of the fake's
    whole message store per check, which would load the loop copss runs on)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, JSON]] = []
        self._changed = asyncio.Event()

    def add(self, message: JSON, at: float | None = None) -> None:
        """A copy arrived (at ``at``, default now)."""
        self.items.append((time.monotonic() if at is None else at, message))
        self._changed.set()

    async def wait_count(self, count: int, within: float) -> None:
        """Wait until ``count`` copies have arrived."""
        async with asyncio.timeout(within):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()


class StampedDiscord(FakeDiscord):
    """The Discord fake noting each webhook message (a copy) as it is stored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.copies = Arrivals()

    def _store_message(self, msg: JSON) -> None:
        super()._store_message(msg)
        if "webhook_id" in msg and "interaction_metadata" not in msg:
            self.copies.add(msg)


class StampedTelegram(FakeTelegramAPI):
    """The Telegram fake noting each message the bot sends (a copy) as it is taken."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.copies = Arrivals()

    async def _m_send_message(self, params: JSON) -> JSON:
        arrived = time.monotonic()
        message = await super()._m_send_message(params)
        self.copies.add(message, arrived)
        return message


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def measure_latency(tmp: Path, messages: int, warmup: int) -> dict[str, list[float]]:
    """Seconds from a member's message entering one fake to its copy reaching the other."""
    tg, dc = StampedTelegram(token=DEFAULT_TOKEN), StampedDiscord(token=DISCORD_TOKEN)
    async with tg, dc:
        build_worlds(tg, dc)
        h = BridgeHarness(tg, dc, tmp, limits=UNPACED, db_name="latency.db")
        await h.start()
        out: dict[str, list[float]] = {"Telegram -> Discord": [], "Discord -> Telegram": []}
        try:
            await h.link()
            for i in range(warmup + messages):
                # Telegram -> Discord: the update is queued for copss's waiting long poll.
                text = f"t2d {i:05d}"
                count = len(dc.copies.items) + 1
                start = time.monotonic()
                tg.push_update(tg.message_update(GROUP, TG_BEN, text, first_name="Ben"))
                await dc.copies.wait_count(count, within=10)
                arrived, copy = dc.copies.items[-1]
                assert copy["content"] == text, copy["content"]
                await h.settle()
                if i >= warmup:
                    out["Telegram -> Discord"].append(arrived - start)

                # Discord -> Telegram: the message goes out on the gateway websocket.
                text = f"d2t {i:05d}"
                count = len(tg.copies.items) + 1
                start = time.monotonic()
                await dc.user_message(GENERAL, DC_BOB, text)
                await tg.copies.wait_count(count, within=10)
                arrived, copy = tg.copies.items[-1]
                assert copy["text"].endswith(text), copy["text"]
                await h.settle()
                if i >= warmup:
                    out["Discord -> Telegram"].append(arrived - start)
        finally:
            await h.stop()
    return out


@dataclass(frozen=True)
class Burst:
    """What the rate-limited burst took: seconds from the first push until the last copy
    arrived, per direction; whether each side got every copy once, in order; 429s."""

    pushed_s: float
    t2d_s: float
    d2t_s: float
    t2d_exact: bool
    d2t_exact: bool
    refused: int


async def measure_burst(tmp: Path, messages: int) -> Burst:
    """Push ``messages`` each way at once under Telegram flood control; time the delivery."""
    tg, dc = StampedTelegram(token=DEFAULT_TOKEN), StampedDiscord(token=DISCORD_TOKEN)
    async with tg, dc:
        build_worlds(tg, dc)
        h = BridgeHarness(tg, dc, tmp, limits=scaled_limits(TIME_SCALE), db_name="burst.db")
        await h.start()
        try:
            await h.link()
            tg.enforce_rate_limits(time_scale=TIME_SCALE, tolerance=0.002)
            tg_before, dc_before = len(tg.copies.items), len(dc.copies.items)
            from_tg = [f"burst t2d {i:05d}" for i in range(messages)]
            from_dc = [f"burst d2t {i:05d}" for i in range(messages)]
            start = time.monotonic()
            for tg_text, dc_text in zip(from_tg, from_dc, strict=True):
                tg.push_update(tg.message_update(GROUP, TG_BEN, tg_text, first_name="Ben"))
                await dc.user_message(GENERAL, DC_BOB, dc_text)
            pushed = time.monotonic() - start
            within = 30 + messages / 10
            await dc.copies.wait_count(dc_before + messages, within)
            await tg.copies.wait_count(tg_before + messages, within)
            await h.settle(within=within)
            to_dc = dc.copies.items[dc_before:]
            to_tg = tg.copies.items[tg_before:]
            result = Burst(
                pushed_s=pushed,
                t2d_s=to_dc[-1][0] - start,
                d2t_s=to_tg[-1][0] - start,
                t2d_exact=[m["content"] for _, m in to_dc] == from_tg,
                d2t_exact=[m["text"] for _, m in to_tg]
                == [f"<b>Bob (Discord)</b>: {t}" for t in from_dc],
                refused=tg.rate_limit_violations,
            )
        finally:
            await h.stop()
    return result


def machine() -> str:
    """CPU model and count, Python, OS."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def report(latency: dict[str, list[float]], burst: Burst, messages: int) -> str:
    """The result tables as text."""
    lines = [
        f"machine: {machine()}",
        "",
        f"relay latency, not rate-limited ({messages} messages each way, one at a time)",
        f"{'direction':<22}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  target p99 <= 50 ms",
    ]
    for direction, values in latency.items():
        ms = [v * 1000 for v in values]
        p99 = percentile(ms, 0.99)
        verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
        lines.append(
            f"{direction:<22}{statistics.median(ms):>9.1f}{p99:>9.1f}{max(ms):>9.1f}  {verdict}"
        )
    floor = messages / (20 / (60 / TIME_SCALE))
    lines += [
        "",
        f"burst, {messages} messages each way pushed at once; Telegram flood control enforced "
        f"by the fake at {TIME_SCALE:g}x time (copss paced to match)",
        f"{'direction':<22}{'done after s':>13}{'msgs/s':>9}  exactly once, in order",
        f"{'Telegram -> Discord':<22}{burst.t2d_s:>13.1f}{messages / burst.t2d_s:>9.0f}"
        f"  {'yes' if burst.t2d_exact else 'NO'}",
        f"{'Discord -> Telegram':<22}{burst.d2t_s:>13.1f}{messages / burst.d2t_s:>9.0f}"
        f"  {'yes' if burst.d2t_exact else 'NO'}",
        f"pushing took {burst.pushed_s:.1f} s; sends Telegram refused (429): "
        f"{burst.refused}; Telegram's group limit alone needs {floor:.1f} s "
        f"for {messages} messages at this time scale",
    ]
    return "\n".join(lines)


async def run(messages: int, warmup: int) -> str:
    """Both measurements, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="copss-relay-") as tmp:
        latency = await measure_latency(Path(tmp), messages, warmup)
        burst = await measure_burst(Path(tmp), messages)
    return report(latency, burst, messages)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages each way")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted messages each way")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(asyncio.run(run(args.messages, args.warmup)))


if __name__ == "__main__":
    main()
