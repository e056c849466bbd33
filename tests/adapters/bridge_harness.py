"""copss bridging Discord and Telegram: the real discord.py client against the fake gateway
and the real python-telegram-bot against the fake Bot API, both at once, in one App on one
SQLite file.

The harness tells a test when what it caused has been handled: a Telegram update once copss
confirmed it, a Discord message once its event reached the hub, then the hub settled (every
stored event handled, every queued message sent).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter, TelegramLimits
from bot.app import App
from bot.config import Config, StorageConfig
from bot.events import Event
from bot.features.bridge import Bridge
from bot.features.commands import all_commands
from storage.engine import Database, sqlite_url
from tests.adapters.app_runner import WatchesEvents, stop_app
from tests.adapters.tg_harness import GROUP, scaled_limits
from tests.fakes.discord_gateway import (
    JSON,
    MANAGE_GUILD,
    FakeDiscord,
    patch_discord,
)
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

#: Not shaped like a real token, so a leak in a log would show.
DISCORD_TOKEN = "copss-bridge-token-4b9e2d7a1c"
GUILD = 910_000_000_000_000_001
GENERAL = 910_000_000_000_000_010
THREAD = 910_000_000_000_000_012
#: A channel never linked: where the harness posts its barriers.
LOBBY = 910_000_000_000_000_013
#: Discord members (DC_ADMIN may manage the server) and Telegram members (TG_ADMIN is an
#: administrator of GROUP).
DC_ALICE, DC_BOB, DC_CAROL, DC_ADMIN = (910_000_000_000_000_100 + i for i in range(4))
TG_ANNA, TG_BEN, TG_ADMIN = 401, 402, 409
#: Every command, as App offers them (text commands on Discord need their names known).
MENU = [(c.name, c.summary) for c in all_commands()]
WAIT = 10.0


def build_worlds(tg: FakeTelegramAPI, dc: FakeDiscord, **guild: Any) -> None:
    """A Telegram supergroup and a Discord server with #general and a thread in it."""
    tg.add_chat(GROUP, "supergroup", title="Expats NL")
    tg.set_member_status(GROUP, TG_ADMIN, "administrator")
    dc.add_guild(GUILD, "Expats NL", **guild)
    dc.add_channel(GUILD, GENERAL, "general")
    dc.add_channel(GUILD, THREAD, "housing", type=11, parent_id=GENERAL)
    dc.add_channel(GUILD, LOBBY, "lobby")
    for uid, name in ((DC_ALICE, "Alice"), (DC_BOB, "Bob"), (DC_CAROL, "Carol")):
        dc.add_member(GUILD, uid, name)
    dc.add_member(GUILD, DC_ADMIN, "Mod", permissions=MANAGE_GUILD)


