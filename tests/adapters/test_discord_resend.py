"""copss's own Discord message, left "sending" by a run that stopped mid-call, is sent again
at the next start while Discord still enforces its nonce (the message it made is handed back:
posted once, recorded as sent); a later one is left "unsure" and not sent (at-most-once)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.context import AT_MOST_ONCE
from bot.events import ChannelRef, Outgoing
from storage.engine import Database
from storage.models import OutboxMessage, utcnow
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake, one_server

GUILD, GENERAL, RANDOM = 930_000_000_000_000_001, 930_000_000_000_000_010, 930_000_000_000_000_011
ALICE = 930_000_000_000_000_100


async def test_an_interrupted_reply_is_sent_again_under_the_nonce_and_posted_once(
    tmp_path: Path,
) -> None:
    async with PortalFake(token=TOKEN) as fake:
        one_server(fake, GUILD, {GENERAL: "general", RANDOM: "random"}, {ALICE: "Alice"})
        h = DiscordHarness(fake, tmp_path)
        await h.start()
        try:
            await h.say(GENERAL, ALICE, "hello")
            later = utcnow() + timedelta(days=1)  # the running sender leaves them alone
            async with h.db.session() as s:
                rows = [
                    OutboxMessage(
                        platform="discord",
                        chat_id=str(chat),
                        text=text,
                        meta={},
                        delivery=AT_MOST_ONCE,
                        next_attempt_at=later,
                    )
                    for chat, text in ((GENERAL, "a reply"), (RANDOM, "an old reply"))
                ]
                s.add_all(rows)
                await s.flush()
                recent, old = rows[0].id, rows[1].id
            # The send of the first went through; copss stopped before it recorded that.
            assert h.adapter is not None
            posted = await h.adapter.send(
                Outgoing(ChannelRef("discord", str(GENERAL)), "a reply", key=f"outbox:{recent}")
            )
        finally:
            await h.stop()
        db = Database(h.config.storage.url)
        try:
            async with db.session() as s:
                for row_id, began in ((recent, utcnow()), (old, utcnow() - timedelta(minutes=10))):
                    row = await s.get(OutboxMessage, row_id)
                    assert row is not None
                    row.state, row.attempts = "sending", 1
                    row.attempted_at, row.next_attempt_at = began, None
        finally:
            await db.close()

        await h.start()
        try:
            await h.settle()
            async with h.db.session() as s:
                states = {
                    r.id: (r.state, r.platform_message_id)
                    for r in (await s.scalars(select(OutboxMessage))).all()
                }
        finally:
            await h.stop()
        texts = [m["content"] for m in fake.sent_messages()]
    assert states[recent] == ("sent", posted[0])
    assert texts.count("a reply") == 1
    assert states[old][0] == "unsure" and "an old reply" not in texts
