"""Erasing a member: everything stored about them goes, and so do copss's messages that
quoted them and their bridged copies.

Every row is found by stored references (member id, message ids, thread ids, outbox keys and
origins built from those ids), never by searching text for a name: a member called "the" or
"%" must not erase anybody else's words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import Context, sent_chunks
from bot.events import ChannelRef, Outgoing
from bot.features.bridge import queue_copy_deletions
from bot.features.commands.base import COMMAND_KEY
from storage.models import (
    Answer,
    AuditLog,
    BridgeLink,
    Channel,
    InboxEvent,
    Member,
    Message,
    MessageCopy,
    OutboxMessage,
    Suggestion,
    Thread,
)

REDACTED = "(removed at a member's request)"
FORGOTTEN = "forgotten member"
#: Inbox rows are read in batches this large: the inbox is never loaded whole.
INBOX_BATCH = 500


@dataclass
class _Found:
    """What belongs to the member, by id."""

    message_ids: list[int] = field(default_factory=list)
    #: (platform, chat id, platform message id) of every message of theirs and of every copy
    #: or quote of it that copss posted: inbox events about these go too.
    platform_keys: set[tuple[str, str, str]] = field(default_factory=set)
    origins: set[str] = field(default_factory=set)
    #: Their messages' platform ids per stored channel id.
    by_channel: dict[int, list[str]] = field(default_factory=dict)


async def _their_messages(s: AsyncSession, member: Member) -> _Found:
    found = _Found()
    rows = await s.execute(
        select(
            Message.id, Channel.id, Channel.platform, Channel.chat_id, Message.platform_message_id
        )
        .join(Channel, Message.channel_id == Channel.id)
        .where(Message.member_id == member.id)
    )
    for message_id, channel_id, platform, chat, platform_id in rows.all():
        found.message_ids.append(message_id)
        found.by_channel.setdefault(channel_id, []).append(platform_id)
        found.platform_keys.add((platform, chat, platform_id))
        # How the bridge names the original of a copy (bot.features.bridge).
        found.origins.add(f"{platform}:{chat}:{platform_id}")
    return found


async def _copies(s: AsyncSession, found: _Found) -> list[int]:
    """copss's stored copies of their messages (bot messages in the target channels)."""
    rows = await s.execute(
        select(MessageCopy, Channel)
        .join(Channel, MessageCopy.channel_id == Channel.id)
        .where(MessageCopy.original_id.in_(found.message_ids))
    )
    copy_message_ids: list[int] = []
    for copy, channel in rows.all():
        ids = list(copy.chunk_ids or []) or [copy.copy_platform_message_id]
        for platform_id in ids:
            found.platform_keys.add((channel.platform, channel.chat_id, platform_id))
        copy_message_ids += (
            await s.scalars(
                select(Message.id).where(
                    Message.channel_id == channel.id, Message.platform_message_id.in_(ids)
                )
            )
        ).all()
    return copy_message_ids


async def _quoting_replies(ctx: Context, found: _Found) -> tuple[list[int], int]:
    """copss's replies that showed their question or answer (suggestions, and command replies
    such as ``ask`` that quoted their threads): the stored bot messages are erased and the
    posted ones deleted on the platform. Returns (stored ids, deletions)."""
    s = ctx.session
    asked = select(Thread.id).where(Thread.question_message_id.in_(found.message_ids))
    answered = select(Answer.thread_id).where(Answer.message_id.in_(found.message_ids))
    rows = await s.execute(
        select(Suggestion.bot_message_id, Channel, Message.platform_message_id)
        .join(Message, Suggestion.message_id == Message.id)
        .join(Channel, Message.channel_id == Channel.id)
        .where(or_(Suggestion.thread_id.in_(asked), Suggestion.thread_id.in_(answered)))
    )
    replies: list[tuple[Channel, str, OutboxMessage | None]] = []
    for bot_message_id, channel, question_platform_id in rows.all():
        ref = ChannelRef(channel.platform, channel.chat_id, channel.thread_id or None)
        # A reply not sent yet is simply dropped (its key is built from the question's id).
        await s.execute(
            delete(OutboxMessage).where(
                OutboxMessage.dedup_key == f"suggest:{ref.key()}:{question_platform_id}",
                OutboxMessage.state == "pending",
            )
        )
        if bot_message_id is not None:
            sent = await s.scalar(
                select(OutboxMessage).where(
                    OutboxMessage.platform == channel.platform,
                    OutboxMessage.chat_id == channel.chat_id,
                    OutboxMessage.platform_message_id == bot_message_id,
                )
            )
            replies.append((channel, bot_message_id, sent))
    theirs = set((await s.scalars(asked)).all()) | set((await s.scalars(answered)).all())
    replies += await _quoting_command_replies(s, theirs)
    stored: list[int] = []
    deletions = 0
    seen: set[tuple[int, str]] = set()
    for channel, bot_message_id, sent in replies:
        if (channel.id, bot_message_id) in seen:
            continue
        seen.add((channel.id, bot_message_id))
        ref = ChannelRef(channel.platform, channel.chat_id, channel.thread_id or None)
        chunks = sent_chunks(sent) if sent is not None else [bot_message_id]
        if sent is not None:
            sent.text = REDACTED
        for platform_id in chunks:
            found.platform_keys.add((channel.platform, channel.chat_id, platform_id))
        await ctx.send(
            Outgoing(ref, ""),
            key=f"forget-quote:{channel.id}:{bot_message_id}",
            meta={"action": "delete", "message_id": bot_message_id, "message_ids": chunks},
        )
        deletions += 1
        stored += (
            await s.scalars(
                select(Message.id).where(
                    Message.channel_id == channel.id, Message.platform_message_id.in_(chunks)
                )
            )
        ).all()
    return stored, deletions


