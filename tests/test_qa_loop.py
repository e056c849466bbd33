"""The Q&A loop on the console harness with a real SQLite file."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import Answer, FaqEntry, Thread
from tests.conftest import Harness


async def test_kb_question_gets_entry_with_source(copss: Harness) -> None:
    await copss.say("How do I get a BSN number?", user="alice")
    [reply] = copss.said()
    assert "BSN" in reply.text
    async with copss.db.session() as s:
        entry = await s.scalar(select(FaqEntry).where(FaqEntry.slug.like("bsn%")))
    assert entry is not None and entry.source_url
    assert entry.source_url in reply.text
    assert reply.reply_to == 1


async def test_unrelated_message_gets_nothing(copss: Harness) -> None:
    await copss.say("Good morning everyone, lovely sunny day today", user="alice")
    await copss.say("Where can I buy a second hand bike cheaply?", user="alice")
    assert copss.said() == []


async def test_answer_recorded_and_later_question_pointed_at_it(copss: Harness) -> None:
    q = await copss.say("Which supermarket sells cheap oat milk near Utrecht Centraal?", "alice")
    assert copss.said() == []  # nothing known yet
    a = await copss.say("Lidl at Vredenburg has the cheapest oat milk, about 1 euro.", "bob", q)
    assert copss.said() == []  # an answer is recorded silently
    async with copss.db.session() as s:
        thread = await s.scalar(select(Thread))
        answers = (await s.scalars(select(Answer))).all()
    assert thread is not None and thread.status == "answered"
    assert len(answers) == 1 and thread.first_answer_at is not None
    assert a == q + 1

    await copss.say("where to buy cheap oat milk in utrecht centraal?", "carol")
    [reply] = copss.said()
    assert "bob" in reply.text
    assert "Lidl at Vredenburg" in reply.text
    assert thread.first_answer_at.strftime("%d %b %Y") in reply.text


async def test_asker_check_mark_solves_thread(copss: Harness) -> None:
    q = await copss.say("Does anyone know a good dentist in Leiden taking new patients?", "alice")
    a = await copss.say("Tandartspraktijk Centrum in Leiden took me last month.", "bob", q)
    await copss.console.react(a, "✅", user="mallory")  # not the asker: no effect
    await copss.settle()
    async with copss.db.session() as s:
        assert (await s.scalar(select(Thread.status))) == "answered"
    await copss.console.react(a, "✅", user="alice")
    await copss.settle()
    async with copss.db.session() as s:
        thread = await s.scalar(select(Thread))
        assert thread is not None and thread.status == "solved"
        assert thread.accepted_answer_id is not None


async def test_thanks_reply_by_asker_solves(copss: Harness) -> None:
    q = await copss.say("Is there a night train from Amsterdam to Vienna these days?", "alice")
    a = await copss.say("Yes, the Nightjet runs from Amsterdam Centraal every night.", "bob", q)
    await copss.say("Thanks, booked it!", "alice", a)
    async with copss.db.session() as s:
        assert (await s.scalar(select(Thread.status))) == "solved"


async def test_edit_and_delete_of_question_follow_into_index(copss: Harness) -> None:
    q = await copss.say("Where do I find a cheap climbing gym in Eindhoven?", "alice")
    await copss.say("Neoliet Eindhoven has student prices.", "bob", q)
    await copss.console.edit_message(q, "Where do I find a cheap bouldering hall in Eindhoven?")
    await copss.settle()
    await copss.say("any cheap bouldering hall in eindhoven?", "carol")
    [reply] = copss.said()
    assert "Neoliet" in reply.text
    await copss.console.delete_message(q)
    await copss.settle()
    await copss.say("is there a cheap bouldering hall in eindhoven?", "dave")
    assert all("Neoliet" not in r.text for r in copss.said())


async def test_duplicate_delivery_is_handled_once(copss: Harness) -> None:
    from datetime import UTC, datetime

    from bot.events import Author, MessageEvent

    event = MessageEvent(
        copss.console.channel,
        "dup-1",
        Author("console", "alice", "alice"),
        "How do I get a BSN number?",
        datetime.now(UTC),
    )
    assert copss.app.hub is not None
    await copss.app.hub.sink(event)
    await copss.app.hub.sink(event)
    await copss.settle()
    assert len(copss.said()) == 1


async def test_help_and_unknown_command(copss: Harness) -> None:
    reply = await copss.command("help")
    assert "ask TEXT" in reply.text
    reply = await copss.command("hlep")
    assert "help" in reply.text and "Did you mean" in reply.text
    reply = await copss.command("ask", "how do I apply for DigiD")
    assert "DigiD" in reply.text


async def test_store_failure_is_retried_not_fatal(
    copss: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    import bot.core

    monkeypatch.setattr(bot.supervision, "STORE_RETRY", 0.01)
    hub = copss.app.hub
    assert hub is not None
    real_finish = hub.sender._finish
    failures = [OperationalError("UPDATE outbox", {}, Exception("database is locked"))]

    async def flaky_finish(*args: object, **kwargs: object) -> None:
        if failures:
            raise failures.pop()
        await real_finish(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hub.sender, "_finish", flaky_finish)
    await copss.say("How do I get a BSN number?", "alice")
    said = copss.said()
    # The send whose result could not be recorded is sent again: the reply arrives.
    assert said and all("BSN" in s.text for s in said)
    assert not failures


async def test_a_question_after_a_long_greeting_is_answered(copss: Harness) -> None:
    await copss.say(
        "Hi everyone, greetings from a rainy Groningen, my partner and I arrived from Brazil "
        "two weeks ago and the kids started school. How do I file my income tax return?",
        user="alice",
    )
    replies = copss.said()
    assert len(replies) == 1 and "income tax return" in replies[0].text
    # A story ending in a question with too little to match stays unanswered.
    await copss.say(
        "My employer in Rotterdam is slow with the paperwork and my landlord is not helping "
        "either. Any advice?",
        user="bob",
    )
    assert copss.said() == []
