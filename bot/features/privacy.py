"""Erasing a member: everything stored about them goes, bridged copies are deleted."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from bot.core import Context
from bot.events import ChannelRef, Outgoing
from storage.models import (
    AuditLog,
    Channel,
    InboxEvent,
    Member,
    Message,
    MessageCopy,
    OutboxMessage,
    Thread,
)

REDACTED = "(removed at a member's request)"
FORGOTTEN = "forgotten member"


async def forget_member(ctx: Context, member: Member) -> str:
    """Erase ``member`` from every table; returns a summary of what was erased."""
    s = ctx.session
    platform, user_id, name = member.platform, member.user_id, member.display_name
    messages = (await s.scalars(select(Message).where(Message.member_id == member.id))).all()
    message_ids = [m.id for m in messages]
    platform_ids = {m.platform_message_id for m in messages}

    copies = 0
    if message_ids:
        rows = await s.execute(
            select(MessageCopy, Channel)
            .join(Channel, MessageCopy.channel_id == Channel.id)
            .where(MessageCopy.original_id.in_(message_ids))
        )
        for copy, channel in rows.all():
            ref = ChannelRef(channel.platform, channel.chat_id, channel.thread_id or None)
            await ctx.send(
                Outgoing(ref, ""),
                key=f"forget:{copy.id}",
                meta={"action": "delete", "message_id": copy.copy_platform_message_id},
            )
            copies += 1

    threads = 0
    if message_ids:
        asked = (
            await s.scalars(select(Thread).where(Thread.question_message_id.in_(message_ids)))
        ).all()
        for thread in asked:
            await s.delete(thread)
        threads = len(asked)
        await s.flush()
        await s.execute(delete(Message).where(Message.id.in_(message_ids)))

    inbox = 0
    for row in (await s.scalars(select(InboxEvent))).all():
        payload = row.payload or {}
        author = payload.get("author") or {}
        where = payload.get("channel") or {}
        by_them = author.get("platform") == platform and author.get("user_id") == user_id
        about_theirs = (
            where.get("platform") == platform and payload.get("message_id") in platform_ids
        )
        if by_them or about_theirs:
            await s.delete(row)
            inbox += 1

    # copss's own words that quoted or named them (suggestions pointing at their answers).
    needles = [n for n in {name, user_id} if len(n) >= 3]
    for needle in needles:
        await s.execute(update(Message).where(Message.text.contains(needle)).values(text=REDACTED))
        await s.execute(
            delete(OutboxMessage).where(
                OutboxMessage.state == "pending", OutboxMessage.text.contains(needle)
            )
        )
        await s.execute(
            update(OutboxMessage).where(OutboxMessage.text.contains(needle)).values(text=REDACTED)
        )
    actor = f"{platform}:{user_id} ({name})"
    await s.execute(update(AuditLog).where(AuditLog.actor == actor).values(actor=FORGOTTEN))
    await s.delete(member)
    await s.flush()
    return (
        f"Done. I erased {len(message_ids)} of your messages, {threads} of your questions "
        f"(with their answers), {inbox} stored events, and queued {copies} bridged copies for "
        "deletion. copss keeps nothing that names you."
    )
