"""Bridging a Discord channel with a Telegram group: the real discord.py and the real
python-telegram-bot clients against their loopback fakes, both at once, in one copss."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from adapters.discord.translate import (
    BotView,
    copy_head,
    is_copss_webhook,
    name_prefix,
    reply_line,
    webhook_username,
)
from adapters.text import outgoing_text
from bot.events import DeleteEvent, EditEvent
from storage.models import Answer, Member, Message, Thread
from tests.adapters.bridge_harness import (
    DC_ALICE,
    DC_BOB,
    DISCORD_TOKEN,
    GENERAL,
    GROUP,
    GUILD,
    TG_ADMIN,
    TG_ANNA,
    TG_BEN,
    THREAD,
    BridgeHarness,
    build_worlds,
)
from tests.adapters.tg_harness import TIME_SCALE
from tests.fakes.discord_gateway import (
    DEFAULT_BOT_PERMISSIONS,
    JSON,
    MANAGE_WEBHOOKS,
    FakeDiscord,
    HTTPError,
    Slow,
)
from tests.fakes.discord_gateway import RateLimited as DcRateLimited
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI
from tests.fakes.telegram_api import RetryAfter as TgRetryAfter
from tests.fakes.telegram_api import ServerError as TgServerError

NOBODY: JSON = {"parse": []}
ROLE = 910_000_000_000_000_020
PLAN_URL = "https://cdn.invalid/attachments/1/plan.png"
PLAN = {
    "id": "1",
    "filename": "plan.png",
    "size": 10,
    "url": PLAN_URL,
    "proxy_url": PLAN_URL,
    "content_type": "image/png",
}


@pytest.fixture
async def bridged(tmp_path: Path) -> AsyncIterator[BridgeHarness]:
    """copss with #general linked to the Telegram group (asked on Discord, confirmed on
    Telegram)."""
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as tg, FakeDiscord(token=DISCORD_TOKEN) as dc:
        build_worlds(tg, dc)
        harness = BridgeHarness(tg, dc, tmp_path)
        await harness.start()
        try:
            await harness.link()
            yield harness
        finally:
            await harness.stop()


def hooked(dc: FakeDiscord, channel: int = GENERAL) -> list[JSON]:
    """Messages copss posted through webhooks in a channel, oldest first."""
    return dc.webhook_messages(channel)


def assert_pings_nobody(message: JSON) -> None:
    assert message["allowed_mentions"] == NOBODY, message["allowed_mentions"]
    assert message["mentions"] == [] and message["mention_roles"] == []
    assert message["mention_everyone"] is False


# -- Q&A across the bridge ----------------------------------------------------------------------


async def test_question_on_telegram_answered_on_discord(bridged: BridgeHarness) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    question = "Which bakery in Haarlem sells real rye bread?"
    q = await h.tg_say(TG_ANNA, question)
    [copy] = hooked(dc)
    assert copy["content"] == question and copy["author"]["username"] == "Anna (Telegram)"
    assert_pings_nobody(copy)

    # A Discord member answers the webhook copy: Telegram sees a reply to the question.
    answer = "Bakkerij Vaneker on the Grote Markt."
    a = await h.dc_say(DC_BOB, answer, reply_to=int(copy["id"]))
    relayed = tg.sent_messages(GROUP)[-1]
    assert relayed["text"] == f"<b>Bob (Discord)</b>: {answer}"
    assert relayed["reply_to_message"]["message_id"] == q

    # One memory: the thread asked on Telegram is answered by the Discord member.
    async with h.db.session() as s:
        thread = await s.scalar(select(Thread))
        answer_row = await s.scalar(select(Answer))
        assert thread is not None and thread.status == "answered"
        assert answer_row is not None
        message = await s.get(Message, answer_row.message_id)
        assert message is not None and message.platform_message_id == str(a)
        author = await s.get(Member, message.member_id)
    assert author is not None and (author.platform, author.user_id) == ("discord", str(DC_BOB))

    # The edit on Discord follows to Telegram, the delete removes the copy there.
    await dc.user_edit(GENERAL, a, "Bakkerij Vaneker on the Grote Markt, open from 8.")
    await h.wait_discord(a, EditEvent)
    await h.settle()
    [edit] = tg.calls_to("editMessageText")
    assert int(edit.params["message_id"]) == relayed["message_id"]
    assert "open from 8" in edit.params["text"]
    assert "open from 8" in (tg.message(GROUP, relayed["message_id"]) or {})["text"]

    await dc.user_delete(GENERAL, a)
    await h.wait_discord(a, DeleteEvent)
    await h.settle()
    [deleted] = tg.calls_to("deleteMessage")
    assert int(deleted.params["message_id"]) == relayed["message_id"]
    assert tg.message(GROUP, relayed["message_id"]) is None


async def test_reworded_question_on_discord_finds_the_telegram_thread(
    bridged: BridgeHarness,
) -> None:
    h, dc = bridged, bridged.dc
    await h.tg_say(TG_ANNA, "Where can I recycle old paint in Leiden?")
    [copy] = hooked(dc)
    await h.dc_say(
        DC_BOB, "The milieustraat at Lammenschansweg takes paint.", reply_to=int(copy["id"])
    )
    later = await h.dc_say(DC_ALICE, "where to recycle old paint in leiden??")
    [reply] = h.replies_to(later)
    assert "Lammenschansweg" in reply["content"]
    assert_pings_nobody(reply)


# -- the webhook: made once, found again, edits and deletes through it --------------------------


async def test_webhook_made_once_found_after_restart_and_used_for_edits_and_deletes(
    bridged: BridgeHarness,
) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    first = await h.tg_say(TG_ANNA, "Is the Albert Heijn on Kinkerstraat open on Sunday?")
    await h.stop()
    await h.start()  # copss forgets its webhook; Discord still has it
    await h.tg_say(TG_ANNA, "And the Jumbo next to it?")
    ours = [w for w in dc.webhooks.values() if w["application_id"] == str(dc.application_id)]
    assert len(ours) == 1 and ours[0]["name"] == "copss bridge"
    assert len(dc.calls_to("POST", f"/channels/{GENERAL}/webhooks")) == 1
    assert len(dc.calls_to("GET", f"/channels/{GENERAL}/webhooks")) == 2
    copies = hooked(dc)
    assert [c["webhook_id"] for c in copies] == [ours[0]["id"]] * 2

    # The Telegram edit of a copy made before the restart goes through the webhook.
    await h.push_tg(
        tg.edited_message_update(GROUP, first, "Is the AH on Kinkerstraat open Sundays?")
    )
    hook = f"/webhooks/{ours[0]['id']}/{ours[0]['token']}/messages/{copies[0]['id']}"
    [patch] = dc.calls_to("PATCH", hook)
    assert patch.json_body["allowed_mentions"] == NOBODY
    assert dc.message(int(copies[0]["id"]))["content"] == "Is the AH on Kinkerstraat open Sundays?"
    assert dc.calls_to("PATCH", "/channels/") == []

    # A Telegram admin deletes the question everywhere: the copy goes through the webhook.
    await h.tg_say(TG_ADMIN, "/delete everywhere", reply_to_message_id=first)
    assert len(dc.calls_to("DELETE", hook)) == 1
    assert dc.webhook_messages(GENERAL)[0]["deleted"] is True
    assert dc.calls_to("DELETE", "/channels/") == []


async def test_webhook_deleted_by_an_admin_is_made_again(bridged: BridgeHarness) -> None:
    h, dc = bridged, bridged.dc
    await h.tg_say(TG_ANNA, "Any tips for a cheap moving van?")
    dc.webhooks.clear()  # an admin removed it in the channel settings
    await h.tg_say(TG_ANNA, "Preferably one that fits a sofa.")
    assert [c["content"] for c in hooked(dc)] == [
        "Any tips for a cheap moving van?",
        "Preferably one that fits a sofa.",
    ]
    assert len(dc.calls_to("POST", f"/channels/{GENERAL}/webhooks")) == 2
    assert len(dc.webhooks) == 1


async def test_a_copy_discord_refuses_from_the_webhook_goes_as_the_bot(
    bridged: BridgeHarness,
) -> None:
    h, dc = bridged, bridged.dc
    await h.tg_say(TG_ANNA, "first, through the webhook")
    # Discord refuses one execution (say, a username it does not take): that copy goes as
    # the bot, named in bold, and the webhook stays in use for the next one.
    execute = r"/webhooks/\d+/[^/]+"
    dc.inject_rest("POST", execute, HTTPError(400, 50035, "Invalid Form Body"))
    await h.tg_say(TG_ANNA, "second, refused from the webhook")
    await h.tg_say(TG_ANNA, "third, through the webhook again")
    assert [m["content"] for m in hooked(dc)] == [
        "first, through the webhook",
        "third, through the webhook again",
    ]
    assert dc.sent_messages(GENERAL)[-1]["content"] == (
        "**Anna (Telegram)**: second, refused from the webhook"
    )
    # Refused part-way through a long message: the rest follows as the bot, nothing lost.
    dc.inject_rest("POST", execute, Slow(0))  # lets the first chunk through
    dc.inject_rest("POST", execute, HTTPError(400, 50035, "Invalid Form Body"))
    text = words(4500, "deel")
    q = await h.tg_say(TG_ANNA, text)
    first = hooked(dc)[-1]["content"]
    rest = [m["content"] for m in dc.sent_messages(GENERAL)[-2:]]
    assert first + "".join(rest) == text
    assert len(dc.webhooks) == 1
    # Deleted everywhere: every chunk goes, whichever way it was posted.
    await h.tg_say(TG_ADMIN, "/delete everywhere", reply_to_message_id=q)
    assert hooked(dc)[-1]["deleted"] is True
    assert [m["deleted"] for m in dc.sent_messages(GENERAL)[-2:]] == [True, True]


@pytest.mark.parametrize("refusal", ["no permission", "403"])
async def test_without_webhooks_copies_go_as_the_bot_with_the_name_in_bold(
    tmp_path: Path, refusal: str
) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as tg, FakeDiscord(token=DISCORD_TOKEN) as dc:
        perms = DEFAULT_BOT_PERMISSIONS & ~MANAGE_WEBHOOKS
        build_worlds(tg, dc, **({"bot_permissions": perms} if refusal == "no permission" else {}))
        if refusal == "403":
            dc.inject_rest("GET", rf"/channels/{GENERAL}/webhooks", HTTPError(403, 50013), times=5)
        h = BridgeHarness(tg, dc, tmp_path)
        await h.start()
        try:
            await h.link()
            q = await h.tg_say(
                TG_ANNA, "Where do I exchange my driving licence?", first_name="*Anna_"
            )
            [copy] = [m for m in dc.sent_messages(GENERAL) if "licence" in m["content"]]
            assert copy["content"] == (
                "**\\*Anna\\_ (Telegram)**: Where do I exchange my driving licence?"
            )
            assert_pings_nobody(copy)
            assert hooked(dc) == [] and dc.calls_to("POST", "/webhooks/") == []
            webhook_calls = dc.calls_to("*", f"/channels/{GENERAL}/webhooks")
            assert len(webhook_calls) == (0 if refusal == "no permission" else 1)

            # Replies map as with webhook copies.
            await h.dc_say(DC_BOB, "At the RDW, by appointment.", reply_to=int(copy["id"]))
            assert tg.sent_messages(GROUP)[-1]["reply_to_message"]["message_id"] == q

            # An edit keeps the author line, also after a restart (read back from Discord).
            await h.stop()
            await h.start()
            await h.push_tg(tg.edited_message_update(GROUP, q, "Where do I swap my licence?"))
            assert dc.message(int(copy["id"]))["content"] == (
                "**\\*Anna\\_ (Telegram)**: Where do I swap my licence?"
            )
            # Refused once, copss does not ask again for a while (nor to edit as the bot).
            assert dc.calls_to("*", f"/channels/{GENERAL}/webhooks") == webhook_calls
        finally:
            await h.stop()


async def test_bridged_thread_posts_through_the_parent_webhook(tmp_path: Path) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as tg, FakeDiscord(token=DISCORD_TOKEN) as dc:
        build_worlds(tg, dc)
        h = BridgeHarness(tg, dc, tmp_path)
        await h.start()
        try:
            await h.link(GENERAL, THREAD)
            d = await h.dc_say(
                DC_ALICE, "Anyone know a good letting agent in Delft?", channel=THREAD
            )
            relayed = tg.sent_messages(GROUP)[-1]
            assert relayed["text"] == (
                "<b>Alice (Discord)</b>: Anyone know a good letting agent in Delft?"
            )
            b = await h.tg_say(
                TG_BEN, "Try Delft Housing.", reply_to_message_id=relayed["message_id"]
            )
            [copy] = hooked(dc, THREAD)
            assert hooked(dc, GENERAL) == []
            [execute] = dc.calls_to("POST", "/webhooks/")
            assert execute.query["thread_id"] == str(THREAD)
            # Webhook messages cannot be replies: the copy links the message it answers.
            assert copy["content"] == (
                f"-# ↪ reply to https://discord.com/channels/{GUILD}/{THREAD}/{d}\n"
                "Try Delft Housing."
            )
            await h.push_tg(tg.edited_message_update(GROUP, b, "Try DUWO."))
            assert dc.message(int(copy["id"]))["content"].endswith("\nTry DUWO.")
            [patch] = dc.calls_to("PATCH", "/webhooks/")
            assert patch.query["thread_id"] == str(THREAD)
        finally:
            await h.stop()


# -- attachments, mentions, escaping, length ---------------------------------------------------


async def test_attachments_relayed_as_links_and_captions(bridged: BridgeHarness) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    await h.dc_say(
        DC_ALICE,
        "Floor plan of the flat:",
        attachments=[PLAN],
    )
    assert (
        tg.sent_texts(GROUP)[-1] == f"<b>Alice (Discord)</b>: Floor plan of the flat:\n{PLAN_URL}"
    )

    update = tg.message_update(GROUP, TG_ANNA, "", first_name="Anna")
    message = update["message"]
    del message["text"]
    message["caption"] = "My BSN letter, is this the right one?"
    message["photo"] = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
    await h.push_tg(update)
    assert hooked(dc)[-1]["content"] == "My BSN letter, is this the right one?\n[photo]"


#: Texts that would ping someone if a copy let Discord parse mentions, or break Telegram's
#: HTML if a copy were not escaped.
MENTION_CORPUS = [
    "@everyone look at this",
    "@here anyone awake?",
    f"<@{DC_ALICE}> what do you think?",
    f"<@!{DC_ALICE}> old-style nickname mention",
    f"<@&{ROLE}> moderators please",
    "@\u200beveryone with a zero-width space",
    "@every\u200bone split by a zero-width space",
    "\u202e@everyone behind a right-to-left override",
    "\u2066@here\u2069 inside a directional isolate",
    "\uff20everyone with a fullwidth at sign",
    "\\@everyone escaped for markdown",
    "`@everyone` in code",
    "**@here** in bold",
    "||@everyone|| in a spoiler",
    "[@everyone](https://example.org) as a link",
    "<b>@everyone</b> & <i>friends</i> &amp; <a href='x'>",
]


@pytest.mark.parametrize("webhooks", [True, False], ids=["webhook", "as the bot"])
async def test_mentions_never_ping_and_telegram_html_stays_escaped(
    tmp_path: Path, webhooks: bool
) -> None:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as tg, FakeDiscord(token=DISCORD_TOKEN) as dc:
        perms = DEFAULT_BOT_PERMISSIONS if webhooks else DEFAULT_BOT_PERMISSIONS & ~MANAGE_WEBHOOKS
        build_worlds(tg, dc, bot_permissions=perms)
        dc.add_role(GUILD, ROLE, "moderators")
        h = BridgeHarness(tg, dc, tmp_path)
        await h.start()
        try:
            await h.link()
            before = len(dc.sent_messages(GENERAL))
            # Telegram -> Discord, from a member whose name is an attack too.
            evil = f"@everyone <@&{ROLE}> **Eve**"
            for text in MENTION_CORPUS:
                tg.push_update(tg.message_update(GROUP, TG_BEN, text, first_name=evil))
            await h.settle()
            copies = hooked(dc) if webhooks else dc.sent_messages(GENERAL)[before:]
            assert len(copies) == len(MENTION_CORPUS)
            # Bidi and zero-width characters never leave copss (outgoing_text), the rest does.
            for copy, text in zip(copies, map(outgoing_text, MENTION_CORPUS), strict=True):
                assert_pings_nobody(copy)
                if webhooks:
                    assert copy["content"] == text
                    assert copy["author"]["username"] == f"{evil} (Telegram)"
                else:
                    head = "**@\u200beveryone <@\u200b&" + f"{ROLE}> \\*\\*Eve\\*\\* (Telegram)**: "
                    assert copy["content"] == head + text
            # Every message copss posted on Discord, webhook or not, pinged nobody.
            for message in dc.sent_messages() + dc.webhook_messages():
                assert_pings_nobody(message)

            # Discord -> Telegram: parsed as HTML, so everything arrives escaped.
            sent = len(tg.sent_messages(GROUP))
            for text in MENTION_CORPUS:
                await dc.user_message(GENERAL, DC_ALICE, text)
            await h.dc_barrier()
            relayed = tg.calls_to("sendMessage")[-len(MENTION_CORPUS) :]
            assert len(tg.sent_messages(GROUP)) == sent + len(MENTION_CORPUS)
            for call, text in zip(relayed, map(outgoing_text, MENTION_CORPUS), strict=True):
                assert call.params["parse_mode"] == "HTML"
                assert (
                    call.params["text"]
                    == f"<b>Alice (Discord)</b>: {html.escape(text, quote=False)}"
                )
        finally:
            await h.stop()


def words(n: int, seed: str) -> str:
    """About ``n`` characters of words (so the split falls between words)."""
    out = " ".join(f"{seed}{i:04d}" for i in range(n // 9 + 1))
    return out[:n]


@pytest.mark.parametrize("length", [4096, 5000])
async def test_long_telegram_message_split_for_discord_never_cut(
    bridged: BridgeHarness, length: int
) -> None:
    h, dc = bridged, bridged.dc
    text = words(length, "lang")
    q = await h.tg_say(TG_ANNA, text)
    chunks = [c["content"] for c in hooked(dc)]
    assert len(chunks) == 3 and all(len(c) <= 2000 for c in chunks)
    assert "".join(chunks) == text  # split between words, nothing lost
    # Deleting the original everywhere removes every chunk.
    await h.tg_say(TG_ADMIN, "/delete everywhere", reply_to_message_id=q)
    assert [c["deleted"] for c in hooked(dc)] == [True, True, True]


async def test_longest_discord_message_arrives_whole_on_telegram(bridged: BridgeHarness) -> None:
    h, tg = bridged, bridged.tg
    text = words(2000, "woord")
    await h.dc_say(DC_ALICE, text)
    assert tg.sent_texts(GROUP)[-1] == f"<b>Alice (Discord)</b>: {text}"


# -- loops ----------------------------------------------------------------------------------------

RIVAL_APP, OTHER_BOT, RIVAL_TG = 920_000_000_000_000_001, 920_000_000_000_000_002, 777


class RivalBridge:
    """A second bridge in the same two rooms, as copss sees it: it copies every message it
    has not copied yet from one room to the other, on Discord through its own webhook named
    "copss bridge" (made by another application), on Telegram as a bot account.

    The fakes serve one bot identity each, so two copss Apps cannot share a room; this is what
    a second copss's copies look like from the first: messages by a webhook or a bot."""

    def __init__(self, h: BridgeHarness) -> None:
        self.h = h
        hook_id = h.dc.next_id()
        self.hook: JSON = {
            "id": str(hook_id),
            "type": 1,
            "guild_id": str(GUILD),
            "channel_id": str(GENERAL),
            "name": "copss bridge",
            "avatar": None,
            "token": "rival-webhook-token",
            "application_id": str(RIVAL_APP),
            "user": h.dc.add_user(RIVAL_APP, "copss-too", bot=True),
        }
        h.dc.webhooks[hook_id] = self.hook
        h.tg.add_user(RIVAL_TG, "copss-too", username="copss_too_bot", is_bot=True)
        self.copied_dc: set[str] = set()
        self.copied_tg: set[int] = set()
        #: Telegram messages members posted (the fake keeps no list of incoming ones).
        self.tg_members: list[tuple[int, str, str]] = []

    async def tg_member(self, user: int, name: str, text: str) -> None:
        """A member posts on Telegram (and the rival will see it)."""
        mid = await self.h.tg_say(user, text, first_name=name)
        self.tg_members.append((mid, name, text))

    async def copy_all(self) -> int:
        """One pass: copy everything not yet copied; returns how many messages it copied."""
        h, copied = self.h, 0
        for m in h.dc.messages(GENERAL):
            if m["id"] in self.copied_dc or m.get("webhook_id") == self.hook["id"]:
                continue
            self.copied_dc.add(m["id"])
            name = m["author"].get("global_name") or m["author"]["username"]
            update = h.tg.message_update(
                GROUP, RIVAL_TG, f"{name} (Discord): {m['content']}", first_name="copss-too"
            )
            h.tg.push_update(update)
            self.copied_tg.add(update["message"]["message_id"])
            copied += 1
        seen = [(m["message_id"], "copss", m["text"]) for m in h.tg.sent_messages(GROUP)]
        async with aiohttp.ClientSession() as http:
            for mid, name, text in [*self.tg_members, *seen]:
                if mid in self.copied_tg:
                    continue
                self.copied_tg.add(mid)
                url = f"{h.dc.rest_base}/webhooks/{self.hook['id']}/{self.hook['token']}"
                body = {"content": text, "username": f"{name} (Telegram)"}
                async with http.post(url, params={"wait": "true"}, json=body) as response:
                    assert response.status == 200, await response.text()
                copied += 1
        await h.dc_barrier()
        await h.settle()
        return copied