class BridgeHarness(WatchesEvents):
    """Starts and stops copss (as often as a test likes) on one store and both fakes."""

    def __init__(
        self,
        tg: FakeTelegramAPI,
        dc: FakeDiscord,
        tmp_path: Path,
        *,
        limits: TelegramLimits | None = None,
        db_name: str = "copss.db",
    ) -> None:
        super().__init__()
        self.tg = tg
        self.dc = dc
        self.limits = limits or scaled_limits()
        self.config = Config(storage=StorageConfig(url=sqlite_url(tmp_path / db_name)))
        self.app: App | None = None
        self.discord: DiscordAdapter | None = None
        self.task: asyncio.Task[None] | None = None
        #: Every event copss stored, across restarts (duplicates included).
        self._patch = contextlib.ExitStack()

    @property
    def db(self) -> Database:
        assert self.app is not None and self.app.db is not None
        return self.app.db

    @property
    def bridge(self) -> Bridge:
        """The bridge handler of the running App (tests tune its backlog limits)."""
        assert self.app is not None and self.app.hub is not None
        return next(h for h in self.app.hub.handlers if isinstance(h, Bridge))

    async def start(self) -> None:
        """Start copss; returns once it polls Telegram and has caught up on Discord."""
        self._patch.enter_context(patch_discord(self.dc))
        telegram = TelegramAdapter(
            DEFAULT_TOKEN,
            base_url=self.tg.base_url,
            base_file_url=self.tg.base_file_url,
            limits=self.limits,
            poll_timeout=1,
            commands=MENU,
        )
        self.discord = DiscordAdapter(DISCORD_TOKEN, commands=MENU, guild_ready_timeout=0.05)
        polls = len(self.tg.calls_to("getUpdates"))
        self.app = App(self.config, adapters=[telegram, self.discord])
        self.task = await self.start_watched(self.app, self.discord.caught_up, WAIT)
        await self.tg.wait_for_calls("getUpdates", count=polls + 1, within=WAIT)

    async def wait_discord(self, message_id: int | str, kind: type[Any] | None = None) -> Event:
        """Wait until the event of a Discord message (of ``kind``) is stored."""
        mid = str(message_id)
        return await self.wait_event(
            lambda e: (
                e.channel.platform == "discord"
                and e.message_id == mid
                and (kind is None or isinstance(e, kind))
            )
        )

    async def settle(self, within: float = 30.0) -> None:
        """Wait until every pushed Telegram update is confirmed, then until copss handled
        every stored event and sent every queued message."""
        last = self.tg._next_update_id - 1
        if last > 0:
            await self.tg.wait_until_confirmed(last, within=within)
        assert self.app is not None and self.app.hub is not None
        async with asyncio.timeout(within):
            await self.app.hub.settled()

    async def tg_say(self, user: int, text: str, **kwargs: Any) -> int:
        """A Telegram member posts in GROUP; returns its message id once copss is done."""
        kwargs.setdefault("first_name", {TG_ANNA: "Anna", TG_BEN: "Ben"}.get(user, "Tim"))
        update = self.tg.message_update(GROUP, user, text, **kwargs)
        self.tg.push_update(update)
        await self.settle()
        return int(update["message"]["message_id"])

    async def push_tg(self, update: dict[str, Any]) -> None:
        """Push any Telegram update (an edit, a photo) and wait until copss is done."""
        self.tg.push_update(update)
        await self.settle()

    async def dc_say(
        self,
        user: int,
        text: str,
        *,
        channel: int = GENERAL,
        reply_to: int | None = None,
        **kw: Any,
    ) -> int:
        """A Discord member posts; returns the message id once copss is done with it."""
        message = await self.dc.user_message(channel, user, text, message_reference=reply_to, **kw)
        await self.wait_discord(message["id"])
        await self.settle()
        return int(message["id"])

    async def dc_barrier(self) -> None:
        """Wait until copss has read and handled everything Discord sent before now: a
        member's message posted now (in the unlinked lobby) reaches copss after all of it,
        since the adapter takes events in the order Discord sent them."""
        await self.dc_say(DC_CAROL, "ok", channel=LOBBY)

    async def link(self, channel: int = GENERAL, thread: int | None = None) -> None:
        """A Discord admin asks for the bridge; a Telegram admin confirms it."""
        place = f"{channel}:{thread}" if thread else str(channel)
        asked = await self.dc_say(DC_ADMIN, f"!link telegram:{GROUP}", channel=thread or channel)
        [reply] = self.replies_to(asked)
        assert "Link requested" in reply["content"], reply["content"]
        await self.tg_say(TG_ADMIN, f"/link discord:{place}")
        assert "Linked" in self.tg.sent_texts(GROUP)[-1], self.tg.sent_texts(GROUP)[-1]

    def replies_to(self, message_id: int) -> list[JSON]:
        """The bot's own (not webhook) messages that reply to a Discord message."""
        return [
            m
            for m in self.dc.sent_messages()
            if (m.get("message_reference") or {}).get("message_id") == str(message_id)
        ]

    async def stop(self, *, abrupt: bool = False) -> None:
        """Stop cleanly, or (``abrupt``) cancel everything mid-flight like a crash would."""
        if self.app is None or self.task is None:
            return
        try:
            await stop_app(self.app, self.task, abrupt=abrupt)
        finally:
            self._patch.close()  # never leave discord.py pointed at a fake that is gone
            self.app, self.discord, self.task = None, None, None
