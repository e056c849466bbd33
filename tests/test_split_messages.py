"""Messages longer than a platform allows are posted in chunks, and copss follows every chunk:
edits re-split the text in place, deletes (also after a restart, also a member's erasure)
remove every chunk, and a send that failed part-way goes on at the chunk that failed.

The real discord.py and python-telegram-bot clients against their loopback fakes."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select

from bot.core import CHUNKS, Context
from bot.events import ChannelRef
from bot.features.bridge import queue_copy_deletions
from storage.models import Member, Message, MessageCopy, OutboxMessage
from tests.adapters.bridge_harness import (
    DC_ALICE,
    DISCORD_TOKEN,
    GENERAL,
    GROUP,
    TG_ADMIN,
    TG_ANNA,
    BridgeHarness,
    build_worlds,
)
from tests.adapters.tg_harness import TelegramHarness
from tests.fakes.discord_gateway import JSON, FakeDiscord
from tests.fakes.discord_gateway import Slow as DcSlow
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, ServerError, Slow


def words(n: int, seed: str) -> str:
    """About ``n`` characters of words (so a split falls between words)."""
    return " ".join(f"{seed}{i:04d}" for i in range(n // 9 + 1))[:n]


@pytest.fixture
async def bridged(tmp_path: Path) -> AsyncIterator[BridgeHarness]:
    """copss with #general linked to the Telegram group."""
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as tg, FakeDiscord(token=DISCORD_TOKEN) as dc:
        build_worlds(tg, dc)
        harness = BridgeHarness(tg, dc, tmp_path)
        await harness.start()
        try:
            await harness.link()
            yield harness
        finally:
            await harness.stop()


def live_copies(dc: FakeDiscord) -> list[JSON]:
    """The webhook copies in #general that still exist, oldest first."""
    return [m for m in dc.messages(GENERAL) if m.get("webhook_id")]


async def stored_chunks(h: BridgeHarness) -> list[list[str]]:
    """The chunk ids of every stored copy, oldest copy first."""
    async with h.db.session() as s:
        copies = (await s.scalars(select(MessageCopy).order_by(MessageCopy.id))).all()
        return [list(c.chunk_ids) for c in copies]


