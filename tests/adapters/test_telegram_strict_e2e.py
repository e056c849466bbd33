"""copss against a Bot API fake as strict as Telegram: a member's text full of HTML-looking
characters arrives as typed, text at the 4096 UTF-16 edge is split where Telegram needs it,
and escalating flood control never makes copss lose, repeat or reorder a message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from adapters.console import ConsoleAdapter
from adapters.telegram import TelegramLimits
from adapters.text import outgoing_text
from storage.models import OutboxMessage
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI
from tests.fakes.telegram_html import utf16_len

pytestmark = pytest.mark.faults

#: What a member may type that Telegram's HTML mode would refuse or change if copss passed
#: it on unescaped: tags Telegram knows, tags it does not, unclosed and stray tags, an end
#: tag with nothing open, references it would decode, and a bare ampersand.
HOSTILE = [
    "<b>bold</b> is what I typed",
    "I <3 the gemeente",
    "a < b and c > d",
    "<b>never closed",
    "</i> closing nothing",
    "<span>no class</span> <tg-spoiler>hidden</tg-spoiler>",
    "Tom & Jerry &amp; friends &lt;3 &nbsp; &#60;",
    "<a href='https://example.invalid'>link</a> <br/> <script>alert(1)</script>",
    "<",
    "x &#x1F600; y",
]


def ok_sends(api: FakeTelegramAPI) -> bool:
    return all(c.ok for c in api.calls_to("sendMessage") + api.calls_to("editMessageText"))


async def test_hostile_text_from_the_console_arrives_as_typed(
    bridged: tuple[TelegramHarness, ConsoleAdapter],
) -> None:
    tg, console = bridged
    api = tg.api
    before = len(api.sent_messages(GROUP))
    name = "<i>eve</i> & co"
    numbers = []
    for text in HOSTILE:
        numbers.append(await console.push(text, user=name))
    await tg.settle()
    assert ok_sends(api), [c.response for c in api.calls if not c.ok]
    shown = api.shown_texts(GROUP)[before:]
    assert shown == [f"{name} (console): {outgoing_text(t)}" for t in HOSTILE]

    # An edit to hostile text is shown as typed too.
    await console.edit_message(numbers[0], "now <u>this</u> & <that")
    await tg.settle()
    assert ok_sends(api)
    first = api.sent_messages(GROUP)[before]["message_id"]
    assert api.shown_text(GROUP, first) == f"{name} (console): now <u>this</u> & <that"


@pytest.fixture
async def tg(tmp_path: Path) -> AsyncIterator[TelegramHarness]:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL")
        harness = TelegramHarness(api, tmp_path)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def queue(tg: TelegramHarness, *texts: str) -> None:
    """Queue bot messages to GROUP the way features do, and wake the sender."""
    async with tg.db.session() as s:
        for text in texts:
            await s.execute(
                insert(OutboxMessage).values(
                    platform="telegram", chat_id=str(GROUP), thread_id="", text=text, meta={}
                )
            )
    assert tg.app is not None and tg.app.hub is not None
    tg.app.hub.wake_sender("telegram")


async def drain(tg: TelegramHarness) -> None:
    """Wait until copss sent everything queued."""
    assert tg.app is not None and tg.app.hub is not None
    async with asyncio.timeout(30):
        await tg.app.hub.settled()


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        # 4096 UTF-16 units: 2047 emoji outside the BMP (two units each) and two letters.
        ("\U0001f600" * 2047 + "ab", 1),
        # One unit more: two messages, and no emoji cut in half.
        ("\U0001f600" * 2047 + "abc", 2),
        ("ab" + "\U0001f600" * 2047, 1),
        ("abc" + "\U0001f600" * 2047, 2),
        # A family emoji (ZWJ sequence) across the edge stays whole in one of the parts.
        ("a" * 4090 + "\U0001f468\u200d\U0001f469\u200d\U0001f467", 2),
    ],
)
async def test_text_at_the_utf16_limit_is_split_where_telegram_needs(
    tg: TelegramHarness, text: str, messages: int
) -> None:
    api = tg.api
    await queue(tg, text)
    await drain(tg)
    assert ok_sends(api), [c.response for c in api.calls if not c.ok]
    shown = api.shown_texts(GROUP)
    assert len(shown) == messages
    assert all(utf16_len(part) <= 4096 for part in shown)
    assert "".join(part.strip() for part in shown) == text
    assert not any("\ufffd" in part for part in shown)
    if messages == 2 and "\u200d" in text:
        assert shown[1].strip() == "\U0001f468\u200d\U0001f469\u200d\U0001f467"


async def test_backs_off_under_escalating_flood_control(tmp_path: Path) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL")
        # copss believes it may send much faster than Telegram lets it, and Telegram
        # escalates: every offence within the cooldown doubles retry_after (1, 2, 3 s).
        fast = TelegramLimits(
            per_chat_interval=0.0, group_per_window=1000, group_window=1.0, overall_per_second=1e6
        )
        # One message per 40 s in a chat, at 50 times the speed: 0.8 s (told as 1 s).
        api.enforce_rate_limits(
            per_chat_per_sec=0.025,
            time_scale=50.0,
            escalation=2.0,
            cooldown=500.0,
            max_retry_after=3,
        )
        harness = TelegramHarness(api, tmp_path, limits=fast)
        await harness.start()
        try:
            texts = [f"announcement {n}" for n in range(4)]
            await queue(harness, *texts)
            await drain(harness)
        finally:
            await harness.stop()
    assert api.sent_texts(GROUP) == texts  # all, once, in order
    log = api.rate_limit_log
    assert [v.retry_after for v in log] == [1, 2, 3][: len(log)] and len(log) >= 2
    # copss waited every retry_after it was told: it never knocked during a flood wait.
    assert not any(v.during_wait for v in log)
