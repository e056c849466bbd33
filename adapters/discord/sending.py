"""Posting messages on Discord.

A message is split at 2000 characters and every chunk pings nobody. A slash command's answer
goes back through its interaction, a bridged copy through copss's webhook of the channel
(else as the bot with its author's name in front), anything else as a real reply from the
bot. A retry goes on from the chunk where the last attempt stopped, and Discord's failures
become AdapterError or TransientAdapterError for the outbox.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import discord

from adapters.base import AdapterError, TransientAdapterError
from adapters.discord.client import NO_MENTIONS, CopssClient
from adapters.discord.commands import SlashCommands
from adapters.discord.copies import Copy, PostedCopies
from adapters.discord.translate import (
    MESSAGE_LIMIT,
    adapter_error,
    message_nonce,
    name_prefix,
    reply_line,
)
from adapters.discord.webhooks import WebhookRefused, Webhooks, webhook_gone, webhook_trouble
from adapters.text import split_text
from bot.events import Outgoing


@dataclass
class Partial:
    """A split message part-way posted: its head, all its chunks, the ids posted so far, and
    the webhook its first chunk went through (None: as the bot)."""

    head: str
    chunks: list[str]
    posted: list[str]
    webhook_id: int | None = None


class Sender:
    """Posts outgoing messages, remembering split messages a failure interrupted."""

    def __init__(
        self,
        client: CopssClient,
        slash: SlashCommands,
        webhooks: Webhooks,
        copies: PostedCopies,
    ) -> None:
        self.client = client
        self.slash = slash
        self.webhooks = webhooks
        self.copies = copies
        # Chunks of a split message already posted, by outbox key, so a retry goes on from
        # where it failed (interaction follow-ups and webhooks take no nonce to make a repeat
        # harmless).
        self._posted: dict[str, Partial] = {}

    async def send(self, message: Outgoing) -> str:
        """Post in the channel or thread (split at 2000 characters), pinging nobody; a slash
        command's answer goes back through its interaction.

        A bridged copy (``as_name`` set) is posted through copss's webhook of the channel
        under the author's name; where webhooks are not allowed it is posted as the bot with
        the name in bold in front. Other messages are real replies posted as the bot.
        """
        if not message.text.strip():
            raise AdapterError("discord cannot post an empty message")
        interaction = self.slash.interaction(message.reply_to)
        try:
            hook = None
            if message.as_name is not None and interaction is None:
                hook = await self.webhooks.for_channel(message.channel)
            for attempt in range(3):
                try:
                    return await self._send_chunks(message, interaction, hook)
                except WebhookRefused as refused:
                    # Nothing was posted yet. A webhook deleted meanwhile is looked for (or
                    # made) once more; otherwise the copy goes out as the bot.
                    retry = refused.gone and attempt == 0
                    hook = await self.webhooks.for_channel(message.channel) if retry else None
            raise AdapterError("discord: no way left to post this message")  # not reached
        except AdapterError:
            raise
        except Exception as exc:
            error = adapter_error(exc)
            if error is None:
                raise
            raise error from exc

    async def _send_chunks(
        self,
        message: Outgoing,
        interaction: discord.Interaction | None,
        hook: discord.Webhook | None,
    ) -> str:
        key = message.key
        saved = self._posted.pop(key, None) if key else None
        if saved is None:
            head = self._copy_head(message, hook)
            chunks = split_text(message.text, MESSAGE_LIMIT - len(head), code_fences=True)
            chunks[0] = head + chunks[0]
            saved = Partial(head, chunks, [])
        # A retry goes on from where the last attempt stopped, with the same chunks.
        chunks, posted = saved.chunks, saved.posted
        while len(posted) < len(chunks):
            index = len(posted)
            try:
                sent = None
                if interaction is not None:
                    sent = await self.slash.answer(interaction, chunks[index], index)
                    if sent is None:
                        interaction = None  # expired: the rest goes to the channel
                if sent is None and hook is not None:
                    sent = await self.webhooks.post(hook, message, chunks[index])
                    if index == 0:
                        saved.webhook_id = hook.id
                if sent is None:
                    sent = await self._post(message, chunks[index], index)
            except Exception as exc:
                if hook is not None and webhook_trouble(exc):
                    self.webhooks.failed(message.channel, exc)
                    if not posted:
                        raise WebhookRefused(webhook_gone(exc)) from exc
                    hook = None  # the rest of a message already begun goes as the bot
                    continue
                error = adapter_error(exc)
                if key and posted and isinstance(error, TransientAdapterError):
                    self._posted[key] = saved
                raise
            posted.append(sent)
        self.copies.note(
            int(posted[0]), Copy(saved.webhook_id, saved.head, tuple(int(p) for p in posted))
        )
        return posted[0]

    def _copy_head(self, message: Outgoing, hook: discord.Webhook | None) -> str:
        """What goes before the text: a webhook copy links the message it answers (webhook
        messages cannot be replies); a copy posted as the bot names its author."""
        if hook is not None:
            reply = message.reply_to
            if not reply or not reply.isdigit() or not message.channel.chat_id.isdigit():
                return ""
            place = self.client.get_channel(int(message.channel.chat_id))
            guild = getattr(place, "guild", None)
            if guild is None:
                return ""
            return reply_line(guild.id, message.channel.thread_id or message.channel.chat_id, reply)
        if message.as_name is not None:
            return name_prefix(message.as_name)
        return ""

    async def _post(self, message: Outgoing, text: str, index: int) -> str:
        target = self.client.messageable(message.channel)
        # discord.py sends every message with enforce_nonce; a stable nonce makes Discord
        # hand back the message an attempt that looked failed had already created.
        nonce = (
            message_nonce(message.key, message.channel, index, text)
            if message.key
            else secrets.randbits(63)
        )
        if index == 0 and message.reply_to and message.reply_to.isdigit():
            # A reply to a message deleted meanwhile is posted as a plain message.
            reference = discord.MessageReference(
                message_id=int(message.reply_to), channel_id=target.id, fail_if_not_exists=False
            )
            sent = await target.send(
                text, reference=reference, allowed_mentions=NO_MENTIONS, nonce=nonce
            )
        else:
            sent = await target.send(text, allowed_mentions=NO_MENTIONS, nonce=nonce)
        return str(sent.id)
