"""copss's webhook in each channel.

A bridged copy is posted through a webhook so that it shows its author's name. copss finds
its webhook of a channel by name and application id, makes one once where there is none,
reuses it, forgets it when it is deleted, and stops asking for a while where Discord refuses
one. It also remembers every webhook it posted through, so that their messages are known as
its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import discord

from adapters.discord.client import NO_MENTIONS, CopssClient
from adapters.discord.translate import WEBHOOK_NAME, is_copss_webhook, is_own, webhook_username
from bot.events import ChannelRef, Outgoing

log = logging.getLogger(__name__)

#: How long copss posts copies as the bot in a channel where Discord refused it a webhook
#: before asking again (an admin may grant Manage Webhooks meanwhile).
WEBHOOK_RETRY_AFTER = 600.0


class WebhookRefused(Exception):
    """Posting through the webhook failed before anything was posted; ``gone``: the webhook
    no longer exists (else Discord refused it, e.g. missing permission or the username)."""

    def __init__(self, gone: bool) -> None:
        super().__init__("webhook gone" if gone else "webhook refused")
        self.gone = gone


def thread_arg(channel: ChannelRef) -> Any:
    """The ``thread`` argument of a webhook call: the thread, or discord.py's "none"."""
    return discord.Object(int(channel.thread_id)) if channel.thread_id else discord.utils.MISSING


def webhook_gone(exc: BaseException) -> bool:
    """Whether a webhook call failed because the webhook no longer exists."""
    return isinstance(exc, discord.NotFound) and exc.code == 10015  # Unknown Webhook


def webhook_trouble(exc: BaseException) -> bool:
    """A webhook failure that posting as the bot can avoid: the webhook deleted, webhooks
    forbidden, or a request Discord refuses from webhooks only (e.g. a username)."""
    if webhook_gone(exc):
        return True
    return isinstance(exc, discord.HTTPException) and exc.status in (400, 403)


class Webhooks:
    """copss's webhooks by channel, and what it learnt where it could not have one."""

    def __init__(self, client: CopssClient) -> None:
        self.client = client
        # copss's webhook per channel id, channels where Discord refused one (and when), and
        # the ids of every webhook copss posted through (their messages are never read in).
        self._hooks: dict[int, discord.Webhook] = {}
        self._no_hooks: dict[int, float] = {}
        self._hook_locks: dict[int, asyncio.Lock] = {}
        self._hook_ids: set[int] = set()

    def mine(self, message: discord.Message) -> bool:
        """Whether copss posted it: as the bot, through the application, or a webhook of its."""
        return is_own(message, self.client.bot_view) or (
            message.webhook_id is not None and message.webhook_id in self._hook_ids
        )

    async def for_channel(
        self, channel: ChannelRef, *, make: bool = True
    ) -> discord.Webhook | None:
        """copss's webhook of the channel (a thread posts through its parent's): found by name
        and application id, made once if there is none (unless ``make`` is false: to delete
        with it, say); None where copss may not have one (no Manage Webhooks, a DM, Discord
        refusing), asked again after a while."""
        if not channel.chat_id.isdigit():
            return None
        cid = int(channel.chat_id)
        hook = self._hooks.get(cid)
        if hook is not None:
            return hook
        refused_at = self._no_hooks.get(cid)
        if refused_at is not None and time.monotonic() - refused_at < WEBHOOK_RETRY_AFTER:
            return None
        # One lookup per channel at a time, so two sends never both make a webhook.
        async with self._hook_locks.setdefault(cid, asyncio.Lock()):
            hook = self._hooks.get(cid)
            if hook is not None:
                return hook
            try:
                hook = await self._find_or_make(cid, make)
            except discord.HTTPException as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise  # Discord is struggling: the outbox tries again later
                log.warning(
                    "discord: no webhook in channel %s (%s): copies go as the bot", cid, exc
                )
                hook = None
            if hook is None:
                if make:
                    self._no_hooks[cid] = time.monotonic()
                return None
            self._hooks[cid] = hook
            self._hook_ids.add(hook.id)
            self._no_hooks.pop(cid, None)
            return hook

    async def _find_or_make(self, channel_id: int, make: bool) -> discord.Webhook | None:
        place = self.client.get_channel(channel_id)
        if place is not None:
            if not isinstance(place, discord.abc.GuildChannel):
                return None  # DMs and group DMs have no webhooks
            me = place.guild.me
            if me is not None and not place.permissions_for(me).manage_webhooks:
                log.info(
                    "discord: copss lacks Manage Webhooks in #%s; bridged copies are posted as "
                    "the bot with the author's name in front",
                    place.name,
                )
                return None
        for data in await self.client.http.channel_webhooks(channel_id):
            if is_copss_webhook(data, self.client.bot_view):
                return self._bind(data)
        if not make:
            return None
        made = await self.client.http.create_webhook(
            channel_id, name=WEBHOOK_NAME, reason="copss posts bridged messages as their authors"
        )
        log.info("discord: made the webhook %r in channel %s", WEBHOOK_NAME, channel_id)
        return self._bind(made)

    def _bind(self, data: Any) -> discord.Webhook | None:
        token = data.get("token")
        if not token:
            return None
        return discord.Webhook.partial(int(data["id"]), str(token), client=self.client)

    def failed(self, channel: ChannelRef, exc: BaseException) -> None:
        """Learn from a failed webhook call: a deleted webhook is looked for (or made) again
        next time; a refused one is not asked for again for a while. Any other refusal (a
        username Discord does not take, say) concerns that message only."""
        if not channel.chat_id.isdigit():
            return
        cid = int(channel.chat_id)
        if webhook_gone(exc):
            gone = self._hooks.pop(cid, None)
            log.warning("discord: webhook %s of channel %s is gone", gone and gone.id, cid)
        elif isinstance(exc, discord.HTTPException) and exc.status == 403:
            self._hooks.pop(cid, None)
            self._no_hooks[cid] = time.monotonic()
            log.warning("discord: webhook refused in channel %s; copies go as the bot", cid)
        else:
            log.info("discord: a copy went as the bot after its webhook post failed: %s", exc)

    async def post(self, hook: discord.Webhook, message: Outgoing, text: str) -> str:
        """Post one chunk of a copy through ``hook`` under its author's name; its id."""
        # Webhook executions take no nonce; the outbox retries only what surely failed.
        sent = await hook.send(
            text,
            username=webhook_username(message.as_name or ""),
            allowed_mentions=NO_MENTIONS,
            wait=True,
            thread=thread_arg(message.channel),
        )
        return str(sent.id)
