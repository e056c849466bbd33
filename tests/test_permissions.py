"""Who may run admin commands, on the real platform clients against the strict fakes.

Every admin command in the registry is refused, changes nothing and is audited as refused:
in a private chat or DM with the bot, for a plain member of a group, and for a real admin of
a different, unlinked group. An admin of the caller's own group may run them, and an admin of
another group acting there leaves this group's community untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
from sqlalchemy import select

from bot.features.commands import all_commands
from storage.engine import Database
from storage.models import AuditLog, Base, Member, Message
from tests.adapters.dc_harness import TOKEN, DiscordHarness, PortalFake
from tests.adapters.tg_harness import TelegramHarness
from tests.fakes.discord_gateway import MANAGE_GUILD, FakeDiscord
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

REFUSED = "refused: not an admin"
#: An FAQ entry of group A's community, made by A's admin before the attempts.
SLUG = "town-hall-hours"
#: The bridge A's admin requested, and one an attempt tries to add.
TG_LINKED, TG_OTHER = "discord:555000000000000001", "discord:555000000000000002"
DC_LINKED, DC_OTHER = "telegram:-1005550001", "telegram:-1005550002"
#: Tables whose rows admin commands exist to change. Left out: the inbox, the outbox and the
#: audit log (every attempt adds to those), members (first sight adds one) and messages
#: (compared below without the bot's own replies).
UNCOMPARED = {"inbox", "outbox", "audit_log", "schema_version", "member", "message"}


def admin_calls(linked: str, other: str) -> list[tuple[str, str, bool]]:
    """(command, args, sent as a reply) covering every admin command of the registry, each
    aimed at real data: the entry, the solved thread, the answer, the bridge."""
    calls = [
        ("faq", "add sneaky-entry | Who runs this chat? | Me | https://example.org/me", False),
        ("faq", f"edit {SLUG} answer Closed forever", False),
        ("faq", f"remove {SLUG}", False),
        ("faq", f"show {SLUG}", False),
        ("faq", "list", False),
        ("faq", "stale", False),
        ("export", "", False),
        ("threshold", "answer 0.99", False),
        ("threshold", "", False),
        ("synonyms", "add fiets, bike", False),
        ("unsolved", "", True),
        ("delete", "everywhere", True),
        ("stats", "", False),
        ("audit", "", False),
        ("undelivered", "", False),
        ("undelivered", "retry", False),
        ("link", other, False),
        ("unlink", linked, False),
        ("links", "", False),
    ]
    assert {name for name, _, _ in calls} == {c.name for c in all_commands() if c.admin}
    return calls


def refusal(text: str, name: str) -> bool:
    return f"'{name}' is for admins of this community" in text and "Nothing was changed" in text


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row admin commands could change, in a comparable form."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.session() as s:
        for table in Base.metadata.sorted_tables:
            if table.name not in UNCOMPARED:
                rows = (await s.execute(select(table))).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        people = (
            await s.execute(
                select(Message.__table__)
                .join(Member, Member.id == Message.member_id)
                # The bot's replies (the refusals themselves) are stored as it sends them.
                .where(Member.is_bot.is_(False))
            )
        ).all()
        out["message"] = sorted((tuple(r) for r in people), key=repr)
    return out


async def audit_rows(db: Database) -> list[tuple[str, str, str]]:
    async with db.session() as s:
        rows = (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()
    return [(r.actor, r.command, r.result) for r in rows]


def assert_all_refused(
    before: list[tuple[str, str, str]],
    after: list[tuple[str, str, str]],
    actor: str,
    calls: list[tuple[str, str, bool]],
) -> None:
    """One audit row per attempt, each by ``actor`` (``platform:user_id``) and refused."""
    added = after[len(before) :]
    assert [(a.split(" ", 1)[0], c, r) for a, c, r in added] == [
        (actor, name, REFUSED) for name, _, _ in calls
    ]


def no_exports(tmp_path: Path) -> bool:
    folder = tmp_path / "exports"
    return not folder.exists() or not any(folder.iterdir())


# == Telegram ===================================================================================

GROUP_A, GROUP_B = -1001000000001, -1002000000002
ALICE, BOB, CAROL, ADMIN_A, ADMIN_B, STRANGER = 101, 102, 103, 104, 105, 106


@dataclass
class TgWorld:
    """copss on Telegram with two unlinked groups and a solved question in A."""

    tg: TelegramHarness
    tmp_path: Path
    question: int = 0
    answer: int = 0

    @property
    def api(self) -> FakeTelegramAPI:
        return self.tg.api

    async def say(
        self,
        chat: int,
        user: int,
        text: str,
        *,
        reply_to: int | None = None,
        name: str = "",
        **kw: Any,
    ) -> int:
        """Post; returns the message id once copss has handled it."""
        chat_type = "private" if chat > 0 else "supergroup"
        _, mid = await self.tg.push(
            self.api.message_update(
                chat,
                user,
                text,
                chat_type=chat_type,
                reply_to_message_id=reply_to,
                first_name=name or f"User{user}",
                **kw,
            )
        )
        return mid

    def replies(self, chat: int, mid: int) -> list[str]:
        return [
            str(m["text"])
            for m in self.api.sent_messages(chat)
            if (m.get("reply_to_message") or {}).get("message_id") == mid
        ]

    async def command(self, chat: int, user: int, text: str, **kw: Any) -> str:
        """Run a command; returns copss's reply (all its parts when it was split)."""
        mid = await self.say(chat, user, text, **kw)
        parts = [m for m in self.api.sent_messages(chat) if m["message_id"] > mid]
        assert parts and (parts[0].get("reply_to_message") or {}).get("message_id") == mid
        return "\n".join(str(m["text"]) for m in parts)

    async def attempt_all(
        self, chat: int, user: int, *, reply_to: int, linked: str = TG_LINKED
    ) -> None:
        """Every admin command, each refused with the refusal text and nothing changed, and
        each audited as refused."""
        db = self.tg.db
        calls = admin_calls(linked, TG_OTHER)
        before, audit_before = await snapshot(db), await audit_rows(db)
        for name, args, as_reply in calls:
            text = f"/{name} {args}".rstrip()
            reply = await self.command(chat, user, text, reply_to=reply_to if as_reply else None)
            assert refusal(reply, name), (text, reply)
        assert await snapshot(db) == before
        assert_all_refused(audit_before, await audit_rows(db), f"telegram:{user}", calls)
        assert no_exports(self.tmp_path)
        assert self.api.calls_to("deleteMessage") == []


