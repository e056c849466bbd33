"""The messages copss posted, and editing and deleting them.

copss remembers how it posted each recent message (through which webhook, with what before
the text), or reads that back from Discord after a restart, so that an edit keeps the head and
goes through the same webhook. The outbox keeps the ids of every chunk a message was split
into and hands them all to an edit or a delete, so no chunk is ever left behind.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from adapters.base import AdapterError, Progress
from adapters.discord.client import NO_MENTIONS, CopssClient
from adapters.discord.translate import (
    MESSAGE_LIMIT,
    adapter_error,
    copy_head,
    message_nonce,
    webhook_username,
)
from adapters.discord.webhooks import Webhooks, thread_arg, webhook_gone
from adapters.text import outgoing_name, outgoing_text, split_pieces
from bot.events import ChannelRef

#: How many posted messages copss remembers (webhook, head) without asking Discord.
REMEMBERED_MESSAGES = 10_000


@dataclass(frozen=True)
class Copy:
    """A message copss posted: through which of its webhooks its first chunk went (None: as
    the bot), and what it put before the text."""

    webhook_id: int | None
    head: str


class PostedCopies:
    """The recently posted messages, by the id of their first chunk, and what can be done
    to a posted message afterwards: edit it, delete it."""

    def __init__(self, client: CopssClient, webhooks: Webhooks) -> None:
        self.client = client
        self.webhooks = webhooks
        # Recently posted messages: through which webhook, with which head.
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
        return Copy(found.webhook_id if hooked else None, head)

    async def edit(
        self,
        channel: ChannelRef,
        message_ids: Sequence[str],
        text: str,
        as_name: str | None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Edit a message copss posted in chunks ``message_ids``, keeping what it put before
        the text (the author of a copy, a reply link); a copy posted through a webhook is
        edited through that webhook. The new text is split again: chunks are edited in place,
        chunks no longer needed deleted, and extra chunks posted after the last when the text
        grew (each told to ``progress``). Returns the chunks the message has now."""
        try:
            ids = [int(i) for i in message_ids]
            if not ids:
                raise AdapterError("discord: no message to edit")
            copy = await self.find(channel, ids[0])
            if copy is None:
                raise AdapterError(f"discord message {ids[0]} no longer exists")
            hook = None
            if copy.webhook_id is not None:
                hook = await self.webhooks.for_channel(channel)
                if hook is None or hook.id != copy.webhook_id:
                    raise AdapterError(
                        f"discord message {ids[0]} was posted through a lost webhook"
                    )
            name = outgoing_name(as_name) if as_name is not None else None
            pieces = split_pieces(
                outgoing_text(text),
                MESSAGE_LIMIT,
                code_fences=True,
                first_limit=MESSAGE_LIMIT - len(copy.head),
            )
            for index, piece in enumerate(pieces):
                content = copy.head + piece.text if index == 0 else piece.text
                if index < len(ids):
                    await self._edit_chunk(channel, hook, ids[index], content)
                    continue
                ids.append(await self._post_chunk(channel, hook, name, content, ids[0], index))
                if progress is not None:
                    await progress.changed([str(i) for i in ids])
            kept, leftover = ids[: len(pieces)], ids[len(pieces) :]
            for part in leftover:
                await self._delete_chunk(channel, hook, part)
            if leftover and progress is not None:
                await progress.changed([str(i) for i in kept])
            return [str(i) for i in kept]
        except AdapterError:
            raise
        except Exception as exc:
            raise (adapter_error(exc) or exc) from exc

    async def _edit_chunk(
        self, channel: ChannelRef, hook: discord.Webhook | None, part: int, content: str
    ) -> None:
        if hook is not None:
            try:
                await hook.edit_message(
                    part, content=content, allowed_mentions=NO_MENTIONS, thread=thread_arg(channel)
                )
                return
            except discord.NotFound as exc:
                if webhook_gone(exc):
                    raise
                # Not the webhook's: a chunk that went as the bot (the webhook failed there).
        partial = self.client.messageable(channel).get_partial_message(part)
        await partial.edit(content=content, allowed_mentions=NO_MENTIONS)

    async def _post_chunk(
        self,
        channel: ChannelRef,
        hook: discord.Webhook | None,
        name: str | None,
        content: str,
        first: int,
        index: int,
    ) -> int:
        # An extra chunk of a grown edit: through the copy's webhook under its author's name,
        # else as the bot (after the name in the head of the first chunk).
        if hook is not None:
            hooked = await hook.send(
                content,
                username=webhook_username(name or ""),
                allowed_mentions=NO_MENTIONS,
                wait=True,
                thread=thread_arg(channel),
            )
            return hooked.id
        # A stable nonce (the message's first chunk, the chunk's place and text): an attempt
        # whose answer was lost and is made again gets the chunk Discord already made.
        nonce = message_nonce(f"edit:{first}", channel, index, content)
        sent = await self.client.messageable(channel).send(
            content, allowed_mentions=NO_MENTIONS, nonce=nonce
        )
        return sent.id

    async def _delete_chunk(
        self, channel: ChannelRef, hook: discord.Webhook | None, part: int
    ) -> None:
        with contextlib.suppress(discord.NotFound):
            if hook is not None:
                try:
                    await hook.delete_message(part, thread=thread_arg(channel))
                    return
                except discord.NotFound:
                    pass  # not the webhook's: a chunk that went as the bot (the webhook failed)
            await self.client.messageable(channel).get_partial_message(part).delete()

    async def delete(self, channel: ChannelRef, message_ids: Sequence[str]) -> None:
        """Delete a message with every chunk of it (the bot's own, a webhook copy through its
        webhook, or a member's with Manage Messages); a chunk that is already gone counts as
        deleted, also the first (then the rest go through copss's webhook of the channel if
        it has one)."""
        try:
            ids = [int(i) for i in message_ids]
            if not ids:
                return
            copy = await self.find(channel, ids[0])
            if copy is None and len(ids) == 1:
                return
            hook = None
            if copy is None or copy.webhook_id is not None:
                current = await self.webhooks.for_channel(channel, make=False)
                if current is not None and (copy is None or current.id == copy.webhook_id):
                    hook = current
            for part in ids:
                await self._delete_chunk(channel, hook, part)
            self._copies.pop(ids[0], None)
        except AdapterError:
            raise
        except Exception as exc:
            raise (adapter_error(exc) or exc) from exc
