"""copss on the real python-telegram-bot client, end to end through the fake Bot API."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from storage.models import Answer, InboxEvent, Message, OutboxMessage, Thread
from tests.adapters.tg_harness import GROUP, TIME_SCALE, TelegramHarness
from tests.fakes.telegram_api import DEFAULT_TOKEN, Drop, FakeTelegramAPI, RetryAfter, ServerError

ALICE, BOB, CAROL, ADMIN = 101, 102, 103, 104


@pytest.fixture
async def tg(tmp_path: Path) -> AsyncIterator[TelegramHarness]:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL", is_forum=True)
        harness = TelegramHarness(api, tmp_path)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


def replies_to(api: FakeTelegramAPI, message_id: int) -> list[dict[str, object]]:
    return [
        m
        for m in api.sent_messages(GROUP)
        if (m.get("reply_to_message") or {}).get("message_id") == message_id
    ]


async def test_question_answer_and_reworded_question(tg: TelegramHarness) -> None:
    api = tg.api
    _, q = await tg.push(
        api.message_update(
            GROUP,
            ALICE,
            "Which supermarket sells cheap oat milk near Utrecht Centraal?",
            first_name="Alice",
        )
    )
    assert replies_to(api, q) == []
    await tg.push(
        api.message_update(
            GROUP,
            BOB,
            "Lidl at Vredenburg, about 1 euro a litre.",
            first_name="Bob",
            reply_to_message_id=q,
        )
    )
    async with tg.db.session() as s:
        thread = await s.scalar(select(Thread))
        assert thread is not None and thread.status == "answered"
        assert await s.scalar(select(func.count(Answer.id))) == 1

    _, q2 = await tg.push(
        api.message_update(
            GROUP, CAROL, "where to buy cheap oat milk around utrecht centraal?", first_name="Carol"
        )
    )
    [reply] = replies_to(api, q2)
    assert "Bob" in reply["text"] and "Lidl at Vredenburg" in reply["text"]
    assert all(c.params["parse_mode"] == "HTML" for c in api.calls_to("sendMessage"))


async def test_edit_updates_stored_text(tg: TelegramHarness) -> None:
    api = tg.api
    _, q = await tg.push(api.message_update(GROUP, ALICE, "Is the IND desk in Zwolle open?"))
    await tg.push(
        api.edited_message_update(GROUP, q, "Is the IND desk in Den Bosch open on Fridays?")
    )
    async with tg.db.session() as s:
        texts = (
            await s.scalars(select(Message.text).where(Message.platform_message_id == str(q)))
        ).all()
        thread = await s.scalar(select(Thread))
    assert texts == ["Is the IND desk in Den Bosch open on Fridays?"]
    assert thread is not None and "Den Bosch" in thread.question_text


async def test_topic_question_answered_in_same_topic(tg: TelegramHarness) -> None:
    api = tg.api
    _, q = await tg.push(
        api.message_update(
            GROUP, ALICE, "How do I get a BSN number?", message_thread_id=77, is_topic_message=True
        )
    )
    [reply] = replies_to(api, q)
    assert reply.get("message_thread_id") == 77
    assert "BSN" in reply["text"] and "https://" in reply["text"]


async def test_html_is_escaped_and_long_text_split(tg: TelegramHarness) -> None:
    api = tg.api
    body = "<b>not bold</b> & " + ("lorem ipsum " * 800)
    async with tg.db.session() as s:
        await s.execute(
            insert(OutboxMessage).values(
                platform="telegram", chat_id=str(GROUP), thread_id="", text=body, meta={}
            )
        )
    assert tg.app is not None and tg.app.hub is not None
    tg.app.hub.wake_sender("telegram")
    await api.wait_for_sent_messages(3, chat_id=GROUP, within=10)
    sent = api.sent_messages(GROUP)
    assert all(len(m["text"]) <= 4096 for m in sent)
    assert sent[0]["text"].startswith("&lt;b&gt;not bold&lt;/b&gt; &amp; ")
    assert sum(
        len(m["text"].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) for m in sent
    ) == len(body)


@pytest.mark.faults
async def test_burst_of_500_with_faults_delivered_once_in_order(
    tg: TelegramHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seven faults all hit the chat's first row (order holds), so its backoff doubles each
    # time: from copss's 1 s that is up to 127 s in all; scaled down like the rate limits.
    import bot.sender

    monkeypatch.setattr(bot.sender, "BACKOFF_BASE", 0.05)
    api = tg.api
    api.enforce_rate_limits(time_scale=TIME_SCALE, tolerance=0.002)
    api.inject("sendMessage", ServerError(502), times=3)
    api.inject("sendMessage", RetryAfter(1))
    api.inject("sendMessage", Drop())
    api.inject("sendMessage", ServerError(500), times=2)
    rows = [
        {
            "platform": "telegram",
            "chat_id": str(GROUP),
            "thread_id": "",
            "text": f"burst {i:03d}",
            "meta": {},
        }
        for i in range(500)
    ]
    async with tg.db.session() as s:
        await s.execute(insert(OutboxMessage), rows)
    assert tg.app is not None and tg.app.hub is not None
    tg.app.hub.wake_sender("telegram")
    await api.wait_for_sent_messages(500, chat_id=GROUP, within=120)
    await tg.app.hub.settled()
    texts = [m["text"] for m in api.sent_messages(GROUP)]
    assert texts == [f"burst {i:03d}" for i in range(500)]
    assert api.rate_limit_violations == 0
    async with tg.db.session() as s:
        states = (await s.scalars(select(OutboxMessage.state))).all()
    assert set(states) == {"sent"} and len(states) == 500


@pytest.mark.faults
async def test_restart_mid_stream_loses_nothing_and_repeats_nothing(tg: TelegramHarness) -> None:
    api = tg.api
    topics = [
        "a BSN number",
        "DigiD",
        "health insurance",
        "huurtoeslag",
        "the 30% ruling",
        "a GP",
        "a driving licence exchange",
        "kinderbijslag",
        "an M-form",
        "a bank account",
    ]
    questions = [f"How do I get {topics[i % 10]}?" for i in range(30)]
    ids = []
    for i, text in enumerate(questions):
        update = api.message_update(GROUP, 200 + i, text, first_name=f"M{i}")
        api.push_update(update)
        ids.append(update["message"]["message_id"])
        if i == 12:
            await tg.stop(abrupt=True)  # crash while updates are in flight
        if i == 20:
            await tg.start()
    await tg.settle()
    await tg.stop()
    await tg.start()  # a second, clean restart re-reads nothing twice
    await tg.settle()
    async with tg.db.session() as s:
        stored = (await s.scalars(select(InboxEvent.dedup_key))).all()
        threads = await s.scalar(select(func.count(Thread.id)))
        outbox = (await s.scalars(select(OutboxMessage))).all()
    assert len(stored) == len(set(stored)) == 30
    assert threads == 30
    # Every reply copss queued was delivered exactly once, and nothing else was sent.
    replied = [
        m["reply_to_message"]["message_id"]
        for m in api.sent_messages(GROUP)
        if m.get("reply_to_message")
    ]
    assert len(outbox) == 30 and all(row.state == "sent" for row in outbox)
    assert sorted(replied) == sorted(int(row.reply_to or 0) for row in outbox)
    assert len(replied) == len(set(replied)) and set(replied) <= set(ids)


async def test_admin_commands_need_platform_admins(tg: TelegramHarness) -> None:
    api = tg.api
    api.set_member_status(GROUP, ADMIN, "administrator")
    _, m1 = await tg.push(api.message_update(GROUP, ALICE, "/stats"))
    _, m2 = await tg.push(api.message_update(GROUP, ADMIN, "/stats@copss_bot"))
    _, m3 = await tg.push(api.message_update(GROUP, ALICE, "/stats", sender_chat=GROUP))
    _, m4 = await tg.push(api.message_update(GROUP, ALICE, "/stats", sender_chat=-100999))
    assert "for admins" in replies_to(api, m1)[0]["text"]
    assert "Questions:" in replies_to(api, m2)[0]["text"]
    assert "Questions:" in replies_to(api, m3)[0]["text"]  # anonymous admin
    assert "for admins" in replies_to(api, m4)[0]["text"]  # sent as another channel
    api.set_member_status(GROUP, ADMIN, "member")  # demoted: asked again, not cached
    _, m5 = await tg.push(api.message_update(GROUP, ADMIN, "/stats"))
    assert "for admins" in replies_to(api, m5)[0]["text"]
    assert len(api.calls_to("getChatMember")) == 3


async def test_commands_menu_announced(tg: TelegramHarness) -> None:
    assert [c["command"] for c in tg.api.commands()] == ["help"]


async def test_token_never_logged(tmp_path: Path) -> None:
    from bot.logs import setup_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("DEBUG", stream=stream)
    try:
        async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
            api.add_chat(GROUP, "supergroup", title="Expats NL")
            harness = TelegramHarness(api, tmp_path)
            await harness.start()
            api.inject("sendMessage", ServerError(502))
            await harness.push(api.message_update(GROUP, ALICE, "How do I get a BSN number?"))
            await harness.stop()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    output = stream.getvalue()
    assert "telegram: logged in as @copss_bot" in output
    assert any(s in output for s in ("502", "Bad Gateway", "unreachable", "delayed"))
    assert DEFAULT_TOKEN not in output
    assert DEFAULT_TOKEN.split(":")[1] not in output


ADMIN_CALLS = [
    "/faq list",
    "/faq add x | y | z | https://example.org/",
    "/export",
    "/threshold answer 0.9",
    "/synonyms add a, b",
    "/unsolved",
    "/delete everywhere",
    "/stats",
    "/audit",
    "/undelivered retry",
    "/link discord:123",
    "/unlink discord:123",
    "/links",
]


async def test_every_admin_command_refused_for_members(tg: TelegramHarness) -> None:
    from bot.features.commands import all_commands

    admin_names = {c.name for c in all_commands() if c.admin}
    assert {call.split()[0][1:] for call in ADMIN_CALLS} == admin_names
    api = tg.api
    for call in ADMIN_CALLS:
        _, mid = await tg.push(api.message_update(GROUP, ALICE, call))
        [reply] = replies_to(api, mid)
        assert "is for admins of this community" in reply["text"], call
    async with tg.db.session() as s:
        from storage.models import AuditLog, Community

        results = (await s.scalars(select(AuditLog.result))).all()
        settings = (await s.scalars(select(Community.settings))).all()
    assert results == ["refused: not an admin"] * len(ADMIN_CALLS)
    assert settings and all(x == {} for x in settings)  # no community changed


async def test_webhook_mode_checks_secret_and_stores_before_ok(tmp_path: Path) -> None:
    import socket

    import aiohttp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Telegram calls the public https address; the reverse proxy forwards to copss locally.
    url = "https://bot.example.org/telegram/hook"
    local = f"http://127.0.0.1:{port}/telegram/hook"
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL")
        harness = TelegramHarness(
            api,
            tmp_path,
            mode="webhook",
            webhook_url=url,
            webhook_secret="s3cret-hook",
            listen="127.0.0.1",
            port=port,
        )
        await harness.start_webhook()
        try:
            [hook] = api.calls_to("setWebhook")
            assert hook.params["url"] == url and hook.params["secret_token"] == "s3cret-hook"
            update = api.message_update(GROUP, ALICE, "How do I get a BSN number?")
            update["update_id"] = 1
            async with aiohttp.ClientSession() as http:
                bad = await http.post(
                    local, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
                )
                assert bad.status == 403
                good = await http.post(
                    local, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-hook"}
                )
                assert good.status == 200
                junk = await http.post(
                    local,
                    data=b"{not json",
                    headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-hook"},
                )
                assert junk.status == 400
            async with harness.db.session() as s:
                stored = (await s.scalars(select(InboxEvent))).all()
            assert len(stored) == 1  # stored before the 200 went out
            assert harness.app is not None and harness.app.hub is not None
            await harness.app.hub.settled()
            assert "BSN" in api.sent_messages(GROUP)[-1]["text"]
        finally:
            await harness.stop()


async def test_group_upgraded_to_supergroup_keeps_its_records(tg: TelegramHarness) -> None:
    api = tg.api
    old, new = -4242, -1004242
    api.add_chat(old, "group", title="Expats (old group)")
    _, q = await tg.push(
        api.message_update(old, ALICE, "Where do I renew my residence card?", chat_type="group")
    )
    await tg.push(
        api.message_update(
            old, BOB, "At the IND desk, book online.", chat_type="group", reply_to_message_id=q
        )
    )
    api.migrate_chat(old, new)
    # Telegram's service message in the old group announces the new id.
    service = api.message_update(old, ALICE, "", chat_type="group")
    service["message"].pop("text")
    service["message"]["migrate_to_chat_id"] = new
    await tg.push(service)
    async with tg.db.session() as s:
        from storage.models import Channel

        chats = await s.scalars(select(Channel.chat_id).where(Channel.platform == "telegram"))
        chat_ids = set(chats.all())
        thread = await s.scalar(select(Thread))
    assert str(new) in chat_ids and str(old) not in chat_ids
    assert thread is not None and thread.status == "answered"
    # A reply queued for the old id still arrives, in the new chat.
    async with tg.db.session() as s:
        await s.execute(
            insert(OutboxMessage).values(
                platform="telegram", chat_id=str(old), thread_id="", text="late reply", meta={}
            )
        )
    assert tg.app is not None and tg.app.hub is not None
    tg.app.hub.wake_sender("telegram")
    await api.wait_for_sent_messages(1, chat_id=new, within=10)
    assert api.sent_texts(new) == ["late reply"]
