"""copss running on the real discord.py client against the loopback fake gateway and REST."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from adapters.discord import DiscordAdapter
from adapters.discord.translate import interaction_id
from bot.app import App
from bot.config import Config, StorageConfig
from bot.events import Event
from bot.features.commands import all_commands
from storage.engine import Database, sqlite_url
from tests.adapters.app_runner import WatchesEvents, stop_app
from tests.fakes.discord_gateway import (
    INTENT_MESSAGE_CONTENT,
    JSON,
    FakeDiscord,
    InteractionRecord,
    patch_discord,
)

#: Not shaped like a real token, and never registered for masking: a log that shows it leaked.
TOKEN = "copss-e2e-token-7f3a9c1d5e8b2a4f6c0d"
#: The real command menu, as bot.app hands it to the adapter.
MENU = [(c.name, c.summary) for c in all_commands()]
#: ApplicationFlags.gateway_message_content_limited: the portal's Message Content switch.
CONTENT_LIMITED_FLAG = 1 << 19
WAIT = 10.0


class PortalFake(FakeDiscord):
    """The fake plus the developer portal's Message Content switch: when it is off the
    application flags do not show it and Discord closes an IDENTIFY that asks for the
    intent with 4014 ("Disallowed intent(s)")."""

    def __init__(self, *args: Any, message_content: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_content = message_content

    async def _r_application(self, req: Any) -> tuple[int, Any]:
        status, body = await super()._r_application(req)
        body["flags"] = CONTENT_LIMITED_FLAG if self.message_content else 0
        return status, body

    async def _identify(self, conn: Any, data: JSON) -> None:
        if not self.message_content and int(data.get("intents", 0)) & INTENT_MESSAGE_CONTENT:
            conn.closed = True
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        await super()._identify(conn, data)


def one_server(
    fake: FakeDiscord, guild: int, channels: dict[int, str], members: dict[int, str]
) -> None:
    """Give ``fake`` a server with these text channels and members (ids to names)."""
    fake.add_guild(guild, "Expats NL")
    for channel_id, name in channels.items():
        fake.add_channel(guild, channel_id, name)
    for user_id, name in members.items():
        fake.add_member(guild, user_id, name)


class DiscordHarness(WatchesEvents):
    """Starts and stops copss (as often as a test likes) on one store and one fake Discord,
    and tells a test when the events it caused have reached the hub."""

    def __init__(self, fake: FakeDiscord, tmp_path: Path) -> None:
        super().__init__()
        self.fake = fake
        self.config = Config(storage=StorageConfig(url=sqlite_url(tmp_path / "copss.db")))
        self.app: App | None = None
        self.adapter: DiscordAdapter | None = None
        self.task: asyncio.Task[None] | None = None
        self._patch = contextlib.ExitStack()

    @property
    def db(self) -> Database:
        assert self.app is not None and self.app.db is not None
        return self.app.db

    async def start(self) -> None:
        """Start copss and wait until it has caught up with what it missed."""
        self._patch.enter_context(patch_discord(self.fake))
        self.adapter = DiscordAdapter(TOKEN, commands=MENU, guild_ready_timeout=0.05)
        self.app = App(self.config, adapters=[self.adapter])
        self.task = await self.start_watched(self.app, self.adapter.caught_up, WAIT)

    async def wait_message(self, message_id: int | str, kind: type[Any] | None = None) -> Event:
        """Wait until the event for a message (of ``kind``, if given) reached the hub."""
        return await self.wait_event(
            lambda e: e.message_id == str(message_id) and (kind is None or isinstance(e, kind))
        )

    async def settle(self) -> None:
        """Wait until copss handled every stored event and sent every reply."""
        assert self.app is not None and self.app.hub is not None
        async with asyncio.timeout(30):
            await self.app.hub.settled()

    async def say(
        self, channel_id: int, author_id: int, text: str, *, reply_to: int | None = None
    ) -> int:
        """A member posts; returns the message id once copss has handled it."""
        message = await self.fake.user_message(
            channel_id, author_id, text, message_reference=reply_to
        )
        await self.wait_message(message["id"])
        await self.settle()
        return int(message["id"])

    async def forum_post(self, forum_id: int, author_id: int, title: str, body: str) -> int:
        """A member opens a forum post: the thread, then its opening message, whose id is the
        thread's (as on Discord; the fake has no public helper for a member's forum post)."""
        thread = await self.fake.create_thread(forum_id, title, owner_id=author_id)
        post_id = int(thread["id"])
        fake = self.fake
        message = fake._build_message(post_id, fake.user(author_id), body, message_id=post_id)
        fake._store_message(message)
        await fake.dispatch("MESSAGE_CREATE", fake._gateway_message(message))
        await self.wait_message(post_id)
        await self.settle()
        return post_id

    async def slash(
        self, guild_id: int | None, channel_id: int, user_id: int, name: str, text: str = ""
    ) -> InteractionRecord:
        """A member runs a slash command; returns it once copss has answered."""
        options = {"text": text} if text else {}
        record = await self.fake.interaction(guild_id, channel_id, user_id, name, options)
        # A private command's event names the member too (``interaction:ID:private:USER``).
        await self.wait_event(lambda e: interaction_id(e.message_id) == record.id)
        await self.settle()
        return record

    def replies_to(self, message_id: int) -> list[JSON]:
        """The bot's messages that are Discord replies to ``message_id``."""
        return [
            m
            for m in self.fake.sent_messages()
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
            self.app, self.adapter, self.task = None, None, None
