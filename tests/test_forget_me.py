"""`forget me` erases exactly one member: found by ids, never by a text search of their name.

Three Telegram members with overlapping names and ids ("an" 7, "ann" 77, "anna" 777) talk in a
group bridged to a console chat. After "ann" asks to be forgotten, no row names or references
them, their copies and copss's replies quoting them (its suggestions, and its answer to another
member's /ask) are deleted on the platforms, and every row of "an" and "anna" is exactly as it
was.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import MetaData, select, text

from adapters.console import ConsoleAdapter
from storage.models import Member, Message
from tests.adapters.tg_harness import GROUP, TelegramHarness
from tests.conftest import Harness

AN, ANN, ANNA = 7, 77, 777
NAMES = {AN: "an", ANN: "ann", ANNA: "anna"}
#: Words only ann ever wrote: after the erasure they are nowhere in the store.
ANN_WORDS = ("Kringloopwinkel Zuilen", "wasmachine tweedehands Overvecht")


async def _dump(h: TelegramHarness) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (the full-text index as its text)."""
    meta = MetaData()
    out: dict[str, list[dict[str, Any]]] = {}
    async with h.db.session() as s:
        await s.run_sync(lambda sync: meta.reflect(sync.connection()))
        for table in meta.tables.values():
            if table.name.startswith("search_"):
                continue
            rows = (await s.execute(select(table))).mappings().all()
            out[table.name] = [dict(r) for r in rows]
        out["search_fts"] = [
            {"text": t} for t in (await s.scalars(text("SELECT text FROM search_fts"))).all()
        ]
    return out


def _by(rows: list[dict[str, Any]], key: str, values: set[Any]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get(key) in values]


async def test_forget_me_erases_exactly_one_member(
    bridged: tuple[TelegramHarness, ConsoleAdapter],
) -> None:
    tg, console = bridged
    api = tg.api

    async def say(user: int, words: str, reply_to: int | None = None) -> int:
        _, mid = await tg.push(
            api.message_update(
                GROUP, user, words, first_name=NAMES[user], reply_to_message_id=reply_to
            )
        )
        return mid

    q_an = await say(AN, "Where can I buy a second hand washing machine in Utrecht?")
    a_ann = await say(ANN, f"Try {ANN_WORDS[0]}, they test every machine.", q_an)
    q_ann = await say(ANN, f"Is a {ANN_WORDS[1]} worth it, or does it break fast?")
    a_anna = await say(ANNA, "Mine from Marktplaats lasted five years, so worth it.", q_ann)
    await tg.push(api.message_reaction_update(GROUP, a_anna, ANN, ["✅"], first_name="ann"))
    q_anna = await say(ANNA, "Which gemeente office in Utrecht registers newcomers on Saturday?")
    await say(AN, "Stadskantoor near Utrecht Centraal, book online first.", q_anna)
    # A newcomer's question that copss answers by quoting ann's answer.
    await say(AN, "where to buy a second hand washing machine in utrecht?")
    quoting = [
        m for m in api.sent_messages(GROUP) if ANN_WORDS[0] in m["text"] and m["from"]["is_bot"]
    ]
    quoting = [m for m in quoting if "ann" in m["text"] and "(Telegram)" not in m["text"]]
    assert quoting, "copss quoted ann's answer"
    console_copies = [s for s in console.said if s.text.startswith("ann (Telegram)")]
    assert len(console_copies) == 2
    # anna looks it up with /ask: copss's answer to the command quotes ann's answer too.
    ask = await say(ANNA, "/ask second hand washing machine utrecht")
    asked = [
        m
        for m in api.sent_messages(GROUP)
        if (m.get("reply_to_message") or {}).get("message_id") == ask
    ]
    assert asked and ANN_WORDS[0] in asked[0]["text"], asked

    async with tg.db.session() as s:
        members = {
            m.user_id: m.id
            for m in (await s.scalars(select(Member).where(Member.platform == "telegram"))).all()
        }
    before = await _dump(tg)
    await say(ANN, "/forget me")
    await tg.settle()
    after = await _dump(tg)

    # Nothing names or references ann.
    ann_id = members[str(ANN)]
    assert not _by(after["member"], "id", {ann_id})
    assert not _by(after["message"], "member_id", {ann_id})
    dumped = json.dumps(after, default=str)
    for words in ANN_WORDS:
        assert words not in dumped
    for row in after["inbox"]:
        author = row["payload"].get("author") or {}
        assert not (author.get("platform") == "telegram" and author.get("user_id") == str(ANN))
        about = (
            (row["payload"].get("channel") or {}).get("chat_id"),
            row["payload"].get("message_id"),
        )
        assert about not in {(str(GROUP), str(a_ann)), (str(GROUP), str(q_ann))}
    assert not [r for r in after["outbox"] if r["as_name"] == "ann (Telegram)"]
    assert not [r for r in after["audit_log"] if r["actor"].startswith(f"telegram:{ANN} (")]

    # Every row of an and anna is exactly as it was.
    others = {members[str(AN)], members[str(ANNA)]}
    assert _by(after["member"], "id", others) == _by(before["member"], "id", others)
    assert _by(after["message"], "member_id", others) == _by(before["message"], "member_id", others)
    their_messages = {r["id"] for r in _by(before["message"], "member_id", others)}
    untouched_before = [t for t in _by(before["thread"], "question_message_id", their_messages)]
    by_id_after = {t["id"]: t for t in after["thread"]}
    for thread in untouched_before:
        now = by_id_after[thread["id"]]
        if thread["question_text"].startswith("Where can I buy"):
            # an's question lost ann's answer, so it is open again; nothing else changed.
            changed = {k for k in thread if thread[k] != now[k]}
            assert changed <= {"status", "first_answer_at", "accepted_answer_id"}
            assert now["status"] == "open"
        else:
            assert now == thread
    for row in before["inbox"]:
        author = row["payload"].get("author") or {}
        if author.get("user_id") in {str(AN), str(ANNA)}:
            assert row in after["inbox"]

    # ann's bridged copies and copss's reply quoting ann are deleted on the platforms.
    deleted_tg = {int(c.params["message_id"]) for c in api.calls_to("deleteMessage")}
    assert {m["message_id"] for m in quoting} <= deleted_tg
    assert {m["message_id"] for m in asked} <= deleted_tg
    deletes = [
        r
        for r in after["outbox"]
        if r["platform"] == "console" and r["meta"].get("action") == "delete"
    ]
    deleted_console = {i for r in deletes for i in r["meta"].get("message_ids", [])}
    assert {c.message_id for c in console_copies} <= deleted_console


@pytest.mark.parametrize("name", ["the", "%%%", "_", "an"])
async def test_a_name_that_is_a_pattern_or_common_word_erases_nobody_else(
    copss: Harness, name: str
) -> None:
    q = await copss.say("Where is the best place to learn Dutch in Leiden?", "anna")
    await copss.say("The volksuniversiteit has evening classes, 100% worth it.", "bob", q)
    await copss.say(f"hi, I am {name} and new here", name)
    copss.said()
    async with copss.db.session() as s:
        before = (await s.execute(select(Message.id, Message.text, Message.deleted))).all()
        theirs = await s.scalar(select(Member.id).where(Member.user_id == name.casefold()))
    await copss.command("forget", "me", user=name)
    async with copss.db.session() as s:
        after = (await s.execute(select(Message.id, Message.text, Message.deleted))).all()
        mine = set((await s.scalars(select(Message.id).where(Message.member_id == theirs))).all())
    assert not mine
    kept = [row for row in before if row in after]
    # Only their own message went (copss's own replies may have been added since).
    assert len(kept) == len(before) - 1