async def test_nothing_relayed_twice_not_even_with_a_second_bridge_in_the_room(
    bridged: BridgeHarness,
) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    dc.add_member(GUILD, OTHER_BOT, "weather-bot", bot=True)
    rival = RivalBridge(h)
    tg_before = len(tg.sent_messages(GROUP))

    await rival.tg_member(TG_ANNA, "Anna", "Who knows a Dutch course in Utrecht?")
    await h.dc_say(DC_BOB, "Try the UvA Talen evening course.")
    await h.dc_say(OTHER_BOT, "Rain expected at 15:00.")  # another bot: never relayed
    await rival.tg_member(TG_BEN, "Ben", "Thanks Bob!")
    rounds = [await rival.copy_all() for _ in range(3)]

    # The rival copied each side's messages (members', copss's) once; then nothing was new,
    # because copss relayed none of the rival's copies back: no ping-pong.
    assert rounds[0] > 0 and rounds[1:] == [0, 0]
    ours = [m for m in hooked(dc) if m["webhook_id"] != rival.hook["id"]]
    assert [m["content"] for m in ours] == [
        "Who knows a Dutch course in Utrecht?",
        "Thanks Bob!",
    ]
    relayed = [t for t in tg.sent_texts(GROUP)[tg_before:] if "(Discord)" in t]
    assert relayed == ["<b>Bob (Discord)</b>: Try the UvA Talen evening course."]
    # copss never took in its own posts (bot or webhook), only the others' (to ignore them).
    own = {m["id"] for m in dc.sent_messages()} | {m["id"] for m in ours}
    assert not own & {e.message_id for e in h.events if e.channel.platform == "discord"}
    # copss found its own webhook beside the rival's of the same name and never used that.
    assert {m["webhook_id"] for m in ours} != {rival.hook["id"]}
    assert len(dc.calls_to("POST", f"/channels/{GENERAL}/webhooks")) == 1


