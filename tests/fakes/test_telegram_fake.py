"""Prove :mod:`tests.fakes.telegram_api` against the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import telegram.error as tg_error
from telegram import (
    Bot,
    BotCommand,
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    Message,
    ReactionTypeEmoji,
    Update,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    MessageReactionHandler,
    filters,
)

from tests.fakes.telegram_api import (
    DEFAULT_TOKEN,
    Drop,
    FakeTelegramAPI,
    RetryAfter,
    ServerError,
    Slow,
)

pytestmark = pytest.mark.asyncio

TOKEN = DEFAULT_TOKEN
GROUP = -1001234567890
ALICE = 4242


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to PTB's timedelta periods.

    Without ``PTB_TIMEDELTA`` PTB 22.8 emits a PTBDeprecationWarning while *constructing*
    ``telegram.error.RetryAfter``; the project's ``filterwarnings = error`` turns that into an
    exception raised instead of RetryAfter.
    """
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN, bot_username="copss_bot") as fake:
        yield fake


@pytest.fixture
async def bot(api: FakeTelegramAPI) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=api.base_url, base_file_url=api.base_file_url) as real_bot:
        yield real_bot


def build_app(api: FakeTelegramAPI) -> Application[Any, Any, Any, Any, Any, Any]:
    return (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )


async def test_application_polls_and_replies(api: FakeTelegramAPI) -> None:
    app = build_app(api)

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            f"echo: {update.effective_message.text}", do_quote=True
        )

    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with app:
        assert app.bot.username == "copss_bot"
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            update = api.message_update(GROUP, ALICE, "hello", first_name="Alice")
            update_id = api.push_update(update)
            user_mid = update["message"]["message_id"]

            sent = await api.wait_for_sent_messages(1, chat_id=GROUP)
            await api.wait_until_confirmed(update_id)
        finally:
            await app.updater.stop()
            await app.stop()

    call = api.calls_to("sendMessage")[0]
    assert call.params["text"] == "echo: hello"
    assert call.params["chat_id"] == GROUP
    assert call.params["reply_parameters"]["message_id"] == user_mid
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.raw["chat_id"] == str(GROUP)  # PTB JSON-encodes non-str values

    reply = sent[0]
    assert reply["text"] == "echo: hello"
    assert reply["from"]["username"] == "copss_bot"
    assert reply["reply_to_message"]["message_id"] == user_mid
    assert reply["message_id"] == user_mid + 1  # one id counter per chat

    offsets = [c.params.get("offset") for c in api.calls_to("getUpdates")]
    assert update_id + 1 in offsets  # confirmed
    assert api.delivery_count(update_id) == 1  # never redelivered
    assert api.pending_updates == []
    assert [c.method for c in api.calls[:2]] == ["getMe", "deleteWebhook"]


async def test_command_entities_and_threads(api: FakeTelegramAPI) -> None:
    app = build_app(api)
    api.add_chat(GROUP, "supergroup", title="Forum", is_forum=True)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"args={context.args}")

    app.add_handler(CommandHandler("start", start))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            api.push_message(
                GROUP, ALICE, "/start@copss_bot x y", message_thread_id=7, is_topic_message=True
            )
            sent = await api.wait_for_sent_messages(1)
        finally:
            await app.updater.stop()
            await app.stop()
    assert sent[0]["text"] == "args=['x', 'y']"
    assert sent[0]["message_thread_id"] == 7
    assert sent[0]["is_topic_message"] is True


async def test_long_poll_wakes_on_push_and_honours_offset(api: FakeTelegramAPI, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=2))
    await api.wait_for(lambda: any(c.status is None for c in api.calls_to("getUpdates")))
    started = time.monotonic()
    first = api.push_update(api.message_update(GROUP, ALICE, "one"))
    updates = await poll
    assert time.monotonic() - started < 1.0
    assert [u.update_id for u in updates] == [first]

    second = api.push_update(api.message_update(GROUP, ALICE, "two"))
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [first, second]  # not confirmed yet
    confirmed = await bot.get_updates(offset=second, timeout=0, limit=1)
    assert [u.update_id for u in confirmed] == [second]
    assert await bot.get_updates(offset=second + 1, timeout=0) == ()