@pytest.fixture
async def tgw(tmp_path: Path) -> AsyncIterator[TgWorld]:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP_A, "supergroup", title="Expats Utrecht")
        api.add_chat(GROUP_B, "supergroup", title="Board gamers Zwolle")
        api.set_member_status(GROUP_A, ADMIN_A, "administrator")
        api.set_member_status(GROUP_B, ADMIN_B, "administrator")
        harness = TelegramHarness(api, tmp_path)
        await harness.start()
        world = TgWorld(harness, tmp_path)
        try:
            reply = await world.command(
                GROUP_A,
                ADMIN_A,
                f"/faq add {SLUG} | When is the town hall open? | Weekdays 9-17 | "
                "https://example.org/town-hall",
            )
            assert "Added" in reply, reply
            assert "requested" in await world.command(GROUP_A, ADMIN_A, f"/link {TG_LINKED}")
            world.question = await world.say(
                GROUP_A, ALICE, "Does anyone know a notary in Delft who speaks English?"
            )
            world.answer = await world.say(
                GROUP_A,
                BOB,
                "Notariskantoor Delft Centrum does, ask for Mr. Jansen.",
                reply_to=world.question,
            )
            solved = await world.command(GROUP_A, ALICE, "/solved", reply_to=world.answer)
            assert "solved" in solved.casefold(), solved
            # Everyone who tries below has been seen in the groups they use.
            for user in (CAROL, ADMIN_B):
                await world.say(GROUP_A, user, "hello all")
            await world.say(GROUP_B, ADMIN_B, "hello gamers")
            yield world
        finally:
            await harness.stop()


async def test_tg_private_chat_with_the_bot_makes_nobody_an_admin(tgw: TgWorld) -> None:
    """Before the fix the anonymous-admin rule (sender id == chat id) held in every private
    chat, where the chat id is the user's own id."""
    getchatmember_before = len(tgw.api.calls_to("getChatMember"))
    for user in (STRANGER, ADMIN_A):  # not even a real admin of a group
        first = await tgw.say(user, user, "hello bot")
        await tgw.attempt_all(user, user, reply_to=first)
    # Telegram was not even asked: a private chat has no admins.
    assert len(tgw.api.calls_to("getChatMember")) == getchatmember_before


async def test_tg_plain_member_of_the_group_is_refused(tgw: TgWorld) -> None:
    await tgw.attempt_all(GROUP_A, CAROL, reply_to=tgw.answer)