# -- bursts, backlog ------------------------------------------------------------------------------

#: Messages each way in the burst test (bench/relay.py runs 1,000 each way).
BURST = 200


async def test_burst_each_way_under_telegram_flood_control_exactly_once_in_order(
    bridged: BridgeHarness,
) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    tg.enforce_rate_limits(time_scale=TIME_SCALE, tolerance=0.002)
    tg_before = len(tg.sent_messages(GROUP))
    from_tg = [f"tg burst {i:04d}" for i in range(BURST)]
    from_dc = [f"dc burst {i:04d}" for i in range(BURST)]
    for tg_text, dc_text in zip(from_tg, from_dc, strict=True):
        tg.push_update(tg.message_update(GROUP, TG_BEN, tg_text, first_name="Ben"))
        await dc.user_message(GENERAL, DC_BOB, dc_text)
    # Counted on the live store (hooked() copies every message, too slow to poll here).
    await dc.wait_for(
        lambda: sum("webhook_id" in m for m in dc.messages(GENERAL)) >= BURST,
        within=60,
        what="the Telegram burst",
    )
    await tg.wait_for_sent_messages(tg_before + BURST, GROUP, within=60)
    await h.dc_barrier()
    assert [m["content"] for m in hooked(dc)] == from_tg
    assert all(m["author"]["username"] == "Ben (Telegram)" for m in hooked(dc))
    assert tg.sent_texts(GROUP)[tg_before:] == [f"<b>Bob (Discord)</b>: {t}" for t in from_dc]
    assert tg.rate_limit_violations == 0