async def _quoting_command_replies(
    s: AsyncSession, threads: set[int]
) -> list[tuple[Channel, str, OutboxMessage | None]]:
    """Command replies that quoted one of ``threads`` (their outbox rows say which): the
    posted ones as (channel, first chunk's id, row); the ones not sent yet are dropped. Read
    a batch at a time, the rows' ``meta`` looked at here (the same on both engines)."""
    if not threads:
        return []
    found: list[tuple[Channel, str, OutboxMessage | None]] = []
    after = 0
    while True:
        rows = (
            await s.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.dedup_key.startswith(COMMAND_KEY, autoescape=True),
                    OutboxMessage.id > after,
                )
                .order_by(OutboxMessage.id)
                .limit(INBOX_BATCH)
            )
        ).all()
        if not rows:
            return found
        after = rows[-1].id
        for row in rows:
            if not threads & set(row.meta.get("quoted_threads") or ()):
                continue
            if row.platform_message_id is None:
                if row.state == "pending":
                    await s.delete(row)
                continue
            channel = await s.scalar(
                select(Channel).where(
                    Channel.platform == row.platform,
                    Channel.chat_id == row.chat_id,
                    Channel.thread_id == row.thread_id,
                )
            )
            if channel is not None:
                found.append((channel, row.platform_message_id, row))


async def _inbox(s: AsyncSession, member: Member, found: _Found) -> int:
    """Stored events by them or about any of their messages (and copss's copies and quotes
    of them), read a batch at a time."""
    doomed: list[int] = []
    last = 0
    while True:
        batch = (
            await s.execute(
                select(InboxEvent.id, InboxEvent.payload)
                .where(InboxEvent.id > last)
                .order_by(InboxEvent.id)
                .limit(INBOX_BATCH)
            )
        ).all()
        if not batch:
            break
        last = batch[-1][0]
        for row_id, payload in batch:
            data = payload or {}
            author = data.get("author") or {}
            where = data.get("channel") or {}
            by_them = (
                author.get("platform") == member.platform
                and author.get("user_id") == member.user_id
            )
            key = (where.get("platform"), where.get("chat_id"), data.get("message_id"))
            if by_them or key in found.platform_keys:
                doomed.append(row_id)
    for start in range(0, len(doomed), INBOX_BATCH):
        chunk = doomed[start : start + INBOX_BATCH]
        await s.execute(delete(InboxEvent).where(InboxEvent.id.in_(chunk)))
    return len(doomed)


async def _outbox(s: AsyncSession, found: _Found, copy_ids: list[int]) -> None:
    """Relays of their messages: pending ones are dropped, sent ones lose text and name."""
    if not found.origins and not copy_ids:
        return
    theirs = or_(
        OutboxMessage.origin.in_(sorted(found.origins)),
        *(
            OutboxMessage.dedup_key.startswith(f"relay-edit:{c}:", autoescape=True)
            for c in copy_ids
        ),
    )
    await s.execute(delete(OutboxMessage).where(theirs, OutboxMessage.state == "pending"))
    await s.execute(update(OutboxMessage).where(theirs).values(text=REDACTED, as_name=None))


