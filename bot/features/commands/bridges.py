"""Admin commands for bridges: link, unlink, links."""

from __future__ import annotations

from sqlalchemy import or_, select

from bot.events import PLATFORMS
from bot.features.commands.base import Command, Invocation, UsageError
from bot.features.indexing import follow_moves, reindex_community
from storage.models import BridgeLink, Channel
from storage.repos.communities import merge_into, split_by_links
from storage.repos.conversation import ConversationRepo


def parse_target(text: str) -> tuple[str, str, str | None]:
    """``telegram:-100123[:topic]`` or ``discord:channel[:thread]`` -> parts."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or parts[0] not in PLATFORMS or not parts[1]:
        raise UsageError("Name the other side like telegram:-1001234567890 or discord:1234567890.")
    chat = parts[1]
    if not chat.lstrip("-").isdigit() and parts[0] != "console":
        raise UsageError(f"'{chat[:30]}' is not a chat id.")
    thread = parts[2] if len(parts) == 3 and parts[2] else None
    return parts[0], chat, thread


def describe(channel: Channel) -> str:
    """``platform:chat[:thread]``."""
    tail = f":{channel.thread_id}" if channel.thread_id else ""
    return f"{channel.platform}:{channel.chat_id}{tail}"


async def _between(inv: Invocation, other: Channel) -> BridgeLink | None:
    a, b = inv.channel.id, other.id
    return await inv.ctx.session.scalar(
        select(BridgeLink).where(
            or_(
                (BridgeLink.channel_a_id == a) & (BridgeLink.channel_b_id == b),
                (BridgeLink.channel_a_id == b) & (BridgeLink.channel_b_id == a),
            )
        )
    )


async def link(inv: Invocation) -> str:
    """Request a bridge, or confirm one requested from the other side."""
    platform, chat, thread = parse_target(inv.args)
    other = await ConversationRepo(inv.ctx.session).ensure_channel(platform, chat, thread)
    if other.id == inv.channel.id:
        raise UsageError("A channel cannot be linked with itself.")
    here = describe(inv.channel)
    found = await _between(inv, other)
    if found is not None and found.status == "active":
        return f"{here} and {describe(other)} are linked already."
    if found is not None and found.channel_b_id == inv.channel.id:
        found.status = "active"
        # Bridged channels share one memory: the other side's community (its chats, threads,
        # FAQ entries and audit log) joins this side's. Admins of both sides agreed to it.
        keep, gone = inv.channel.community_id, other.community_id
        session = inv.ctx.session
        await session.flush()
        if keep != gone:
            await session.run_sync(lambda s: merge_into(s.connection(), keep, gone))
            other.community_id = keep
            await reindex_community(session, keep)
            await follow_moves(session, inv.services.matcher, [keep])
        return f"Linked {here} with {describe(other)}: messages now relay both ways."
    if found is None:
        inv.ctx.session.add(
            BridgeLink(
                channel_a_id=inv.channel.id,
                channel_b_id=other.id,
                status="pending",
                created_by=inv.actor,
            )
        )
    return f"Link requested. An admin of {describe(other)} must confirm it there with: link {here}"


async def unlink(inv: Invocation) -> str:
    """Remove a bridge (either side may)."""
    platform, chat, thread = parse_target(inv.args)
    other = await ConversationRepo(inv.ctx.session).channel(platform, chat, thread)
    found = await _between(inv, other) if other is not None else None
    if found is None or other is None:
        raise UsageError(f"This channel is not linked with {inv.args.strip()[:60]}.")
    session = inv.ctx.session
    await session.delete(found)
    await session.flush()
    # Chats no longer connected by any link part: each keeps its own threads and a copy of
    # the entries and settings they shared.
    here = (inv.channel.platform, inv.channel.chat_id)
    community_id = inv.channel.community_id
    members = select(Channel.id).where(Channel.community_id == community_id)
    chats = list(await session.scalars(members))
    await session.run_sync(lambda s: split_by_links(s.connection(), community_id, keep=here))
    # The communities the split left: the old one and those made for the parted chats.
    now_in = select(Channel.community_id).where(Channel.id.in_(chats)).distinct()
    await follow_moves(session, inv.services.matcher, list(await session.scalars(now_in)))
    return f"Unlinked {describe(inv.channel)} and {describe(other)}."


async def links(inv: Invocation) -> str:
    """The bridges of this channel."""
    rows = (
        await inv.ctx.session.scalars(
            select(BridgeLink).where(
                or_(
                    BridgeLink.channel_a_id == inv.channel.id,
                    BridgeLink.channel_b_id == inv.channel.id,
                )
            )
        )
    ).all()
    here = describe(inv.channel)
    if not rows:
        return (
            f"This channel is {here} and is not linked anywhere. To bridge it, run "
            f"'link OTHER' here and 'link {here}' in the other chat."
        )
    lines = [f"Links of this channel ({here}):"]
    for r in rows:
        other_id = r.channel_b_id if r.channel_a_id == inv.channel.id else r.channel_a_id
        other = await inv.ctx.session.get(Channel, other_id)
        lines.append(f"  {describe(other) if other else '?'} ({r.status})")
    return "\n".join(lines)


BRIDGE_COMMANDS = [
    Command(
        "link", "link PLATFORM:CHAT_ID[:THREAD]", "bridge this channel with another", True, link
    ),
    Command("unlink", "unlink PLATFORM:CHAT_ID[:THREAD]", "remove a bridge", True, unlink),
    Command("links", "links", "list this channel's bridges", True, links),
]
