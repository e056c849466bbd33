"""The fake Bot API is as strict as Telegram: HTML parsed like Telegram's server (refused
with its "can't parse entities" texts), the 4096 limit counted in UTF-16 code units of the
text left after parsing, and flood control that escalates ``retry_after`` for a bot that
keeps flooding. Asked over HTTP, as a client would."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI
from tests.fakes.telegram_html import HTMLParseError, parse_html

GROUP = -1001234567890
OTHER = -1009876543210


async def send(api: FakeTelegramAPI, text: str, chat: int = GROUP, **params: Any) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{api.base_url}{DEFAULT_TOKEN}/sendMessage",
            json={"chat_id": chat, "text": text, **params},
        ) as answer,
    ):
        return answer.status, await answer.json()


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("I <3 copss", 'Unsupported start tag "3" at byte offset 2'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("line<br/>break", 'Unsupported start tag "br/" at byte offset 4'),
        ("<script>x</script>", 'Unsupported start tag "script" at byte offset 0'),
        # Byte offsets count UTF-8 bytes: "é" is two.
        ("é <x>", 'Unsupported start tag "x" at byte offset 3'),
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("tail <b", "Unclosed start tag at byte offset 5"),
        ("close</b>", "Unexpected end tag at byte offset 5"),
        (
            "<b>crossed <i>tags</b></i>",
            'Unmatched end tag at byte offset 18, expected "</i>", found "</b>"',
        ),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        (
            "<a href>x</a>",
            'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0',
        ),
    ],
)
async def test_html_refused_with_telegrams_error_text(html: str, error: str) -> None:
    with pytest.raises(HTMLParseError) as info:
        parse_html(html)
    assert str(info.value) == error
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        status, body = await send(api, html, parse_mode="HTML")
    assert (status, body["description"]) == (400, f"Bad Request: can't parse entities: {error}")
    assert api.sent_messages() == []


@pytest.mark.parametrize(
    ("html", "shown"),
    [
        # Only &lt; &gt; &amp; &quot; and numeric references are decoded, ";" optional; any
        # other "&" stays as typed (so a bare "&" is fine).
        ("Tom & Jerry", "Tom & Jerry"),
        ("1 &lt; 2 &amp;&amp; 3 &gt 2", "1 < 2 && 3 > 2"),
        ("&nbsp;&copy;&#169;&#x1F600;", "&nbsp;&copy;©\U0001f600"),
        ("&quot;quoted&quot; &#0; &#xD800;", '"quoted" &#0; &#xD800;'),
        # Start tags are case-insensitive; end tags are compared as typed with the
        # lower-cased start tag (so "</B>" would not close "<B>").
        ("<B>Upper</b> <tg-spoiler>s</tg-spoiler>", "Upper s"),
    ],
)
def test_html_text_kept_like_telegram(html: str, shown: str) -> None:
    assert parse_html(html).text == shown


def test_entities_in_utf16_units() -> None:
    parsed = parse_html(
        '\U0001f600 <b>bold <i>both</i></b> <a href="https://x.invalid/?a=1&amp;b=2">link</a>'
        '<a>no href</a><span class="tg-spoiler">s</span><code class="language-py">c</code>'
    )
    assert parsed.text == "\U0001f600 bold both linkno hrefsc"
    assert parsed.entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.invalid/?a=1&b=2"},
        {"type": "spoiler", "offset": 24, "length": 1},
        {"type": "code", "offset": 25, "length": 1, "language": "py"},
    ]


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        # 4096 UTF-16 code units after parsing: emoji outside the BMP are two each.
        ("<b>" + "\U0001f600" * 2047 + "ab</b>", True),
        ("<b>" + "\U0001f600" * 2047 + "abc</b>", False),
        ("&lt;" * 4096, True),
        ("&#x1F600;" * 2048, True),
        ("&#x1F600;" * 2048 + "a", False),
    ],
)
async def test_limit_counts_utf16_after_parsing(text: str, accepted: bool) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        status, body = await send(api, text, parse_mode="HTML")
    assert (status == 200) is accepted, body
    if not accepted:
        assert body["description"] == "Bad Request: message is too long"


async def test_shown_text_is_the_parsed_text() -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        await send(api, "<b>Anna</b>: I &lt;3 Tom &amp; Jerry &", parse_mode="HTML")
        await send(api, "<b>as typed</b>")
        assert api.sent_texts(GROUP) == [
            "<b>Anna</b>: I &lt;3 Tom &amp; Jerry &",
            "<b>as typed</b>",
        ]
        assert api.shown_texts(GROUP) == ["Anna: I <3 Tom & Jerry &", "<b>as typed</b>"]


async def test_flood_wait_escalates_while_the_bot_keeps_sending() -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        # One message per 10 s in a chat, time running 20 times faster: 0.5 s (retry_after
        # is real seconds, at least 1, as the fake always answered).
        api.enforce_rate_limits(
            per_chat_per_sec=0.1, escalation=2.0, cooldown=10.0, time_scale=20.0
        )
        assert (await send(api, "1"))[0] == 200
        # Hammering the chat through its flood wait doubles retry_after each time.
        answers = [await send(api, f"again {n}") for n in range(5)]
        assert [a[0] for a in answers] == [429] * 5
        waits = [a[1]["parameters"]["retry_after"] for a in answers]
        assert waits == [1, 2, 4, 8, 16]
        assert [v.during_wait for v in api.rate_limit_log] == [False, True, True, True, True]
        assert answers[-1][1]["description"] == "Too Many Requests: retry after 16"
        # Another chat is not blocked by this chat's wait.
        assert (await send(api, "elsewhere", chat=OTHER))[0] == 200
        # The wait runs 16 s (scaled: 0.8 s); after it and the cooldown (10 s, scaled 0.5 s)
        # the chat is served, and a new offence starts again from the plain wait.
        await asyncio.sleep(api.flood_wait(GROUP) + 10.0 / 20 + 0.05)
        assert (await send(api, "after the wait"))[0] == 200
        status, body = await send(api, "too fast again")
        assert (status, body["parameters"]["retry_after"]) == (429, 1)
        assert api.sent_texts(GROUP) == ["1", "after the wait"]


async def test_global_flood_wait_blocks_every_chat() -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.enforce_rate_limits(global_per_sec=2, escalation=3.0, time_scale=10.0)
        chats = [-1000 - n for n in range(6)]
        answers = [await send(api, "hi", chat=chat) for chat in chats]
        assert [a[0] for a in answers] == [200, 200, 429, 429, 429, 429]
        assert [a[1]["parameters"]["retry_after"] for a in answers[2:]] == [1, 3, 9, 27]
        assert {v.kind for v in api.rate_limit_log} == {"global"}
        assert api.flood_wait("global") > 2.0  # 27 s scaled by 10


async def test_no_escalation_unless_asked() -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.enforce_rate_limits(per_chat_per_sec=0.1, time_scale=20.0)
        await send(api, "1")
        answers = [await send(api, f"again {n}") for n in range(4)]
        assert {a[1]["parameters"]["retry_after"] for a in answers} == {1}