async def test_tg_admin_of_another_group_is_refused_here(tgw: TgWorld) -> None:
    api = tgw.api
    before = len(api.calls_to("getChatMember"))
    await tgw.attempt_all(GROUP_A, ADMIN_B, reply_to=tgw.answer)
    asked = api.calls_to("getChatMember")[before:]
    # Telegram was asked about this group, never about the one ADMIN_B administers.
    assert asked and {(c.params["chat_id"], c.params["user_id"]) for c in asked} == {
        (GROUP_A, ADMIN_B)
    }


async def test_tg_sent_as_another_group_or_channel_is_refused(tgw: TgWorld) -> None:
    db = tgw.tg.db
    before = await snapshot(db)
    for name, args in (("faq", f"remove {SLUG}"), ("threshold", "answer 0.99")):
        reply = await tgw.command(GROUP_A, ADMIN_B, f"/{name} {args}", sender_chat=GROUP_B)
        assert refusal(reply, name), reply
    assert await snapshot(db) == before


async def test_tg_admin_of_the_group_may(tgw: TgWorld) -> None:
    command = tgw.command
    added = await command(
        GROUP_A,
        ADMIN_A,
        "/faq add bike-parking | Where can I park my bike at the station? | "
        "Stationsplein, free for 24 h | https://example.org/bikes",
    )
    assert "Added FAQ entry 'bike-parking'" in added
    assert "bike-parking" in await command(GROUP_A, ADMIN_A, "/faq list")
    assert "Set the answer level to 0.90" in await command(
        GROUP_A, ADMIN_A, "/threshold answer 0.9"
    )
    assert "0.90" in await command(GROUP_A, ADMIN_A, "/threshold")
    assert "Removed FAQ entry 'bike-parking'" in await command(
        GROUP_A, ADMIN_A, "/faq remove bike-parking"
    )
    # An anonymous admin: sent as the group itself.
    removed = await command(GROUP_A, ALICE, f"/faq remove {SLUG}", sender_chat=GROUP_A)
    assert f"Removed FAQ entry '{SLUG}'" in removed
    log = await command(GROUP_A, ADMIN_A, "/audit")
    assert "Recent admin actions:" in log and f"telegram:{ADMIN_A}" in log
    assert "faq remove bike-parking" in log and "threshold answer 0.9" in log
    assert "There is no FAQ entry" in await command(GROUP_A, ADMIN_A, f"/faq show {SLUG}")


async def test_tg_admin_of_another_group_changes_only_that_groups_community(
    tgw: TgWorld,
) -> None:
    """Needs every chat to be its own community (not one shared default community)."""
    command = tgw.command
    question = "Which night does the Zwolle board game club meet?"
    added = await command(
        GROUP_B,
        ADMIN_B,
        f"/faq add game-night | {question} | Thursdays at De Spiegel | https://example.org/games",
    )
    assert "Added" in added
    assert "Set the answer level to 0.95" in await command(
        GROUP_B, ADMIN_B, "/threshold answer 0.95"
    )
    stats_b = await command(GROUP_B, ADMIN_B, "/stats")
    audit_b = await command(GROUP_B, ADMIN_B, "/audit")
    # A's community: none of B's entry, threshold or audit trail; B sees none of A's.
    listed = await command(GROUP_A, ADMIN_A, "/faq list")
    assert "game-night" not in listed and SLUG in listed
    assert "There is no FAQ entry" in await command(GROUP_A, ADMIN_A, "/faq show game-night")
    assert "0.82" in await command(GROUP_A, ADMIN_A, "/threshold")
    assert "Questions: 0;" in stats_b and "solved: 0" in stats_b  # A's solved one is not B's
    assert f"telegram:{ADMIN_A}" not in audit_b and f"telegram:{ADMIN_B}" in audit_b
    assert f"telegram:{ADMIN_B}" not in await command(GROUP_A, ADMIN_A, "/audit")
    assert SLUG not in await command(GROUP_B, ADMIN_B, "/faq list")
    # Matching: asked in A, B's entry is not offered; asked in B, it is.
    asked_a = await tgw.say(GROUP_A, CAROL, question)
    assert not any("De Spiegel" in r for r in tgw.replies(GROUP_A, asked_a))
    asked_b = await tgw.say(GROUP_B, ADMIN_B, question)
    assert any("De Spiegel" in r for r in tgw.replies(GROUP_B, asked_b))


# == Discord ====================================================================================

GUILD_A, GUILD_B = 930_000_000_000_000_001, 930_000_000_000_000_002
GENERAL_A, GENERAL_B = 930_000_000_000_000_010, 930_000_000_000_000_020
D_ALICE, D_BOB, D_CAROL, MOD_A, MOD_B, D_STRANGER = (930_000_000_000_000_100 + i for i in range(6))


