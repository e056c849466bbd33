"""The fakes refuse over-long messages the way the real services do: Telegram counts UTF-16
code units of the text it keeps after parsing entities, Discord refuses content over 2000
characters with 400 "Invalid Form Body" (code 50035). Asked over HTTP, as a client would."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.fakes.discord_gateway import FakeDiscord
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, entity_text

GROUP = -1001234567890
GUILD, CHANNEL = 930_000_000_000_000_001, 930_000_000_000_000_010
DISCORD_TOKEN = "fake-limits-token"


async def tg_send(api: FakeTelegramAPI, text: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{api.base_url}{DEFAULT_TOKEN}/sendMessage",
            json={"chat_id": GROUP, "text": text, **params},
        ) as answer,
    ):
        return answer.status, await answer.json()


@pytest.mark.parametrize(
    ("text", "mode", "accepted"),
    [
        ("a" * 4096, None, True),
        ("a" * 4097, None, False),
        # Tags do not count, an escape counts as the one character it stands for.
        ("<b>" + "a" * 4096 + "</b>", "HTML", True),
        ("&amp;" * 4096, "HTML", True),
        ("&amp;" * 4097, "HTML", False),
        # An emoji outside the BMP is two UTF-16 code units: 2049 of them are 4098.
        ("\U0001f600" * 2048, None, True),
        ("\U0001f600" * 2049, None, False),
        ("<b></b>", "HTML", False),  # nothing left: empty
    ],
)
async def test_telegram_counts_utf16_after_entity_parsing(
    text: str, mode: str | None, accepted: bool
) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Limits")
        status, body = await tg_send(api, text, **({"parse_mode": mode} if mode else {}))
    assert (status == 200) is accepted, body
    if not accepted:
        assert body["description"] in (
            "Bad Request: message is too long",
            "Bad Request: message text is empty",
        )


@pytest.mark.parametrize(
    "html",
    ["a < b", "<x>hi</x>", "<b>open", "<b>crossed <i>tags</b></i>", "line<br/>break"],
)
async def test_telegram_refuses_html_it_cannot_parse(html: str) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Limits")
        status, body = await tg_send(api, html, parse_mode="HTML")
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse entities"), body


def test_entity_text_is_what_telegram_keeps() -> None:
    kept = entity_text('<b>Anna</b>: 1 &lt; 2 &amp; <a href="https://x.invalid">link</a>', "HTML")
    assert kept == "Anna: 1 < 2 & link"
    assert entity_text("<b>raw</b>", None) == "<b>raw</b>"


async def test_discord_refuses_content_over_2000_characters() -> None:
    async with FakeDiscord(token=DISCORD_TOKEN) as dc:
        dc.add_guild(GUILD, "Limits")
        dc.add_channel(GUILD, CHANNEL, "general")
        headers = {"Authorization": f"Bot {DISCORD_TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            made = f"{dc.rest_base}/channels/{CHANNEL}/webhooks"
            async with http.post(made, json={"name": "copss bridge"}) as answer:
                assert answer.status == 200
                hook = await answer.json()
            url = f"{dc.rest_base}/channels/{CHANNEL}/messages"
            async with http.post(url, json={"content": "x" * 2000}) as ok:
                assert ok.status == 200
                posted = await ok.json()
            for method, target, params in (
                ("POST", url, {}),
                ("PATCH", f"{url}/{posted['id']}", {}),
                ("POST", f"{dc.rest_base}/webhooks/{hook['id']}/{hook['token']}", {"wait": "1"}),
            ):
                async with http.request(
                    method, target, params=params, json={"content": "x" * 2001}
                ) as refused:
                    assert refused.status == 400, (method, target)
                    body = await refused.json()
                    assert body["code"] == 50035
                    assert "content" in body["errors"]
