"""Deleted or edited Discord content is never served stale.

A deleted thread or forum post takes its messages and its Q&A out of search (archiving one
does not), and catching up after downtime applies the edits and deletes made meanwhile to
the messages copss stored lately. The real discord.py client against the loopback fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from adapters.discord import intake
from bot.events import DeleteEvent, EditEvent
from storage.models import Message, Thread
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake
from tests.adapters.test_discord_e2e import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    FORUM,
    GENERAL,
    build_world,
    thread_status,
)

QUESTION = "How do I register at the gemeente in Utrecht after moving here?"
ANSWER = "Book an appointment online at utrecht.nl and bring your passport and rental contract."
#: What only the answer says: a reply quoting it contains this.
MARK = "utrecht.nl"


@pytest.fixture
async def dc(tmp_path: Path) -> AsyncIterator[DiscordHarness]:
    async with PortalFake(token=TOKEN) as fake:
        build_world(fake)
        harness = DiscordHarness(fake, tmp_path)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def stored(dc: DiscordHarness, message_id: int) -> Message:
    async with dc.db.session() as s:
        found = await s.scalar(
            select(Message).where(Message.platform_message_id == str(message_id))
        )
    assert found is not None
    return found


async def quoted_when_asked(dc: DiscordHarness, author: int, *, forum: bool = False) -> bool:
    """Whether copss's reply to the question asked again, in #general or (``forum``) as a new
    post in the forum (each chat is its own community), quotes the answer."""
    if forum:
        q = await dc.forum_post(FORUM, author, QUESTION, "Same question, asking again.")
    else:
        q = await dc.say(GENERAL, author, QUESTION)
    return any(MARK in reply["content"] for reply in dc.replies_to(q))


# -- threads and forum posts deleted, or only archived ----------------------------------------


async def test_deleted_forum_post_leaves_search_and_its_messages_are_erased(
    dc: DiscordHarness,
) -> None:
    post = await dc.forum_post(FORUM, ALICE, QUESTION, "I just moved here from Spain.")
    answer = await dc.say(post, BOB, ANSWER)
    assert await thread_status(dc, post) == "answered"
    assert await quoted_when_asked(dc, DAVE, forum=True)  # found while the post exists

    await dc.fake.delete_thread(post)
    # Events come in order: by the time this question is handled, the delete was.
    assert not await quoted_when_asked(dc, CAROL, forum=True)
    assert await thread_status(dc, post) == "deleted"
    for mid in (post, answer):
        message = await stored(dc, mid)
        assert message.deleted and message.text == ""


async def test_deleted_thread_of_a_channel_message_takes_its_answers(dc: DiscordHarness) -> None:
    q = await dc.say(GENERAL, ALICE, QUESTION)
    await dc.fake.create_thread(GENERAL, "Registering", from_message_id=q)
    answer = await dc.say(q, BOB, ANSWER)  # in the thread opened from the question
    assert await quoted_when_asked(dc, DAVE)

    await dc.fake.delete_thread(q)
    assert not await quoted_when_asked(dc, CAROL)
    assert (await stored(dc, answer)).deleted
    # The question itself stays in #general, as on Discord: only the thread went.
    question = await stored(dc, q)
    assert not question.deleted and question.text == QUESTION


async def test_archived_forum_post_stays_searchable(dc: DiscordHarness) -> None:
    post = await dc.forum_post(FORUM, ALICE, QUESTION, "I just moved here from Spain.")
    answer = await dc.say(post, BOB, ANSWER)
    await dc.fake.archive_thread(post)
    assert await quoted_when_asked(dc, CAROL, forum=True)
    assert await thread_status(dc, post) == "answered"
    assert not (await stored(dc, answer)).deleted


# -- catching up on edits and deletes made while copss was down ---------------------------------


async def test_catch_up_applies_edits_and_deletes_made_while_down(dc: DiscordHarness) -> None:
    fake = dc.fake
    edited = await dc.say(GENERAL, ALICE, "How do I get a parking permit in Amsterdam Noord?")
    deleted = await dc.say(GENERAL, CAROL, QUESTION)
    answer = await dc.say(GENERAL, BOB, ANSWER, reply_to=deleted)
    kept = await dc.say(GENERAL, DAVE, "Where can I buy a second-hand bike in Utrecht?")
    post = await dc.forum_post(FORUM, ALICE, "Which GP takes new patients in Zwolle?", "Thanks!")
    renamed_body = "Thanks!"
    await dc.stop()

    await fake.user_edit(GENERAL, edited, "How do I get a residence permit in Amsterdam?")
    await fake.user_delete(GENERAL, deleted)
    fake.channel(post)["name"] = "Which GP takes new patients in Deventer?"  # retitled
    before = len(dc.events)
    await dc.start()
    await dc.wait_message(edited, EditEvent)
    await dc.wait_message(deleted, DeleteEvent)
    await dc.wait_message(post, EditEvent)
    await dc.settle()

    changes = [e for e in dc.events[before:] if isinstance(e, EditEvent | DeleteEvent)]
    assert sorted(e.message_id for e in changes) == sorted(str(i) for i in (edited, deleted, post))
    assert (await stored(dc, edited)).text == "How do I get a residence permit in Amsterdam?"
    async with dc.db.session() as s:
        asked = await s.scalar(
            select(Thread.question_text)
            .join(Message, Message.id == Thread.question_message_id)
            .where(Message.platform_message_id == str(edited))
        )
    assert asked == "How do I get a residence permit in Amsterdam?"
    assert (
        await stored(dc, post)
    ).text == f"Which GP takes new patients in Deventer?\n{renamed_body}"
    gone = await stored(dc, deleted)
    assert gone.deleted and gone.text == "" and await thread_status(dc, deleted) == "deleted"
    assert not await quoted_when_asked(dc, ALICE)  # the deleted question's answer is not served
    assert not (await stored(dc, kept)).deleted and not (await stored(dc, answer)).deleted

    # Nothing changed since: the next restart finds nothing to apply.
    await dc.stop()
    seen = len(dc.events)
    await dc.start()
    await dc.settle()
    assert dc.events[seen:] == []


async def test_catch_up_rechecks_a_bounded_window(
    dc: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the newest stored messages are re-read (here 3 instead of 200), and none older
    than a week; the history is read from the oldest of them, 100 a page."""
    fake = dc.fake
    monkeypatch.setattr(intake, "RECHECK_MESSAGES", 3)
    said = [
        await dc.say(GENERAL, BOB, f"Tip {i}: the market on Saturday is cheap.") for i in range(5)
    ]
    async with dc.db.session() as s:
        # The newest one dates from over a week ago (as if copss stored it then).
        await s.execute(
            update(Message)
            .where(Message.platform_message_id == str(said[4]))
            .values(sent_at=datetime.now(UTC) - timedelta(days=8))
        )
    await dc.stop()
    for mid in said:
        await fake.user_edit(GENERAL, mid, f"edited {mid}")
    calls = len(fake.calls)
    before = len(dc.events)
    await dc.start()
    await dc.settle()
    edits = [e.message_id for e in dc.events[before:] if isinstance(e, EditEvent)]
    # The newest three stored within the week: said[1..3]; said[0] is older than them, and
    # said[4] older than a week.
    assert sorted(edits) == sorted(str(m) for m in said[1:4])
    reads = [
        c
        for c in fake.calls[calls:]
        if c.method == "GET" and c.path == f"/channels/{GENERAL}/messages"
    ]
    assert reads and all(c.query.get("limit") == "100" for c in reads)
    assert reads[0].query["after"] == str(said[1] - 1)


async def test_thread_deleted_while_down_is_deleted_on_catch_up(dc: DiscordHarness) -> None:
    fake = dc.fake
    post = await dc.forum_post(FORUM, ALICE, QUESTION, "I just moved here from Spain.")
    answer = await dc.say(post, BOB, ANSWER)
    await dc.stop()
    await fake.delete_thread(post)
    await dc.start()
    await dc.settle()
    assert await thread_status(dc, post) == "deleted"
    assert (await stored(dc, answer)).deleted
    assert not await quoted_when_asked(dc, CAROL, forum=True)