@dataclass
class DcWorld:
    """copss on Discord with two unlinked servers and a solved question in A."""

    dc: DiscordHarness
    tmp_path: Path
    question: int = 0
    answer: int = 0

    @property
    def fake(self) -> FakeDiscord:
        return self.dc.fake

    async def command(
        self, channel: int, user: int, text: str, *, reply_to: int | None = None
    ) -> str:
        """Run a command; returns copss's reply (all its parts when it was split)."""
        mid = await self.dc.say(channel, user, text, reply_to=reply_to)
        parts = [m for m in self.fake.sent_messages(channel) if int(m["id"]) > mid]
        assert parts and (parts[0].get("message_reference") or {}).get("message_id") == str(mid)
        return "\n".join(str(m["content"]) for m in parts)

    async def slash(self, guild: int | None, channel: int, user: int, name: str, args: str) -> str:
        record = await self.dc.slash(guild, channel, user, name, args)
        assert record.original_message_id is not None
        return str(self.fake.message(record.original_message_id)["content"])

    async def attempt_all(
        self,
        run: Callable[[str, str, bool], Awaitable[str]],
        user: int,
    ) -> None:
        """Every admin command through ``run(name, args, as_reply)``: each refused with the
        refusal text, nothing changed, each audited as refused."""
        db = self.dc.db
        calls = admin_calls(DC_LINKED, DC_OTHER)
        before, audit_before = await snapshot(db), await audit_rows(db)
        for name, args, as_reply in calls:
            reply = await run(name, args, as_reply)
            assert refusal(reply, name), (name, args, reply)
        assert await snapshot(db) == before
        assert_all_refused(audit_before, await audit_rows(db), f"discord:{user}", calls)
        assert no_exports(self.tmp_path)
        assert self.fake.calls_to("DELETE", "/channels/") == []

    def text_in(
        self, channel: int, user: int, reply_to: int | None
    ) -> Callable[[str, str, bool], Awaitable[str]]:
        async def run(name: str, args: str, as_reply: bool) -> str:
            text = f"!{name} {args}".rstrip()
            return await self.command(channel, user, text, reply_to=reply_to if as_reply else None)

        return run


@pytest.fixture
async def dcw(tmp_path: Path) -> AsyncIterator[DcWorld]:
    async with PortalFake(token=TOKEN) as fake:
        fake.add_guild(GUILD_A, "Expats Utrecht")
        fake.add_guild(GUILD_B, "Board gamers Zwolle")
        fake.add_channel(GUILD_A, GENERAL_A, "general")
        fake.add_channel(GUILD_B, GENERAL_B, "general")
        for uid, name in ((D_ALICE, "Alice"), (D_BOB, "Bob"), (D_CAROL, "Carol")):
            fake.add_member(GUILD_A, uid, name)
        fake.add_member(GUILD_A, MOD_A, "ModA", permissions=MANAGE_GUILD)
        fake.add_member(GUILD_A, MOD_B, "ModB")  # a plain member here ...
        fake.add_member(GUILD_B, MOD_B, "ModB", permissions=MANAGE_GUILD)  # ... admin there
        fake.add_user(D_STRANGER, "Stranger")
        harness = DiscordHarness(fake, tmp_path)
        await harness.start()
        world = DcWorld(harness, tmp_path)
        try:
            reply = await world.command(
                GENERAL_A,
                MOD_A,
                f"!faq add {SLUG} | When is the town hall open? | Weekdays 9-17 | "
                "https://example.org/town-hall",
            )
            assert "Added" in reply, reply
            assert "requested" in await world.command(GENERAL_A, MOD_A, f"!link {DC_LINKED}")
            world.question = await harness.say(
                GENERAL_A, D_ALICE, "Does anyone know a notary in Delft who speaks English?"
            )
            world.answer = await harness.say(
                GENERAL_A,
                D_BOB,
                "Notariskantoor Delft Centrum does, ask for Mr. Jansen.",
                reply_to=world.question,
            )
            solved = await world.command(GENERAL_A, D_ALICE, "!solved", reply_to=world.answer)
            assert "solved" in solved.casefold(), solved
            for user in (D_CAROL, MOD_B):
                await harness.say(GENERAL_A, user, "hello all")
            await harness.say(GENERAL_B, MOD_B, "hello gamers")
            yield world
        finally:
            await harness.stop()


