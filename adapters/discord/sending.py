"""Posting messages on Discord.

A message is split at 2000 characters and every chunk pings nobody. A slash command's answer
goes back through its interaction, a bridged copy through copss's webhook of the channel
(else as the bot with its author's name in front), anything else as a real reply from the
bot. A private answer (to a personal slash command) that its interaction can no longer carry
goes to the member by DM, or nowhere: never into the channel. Text and author names are
cleaned of invisible and control characters first. Every chunk posted is told to the outbox's
:class:`~adapters.base.Progress`, so a retry (also after a restart) goes on from the chunk
where the last attempt stopped; Discord's failures become AdapterError or
TransientAdapterError for the outbox.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets

import discord

from adapters.base import AdapterError, Progress, TransientAdapterError
from adapters.discord.client import NO_MENTIONS, CopssClient
from adapters.discord.commands import SlashCommands
from adapters.discord.copies import Copy, PostedCopies
from adapters.discord.translate import (
    MESSAGE_LIMIT,
    adapter_error,
    message_nonce,
    name_prefix,
    private_recipient,
    reply_line,
)
from adapters.discord.webhooks import WebhookRefused, Webhooks, webhook_gone, webhook_trouble
from adapters.text import outgoing_name, outgoing_text, split_pieces
from bot.events import Outgoing

log = logging.getLogger(__name__)

#: The line before a private answer sent by DM, so the member knows what it answers.
DM_HEAD = (
    "-# The answer to your command, sent here: Discord no longer let copss show it to you "
    "privately where you asked.\n"
)


class Sender:
    """Posts outgoing messages, going on where an earlier attempt stopped."""

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

    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        """Post in the channel or thread (split at 2000 characters), pinging nobody; a slash
        command's answer goes back through its interaction. Returns every chunk's id.

        A bridged copy (``as_name`` set) is posted through copss's webhook of the channel
        under the author's name; where webhooks are not allowed it is posted as the bot with
        the name in bold in front. Other messages are real replies posted as the bot. A
        private answer its interaction cannot carry (any more) goes to the member by DM;
        when that fails too it is dropped (AdapterError), never posted in the channel.
        ``progress`` holds the chunks an earlier attempt posted: the send goes on after them.
        """
        progress = progress if progress is not None else Progress()
        message = dataclasses.replace(
            message,
            text=outgoing_text(message.text),
            as_name=outgoing_name(message.as_name) if message.as_name is not None else None,
        )
        if not message.text.strip() and not progress.ids:
            raise AdapterError("discord cannot post an empty message")
        interaction = self.slash.interaction(message.reply_to)
        try:
            hook = None
            if message.as_name is not None and interaction is None:
                hook = await self.webhooks.for_channel(message.channel)
            for attempt in range(3):
                try:
                    return await self._send_chunks(
                        message, interaction, hook, progress, private_recipient(message.reply_to)
                    )
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
        progress: Progress,
        recipient: int | None,
    ) -> list[str]:
        # A private answer (``recipient``: the member it is for) goes through its interaction
        # while Discord takes it there, else by DM; it never falls through to the channel.
        dm = None
        if recipient is not None and interaction is None:
            dm = await self._private_dm(message, recipient, "the interaction is gone")
        # The head goes before the first chunk only; a send that goes on after chunks posted
        # earlier splits the rest of the text as the first attempt did.
        head = ""
        if not progress.ids:
            head = DM_HEAD if dm is not None else self._copy_head(message, hook)
        pieces = split_pieces(
            message.text,
            MESSAGE_LIMIT,
            code_fences=True,
            first_limit=None if progress.ids else MESSAGE_LIMIT - len(head),
            start=progress.done if progress.ids else 0,
            carry=progress.carry if progress.ids else "",
        )
        webhook_id: int | None = None
        at = 0
        while at < len(pieces):
            piece, index = pieces[at], len(progress.ids)
            text = head + piece.text if index == 0 else piece.text
            try:
                sent = None
                if interaction is not None:
                    sent = await self.slash.answer(
                        interaction, text, index, private=recipient is not None
                    )
                    if sent is None:
                        interaction = None  # expired: the rest goes to the channel ...
                        if recipient is not None:  # ... or, when private, by DM
                            dm = await self._private_dm(
                                message, recipient, "the interaction expired"
                            )
                if sent is None and dm is not None:
                    sent = await self._post_dm(dm, message, text, index)
                if sent is None and recipient is not None:  # not reached: never public
                    raise AdapterError("discord: a private answer has nowhere private to go")
                if sent is None and hook is not None:
                    sent = await self.webhooks.post(hook, message, text)
                    if index == 0:
                        webhook_id = hook.id
                if sent is None:
                    sent = await self._post(message, text, index)
            except Exception as exc:
                if hook is not None and webhook_trouble(exc):
                    self.webhooks.failed(message.channel, exc)
                    if not progress.ids:
                        raise WebhookRefused(webhook_gone(exc)) from exc
                    hook = None  # the rest of a message already begun goes as the bot
                    continue
                raise
            at += 1
            await progress.posted(sent, piece.end, piece.carry, more=at < len(pieces))
            if index == 0:
                self.copies.note(int(sent), Copy(webhook_id, head))
        return list(progress.ids)

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

    async def _private_dm(
        self, message: Outgoing, user_id: int, why: str
    ) -> discord.abc.Messageable:
        """The member's DM channel, for a private answer its interaction cannot carry."""
        log.warning(
            "discord: a private answer (%s) cannot be shown where it was asked (%s); sending it "
            "to the member by DM",
            message.reply_to,
            why,
        )
        try:
            return await self.client.create_dm(discord.Object(user_id))
        except discord.HTTPException as exc:
            raise _undeliverable(exc) from exc

    async def _post_dm(
        self, dm: discord.abc.Messageable, message: Outgoing, text: str, index: int
    ) -> str:
        nonce = (
            message_nonce(message.key, message.channel, index, text)
            if message.key
            else secrets.randbits(63)
        )
        try:
            sent = await dm.send(text, allowed_mentions=NO_MENTIONS, nonce=nonce)
        except discord.HTTPException as exc:
            raise _undeliverable(exc) from exc
        return str(sent.id)

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


def _undeliverable(exc: discord.HTTPException) -> AdapterError:
    """Discord refused a private answer's DM: a rate limit or an outage is retried; a refusal
    (the member accepts no DMs from the server, 403 code 50007) drops the answer, which is
    never posted where others could read it."""
    error = adapter_error(exc)
    if isinstance(error, TransientAdapterError):
        return error
    return AdapterError(
        "discord: dropped a private answer: neither its interaction nor a DM to the member "
        f"could take it (DM refused: {exc.status}, code {exc.code}: {exc.text})"
    )
