"""Communities are separate: each chat is its own community, admin commands act on the caller's
community only, and the shared starter knowledge base is read-only from chat."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bot.events import Author, ChannelRef, CommandEvent, MessageEvent
from storage.models import AuditLog, Channel, Community, FaqEntry, Thread
from tests.conftest import Harness


def _ref(chat: str) -> ChannelRef:
    return ChannelRef("console", chat)


async def run(copss: Harness, chat: str, name: str, args: str = "", user: str = "you") -> str:
    """Run a command in console chat ``chat`` (every console member is an admin of their own
    chat) and return copss's reply."""
    assert copss.app.hub is not None
    await copss.app.hub.sink(
        CommandEvent(
            _ref(chat),
            uuid.uuid4().hex,
            Author("console", user, user),
            name,
            args,
            datetime.now(UTC),
        )
    )
    await copss.settle()
    return (await copss.console.pop(timeout=1)).text


async def say(copss: Harness, chat: str, text: str, user: str = "alice") -> str:
    """Post a message in ``chat``; returns its platform id."""
    assert copss.app.hub is not None
    message_id = uuid.uuid4().hex
    await copss.app.hub.sink(
        MessageEvent(_ref(chat), message_id, Author("console", user, user), text, datetime.now(UTC))
    )
    await copss.settle()
    copss.said()
    return message_id


async def _globals(copss: Harness) -> list[dict[str, Any]]:
    async with copss.db.session() as s:
        rows = (
            await s.scalars(
                select(FaqEntry).where(FaqEntry.community_id.is_(None)).order_by(FaqEntry.id)
            )
        ).all()
        columns = [c.name for c in FaqEntry.__table__.columns]
        return [{c: getattr(r, c) for c in columns} for r in rows]


async def test_each_chat_is_its_own_community(copss: Harness) -> None:
    await say(copss, "a", "hello from a")
    await say(copss, "b", "hello from b")
    assert copss.app.hub is not None
    await copss.app.hub.sink(
        MessageEvent(
            ChannelRef("console", "a", "topic-1"),
            "m-topic",
            Author("console", "bob", "bob"),
            "a topic of chat a",
            datetime.now(UTC),
        )
    )
    await copss.settle()
    async with copss.db.session() as s:
        rows = (await s.execute(select(Channel.chat_id, Channel.community_id))).all()
    by_chat: dict[str, set[int]] = {}
    for chat, community in rows:
        by_chat.setdefault(chat, set()).add(community)
    assert len(by_chat["a"]) == 1  # the topic joined its chat's community
    assert by_chat["a"] != by_chat["b"]


async def test_global_entries_are_read_only_from_chat(copss: Harness) -> None:
    before = await _globals(copss)
    assert before, "the starter knowledge base is loaded"

    reply = await run(copss, "a", "faq", "edit digid-apply answer Ask the gemeente in chat A.")
    assert "for this community" in reply
    reply = await run(copss, "a", "faq", "remove bsn-citizen-service-number")
    assert "other communities keep it" in reply
    reply = await run(copss, "a", "faq", "add bsn-citizen-service-number | q? | a | https://x.nl")
    assert "Added" in reply  # the hidden slug is the community's to reuse
    reply = await run(copss, "a", "faq", "add digid-apply | q? | a | https://x.nl")
    assert "exists already" in reply

    # The shared rows are exactly as they were.
    assert await _globals(copss) == before

    # Chat A sees its own versions; chat B the shared ones.
    assert "Ask the gemeente in chat A." in await run(copss, "a", "faq", "show digid-apply")
    assert "Ask the gemeente in chat A." not in await run(copss, "b", "faq", "show digid-apply")
    shown_b = await run(copss, "b", "faq", "show bsn-citizen-service-number")
    assert "How do I get a BSN" in shown_b