async def test_dc_direct_messages_make_nobody_an_admin(dcw: DcWorld) -> None:
    assert dcw.dc.adapter is not None
    client = dcw.dc.adapter.client
    lookups = len(dcw.fake.calls_to("GET", "/guilds/"))
    for user in (D_STRANGER, MOD_A):  # not even a real admin of a server
        dm = await client.create_dm(discord.Object(user))
        first = await dcw.dc.say(dm.id, user, "hello bot")
        await dcw.attempt_all(dcw.text_in(dm.id, user, first), user)
    # Slash commands in a DM too.
    dm = await client.create_dm(discord.Object(D_ALICE))
    await dcw.dc.say(dm.id, D_ALICE, "hello bot")

    async def slash(name: str, args: str, as_reply: bool) -> str:
        return await dcw.slash(None, dm.id, D_ALICE, name, args)

    await dcw.attempt_all(slash, D_ALICE)
    # A DM has no server, so no member was looked up anywhere.
    assert len(dcw.fake.calls_to("GET", "/guilds/")) == lookups


async def test_dc_plain_member_of_the_server_is_refused(dcw: DcWorld) -> None:
    await dcw.attempt_all(dcw.text_in(GENERAL_A, D_CAROL, dcw.answer), D_CAROL)

    async def slash(name: str, args: str, as_reply: bool) -> str:
        return await dcw.slash(GUILD_A, GENERAL_A, D_ALICE, name, args)

    await dcw.attempt_all(slash, D_ALICE)


async def test_dc_admin_of_another_server_is_refused_here(dcw: DcWorld) -> None:
    fake = dcw.fake
    await dcw.attempt_all(dcw.text_in(GENERAL_A, MOD_B, dcw.answer), MOD_B)
    # Discord was asked about this server's member, never about the other server's.
    assert fake.calls_to("GET", f"/guilds/{GUILD_A}/members/{MOD_B}")
    assert fake.calls_to("GET", f"/guilds/{GUILD_B}/members/") == []


async def test_dc_admin_of_the_server_may(dcw: DcWorld) -> None:
    command = dcw.command
    added = await command(
        GENERAL_A,
        MOD_A,
        "!faq add bike-parking | Where can I park my bike at the station? | "
        "Stationsplein, free for 24 h | https://example.org/bikes",
    )
    assert "Added FAQ entry 'bike-parking'" in added
    assert "bike-parking" in await command(GENERAL_A, MOD_A, "!faq list")
    assert "Set the answer level to 0.90" in await command(
        GENERAL_A, MOD_A, "!threshold answer 0.9"
    )
    assert "Removed FAQ entry 'bike-parking'" in await command(
        GENERAL_A, MOD_A, "!faq remove bike-parking"
    )
    removed = await dcw.slash(GUILD_A, GENERAL_A, MOD_A, "faq", f"remove {SLUG}")
    assert f"Removed FAQ entry '{SLUG}'" in removed
    log = await command(GENERAL_A, MOD_A, "!audit")
    assert "Recent admin actions:" in log and f"discord:{MOD_A}" in log
    assert "faq remove bike-parking" in log and "threshold answer 0.9" in log


async def test_dc_admin_of_another_server_changes_only_that_servers_community(
    dcw: DcWorld,
) -> None:
    """Needs every chat to be its own community (not one shared default community)."""
    command = dcw.command
    question = "Which night does the Zwolle board game club meet?"
    added = await command(
        GENERAL_B,
        MOD_B,
        f"!faq add game-night | {question} | Thursdays at De Spiegel | https://example.org/games",
    )
    assert "Added" in added
    assert "Set the answer level to 0.95" in await command(
        GENERAL_B, MOD_B, "!threshold answer 0.95"
    )
    stats_b = await command(GENERAL_B, MOD_B, "!stats")
    audit_b = await command(GENERAL_B, MOD_B, "!audit")
    listed = await command(GENERAL_A, MOD_A, "!faq list")
    assert "game-night" not in listed and SLUG in listed
    assert "There is no FAQ entry" in await command(GENERAL_A, MOD_A, "!faq show game-night")
    assert "0.82" in await command(GENERAL_A, MOD_A, "!threshold")
    assert "Questions: 0;" in stats_b and "solved: 0" in stats_b
    assert f"discord:{MOD_A}" not in audit_b and f"discord:{MOD_B}" in audit_b
    assert f"discord:{MOD_B}" not in await command(GENERAL_A, MOD_A, "!audit")
    assert SLUG not in await command(GENERAL_B, MOD_B, "!faq list")
    asked_a = await dcw.dc.say(GENERAL_A, D_CAROL, question)
    assert not any("De Spiegel" in str(m["content"]) for m in dcw.dc.replies_to(asked_a))
    asked_b = await dcw.dc.say(GENERAL_B, MOD_B, question)
    assert any("De Spiegel" in str(m["content"]) for m in dcw.dc.replies_to(asked_b))