async def until(check: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Poll ``check`` until it holds: what it looks at announces nothing while a request is
    held up in a fake."""
    async with asyncio.timeout(within):
        while True:
            found = check()
            if found if isinstance(found, bool) else await found:
                return
            await asyncio.sleep(0.02)


async def queued(h: BridgeHarness, key_prefix: str) -> bool:
    """Whether an outbox row with a key starting with ``key_prefix`` exists."""
    async with h.db.session() as s:
        found = await s.scalar(
            select(OutboxMessage.id).where(OutboxMessage.dedup_key.startswith(key_prefix))
        )
    return found is not None


# -- Telegram -> Discord: a 3,000-character message is two Discord messages ---------------------


async def test_long_copy_edited_short_leaves_one_chunk_then_grows_again(
    bridged: BridgeHarness,
) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    text = words(3000, "lang")
    q = await h.tg_say(TG_ANNA, text)
    first, second = live_copies(dc)
    assert first["content"] + second["content"] == text and len(first["content"]) <= 2000
    assert await stored_chunks(h) == [[first["id"], second["id"]]]

    await h.push_tg(tg.edited_message_update(GROUP, q, "short edit"))
    [only] = live_copies(dc)
    assert only["id"] == first["id"] and only["content"] == "short edit"
    assert dc.message(int(second["id"]))["content"] == second["content"]  # deleted, not edited
    assert await stored_chunks(h) == [[first["id"]]]

    # Grown past 2,000 again: the first chunk is edited, the rest posted under Anna's name.
    longer = words(3500, "weer")
    # (A later second: edits are told apart by their time.)
    await h.push_tg(tg.edited_message_update(GROUP, q, longer, edit_date=int(time.time()) + 5))
    chunks = live_copies(dc)
    assert len(chunks) == 2 and chunks[0]["id"] == first["id"]
    assert "".join(c["content"] for c in chunks) == longer
    assert chunks[1]["author"]["username"] == "Anna (Telegram)"
    assert await stored_chunks(h) == [[c["id"] for c in chunks]]

    await h.tg_say(TG_ADMIN, "/delete everywhere", reply_to_message_id=q)
    assert live_copies(dc) == []


async def test_delete_everywhere_after_a_restart_removes_every_chunk(
    bridged: BridgeHarness,
) -> None:
    h, dc = bridged, bridged.dc
    q = await h.tg_say(TG_ANNA, words(3000, "lang"))
    assert len(live_copies(dc)) == 2
    await h.stop()
    await h.start()  # copss no longer remembers how it posted the copy
    await h.tg_say(TG_ADMIN, "/delete everywhere", reply_to_message_id=q)
    assert live_copies(dc) == []
    assert all(m["deleted"] for m in dc.webhook_messages(GENERAL))


async def test_an_edit_queued_behind_another_acts_on_the_chunks_the_copy_has_then(
    bridged: BridgeHarness,
) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    q = await h.tg_say(TG_ANNA, "short at first")
    # The edit is held up on Discord until the delete is queued: the delete must find the
    # chunk the edit adds, though it was queued before that chunk existed.
    dc.inject_rest("PATCH", r"/webhooks/\d+/[^/]+/messages/\d+", DcSlow(3.0))
    tg.push_update(tg.edited_message_update(GROUP, q, words(3000, "groei")))
    await until(lambda: bool(dc.calls_to("PATCH", "/webhooks/")))
    tg.push_update(tg.message_update(GROUP, TG_ADMIN, "/delete everywhere", reply_to_message_id=q))
    await until(lambda: queued(h, "delete-copy:"))
    assert len(dc.webhook_messages(GENERAL)) == 1  # the edit has not posted its chunk yet
    await h.settle()
    assert live_copies(dc) == []
    assert len(dc.webhook_messages(GENERAL)) == 2  # the copy and the chunk its edit added


async def test_forget_style_deletion_removes_every_chunk(bridged: BridgeHarness) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    await h.tg_say(TG_ANNA, words(3000, "mijn"))
    await h.tg_say(TG_ANNA, words(4500, "meer"))
    assert len(live_copies(dc)) == 5
    before = len(tg.sent_messages(GROUP))
    await h.dc_say(DC_ALICE, "Someone else's message stays.")
    await h.stop()
    await h.start()  # only the store knows the copies' chunks now
    assert h.app is not None and h.app.hub is not None
    hub = h.app.hub

    # What an erasure does: queue the copies' deletion, then erase the originals (their copy
    # rows go with them) in the same transaction.
    async with h.db.session() as s:
        anna = await s.scalar(select(Member).where(Member.user_id == str(TG_ANNA)))
        assert anna is not None
        ids = (await s.scalars(select(Message.id).where(Message.member_id == anna.id))).all()
        assert await queue_copy_deletions(Context(hub, s), ids, "forget") == 2
        await s.execute(delete(Message).where(Message.id.in_(ids)))
    hub.wake_sender("discord")
    await h.settle()
    assert live_copies(dc) == []
    assert len(tg.sent_messages(GROUP)) == before + 1  # Alice's copy is still on Telegram
    assert tg.sent_messages(GROUP)[-1]["text"].endswith("Someone else's message stays.")


# -- a long answer on Telegram: a failure on chunk 2 does not repeat chunk 1 ---------------------


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


async def queue_answer(h: TelegramHarness, text: str) -> int:
    async with h.db.session() as s:
        row = await s.execute(
            insert(OutboxMessage)
            .values(platform="telegram", chat_id=str(GROUP), thread_id="", text=text, meta={})
            .returning(OutboxMessage.id)
        )
        row_id = int(row.scalar_one())
    assert h.app is not None and h.app.hub is not None
    h.app.hub.wake_sender("telegram")
    return row_id


async def settle(h: TelegramHarness) -> None:
    """Wait until copss sent everything queued (no Telegram update is involved here)."""
    assert h.app is not None and h.app.hub is not None
    async with asyncio.timeout(30):
        await h.app.hub.settled()


def unescaped(sent: list[dict[str, object]]) -> list[str]:
    return [html.unescape(str(m["text"])) for m in sent]


async def assert_posted_once(h: TelegramHarness, row_id: int, text: str) -> None:
    sent = h.api.sent_messages(GROUP)
    assert len(sent) == 3
    assert "".join(unescaped(sent)) == text  # in order, nothing twice, nothing lost
    ids = [str(m["message_id"]) for m in sent]
    async with h.db.session() as s:
        row = await s.get(OutboxMessage, row_id)
        assert row is not None and row.state == "sent"
        assert row.platform_message_id == ids[0]
        assert row.meta[CHUNKS]["ids"] == ids
        stored = (
            await s.scalars(select(Message.platform_message_id).where(Message.text == text))
        ).all()
    assert stored == [ids[0]]


async def test_long_answer_failing_on_chunk_two_goes_on_there(tg: TelegramHarness) -> None:
    api = tg.api
    text = words(9000, "antwoord") + " <b>&</b>"
    api.inject("sendMessage", Slow(0))  # chunk 1 goes through
    api.inject("sendMessage", ServerError(502))  # chunk 2 fails once
    row_id = await queue_answer(tg, text)
    await settle(tg)
    assert len(api.calls_to("sendMessage")) == 4  # one retry, of chunk 2
    await assert_posted_once(tg, row_id, text)
    replies = [m.get("reply_to_message", {}).get("message_id") for m in api.sent_messages(GROUP)]
    first = api.sent_messages(GROUP)[0]["message_id"]
    assert replies == [None, first, first]  # the later chunks answer the first


async def test_long_answer_interrupted_by_a_restart_goes_on_where_it_stopped(
    tg: TelegramHarness,
) -> None:
    api = tg.api
    text = words(9000, "herstart")
    api.inject("sendMessage", Slow(0))
    api.inject("sendMessage", ServerError(503), times=1_000)  # down after chunk 1
    row_id = await queue_answer(tg, text)
    await api.wait_for(lambda: len(api.calls_to("sendMessage")) >= 2, within=10)
    await tg.stop(abrupt=True)  # a crash while waiting to retry chunk 2
    assert len(api.sent_messages(GROUP)) == 1
    api.clear_faults()
    await tg.start()
    await settle(tg)
    await assert_posted_once(tg, row_id, text)


async def test_a_retried_edit_or_delete_of_a_split_message_is_no_error(tg: TelegramHarness) -> None:
    """A retried edit finds chunks edited already ("message is not modified") and leftovers
    deleted already; a retried delete finds every chunk gone: none of it is an error."""
    api = tg.api
    await queue_answer(tg, words(9000, "eerst"))
    await settle(tg)
    ids = [str(m["message_id"]) for m in api.sent_messages(GROUP)]
    assert tg.app is not None and tg.app.hub is not None
    adapter = tg.app.hub.adapters["telegram"]
    place = ChannelRef("telegram", str(GROUP))
    edited = words(5000, "later")
    assert await adapter.edit(place, ids, edited) == ids[:2]
    assert await adapter.edit(place, ids, edited) == ids[:2]
    kept = [api.message(GROUP, int(i)) or {} for i in ids[:2]]
    assert "".join(html.unescape(str(m.get("text"))) for m in kept) == edited
    assert api.message(GROUP, int(ids[2])) is None
    await adapter.delete(place, ids)
    await adapter.delete(place, ids)
    assert all(api.message(GROUP, int(i)) is None for i in ids)