async def test_a_removed_global_entry_is_not_offered_in_that_community(copss: Harness) -> None:
    question = "How do I apply for DigiD?"
    assert "DigiD" in await run(copss, "b", "ask", question)
    await run(copss, "a", "faq", "remove digid-apply")
    reply_a = await run(copss, "a", "ask", question)
    assert "How do I apply for DigiD?" not in reply_a
    assert "How do I apply for DigiD?" in await run(copss, "b", "ask", question)
    listed = await run(copss, "a", "faq", "list")
    assert "digid-apply" not in listed
    assert "digid-apply" in await run(copss, "b", "faq", "list")


async def test_one_communitys_admin_cannot_reach_another(copss: Harness) -> None:
    """The attack: an admin of their own group plants a scam answer, lowers the gate and
    reads the audit log; the victim group is unaffected."""
    await run(
        copss,
        "attacker",
        "faq",
        "add scam-bsn | How do I get a BSN? | DM me your DigiD login | https://evil.example",
    )
    await run(copss, "attacker", "threshold", "answer 0.01")
    await run(copss, "attacker", "faq", "remove municipality-registration")

    victim = await run(copss, "victim", "ask", "How do I get a BSN?")
    assert "DM me" not in victim and "evil.example" not in victim
    assert "0.82" in await run(copss, "victim", "threshold")
    assert "municipality-registration" in await run(copss, "victim", "faq", "list")
    audit = await run(copss, "victim", "audit")
    assert "scam-bsn" not in audit and "0.01" not in audit and "municipality" not in audit
    async with copss.db.session() as s:
        audits = (await s.execute(select(AuditLog.community_id, AuditLog.command))).all()
        communities = {c for c, _ in audits}
    assert len(communities) == 2  # each audit row belongs to its own chat's community


async def test_synonyms_apply_to_own_community_only(copss: Harness) -> None:
    mid_a = await say(copss, "a", "Where can I rent a fietskluis near the station?")
    await say(copss, "b", "Where can I rent a fietskluis near the harbour?")
    before = await _globals(copss)
    async with copss.db.session() as s:
        b_before = (
            await s.execute(
                select(Thread.id, Thread.search_text)
                .join(Channel, Channel.community_id == Thread.community_id)
                .where(Channel.chat_id == "b")
            )
        ).all()

    reply = await run(copss, "a", "synonyms", "add bikebox, fietskluis")
    assert "re-indexed 1 of this community's" in reply
    assert await _globals(copss) == before
    async with copss.db.session() as s:
        b_after = (
            await s.execute(
                select(Thread.id, Thread.search_text)
                .join(Channel, Channel.community_id == Thread.community_id)
                .where(Channel.chat_id == "b")
            )
        ).all()
        a_text = await s.scalar(
            select(Thread.search_text)
            .join(Channel, Channel.community_id == Thread.community_id)
            .where(Channel.chat_id == "a")
        )
    assert b_after == b_before
    assert a_text is not None and "bikebox" in a_text

    # An edit re-indexes with the community's synonyms too, and /ask reads them.
    assert copss.app.hub is not None
    from bot.events import EditEvent

    await copss.app.hub.sink(
        EditEvent(
            _ref("a"),
            mid_a,
            "Where can I rent a fietskluis near the central station?",
            datetime.now(UTC),
        )
    )
    await copss.settle()
    async with copss.db.session() as s:
        a_text = await s.scalar(
            select(Thread.search_text)
            .join(Channel, Channel.community_id == Thread.community_id)
            .where(Channel.chat_id == "a")
        )
    assert a_text is not None and "bikebox" in a_text and "central" in a_text

    # ask reads the community's synonyms too: "fietskluis" is "bikebox" in A's index now.
    await say(copss, "a", "Try the NS fietsenstalling, they rent lockers monthly.", "bob")
    assert copss.app.hub is not None
    await copss.app.hub.sink(
        MessageEvent(
            _ref("a"),
            "answer-1",
            Author("console", "bob", "bob"),
            "Q-Park at the station rents them monthly.",
            datetime.now(UTC),
            reply_to=mid_a,
        )
    )
    await copss.settle()
    copss.said()
    assert "Q-Park" in await run(copss, "a", "ask", "where to rent a fietskluis near the station")
    assert "Q-Park" not in await run(
        copss, "b", "ask", "where to rent a fietskluis near the station"
    )


