"""Bridging a console chat with a Telegram group (the real PTB client against the fake)."""

from __future__ import annotations

from sqlalchemy import select

from adapters.console import ConsoleAdapter
from storage.models import Answer, Member, Message, MessageCopy, Thread
from tests.adapters.tg_harness import GROUP, TelegramHarness

ALICE = 301


async def test_question_answer_edit_delete_across_the_bridge(
    bridged: tuple[TelegramHarness, ConsoleAdapter],
) -> None:
    tg, console = bridged
    api = tg.api
    _, q = await tg.push(
        api.message_update(
            GROUP, ALICE, "Which bakery in Haarlem sells real rye bread?", first_name="Alice"
        )
    )
    copy = await console.pop(2)
    assert copy.text == "Alice (Telegram): Which bakery in Haarlem sells real rye bread?"

    a = await console.push("Bakkerij Vaneker on the Grote Markt.", user="bob", reply_to=copy.number)
    await tg.settle()
    relayed = api.sent_messages(GROUP)[-1]
    assert relayed["text"] == "<b>bob (console)</b>: Bakkerij Vaneker on the Grote Markt."
    assert relayed["reply_to_message"]["message_id"] == q
    async with tg.db.session() as s:
        thread = await s.scalar(select(Thread))
        answer = await s.scalar(select(Answer))
        assert thread is not None and thread.status == "answered"
        assert answer is not None
        answer_msg = await s.get(Message, answer.message_id)
        author = await s.get(Member, answer_msg.member_id) if answer_msg else None
    assert author is not None and author.platform == "console"

    await console.edit_message(a, "Bakkerij Vaneker on the Grote Markt, open from 8.")
    await tg.settle()
    [edit] = api.calls_to("editMessageText")
    assert (
        edit.params["text"]
        == "<b>bob (console)</b>: Bakkerij Vaneker on the Grote Markt, open from 8."
    )
    assert int(edit.params["message_id"]) == relayed["message_id"]

    await console.delete_message(a)
    await tg.settle()
    [deleted] = api.calls_to("deleteMessage")
    assert int(deleted.params["message_id"]) == relayed["message_id"]

    async with tg.db.session() as s:
        copies = (await s.scalars(select(MessageCopy))).all()
    assert len(copies) == 2


async def test_reworded_question_finds_thread_answered_on_other_side(
    bridged: tuple[TelegramHarness, ConsoleAdapter],
) -> None:
    tg, console = bridged
    api = tg.api
    await tg.push(api.message_update(GROUP, ALICE, "Where can I recycle old paint in Leiden?"))
    copy = await console.pop(2)
    await console.push("The milieustraat at Lammenschansweg takes paint.", "bob", copy.number)
    await tg.settle()
    await console.push("where to recycle old paint in leiden??", user="carol")
    await tg.settle()
    said = [s.text for s in console.said]
    assert any("Lammenschansweg" in t and "answered before" in t for t in said)


async def test_nothing_relayed_twice_and_bot_output_not_relayed(
    bridged: tuple[TelegramHarness, ConsoleAdapter],
) -> None:
    tg, console = bridged
    api = tg.api
    before = len(api.sent_messages(GROUP))
    await tg.push(api.message_update(GROUP, ALICE, "How do I get a BSN number?"))
    # Telegram side: copss's suggestion only; the console gets the copy only (the suggestion
    # copss posted on Telegram is not relayed back as a message).
    sent = api.sent_messages(GROUP)[before:]
    assert len(sent) == 1 and "BSN" in sent[0]["text"]
    texts = [s.text for s in console.said]
    assert texts == ["Alice (Telegram): How do I get a BSN number?"]
    # The same update delivered again changes nothing.
    update = api.message_update(GROUP, ALICE, "Dup?", message_id=9999)
    api.push_update(update)
    api.push_update(dict(update))
    await tg.settle()
    assert [s.text for s in console.said].count("Alice (Telegram): Dup?") == 1


async def test_forget_me_deletes_bridged_copies(
    bridged: tuple[TelegramHarness, ConsoleAdapter],
) -> None:
    tg, console = bridged
    api = tg.api
    await console.push("My landlord in Delft keeps my deposit, what now?", user="zoe")
    await console.push("Also: is 800 euro for a room in Delft normal?", user="zoe")
    await tg.settle()
    copies = [m["message_id"] for m in api.sent_messages(GROUP) if "zoe" in m["text"]]
    assert len(copies) == 2
    await console.command("forget", "me", user="zoe")
    await tg.settle()
    deleted = sorted(int(c.params["message_id"]) for c in api.calls_to("deleteMessage"))
    assert deleted == sorted(copies)
    async with tg.db.session() as s:
        assert await s.scalar(select(Member).where(Member.user_id == "zoe")) is None
        assert (await s.scalars(select(MessageCopy))).all() == []


async def test_the_asker_accepts_a_bridged_answer_with_a_tick_on_its_copy(
    bridged: tuple[TelegramHarness, ConsoleAdapter],
) -> None:
    # Alice asks on Telegram, bob answers in the console; on Telegram Alice sees copss's copy
    # of bob's answer, and her ✅ on that copy accepts bob's answer. A ✅ by someone else on
    # the copy changes nothing.
    tg, console = bridged
    api = tg.api
    await tg.push(
        api.message_update(GROUP, ALICE, "Where can I renew a Dutch passport?", first_name="Alice")
    )
    copy = await console.pop(2)
    await console.push("At your gemeente, by appointment.", user="bob", reply_to=copy.number)
    await tg.settle()
    relayed = api.sent_messages(GROUP)[-1]
    assert relayed["text"].startswith("<b>bob (console)</b>")

    await tg.push(api.message_reaction_update(GROUP, relayed["message_id"], 999, ["✅"]))
    await tg.settle()
    async with tg.db.session() as s:
        thread = await s.scalar(select(Thread))
        assert thread is not None and thread.status == "answered"

    await tg.push(
        api.message_reaction_update(GROUP, relayed["message_id"], ALICE, ["✅"], first_name="Alice")
    )
    await tg.settle()
    async with tg.db.session() as s:
        thread = await s.scalar(select(Thread))
        answer = await s.scalar(select(Answer))
    assert thread is not None and answer is not None
    assert thread.status == "solved" and thread.accepted_answer_id == answer.id
