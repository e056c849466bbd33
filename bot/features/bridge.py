"""Bridging: linked channels relay messages both ways, with replies, edits and deletes
following through the stored copies. Never relays the bot's own messages, another bot's or
webhook's messages, or a message that is already a copy."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import OutboxMeta
from bot.core import Context, sent_chunks
from bot.events import ChannelRef, DeleteEvent, EditEvent, Event, MessageEvent, Outgoing
from storage.models import BridgeLink, Channel, Member, Message, MessageCopy, OutboxMessage
from storage.repos.conversation import ConversationRepo

log = logging.getLogger(__name__)

PLATFORM_NAMES = {"telegram": "Telegram", "discord": "Discord", "console": "console"}


def ref_of(channel: Channel) -> ChannelRef:
    """The event-side reference of a stored channel."""
    return ChannelRef(channel.platform, channel.chat_id, channel.thread_id or None)


def copy_chunks(copy: MessageCopy) -> list[str]:
    """The platform ids of every chunk of a bridged copy, first first (a copy recorded before
    chunks were kept knows its first one only)."""
    return [str(i) for i in copy.chunk_ids or []] or [copy.copy_platform_message_id]


async def queue_copy_deletions(ctx: Context, original_ids: Sequence[int], key_prefix: str) -> int:
    """Queue the deletion of every bridged copy of the messages ``original_ids`` (stored
    message ids), each with every chunk it was split into; returns how many copies. Each copy
    is one outbox row keyed ``{key_prefix}:{copy id}`` (queued once however often this runs);
    the row carries the chunks' ids, so the copies go even when the originals are erased in
    the same transaction."""
    if not original_ids:
        return 0
    rows = await ctx.session.execute(
        select(MessageCopy, Channel)
        .join(Channel, MessageCopy.channel_id == Channel.id)
        .where(MessageCopy.original_id.in_(list(original_ids)))
        .order_by(MessageCopy.id)
    )
    count = 0
    for copy, target in rows.all():
        await ctx.send(
            Outgoing(ref_of(target), ""),
            key=f"{key_prefix}:{copy.id}",
            meta={
                "action": "delete",
                "message_id": copy.copy_platform_message_id,
                "message_ids": copy_chunks(copy),
                "copy_id": copy.id,
            },
        )
        count += 1
    return count


def relay_text(event: MessageEvent) -> str:
    """The copy's body: the text, then one line per attachment."""
    lines = [event.text] if event.text else []
    lines += [f"[{a}]" if "://" not in a else a for a in event.attachments]
    return "\n".join(lines) or "[empty message]"