async def test_telegram_down_copies_queue_warn_and_arrive_in_order(bridged: BridgeHarness) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    assert h.app is not None and h.app.hub is not None
    hub = h.app.hub
    h.bridge.warn_backlog, h.bridge.max_backlog = 3, 6
    tg_before = len(tg.sent_messages(GROUP))
    # Telegram answers flood control, then fails, until the test lets it recover.
    tg.inject("sendMessage", TgRetryAfter(1))
    tg.inject("sendMessage", TgServerError(502), times=10_000)
    texts = [f"said while Telegram is down {i}" for i in range(8)]
    for text in texts:
        message = await dc.user_message(GENERAL, DC_BOB, text)
        await h.wait_discord(message["id"])
    await hub.idle.wait()  # every message handled (their copies wait in the outbox)

    # The queue grew past 3, then filled at 6: the Discord side heard both, once each.
    def warnings() -> list[str]:
        return [m["content"] for m in dc.sent_messages(GENERAL) if "bridge queue" in m["content"]]

    await dc.wait_for(lambda: len(warnings()) >= 2, what="the backlog warnings")
    growing, full = warnings()
    assert "to Telegram is growing (3 messages waiting)" in growing
    assert "is full; new messages are not relayed (6 messages waiting)" in full
    assert tg.sent_messages(GROUP)[tg_before:] == []

    tg.clear_faults()  # Telegram is back: the queued copies arrive, in order, once
    await h.settle()
    assert tg.sent_texts(GROUP)[tg_before:] == [f"<b>Bob (Discord)</b>: {t}" for t in texts[:6]]
    assert len(warnings()) == 2