async def test_linking_merges_and_unlinking_parts(copss: Harness) -> None:
    await say(copss, "a", "Which gemeente office in Delft does registrations on Saturday?")
    await say(copss, "b", "Which gemeente office in Leiden does registrations on Saturday?")
    await run(copss, "a", "faq", "add delft-office | Delft office? | Stadskantoor. | https://d.nl")
    assert "Link requested" in await run(copss, "a", "link", "console:b")
    assert "Linked" in await run(copss, "b", "link", "console:a")

    async with copss.db.session() as s:
        communities = set(
            await s.scalars(select(Channel.community_id).where(Channel.chat_id.in_(["a", "b"])))
        )
        threads = set((await s.scalars(select(Thread.community_id))).all())
    assert len(communities) == 1 and threads == communities
    assert "delft-office" in await run(copss, "b", "faq", "list")

    assert "Unlinked" in await run(copss, "a", "unlink", "console:b")
    async with copss.db.session() as s:
        rows = dict((await s.execute(select(Channel.chat_id, Channel.community_id))).all())
        thread_rows = (await s.execute(select(Thread.question_text, Thread.community_id))).all()
        names = set((await s.scalars(select(Community.name))).all())
    assert rows["a"] != rows["b"]
    for question, community in thread_rows:
        assert community == (rows["a"] if "Delft" in question else rows["b"])
    # Both keep the entries they shared while linked.
    assert "delft-office" in await run(copss, "a", "faq", "list")
    # (Another member: the same request with the same answer is not repeated to one member.)
    assert "delft-office" in await run(copss, "b", "faq", "list", user="carol")
    assert len(names) >= 2


async def test_stats_count_only_the_own_communitys_feedback(copss: Harness) -> None:
    assert copss.app.hub is not None
    await copss.app.hub.sink(
        MessageEvent(
            _ref("a"),
            "q1",
            Author("console", "alice", "alice"),
            "How do I apply for DigiD?",
            datetime.now(UTC),
        )
    )
    await copss.settle()
    reply = await copss.console.pop(timeout=1)
    from bot.events import ReactionEvent

    await copss.app.hub.sink(
        ReactionEvent(_ref("a"), reply.message_id, Author("console", "alice", "alice"), "✅", True)
    )
    await copss.settle()
    assert "Suggestions rated helpful: 0" not in await run(copss, "a", "stats")
    assert "Suggestions rated helpful: 0" in await run(copss, "b", "stats")


async def test_links_names_this_chat_for_the_other_side(copss: Harness) -> None:
    reply = await run(copss, "a", "links")
    assert "This channel is console:a" in reply and "'link console:a'" in reply


async def test_threshold_says_where_each_level_comes_from(copss: Harness) -> None:
    shown = await run(copss, "a", "threshold")
    assert "answer 0.82 (the default)" in shown
    assert "both on copss's confidence in the match" in shown
    await run(copss, "a", "threshold", "answer 0.9")
    shown = await run(copss, "a", "threshold")
    assert "answer 0.90 (set in this chat; the default is 0.82)" in shown
    assert "suggest 0.42 (the default)" in shown
    assert "Back to the default levels: answer 0.82" in await run(copss, "a", "threshold", "reset")
    assert "answer 0.82 (the default)" in await run(copss, "a", "threshold", user="z")


async def test_stats_does_not_count_copss_as_a_member(copss: Harness) -> None:
    await say(copss, "a", "How do I apply for DigiD?")  # copss answers from the FAQ
    assert "Members active in 30 days: 1." in await run(copss, "a", "stats")