class Bridge:
    """The relay handler plus the outbox hooks that map copies."""

    def __init__(self, warn_backlog: int = 200, max_backlog: int = 5000) -> None:
        self.warn_backlog = warn_backlog
        self.max_backlog = max_backlog
        self._warned_at: dict[str, float] = {}

    async def __call__(self, event: Event, ctx: Context) -> bool:
        # Relaying never consumes an event: Q&A capture still sees it afterwards.
        if isinstance(event, MessageEvent):
            await self._relay(event, ctx)
        elif isinstance(event, EditEvent | DeleteEvent):
            await self._follow(event, ctx)
        return False

    async def prefetch(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """Before a batch: the active links of every channel its messages were said in, with
        one query for the links and one for the channels at their other ends."""
        repo = ConversationRepo(session)
        channels: list[Channel] = []
        for e in events:
            if isinstance(e, MessageEvent):
                c = await repo.channel(e.channel.platform, e.channel.chat_id, e.channel.thread_id)
                if c is not None and ("links", c.id) not in repo.seen:
                    channels.append(c)
        if not channels:
            return
        ids = [c.id for c in channels]
        links = (
            await session.scalars(
                select(BridgeLink).where(
                    BridgeLink.status == "active",
                    or_(BridgeLink.channel_a_id.in_(ids), BridgeLink.channel_b_id.in_(ids)),
                )
            )
        ).all()
        ends = {link.channel_a_id for link in links} | {link.channel_b_id for link in links}
        if ends:
            await session.scalars(select(Channel).where(Channel.id.in_(ends)))
        for c in channels:
            targets = []
            for link in links:
                if c.id in (link.channel_a_id, link.channel_b_id):
                    other = link.channel_b_id if link.channel_a_id == c.id else link.channel_a_id
                    target = await session.get(Channel, other)
                    if target is not None:
                        targets.append(target)
            repo.seen[("links", c.id)] = targets

    async def _links(self, session: AsyncSession, channel: Channel) -> list[Channel]:
        # Looked up once per channel and transaction: a batch of messages shares one look.
        seen = ConversationRepo(session).seen
        key = ("links", channel.id)
        if key in seen:
            known: list[Channel] = seen[key]
            return known
        rows = await session.scalars(
            select(BridgeLink).where(
                BridgeLink.status == "active",
                or_(BridgeLink.channel_a_id == channel.id, BridgeLink.channel_b_id == channel.id),
            )
        )
        targets = []
        for link in rows.all():
            other = link.channel_b_id if link.channel_a_id == channel.id else link.channel_a_id
            target = await session.get(Channel, other)
            if target is not None:
                targets.append(target)
        seen[key] = targets
        return targets

    async def _relay(self, event: MessageEvent, ctx: Context) -> None:
        if event.author.is_bot or event.origin:
            return
        s = ctx.session
        repo = ConversationRepo(s)
        e = event.channel
        channel = await repo.ensure_channel(e.platform, e.chat_id, e.thread_id)
        targets = await self._links(s, channel)
        if not targets:
            return
        if await repo.original_of(channel.id, event.message_id) is not None:
            return  # a copy made by copss (seen again, e.g. through catch-up)
        a = event.author
        member = await repo.ensure_member(a.platform, a.user_id, a.display_name, a.is_bot)
        message = None
        if not member.opted_out:  # an opted-out member's words are relayed, never stored
            message, _ = await repo.add_message(
                channel, event.message_id, member, event.text, event.sent_at, event.reply_to
            )
        parent = (
            await repo.reply_parent(e.platform, e.chat_id, event.reply_to)
            if event.reply_to
            else None
        )
        name = f"{a.display_name} ({PLATFORM_NAMES.get(e.platform, e.platform)})"
        origin = f"{e.platform}:{e.chat_id}:{event.message_id}"
        for target in targets:
            if not await self._room(ctx, target, event):
                continue
            meta: OutboxMeta = {"target_channel_id": target.id}
            if message is not None:
                meta["copy_of"] = message.id
            if parent is not None:
                meta["reply_original_id"] = parent.id
            await ctx.send(
                Outgoing(ref_of(target), relay_text(event), as_name=name, origin=origin),
                key=f"relay:{origin}->{target.id}",
                meta=meta,
            )

    async def _room(self, ctx: Context, target: Channel, event: MessageEvent) -> bool:
        """Whether the target chat's queue has room; warns the source side's admins when not.
        Counted per chat: one chat its platform floods or refuses does not stop the others."""
        pending = int(
            await ctx.session.scalar(
                select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.platform == target.platform,
                    OutboxMessage.state == "pending",
                    OutboxMessage.chat_id == target.chat_id,
                )
            )
            or 0
        )
        if pending < self.warn_backlog:
            return True
        full = pending >= self.max_backlog
        # "Growing" and "full" are warned about separately: a full queue drops messages.
        key = f"{target.platform}:{event.channel.key()}:{'full' if full else 'growing'}"
        now = time.monotonic()
        if now - self._warned_at.get(key, -1e9) > 600:
            self._warned_at[key] = now
            state = "is full; new messages are not relayed" if full else "is growing"
            log.warning("bridge backlog to %s: %d pending", target.platform, pending)
            await ctx.send(
                Outgoing(
                    event.channel,
                    f"Admins: the bridge queue to {PLATFORM_NAMES.get(target.platform)} {state} "
                    f"({pending} messages waiting). The other side may be down or rate-limited.",
                )
            )
        return not full

    async def _follow(self, event: EditEvent | DeleteEvent, ctx: Context) -> None:
        s = ctx.session
        e = event.channel
        message = await ConversationRepo(s).find_message(e.platform, e.chat_id, event.message_id)
        if message is None:
            return
        rows = await s.execute(
            select(MessageCopy, Channel)
            .join(Channel, MessageCopy.channel_id == Channel.id)
            .where(MessageCopy.original_id == message.id)
        )
        author = await s.get(Member, message.member_id) if message.member_id else None
        name = (
            f"{author.display_name} ({PLATFORM_NAMES.get(e.platform, e.platform)})"
            if author
            else None
        )
        for copy, target in rows.all():
            action: Literal["edit", "delete"]
            if isinstance(event, EditEvent):
                key = f"relay-edit:{copy.id}:{event.edited_at.isoformat()}"
                text = event.text
                action = "edit"
            else:
                key, text, action = f"relay-delete:{copy.id}", "", "delete"
            await ctx.send(
                Outgoing(ref_of(target), text, as_name=name),
                key=key,
                meta={
                    "action": action,
                    "message_id": copy.copy_platform_message_id,
                    "message_ids": copy_chunks(copy),
                    "copy_id": copy.id,
                },
            )

    async def resolve_reply(
        self, session: AsyncSession, row: OutboxMessage, out: Outgoing
    ) -> Outgoing:
        """Outbox hook: a copy that answers something replies to that thing's counterpart on
        the target side (known only once the earlier copy was sent). An edit or delete of a
        copy acts on the chunks the copy has now, which an edit queued before it may have
        changed (its ``message_ids`` were those of when it was queued)."""
        copy_id = row.meta.get("copy_id")
        if row.meta.get("action") and copy_id is not None:
            copy = await session.get(MessageCopy, copy_id)
            if copy is not None:
                row.meta = {**row.meta, "message_ids": copy_chunks(copy)}
            return out
        original_id = row.meta.get("reply_original_id")
        target_id = row.meta.get("target_channel_id")
        if original_id is None or target_id is None or out.reply_to is not None:
            return out
        original = await session.get(Message, original_id)
        if original is None:
            return out
        reply: str | None
        if original.channel_id == target_id:
            reply = original.platform_message_id
        else:
            reply = await session.scalar(
                select(MessageCopy.copy_platform_message_id).where(
                    MessageCopy.original_id == original_id, MessageCopy.channel_id == target_id
                )
            )
        if reply is None:
            return out
        return Outgoing(out.channel, out.text, reply, out.as_name, out.origin, out.key)

    async def record_copy(self, session: AsyncSession, row: OutboxMessage, message_id: str) -> None:
        """Outbox hook: remember where a copy went, in every chunk, for edits, deletes and
        replies; after an edit of a copy, the chunks it has now."""
        if row.meta.get("action") == "edit" and row.meta.get("copy_id") is not None:
            edited = await session.get(MessageCopy, row.meta["copy_id"])
            if edited is not None:
                edited.chunk_ids = sent_chunks(row)
            return
        original_id = row.meta.get("copy_of")
        target_id = row.meta.get("target_channel_id")
        if original_id is None or target_id is None or row.meta.get("action"):
            return
        exists = await session.scalar(
            select(MessageCopy.id).where(
                MessageCopy.original_id == original_id, MessageCopy.channel_id == target_id
            )
        )
        if exists is None:
            session.add(
                MessageCopy(
                    original_id=original_id,
                    channel_id=target_id,
                    copy_platform_message_id=message_id,
                    chunk_ids=sent_chunks(row),
                )
            )