async def _bot_replies_unlinked(s: AsyncSession, found: _Found) -> None:
    """copss's own messages that replied to theirs no longer point at them (members' replies
    are theirs to keep, and are left exactly as they are)."""
    bots = select(Member.id).where(Member.is_bot.is_(True))
    for channel_id, platform_ids in found.by_channel.items():
        await s.execute(
            update(Message)
            .where(
                Message.channel_id == channel_id,
                Message.reply_to.in_(platform_ids),
                Message.member_id.in_(bots),
            )
            .values(reply_to=None)
        )
        channel = await s.get(Channel, channel_id)
        if channel is not None:
            await s.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.platform == channel.platform,
                    OutboxMessage.chat_id == channel.chat_id,
                    OutboxMessage.reply_to.in_(platform_ids),
                    OutboxMessage.state != "pending",
                )
                .values(reply_to=None)
            )


async def _answered_threads_lose_answers(s: AsyncSession, found: _Found) -> None:
    """Threads they answered: without their answers a thread may be open again."""
    thread_ids = (
        await s.scalars(
            select(Answer.thread_id).where(Answer.message_id.in_(found.message_ids)).distinct()
        )
    ).all()
    await s.execute(delete(Answer).where(Answer.message_id.in_(found.message_ids)))
    for thread in (await s.scalars(select(Thread).where(Thread.id.in_(thread_ids)))).all():
        left = await s.scalar(
            select(Answer.answered_at)
            .where(Answer.thread_id == thread.id)
            .order_by(Answer.answered_at)
            .limit(1)
        )
        if thread.accepted_answer_id is not None:
            still = await s.scalar(select(Answer.id).where(Answer.id == thread.accepted_answer_id))
            if still is None:
                thread.accepted_answer_id = None
        if left is None:
            thread.first_answer_at = None
            if thread.status in ("answered", "solved"):
                thread.status = "open"
        elif thread.status == "solved" and thread.accepted_answer_id is None:
            thread.status = "answered"


async def forget_member(ctx: Context, member: Member) -> str:
    """Erase ``member`` from every table; returns a summary of what was erased."""
    s = ctx.session
    found = await _their_messages(s, member)
    copy_ids = (
        list(
            (
                await s.scalars(
                    select(MessageCopy.id).where(MessageCopy.original_id.in_(found.message_ids))
                )
            ).all()
        )
        if found.message_ids
        else []
    )
    copies = await queue_copy_deletions(ctx, found.message_ids, "forget")
    copy_messages = await _copies(s, found) if found.message_ids else []
    quotes, quote_deletions = await _quoting_replies(ctx, found) if found.message_ids else ([], 0)
    await _outbox(s, found, copy_ids)

    threads = 0
    if found.message_ids:
        asked = (
            await s.scalars(select(Thread).where(Thread.question_message_id.in_(found.message_ids)))
        ).all()
        for thread in asked:
            await s.delete(thread)
        threads = len(asked)
        await s.flush()
        await _answered_threads_lose_answers(s, found)
    bot_rows = sorted(set(copy_messages) | set(quotes))
    for start in range(0, len(bot_rows), 1000):
        await s.execute(delete(Message).where(Message.id.in_(bot_rows[start : start + 1000])))
    for start in range(0, len(found.message_ids), 1000):
        chunk = found.message_ids[start : start + 1000]
        await s.execute(delete(Message).where(Message.id.in_(chunk)))
    await _bot_replies_unlinked(s, found)
    inbox = await _inbox(s, member, found)

    # The audit log names actors "platform:user_id (display name)": the id decides.
    mine = AuditLog.actor.startswith(f"{member.platform}:{member.user_id} (", autoescape=True)
    await s.execute(update(AuditLog).where(mine).values(actor=FORGOTTEN))
    requested = BridgeLink.created_by.startswith(
        f"{member.platform}:{member.user_id} (", autoescape=True
    )
    await s.execute(update(BridgeLink).where(requested).values(created_by=FORGOTTEN))
    await s.delete(member)
    await s.flush()
    return (
        f"Done. I erased {len(found.message_ids)} of your messages, {threads} of your questions "
        f"(with their answers), {inbox} stored events, and queued {copies} bridged copies and "
        f"{quote_deletions} of my replies quoting you for deletion. copss keeps nothing that "
        "names you."
    )