async def test_reactions_need_allowed_updates(api: FakeTelegramAPI, bot: Bot) -> None:
    api.push_update(api.message_reaction_update(GROUP, 1, ALICE, ["👍"]))
    assert await bot.get_updates(timeout=0) == ()
    assert len(api.filtered_updates) == 1

    reaction_id = api.push_update(api.message_reaction_update(GROUP, 1, ALICE, ["🔥"], ["👍"]))
    updates = await bot.get_updates(timeout=0, allowed_updates=Update.ALL_TYPES)
    assert [u.update_id for u in updates] == [reaction_id]
    reaction = updates[0].message_reaction
    assert reaction is not None
    assert [r.emoji for r in reaction.new_reaction if isinstance(r, ReactionTypeEmoji)] == ["🔥"]

    async def on_reaction(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Unused callback; only check_update is exercised."""

    assert MessageReactionHandler(on_reaction).check_update(updates[0])


async def test_unknown_method_is_bad_request(bot: Bot) -> None:
    with pytest.raises(tg_error.BadRequest, match=r"(?i)method not found"):
        await bot.do_api_request("noSuchMethod", api_kwargs={"x": 1})


async def test_wrong_token_is_invalid_token(api: FakeTelegramAPI) -> None:
    with pytest.raises(tg_error.InvalidToken):
        await Bot("1:wrong", base_url=api.base_url).get_me()


async def test_retry_after(api: FakeTelegramAPI, bot: Bot) -> None:
    api.inject("sendMessage", RetryAfter(7))
    with pytest.raises(tg_error.RetryAfter) as info:
        await bot.send_message(GROUP, "hi")
    assert info.value.retry_after == dtm.timedelta(seconds=7)
    assert api.calls_to("sendMessage")[0].status == 429
    assert api.sent_messages() == []
    await bot.send_message(GROUP, "hi")  # the fault applied once only
    assert api.sent_texts() == ["hi"]


@pytest.mark.parametrize("status", [500, 502])
async def test_server_error_is_network_error(api: FakeTelegramAPI, bot: Bot, status: int) -> None:
    api.inject("sendMessage", ServerError(status))
    with pytest.raises(tg_error.NetworkError) as info:
        await bot.send_message(GROUP, "hi")
    assert not isinstance(info.value, tg_error.BadRequest)


async def test_dropped_connection_is_network_error(api: FakeTelegramAPI, bot: Bot) -> None:
    api.inject("sendMessage", Drop())
    with pytest.raises(tg_error.NetworkError, match="disconnected"):
        await bot.send_message(GROUP, "hi")
    assert (await bot.send_message(GROUP, "after")).text == "after"


async def test_slow_answer_times_out(api: FakeTelegramAPI, bot: Bot) -> None:
    api.inject("sendMessage", Slow(0.5))
    with pytest.raises(tg_error.TimedOut):
        await bot.send_message(GROUP, "hi", read_timeout=0.1)


async def test_get_chat_member_statuses(api: FakeTelegramAPI, bot: Bot) -> None:
    api.add_chat(GROUP)
    api.set_member_status(GROUP, ALICE, "administrator", custom_title="boss")
    api.set_member_status(GROUP, 1, "creator")
    api.set_member_status(GROUP, 2, "restricted")
    api.push_message(GROUP, 3, "hello")  # posting makes a member
    admin = await bot.get_chat_member(GROUP, ALICE)
    assert isinstance(admin, ChatMemberAdministrator)
    assert admin.can_delete_messages and admin.custom_title == "boss"
    assert isinstance(await bot.get_chat_member(GROUP, 1), ChatMemberOwner)
    assert isinstance(await bot.get_chat_member(GROUP, 2), ChatMemberRestricted)
    assert isinstance(await bot.get_chat_member(GROUP, 3), ChatMemberMember)
    assert {m.user.id for m in await bot.get_chat_administrators(GROUP)} == {ALICE, 1}


async def test_get_chat_member_answers_per_chat_like_telegram(
    api: FakeTelegramAPI, bot: Bot
) -> None:
    other = -1009876543210
    api.add_chat(GROUP)
    api.add_chat(other)
    api.set_member_status(other, ALICE, "administrator")
    api.push_message(GROUP, 3, "hello")
    # An admin of another group is nobody here; a member here is nobody there.
    assert isinstance(await bot.get_chat_member(GROUP, ALICE), ChatMemberLeft)
    assert isinstance(await bot.get_chat_member(other, 3), ChatMemberLeft)
    assert isinstance(await bot.get_chat_member(other, ALICE), ChatMemberAdministrator)
    with pytest.raises(tg_error.BadRequest, match=r"(?i)chat not found"):
        await bot.get_chat_member(-1001111111111, ALICE)  # the bot is not there
    with pytest.raises(tg_error.BadRequest, match=r"(?i)user not found"):
        await bot.get_chat_member(GROUP, 55555)  # never came across this user
    # Sending as the group (an anonymous admin) joins nobody.
    api.push_message(GROUP, 77, "as the group", sender_chat=GROUP)
    with pytest.raises(tg_error.BadRequest, match=r"(?i)user not found"):
        await bot.get_chat_member(GROUP, 77)


async def test_set_webhook_checks_like_telegram(api: FakeTelegramAPI, bot: Bot) -> None:
    for url, error in (
        ("http://bot.example.org/hook", "HTTPS URL must be provided"),
        ("https://bot.example.org:8080/hook", "only on ports 80, 88, 443 or 8443"),
        ("https://127.0.0.1/hook", "IP address 127.0.0.1 is reserved"),
    ):
        with pytest.raises(tg_error.BadRequest, match=f"(?i){error}"):
            await bot.set_webhook(url)
    for secret, error in (
        ("has space", "unallowed characters"),
        ("colon:no", "unallowed characters"),
        ("x" * 257, "too long"),
    ):
        with pytest.raises(tg_error.BadRequest, match=f"(?i){error}"):
            await bot.set_webhook("https://bot.example.org/hook", secret_token=secret)
    assert api.webhook_url == ""
    assert await bot.set_webhook("https://bot.example.org:8443/hook", secret_token="a-Z_9" * 51)
    assert api.webhook_url == "https://bot.example.org:8443/hook"
    assert await bot.delete_webhook()
    assert api.webhook_url == ""


async def test_chat_migration(api: FakeTelegramAPI, bot: Bot) -> None:
    api.migrate_chat(-555, GROUP)
    with pytest.raises(tg_error.ChatMigrated) as info:
        await bot.send_message(-555, "hi")
    assert info.value.new_chat_id == GROUP
    assert (await bot.send_message(GROUP, "hi")).chat.type == "supergroup"


async def test_message_store_edit_delete_react(api: FakeTelegramAPI, bot: Bot) -> None:
    with pytest.raises(tg_error.BadRequest, match="replied not found"):
        await bot.send_message(GROUP, "x", reply_to_message_id=99)
    sent = await bot.send_message(GROUP, "draft")
    edited = await bot.edit_message_text("final", chat_id=GROUP, message_id=sent.message_id)
    assert isinstance(edited, Message) and edited.edit_date is not None
    assert (api.message(GROUP, sent.message_id) or {})["text"] == "final"
    with pytest.raises(tg_error.BadRequest, match="not modified"):
        await bot.edit_message_text("final", chat_id=GROUP, message_id=sent.message_id)
    assert await bot.set_message_reaction(GROUP, sent.message_id, "👍")
    assert api.reactions[0]["reaction"] == [{"type": "emoji", "emoji": "👍"}]
    assert await bot.delete_message(GROUP, sent.message_id)
    with pytest.raises(tg_error.BadRequest, match="to delete not found"):
        await bot.delete_message(GROUP, sent.message_id)
    user_msg = api.push_message(GROUP, ALICE, "spam")["message"]["message_id"]
    with pytest.raises(tg_error.BadRequest, match="can't be deleted"):
        await bot.delete_message(GROUP, user_msg)
    api.set_member_status(GROUP, api.bot_id, "administrator")
    assert await bot.delete_message(GROUP, user_msg)
    with pytest.raises(tg_error.BadRequest, match="text is empty"):
        await bot.send_message(GROUP, " ")


async def test_commands_roundtrip(api: FakeTelegramAPI, bot: Bot) -> None:
    assert await bot.set_my_commands([BotCommand("help", "Show help")])
    assert await bot.get_my_commands() == (BotCommand("help", "Show help"),)
    assert api.commands() == [{"command": "help", "description": "Show help"}]


async def test_rate_limit_enforcement(api: FakeTelegramAPI, bot: Bot) -> None:
    api.enforce_rate_limits(per_chat_per_sec=1.0, per_group_per_min=20, global_per_sec=30)
    await bot.send_message(GROUP, "1")
    await bot.send_message(-1009, "other chat is fine")
    with pytest.raises(tg_error.RetryAfter):
        await bot.send_message(GROUP, "2 too fast")
    assert api.rate_limit_violations == 1
    assert api.rate_limit_log[0].kind == "per_chat"
    assert api.sent_texts(GROUP) == ["1"]
