"""The fake Discord is as strict as Discord: rate-limit headers and per-route buckets (kept
per channel or webhook), the global limit with Discord's 429 bodies, message nonces with
``enforce_nonce``, an answer lost after the message was made, and a zombie gateway
connection that a client must notice and RESUME from. Asked over HTTP, or with the real
discord.py client."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.discord_gateway import FakeDiscord, LoseResponse, running_client
from tests.fakes.discord_ratelimits import RATE_LIMITED_MESSAGE, RouteLimit

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord

pytestmark = pytest.mark.faults

TOKEN = "fake-strict-token"
GUILD = 940_000_000_000_000_001
GENERAL, RANDOM = 940_000_000_000_000_010, 940_000_000_000_000_011
ALICE = 940_000_000_000_000_100
WAIT = 5.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN, heartbeat_interval_ms=100) as server:
        server.add_guild(GUILD, "Strict")
        server.add_channel(GUILD, GENERAL, "general")
        server.add_channel(GUILD, RANDOM, "random")
        server.add_member(GUILD, ALICE, "alice")
        yield server


async def call(
    fake: FakeDiscord, method: str, path: str, body: Any = None, *, auth: bool = True
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bot {TOKEN}"} if auth else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{fake.rest_base}{path}", json=body, headers=headers) as answer,
    ):
        payload = await answer.json() if answer.status != 204 else None
        return answer.status, payload, dict(answer.headers)


def post(channel: int) -> str:
    return f"/channels/{channel}/messages"


async def test_every_answer_carries_its_buckets_headers(fake: FakeDiscord) -> None:
    status, _, headers = await call(fake, "POST", post(GENERAL), {"content": "hi"})
    assert status == 200
    for name in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
        assert f"X-RateLimit-{name}" in headers
    assert int(headers["X-RateLimit-Remaining"]) == int(headers["X-RateLimit-Limit"]) - 1
    # Not enforcing: a bucket so large nobody waits, and nothing refused.
    for n in range(20):
        assert (await call(fake, "POST", post(GENERAL), {"content": f"{n}"}))[0] == 200


async def test_route_bucket_per_channel_then_429_like_discord(fake: FakeDiscord) -> None:
    fake.enforce_rate_limits(time_scale=10.0)  # message create: 5 per 5 s, here 0.5 s
    answers = [await call(fake, "POST", post(GENERAL), {"content": f"{n}"}) for n in range(6)]
    assert [a[0] for a in answers] == [200] * 5 + [429]
    assert [a[2]["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    buckets = {a[2]["X-RateLimit-Bucket"] for a in answers}
    assert len(buckets) == 1
    status, body, headers = answers[-1]
    assert body["message"] == RATE_LIMITED_MESSAGE and body["global"] is False
    assert 0 < body["retry_after"] <= 0.5
    assert headers["X-RateLimit-Scope"] == "user" and "Retry-After" in headers
    assert "X-RateLimit-Global" not in headers
    assert len(fake.sent_messages(GENERAL)) == 5  # the refused one was not posted
    # Same route, another channel: same bucket hash, its own count.
    status, _, other = await call(fake, "POST", post(RANDOM), {"content": "elsewhere"})
    assert status == 200 and other["X-RateLimit-Bucket"] in buckets
    assert other["X-RateLimit-Remaining"] == "4"
    await asyncio.sleep(float(headers["X-RateLimit-Reset-After"]) + 0.02)
    assert (await call(fake, "POST", post(GENERAL), {"content": "after reset"}))[0] == 200


async def test_global_limit_refuses_every_route(fake: FakeDiscord) -> None:
    limiter = fake.enforce_rate_limits(global_per_second=3, time_scale=5.0)
    statuses = []
    for path in (post(GENERAL), post(RANDOM), f"/channels/{GENERAL}", f"/guilds/{GUILD}"):
        status, body, headers = await call(
            fake,
            "GET" if "messages" not in path else "POST",
            path,
            {"content": "x"} if "messages" in path else None,
        )
        statuses.append(status)
    assert statuses == [200, 200, 200, 429]
    assert body == {
        "message": RATE_LIMITED_MESSAGE,
        "retry_after": body["retry_after"],
        "global": True,
    }
    assert headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global"
    assert [r.scope for r in limiter.refusals] == ["global"]


async def test_discord_py_waits_out_buckets_without_a_429(fake: FakeDiscord) -> None:
    limiter = fake.enforce_rate_limits(
        routes=[RouteLimit("POST", r"/channels/(?P<major>\d+)/messages", 3, 2.0, "msgs")],
        time_scale=10.0,
    )
    client = discord.Client(intents=discord.Intents.none(), guild_ready_timeout=0.05)
    async with running_client(fake, client):
        channel = client.get_partial_messageable(GENERAL)
        for n in range(7):
            await channel.send(f"message {n}")
    assert [m["content"] for m in fake.sent_messages(GENERAL)] == [f"message {n}" for n in range(7)]
    assert limiter.refusals == []  # the headers told discord.py when to wait


async def test_nonce_with_enforce_nonce_answers_the_existing_message(fake: FakeDiscord) -> None:
    first = await call(
        fake, "POST", post(GENERAL), {"content": "a", "nonce": "n-1", "enforce_nonce": True}
    )
    again = await call(
        fake, "POST", post(GENERAL), {"content": "a", "nonce": "n-1", "enforce_nonce": True}
    )
    assert first[0] == again[0] == 200 and first[1]["id"] == again[1]["id"]
    # The same author's nonce, in another channel: still the earlier message.
    elsewhere = await call(
        fake, "POST", post(RANDOM), {"content": "a", "nonce": "n-1", "enforce_nonce": True}
    )
    assert elsewhere[1]["id"] == first[1]["id"]
    # Without enforce_nonce the nonce is only echoed.
    plain = await call(fake, "POST", post(GENERAL), {"content": "a", "nonce": "n-1"})
    assert plain[1]["id"] != first[1]["id"] and plain[1]["nonce"] == "n-1"
    assert len(fake.sent_messages()) == 2
    # A nonce is an integer or at most 25 characters.
    status, body, _ = await call(
        fake, "POST", post(GENERAL), {"content": "a", "nonce": "x" * 26, "enforce_nonce": True}
    )
    assert status == 400 and body["code"] == 50035


async def test_nonce_is_forgotten_after_a_few_minutes() -> None:
    async with FakeDiscord(token=TOKEN, nonce_ttl=0.1) as fake:
        fake.add_guild(GUILD, "Strict")
        fake.add_channel(GUILD, GENERAL, "general")
        body = {"content": "a", "nonce": 42, "enforce_nonce": True}
        first = await call(fake, "POST", post(GENERAL), body)
        await asyncio.sleep(0.15)
        later = await call(fake, "POST", post(GENERAL), body)
        assert first[1]["id"] != later[1]["id"]


async def test_lost_response_posts_but_answers_nothing(fake: FakeDiscord) -> None:
    fake.inject_rest("POST", post(GENERAL), LoseResponse())
    with pytest.raises(aiohttp.ClientError):
        await call(fake, "POST", post(GENERAL), {"content": "did it go?"})
    assert [m["content"] for m in fake.sent_messages(GENERAL)] == ["did it go?"]
    assert len(fake.lost_responses) == 1 and fake.pending_faults() == 0


async def test_zombie_connection_is_noticed_and_resumed(fake: FakeDiscord) -> None:
    seen: list[str] = []
    arrived = asyncio.Event()

    class Client(discord.Client):
        async def on_message(self, message: discord.Message) -> None:
            seen.append(message.content)
            arrived.set()

    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.message_content = True
    client = Client(intents=intents, guild_ready_timeout=0.05, heartbeat_timeout=0.5)
    async with running_client(fake, client):
        assert fake.zombify() == 1
        beats = fake.heartbeat_count
        await fake.user_message(GENERAL, ALICE, "sent to a zombie")
        await fake.wait_for(lambda: fake.heartbeat_count > beats, within=WAIT)
        assert seen == []  # lost on the zombie connection ...
        await fake.wait_for_resume(1, within=WAIT)
        await asyncio.wait_for(arrived.wait(), WAIT)  # ... and replayed on RESUME
        await fake.user_message(GENERAL, ALICE, "after")
        await fake.wait_for(lambda: len(seen) == 2, within=WAIT)
    assert seen == ["sent to a zombie", "after"]
    assert fake.identify_count == 1
