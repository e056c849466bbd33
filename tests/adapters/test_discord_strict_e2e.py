"""copss against a fake Discord as strict as Discord: the gateway invalidates its session
(resumable or not), asks it to reconnect, or goes silent (a zombie connection); REST answers
carry real rate-limit buckets and a global limit; a send's answer is lost after Discord made
the message. copss misses no message, stores none twice, and posts every message once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from adapters.base import TransientAdapterError
from adapters.discord import DiscordAdapter
from adapters.text import outgoing_text
from bot.app import App
from bot.events import ChannelRef, Outgoing
from storage.models import Message, OutboxMessage
from tests.adapters.dc_harness import MENU, TOKEN, WAIT, DiscordHarness, PortalFake
from tests.fakes.discord_gateway import LoseResponse, patch_discord
from tests.fakes.discord_ratelimits import RouteLimit

pytestmark = pytest.mark.faults

GUILD = 950_000_000_000_000_001
GENERAL, RANDOM = 950_000_000_000_000_010, 950_000_000_000_000_011
CROWD = [950_000_000_000_000_100 + i for i in range(8)]


class StrictHarness(DiscordHarness):
    """copss with a short zombie timeout (discord.py closes a connection that heard nothing
    for ``heartbeat_timeout`` seconds) and without discord.py's 5 s wait before it
    identifies again after a session was invalidated."""

    async def start(self) -> None:
        self._patch.enter_context(patch_discord(self.fake))
        self.adapter = DiscordAdapter(
            TOKEN, commands=MENU, guild_ready_timeout=0.05, heartbeat_timeout=1.0
        )

        async def no_wait(shard_id: int | None, *, initial: bool = False) -> None:
            return None

        self.adapter.client.before_identify_hook = no_wait  # type: ignore[method-assign]
        self.app = App(self.config, adapters=[self.adapter])
        self.task = await self.start_watched(self.app, self.adapter.caught_up, WAIT)


@pytest.fixture
async def dc(tmp_path: Path) -> AsyncIterator[StrictHarness]:
    async with PortalFake(token=TOKEN, heartbeat_interval_ms=200) as fake:
        fake.add_guild(GUILD, "Expats NL")
        fake.add_channel(GUILD, GENERAL, "general")
        fake.add_channel(GUILD, RANDOM, "random")
        for i, uid in enumerate(CROWD):
            fake.add_member(GUILD, uid, f"M{i}")
        harness = StrictHarness(fake, tmp_path)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def stored_once(dc: StrictHarness, ids: list[str]) -> None:
    """Every message is in the store exactly once."""
    async with dc.db.session() as s:
        stored = Counter((await s.scalars(select(Message.platform_message_id))).all())
    assert {i: stored[i] for i in ids} == dict.fromkeys(ids, 1)


async def chatter_through(dc: StrictHarness, fault: Callable[[], Awaitable[Any]]) -> list[str]:
    """Members post before, during and after ``fault``; every message reaches copss."""
    fake = dc.fake
    ids = []
    for n in range(3):
        ids.append((await fake.user_message(GENERAL, CROWD[n], f"before {n}"))["id"])
    await fault()
    for n in range(3):  # while copss is reconnecting
        ids.append((await fake.user_message(GENERAL, CROWD[n + 3], f"during {n}"))["id"])
    return ids


async def finish(dc: StrictHarness, ids: list[str]) -> None:
    ids.append((await dc.fake.user_message(RANDOM, CROWD[7], "after"))["id"])
    for message_id in ids:
        await dc.wait_message(message_id)
    await dc.settle()
    await stored_once(dc, ids)


async def test_resumable_invalid_session_resumes_and_misses_nothing(dc: StrictHarness) -> None:
    ids = await chatter_through(dc, lambda: dc.fake.invalid_session(resumable=True))
    await dc.fake.wait_for_resume(1, within=WAIT)
    await finish(dc, ids)
    assert dc.fake.identify_count == 1


async def test_reconnect_request_resumes_and_misses_nothing(dc: StrictHarness) -> None:
    ids = await chatter_through(dc, dc.fake.request_reconnect)
    await dc.fake.wait_for_resume(1, within=WAIT)
    await finish(dc, ids)
    assert dc.fake.identify_count == 1


async def test_invalid_session_catches_up_from_history(dc: StrictHarness) -> None:
    # The session is gone: what was said before copss identifies again is never dispatched
    # to it, so copss must read it from the channel's history, and store nothing twice.
    ids = await chatter_through(dc, lambda: dc.fake.invalid_session(resumable=False))
    await dc.fake.wait_for_identify(2, within=WAIT)
    await finish(dc, ids)
    assert dc.fake.resume_count == 0


async def test_zombie_connection_is_dropped_and_resumed(dc: StrictHarness) -> None:
    fake = dc.fake

    async def silence() -> None:
        assert fake.zombify() == 1

    ids = await chatter_through(dc, silence)
    # Nothing reaches copss on the zombie; it gives up on the connection and RESUMEs,
    # and the session replays what it missed.
    await fake.wait_for_resume(1, within=WAIT)
    await finish(dc, ids)
    assert fake.identify_count == 1


async def queue(dc: StrictHarness, rows: list[tuple[int, str]]) -> None:
    async with dc.db.session() as s:
        for channel, text in rows:
            await s.execute(
                insert(OutboxMessage).values(
                    platform="discord", chat_id=str(channel), thread_id="", text=text, meta={}
                )
            )
    assert dc.app is not None and dc.app.hub is not None
    dc.app.hub.wake_sender("discord")


async def test_send_whose_answer_is_lost_is_posted_once(dc: StrictHarness) -> None:
    fake = dc.fake
    # Discord makes the message, then the connection drops before copss hears of it: copss
    # retries with the same nonce and Discord hands back the message it already made.
    fake.inject_rest("POST", rf"/channels/{GENERAL}/messages", LoseResponse())
    await queue(dc, [(GENERAL, "posted exactly once")])
    await dc.settle()
    assert len(fake.lost_responses) == 1
    posts = fake.calls_to("POST", f"/channels/{GENERAL}/messages")
    assert len(posts) >= 2  # retried ...
    assert [m["content"] for m in fake.sent_messages(GENERAL)] == ["posted exactly once"]
    nonces = {c.json_body.get("nonce") for c in posts}
    assert len(nonces) == 1 and all(c.json_body.get("enforce_nonce") for c in posts)
    async with dc.db.session() as s:
        [row] = (await s.scalars(select(OutboxMessage))).all()
    assert row.state == "sent"


async def test_grown_edit_whose_new_chunk_answer_is_lost_posts_it_once(
    dc: StrictHarness,
) -> None:
    fake = dc.fake
    assert dc.adapter is not None
    place = ChannelRef("discord", str(GENERAL))
    ids = await dc.adapter.send(Outgoing(place, "short at first", key="outbox:1"))
    longer = "word " * 500  # 2500 characters: a second chunk
    fake.inject_rest("POST", rf"/channels/{GENERAL}/messages", LoseResponse())
    with pytest.raises(TransientAdapterError):
        await dc.adapter.edit(place, ids, longer)
    # The outbox tries the edit again: the second chunk Discord made is handed back.
    again = await dc.adapter.edit(place, ids, longer)
    sent = fake.sent_messages(GENERAL)
    assert len(again) == 2 and [str(m["id"]) for m in sent] == again
    assert "".join(m["content"] for m in sent) == outgoing_text(longer)


async def test_rate_limit_buckets_and_global_limit_lose_and_repeat_nothing(
    dc: StrictHarness,
) -> None:
    fake = dc.fake
    limiter = fake.enforce_rate_limits(
        routes=[RouteLimit("POST", r"/channels/(?P<major>\d+)/messages", 3, 2.0, "create")],
        global_per_second=2,
        time_scale=10.0,
    )
    rows = [(channel, f"{channel % 100} #{n}") for n in range(8) for channel in (GENERAL, RANDOM)]
    await queue(dc, rows)
    await dc.settle()
    for channel in (GENERAL, RANDOM):
        sent = [m["content"] for m in fake.sent_messages(channel)]
        assert sent == [text for c, text in rows if c == channel]  # all, once, in order
    # discord.py waits out each bucket from its headers; the global limit it only learns
    # from a 429, which it waits out too.
    assert {r.scope for r in limiter.refusals} == {"global"}
