"""The messages copss posted, and editing and deleting them.

copss remembers how it posted each recent message (through which webhook, with what before
the text, in which chunks), or reads that back from Discord after a restart, so that an edit
keeps the head and goes through the same webhook and a delete removes every chunk.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass

import discord

from adapters.base import AdapterError
from adapters.discord.client import NO_MENTIONS, CopssClient
from adapters.discord.translate import MESSAGE_LIMIT, adapter_error, copy_head
from adapters.discord.webhooks import Webhooks, thread_arg
from adapters.text import split_text
from bot.events import ChannelRef

#: How many posted messages copss remembers (webhook, head, chunks) without asking Discord.
REMEMBERED_MESSAGES = 10_000


@dataclass(frozen=True)
class Copy:
    """A message copss posted: through which of its webhooks (None: as the bot), what it put
    before the text, and the ids of every chunk the text was split into (first first)."""

    webhook_id: int | None
    head: str
    chunk_ids: tuple[int, ...]


class PostedCopies:
    """The recently posted messages, by the id of their first chunk, and what can be done
    to a posted message afterwards: edit it, delete it."""

    def __init__(self, client: CopssClient, webhooks: Webhooks) -> None:
        self.client = client
        self.webhooks = webhooks
        # Recently posted messages: through which webhook, with which head, in which chunks.
        self._copies: OrderedDict[int, Copy] = OrderedDict()

    def note(self, message_id: int, copy: Copy) -> None:
        """Remember a message just posted, forgetting the oldest beyond the limit."""
        self._copies[message_id] = copy
        self._copies.move_to_end(message_id)
        while len(self._copies) > REMEMBERED_MESSAGES:
            self._copies.popitem(last=False)

    async def find(self, channel: ChannelRef, message_id: int) -> Copy | None:
        """What copss knows of a message it posted: remembered since it was sent, else read
        from Discord (after a restart); None when the message no longer exists."""
        known = self._copies.get(message_id)
        if known is not None:
            return known
        try:
            found = await self.client.messageable(channel).fetch_message(message_id)
        except discord.NotFound:
            return None
        mine = self.webhooks.mine(found)
        # An interaction's answer carries the application's id as webhook id, but it is the
        # bot's own message, edited and deleted as such.
        bot_id = self.client.bot_view.bot_id
        hooked = mine and found.webhook_id is not None and found.author.id != bot_id
        head = copy_head(found.content, webhook=hooked) if mine else ""
        return Copy(found.webhook_id if hooked else None, head, (message_id,))

    async def edit(self, channel: ChannelRef, message_id: str, text: str) -> None:
        """Edit a message copss posted, keeping what it put before the text (the author of a
        copy, a reply link); a copy posted through a webhook is edited through that webhook.
        Text beyond 2000 characters is cut, marked with …"""
        try:
            mid = int(message_id)
            copy = await self.find(channel, mid)
            if copy is None:
                raise AdapterError(f"discord message {message_id} no longer exists")
            room = MESSAGE_LIMIT - len(copy.head)
            if len(text) > room:
                text = split_text(text, room - 1, code_fences=True)[0] + "…"
            content = copy.head + text
            if copy.webhook_id is None:
                partial = self.client.messageable(channel).get_partial_message(mid)
                await partial.edit(content=content, allowed_mentions=NO_MENTIONS)
                return
            hook = await self.webhooks.for_channel(channel)
            if hook is None or hook.id != copy.webhook_id:
                raise AdapterError(f"discord message {mid} was posted through a lost webhook")
            await hook.edit_message(
                mid, content=content, allowed_mentions=NO_MENTIONS, thread=thread_arg(channel)
            )
        except AdapterError:
            raise
        except Exception as exc:
            raise (adapter_error(exc) or exc) from exc

    async def delete(self, channel: ChannelRef, message_id: str) -> None:
        """Delete a message (the bot's own with every chunk it was split into, a webhook copy
        through its webhook, or a member's with Manage Messages); a message that is already
        gone counts as deleted."""
        try:
            mid = int(message_id)
            copy = await self.find(channel, mid)
            if copy is None:
                return
            hook = None
            if copy.webhook_id is not None:
                current = await self.webhooks.for_channel(channel)
                hook = current if current is not None and current.id == copy.webhook_id else None
            for part in copy.chunk_ids:
                with contextlib.suppress(discord.NotFound):
                    if hook is not None:
                        try:
                            await hook.delete_message(part, thread=thread_arg(channel))
                            continue
                        except discord.NotFound:
                            pass  # a chunk that went as the bot (the webhook failed there)
                    await self.client.messageable(channel).get_partial_message(part).delete()
            self._copies.pop(mid, None)
        except AdapterError:
            raise
        except Exception as exc:
            raise (adapter_error(exc) or exc) from exc
