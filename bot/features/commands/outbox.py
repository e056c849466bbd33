"""Admin commands for what copss could not post: list the messages given up on, retry them."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, select, update

from bot.features.commands.base import Command, Invocation, UsageError, split_words
from storage.models import Channel, OutboxMessage

#: Dead rows listed at most (the count says how many there are).
LISTED = 10


def in_community(community_id: int) -> ColumnElement[bool]:
    """Outbox rows to a chat of the community (the outbox names chats by platform and id)."""
    return (
        select(Channel.id)
        .where(
            Channel.community_id == community_id,
            Channel.platform == OutboxMessage.platform,
            Channel.chat_id == OutboxMessage.chat_id,
        )
        .exists()
    )


def _dead(inv: Invocation) -> ColumnElement[bool]:
    return and_(OutboxMessage.state == "dead", in_community(inv.community.id))


async def undelivered(inv: Invocation) -> str:
    """List the messages copss gave up sending to this community's chats, or (``retry``)
    queue them again: all, or the one numbered."""
    s = inv.ctx.session
    action, rest = split_words(inv.args, 2)
    action = action.casefold()
    if action == "retry":
        which = _dead(inv)
        if rest:
            if not rest.strip().isdigit():
                raise UsageError("Give the number 'undelivered' shows, or nothing for all.")
            which = and_(which, OutboxMessage.id == int(rest))
        found = (
            await s.execute(select(OutboxMessage.id, OutboxMessage.platform).where(which))
        ).all()
        if not found:
            return "No message is waiting to be sent again."
        # Back in the queue as new: a fresh set of tries, no wait. They go out in their chat's
        # order among the rows still waiting there.
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([r.id for r in found]))
            .values(state="pending", attempts=0, next_attempt_at=None)
        )
        for platform in {r.platform for r in found}:
            inv.ctx.wake(platform)
        return f"Sending {len(found)} message(s) again."
    if action:
        raise UsageError("Say nothing to list them, or 'retry'.")
    count = await s.scalar(select(func.count(OutboxMessage.id)).where(_dead(inv))) or 0
    if not count:
        return "copss has given up on no message here."
    rows = (
        await s.scalars(
            select(OutboxMessage).where(_dead(inv)).order_by(OutboxMessage.id).limit(LISTED)
        )
    ).all()
    lines = [f"copss gave up sending {count} message(s):"]
    for r in rows:
        text = " ".join(r.text.split())
        preview = text if len(text) <= 60 else text[:59] + "…"
        lines.append(
            f"  {r.id}. to {r.platform}:{r.chat_id}, {r.attempts} tries: “{preview}” — "
            f"{(r.last_error or '')[:120]}"
        )
    if count > LISTED:
        lines.append(f"  … and {count - LISTED} more.")
    lines.append("Send 'undelivered retry' to send them again (or 'undelivered retry N').")
    return "\n".join(lines)


OUTBOX_COMMANDS = [
    Command(
        "undelivered",
        "undelivered [retry [N]]",
        "messages copss gave up sending; send them again",
        True,
        undelivered,
    ),
]
