"""Which chats share a community: each chat is its own until admins of both sides link them.

A community is the unit of trust: its admins manage its FAQ entries, settings and audit log,
and its members' questions are answered from its threads only. Linked chats share one
community; when the last link between two groups of chats goes, they part again.

These functions take a synchronous :class:`~sqlalchemy.Connection` so that schema migrations
(inside ``run_sync``) and the running bot (``AsyncSession.run_sync``) share one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, insert, literal, or_, select, update
from sqlalchemy.orm import aliased

from storage.models import AuditLog, BridgeLink, Channel, Community, FaqEntry, Message, Thread

ChatKey = tuple[str, str]


def community_name(conn: Connection, platform: str, chat_id: str) -> str:
    """A free community name for a chat: ``platform:chat_id`` (numbered if taken)."""
    base = f"{platform}:{chat_id}"[:190]
    name, n = base, 1
    while conn.scalar(select(Community.id).where(Community.name == name)) is not None:
        n += 1
        name = f"{base}#{n}"
    return name


def new_community(conn: Connection, platform: str, chat_id: str, settings: dict[str, Any]) -> int:
    """Create a community named after a chat; returns its id."""
    return int(
        conn.execute(
            insert(Community)
            .values(name=community_name(conn, platform, chat_id), settings=dict(settings))
            .returning(Community.id)
        ).scalar_one()
    )


def _components(
    chats: Iterable[ChatKey], edges: Iterable[tuple[ChatKey, ChatKey]]
) -> list[list[ChatKey]]:
    # Union-find over chats joined by active links; components in first-seen order.
    parent: dict[ChatKey, ChatKey] = {}

    def root(c: ChatKey) -> ChatKey:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    order = []
    for c in chats:
        if c not in parent:
            parent[c] = c
            order.append(c)
    for a, b in edges:
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    groups: dict[ChatKey, list[ChatKey]] = {}
    for c in order:
        groups.setdefault(root(c), []).append(c)
    return list(groups.values())


def split_by_links(conn: Connection, community_id: int, keep: ChatKey | None = None) -> int:
    """Give each group of the community's chats that no active link connects its own
    community; the group holding ``keep`` (else the first chat seen) stays. Threads follow the
    chat their question was asked in; the community's own FAQ entries and settings are copied
    so no group loses them. Returns how many communities were created."""
    rows = conn.execute(
        select(Channel.id, Channel.platform, Channel.chat_id)
        .where(Channel.community_id == community_id)
        .order_by(Channel.id)
    ).all()
    chat_of = {cid: (platform, chat) for cid, platform, chat in rows}
    if len(set(chat_of.values())) < 2:
        return 0
    links = conn.execute(
        select(BridgeLink.channel_a_id, BridgeLink.channel_b_id).where(
            BridgeLink.status == "active",
            BridgeLink.channel_a_id.in_(list(chat_of)),
            BridgeLink.channel_b_id.in_(list(chat_of)),
        )
    ).all()
    groups = _components(chat_of.values(), ((chat_of[a], chat_of[b]) for a, b in links))
    if len(groups) < 2:
        return 0
    staying = next((g for g in groups if keep in g), groups[0])
    settings = conn.scalar(select(Community.settings).where(Community.id == community_id)) or {}
    created = 0
    for group in groups:
        if group is staying:
            continue
        platform, chat = group[0]
        new_id = new_community(conn, platform, chat, settings)
        created += 1
        in_group = or_(*(and_(Channel.platform == p, Channel.chat_id == c) for p, c in group))
        channel_ids = [cid for cid, key in chat_of.items() if key in group]
        conn.execute(update(Channel).where(in_group).values(community_id=new_id))
        asked_here = select(Message.id).where(Message.channel_id.in_(channel_ids))
        conn.execute(
            update(Thread)
            .where(Thread.community_id == community_id, Thread.question_message_id.in_(asked_here))
            .values(community_id=new_id)
        )
        _copy_entries(conn, community_id, new_id)
    return created


def _copy_entries(conn: Connection, source: int, target: int) -> None:
    columns = [c for c in FaqEntry.__table__.columns if c.name not in ("id", "community_id")]
    conn.execute(
        insert(FaqEntry).from_select(
            ["community_id", *(c.name for c in columns)],
            select(literal(target), *columns).where(FaqEntry.community_id == source),
        )
    )


def merge_into(conn: Connection, keep_id: int, gone_id: int) -> None:
    """Move everything of community ``gone_id`` into ``keep_id`` and drop it. Its FAQ entries
    whose slug the kept community uses already are renamed ``slug-N``; the kept community's
    settings win."""
    if keep_id == gone_id:
        return
    mine = aliased(FaqEntry)
    clashing = conn.execute(
        select(FaqEntry.id, FaqEntry.slug).where(
            FaqEntry.community_id == gone_id,
            exists().where(mine.community_id == keep_id, mine.slug == FaqEntry.slug),
        )
    ).all()
    taken = set(conn.scalars(select(FaqEntry.slug).where(FaqEntry.community_id == keep_id)))
    for entry_id, slug in clashing:
        n = 2
        while f"{slug[:90]}-{n}" in taken:
            n += 1
        renamed = f"{slug[:90]}-{n}"
        taken.add(renamed)
        conn.execute(update(FaqEntry).where(FaqEntry.id == entry_id).values(slug=renamed))
    for table in (Channel, Thread, FaqEntry, AuditLog):
        conn.execute(
            update(table).where(table.community_id == gone_id).values(community_id=keep_id)
        )
    conn.execute(delete(Community).where(Community.id == gone_id))