async def test_discord_rate_limited_copies_arrive_in_order(bridged: BridgeHarness) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    await h.tg_say(TG_ANNA, "warming up the webhook")
    dc.inject_rest("POST", r"/webhooks/\d+/[^/]+", DcRateLimited(0.2), times=3)
    texts = [f"while Discord limits {i}" for i in range(10)]
    for text in texts:
        tg.push_update(tg.message_update(GROUP, TG_ANNA, text, first_name="Anna"))
    await h.settle()
    assert [m["content"] for m in hooked(dc)][1:] == texts
    assert dc.pending_faults() == 0


# -- the pure pieces -------------------------------------------------------------------------------


def test_webhook_usernames_discord_accepts() -> None:
    assert webhook_username("Anna  de\nVries (Telegram)") == "Anna de Vries (Telegram)"
    assert webhook_username("Discord Dan (Telegram)") == "D\u200biscord Dan (Telegram)"
    assert webhook_username("clyde (Telegram)") == "c\u200blyde (Telegram)"
    long = webhook_username("W" * 120 + " (Telegram)")
    assert len(long) == 80 and long.endswith("W… (Telegram)")
    assert webhook_username("   ") == "?"


def test_copy_heads_are_found_again_after_a_restart() -> None:
    line = reply_line(1, "22", "333")
    assert line == "-# ↪ reply to https://discord.com/channels/1/22/333\n"
    assert copy_head(line + "**bold** text", webhook=True) == line
    assert copy_head("**bold**: text", webhook=True) == ""  # a member's own markdown
    prefix = name_prefix("*Eve_ **x** (Telegram)")
    assert prefix == "**\\*Eve\\_ \\*\\*x\\*\\* (Telegram)**: "
    assert copy_head(prefix + "**Note**: hi", webhook=False) == prefix
    assert copy_head("no head here", webhook=False) == ""


def test_only_copss_own_webhook_is_used() -> None:
    view = BotView(90, 91)
    ours = {"name": "copss bridge", "token": "t", "application_id": "91"}
    assert is_copss_webhook(ours, view)
    assert not is_copss_webhook({**ours, "application_id": "92"}, view)  # another bridge's
    assert not is_copss_webhook({**ours, "name": "Captain Hook"}, view)
    assert not is_copss_webhook({**ours, "token": None}, view)  # cannot post with it
    by_user = {"name": "copss bridge", "token": "t", "user": {"id": "90"}}
    assert is_copss_webhook(by_user, view)
