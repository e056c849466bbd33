"""Communities, channels, members and messages."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Boolean, Insert, String, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, make_transient_to_detached

from storage.models import Answer, Channel, Community, Member, Message, MessageCopy, Thread
from storage.repos.communities import new_community
from storage.repos.rows import insert_row

#: The member id copss's own messages are stored under, on every platform.
OWN_USER_ID = "copss"

#: The ``session.info`` key of the rows a transaction has looked up or created already (see
#: :meth:`ConversationRepo.seen`).
SEEN = "conversation.seen"

#: In :meth:`ConversationRepo.seen`: a channel or member this transaction looked up and did not
#: find (only this transaction's own handlers create them).
ABSENT = object()


_ORIGINAL = aliased(Message)
# Built once (building a statement costs more than running it from SQLAlchemy's cache).
_REPLY_PARENT = (
    select(Message, _ORIGINAL)
    .join(Channel, Message.channel_id == Channel.id)
    .outerjoin(
        MessageCopy,
        and_(
            MessageCopy.channel_id == Message.channel_id,
            MessageCopy.copy_platform_message_id == Message.platform_message_id,
        ),
    )
    .outerjoin(_ORIGINAL, _ORIGINAL.id == MessageCopy.original_id)
    .where(
        Channel.platform == bindparam("platform"),
        Channel.chat_id == bindparam("chat_id"),
        Message.platform_message_id == bindparam("message_id"),
    )
    .limit(1)
)
_PARENT_ID = func.coalesce(_ORIGINAL.id, Message.id)
# The same, with the thread the parent asked and an answer it gave, if any.
_REPLY_TARGET = (
    _REPLY_PARENT.add_columns(Thread, Answer)
    .outerjoin(Thread, Thread.question_message_id == _PARENT_ID)
    .outerjoin(Answer, Answer.message_id == _PARENT_ID)
)
_MESSAGE_COLUMNS = (
    "channel_id",
    "platform_message_id",
    "member_id",
    "text",
    "reply_to",
    "origin",
    "sent_at",
    "deleted",
)


@cache
def _insert_message(dialect: str) -> Insert:
    """``INSERT INTO message ... ON CONFLICT DO NOTHING RETURNING id`` with a bound parameter
    per column, for ``dialect``."""
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    table = cast(Table, Message.__table__)
    return cast(
        Insert,
        make(table)
        .values({name: bindparam(name) for name in _MESSAGE_COLUMNS})
        .on_conflict_do_nothing(index_elements=[table.c.channel_id, table.c.platform_message_id])
        .returning(table.c.id),
    )


@cache
def _insert_own_message(dialect: str) -> Insert:
    """As :func:`_insert_message`, the channel and copss's member looked up by the statement
    (parameters ``platform``, ``chat_id``, ``thread_id`` and the other columns)."""
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    table = cast(Table, Message.__table__)
    source = (
        select(
            Channel.id,
            bindparam("platform_message_id", type_=String),
            Member.id,
            bindparam("text", type_=String),
            bindparam("reply_to", type_=String),
            bindparam("origin", type_=String),
            bindparam("sent_at", type_=Message.sent_at.type),
            bindparam("deleted", type_=Boolean),
        )
        .join_from(
            Channel,
            Member,
            and_(Member.platform == bindparam("platform"), Member.user_id == OWN_USER_ID),
        )
        .where(
            Channel.platform == bindparam("platform"),
            Channel.chat_id == bindparam("chat_id"),
            Channel.thread_id == bindparam("thread_id"),
        )
    )
    return cast(
        Insert,
        make(table)
        .from_select(list(_MESSAGE_COLUMNS), source)
        .on_conflict_do_nothing(index_elements=[table.c.channel_id, table.c.platform_message_id])
        .returning(table.c.id),
    )


class ConversationRepo:
    """Where messages were said and by whom.

    Channels, members and messages looked up or created are remembered for the rest of the
    transaction (``session.info``), so that the handlers of one event, and the events of one
    batch, do not look up the same rows again. Nothing is remembered across transactions:
    another transaction, or another process, may change them (an opt-out, a link)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def seen(self) -> dict[tuple[Any, ...], Any]:
        """This transaction's rows by natural key."""
        found: dict[tuple[Any, ...], Any] = self.session.info.setdefault(SEEN, {})
        return found

    async def prefetch(
        self, channels: Iterable[tuple[str, str]], members: Iterable[tuple[str, str]]
    ) -> None:
        """Look up the channels of the given (platform, chat) pairs (every topic and thread of
        them) and the given (platform, user id) members at once, for the rest of the
        transaction: a batch of events then costs two look-ups instead of two per event.
        The channels' communities are looked up with them. Channels and members not found are
        remembered as such (the first event of a new member need not look again before adding
        it)."""
        seen = self.seen
        chats: dict[str, set[str]] = {}
        for platform, chat in channels:
            chats.setdefault(platform, set()).add(chat)
        for platform, ids in chats.items():
            found = await self.session.scalars(
                select(Channel).where(Channel.platform == platform, Channel.chat_id.in_(ids))
            )
            communities: set[int] = set()
            for c in found.all():
                seen[("channel", c.platform, c.chat_id, c.thread_id)] = c
                if ("community", c.community_id) not in seen:
                    communities.add(c.community_id)
            for chat in ids:
                # Every channel of the chat is known now: one not found does not exist.
                seen[("chat", platform, chat)] = True
            if communities:
                rows = await self.session.scalars(
                    select(Community).where(Community.id.in_(communities))
                )
                for community in rows.all():
                    seen[("community", community.id)] = community
        users: dict[str, set[str]] = {}
        for platform, user in members:
            users.setdefault(platform, set()).add(user)
        for platform, ids in users.items():
            known = await self.session.scalars(
                select(Member).where(Member.platform == platform, Member.user_id.in_(ids))
            )
            for m in known.all():
                seen[("member", m.platform, m.user_id)] = m
            for user_id in ids:
                seen.setdefault(("member", platform, user_id), ABSENT)

    async def community(self, community_id: int) -> Community | None:
        """A community by id (looked up once per transaction: the session's identity map
        forgets rows nothing refers to)."""
        key = ("community", community_id)
        found: Community | None = self.seen.get(key)
        if found is None:
            found = await self.session.get(Community, community_id)
            if found is not None:
                self.seen[key] = found
        return found

    async def channel(self, platform: str, chat_id: str, thread_id: str | None) -> Channel | None:
        """A known channel, or None."""
        key = ("channel", platform, chat_id, thread_id or "")
        found: Channel | None = self.seen.get(key)
        if found is not None:
            return found
        if ("chat", platform, chat_id) in self.seen:
            return None  # prefetched: every channel of the chat is known
        found = await self.session.scalar(
            select(Channel).where(
                Channel.platform == platform,
                Channel.chat_id == chat_id,
                Channel.thread_id == (thread_id or ""),
            )
        )
        if found is not None:
            self.seen[key] = found
        return found

    async def ensure_channel(
        self, platform: str, chat_id: str, thread_id: str | None, title: str | None = None
    ) -> Channel:
        """The channel, created on first sight in its chat's community: a topic or thread
        joins the community of its chat, a new chat gets a community of its own."""
        found = await self.channel(platform, chat_id, thread_id)
        if found is None:
            community_id = await self.session.scalar(
                select(Channel.community_id)
                .where(Channel.platform == platform, Channel.chat_id == chat_id)
                .limit(1)
            )
            if community_id is None:
                community_id = await self.session.run_sync(
                    lambda s: new_community(s.connection(), platform, chat_id, {})
                )
            found = Channel(
                community_id=community_id,
                platform=platform,
                chat_id=chat_id,
                thread_id=thread_id or "",
                title=title,
            )
            self.session.add(found)
            await self.session.flush()
            self.seen[("channel", platform, chat_id, thread_id or "")] = found
        return found

    async def member(self, platform: str, user_id: str) -> Member | None:
        """A known member, or None."""
        key = ("member", platform, user_id)
        found: Member | None = self.seen.get(key)
        if found is ABSENT:
            return None
        if found is not None:
            return found
        found = await self.session.scalar(
            select(Member).where(Member.platform == platform, Member.user_id == user_id)
        )
        if found is not None:
            self.seen[key] = found
        return found

    async def ensure_member(
        self, platform: str, user_id: str, display_name: str, is_bot: bool = False
    ) -> Member:
        """The member, created on first sight; the display name follows the latest seen."""
        found = await self.member(platform, user_id)
        if found is None:
            found = Member(
                platform=platform, user_id=user_id, display_name=display_name, is_bot=is_bot
            )
            await insert_row(self.session, found)
            self.seen[("member", platform, user_id)] = found
        elif display_name and found.display_name != display_name:
            found.display_name = display_name
        return found

    async def message(self, channel_id: int, platform_message_id: str) -> Message | None:
        """A stored message by its platform id in a channel."""
        return await self.session.scalar(
            select(Message).where(
                Message.channel_id == channel_id,
                Message.platform_message_id == platform_message_id,
            )
        )

    async def find_message(
        self, platform: str, chat_id: str, platform_message_id: str
    ) -> Message | None:
        """A message by its platform id anywhere in a chat (any topic or thread of it)."""
        return await self.session.scalar(
            select(Message)
            .join(Channel, Message.channel_id == Channel.id)
            .where(
                Channel.platform == platform,
                Channel.chat_id == chat_id,
                Message.platform_message_id == platform_message_id,
            )
            .limit(1)
        )

    async def reply_parent(
        self, platform: str, chat_id: str, platform_message_id: str
    ) -> Message | None:
        """What a reply in a chat to ``platform_message_id`` answers: that message anywhere in
        the chat (see :meth:`find_message`), or the original when it is a bridged copy (see
        :meth:`original_of`); one look-up for both."""
        params = {"platform": platform, "chat_id": chat_id, "message_id": platform_message_id}
        row = (await self.session.execute(_REPLY_PARENT, params)).first()
        if row is None:
            return None
        parent, copied = row
        return copied if copied is not None else parent

    async def reply_target(
        self, platform: str, chat_id: str, platform_message_id: str
    ) -> tuple[Message, Thread | None, Answer | None] | None:
        """As :meth:`reply_parent`, with the thread the parent asked and an answer it gave
        (one of them when it gave several), in the same look-up."""
        params = {"platform": platform, "chat_id": chat_id, "message_id": platform_message_id}
        row = (await self.session.execute(_REPLY_TARGET, params)).first()
        if row is None:
            return None
        parent, copied, thread, answer = row
        return (copied if copied is not None else parent), thread, answer

    async def original_of(self, channel_id: int, platform_message_id: str) -> Message | None:
        """The original message when ``platform_message_id`` in the channel is a bridged copy."""
        return await self.session.scalar(
            select(Message)
            .join(MessageCopy, MessageCopy.original_id == Message.id)
            .where(
                MessageCopy.channel_id == channel_id,
                MessageCopy.copy_platform_message_id == platform_message_id,
            )
        )

    async def checkpoints(
        self, platform: str
    ) -> list[tuple[str, str | None, str | None, str | None]]:
        """(chat id, thread id or None, newest member message id, catch-up note) per channel
        of ``platform`` that has either: the newest message stored from a member (copss's own
        replies do not count: they may be newer than members' messages not read yet), and
        where a catch-up had not finished reading the channel, the message it had to start
        after (see :func:`resume_after`)."""
        own = select(Member.id).where(Member.user_id == OWN_USER_ID, Member.is_bot.is_(True))
        newest = (
            select(Message.channel_id, func.max(Message.id).label("mid"))
            .where(or_(Message.member_id.is_(None), Message.member_id.not_in(own)))
            .group_by(Message.channel_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(
                Channel.chat_id,
                Channel.thread_id,
                Message.platform_message_id,
                Channel.catch_up_after,
            )
            .outerjoin(newest, newest.c.channel_id == Channel.id)
            .outerjoin(Message, Message.id == newest.c.mid)
            .where(
                Channel.platform == platform,
                or_(newest.c.mid.is_not(None), Channel.catch_up_after.is_not(None)),
            )
        )
        return [(chat, thread or None, mid, marker) for chat, thread, mid, marker in rows.all()]

    async def begin_catch_up(
        self, platform: str, starts: Iterable[tuple[str, str | None, str]]
    ) -> None:
        """Note that a catch-up reads each channel (chat id, thread id or None) after a
        message id, until :meth:`end_catch_up` says it has read it."""
        for chat, thread, after in starts:
            await self._note_catch_up(platform, chat, thread, after)

    async def end_catch_up(self, platform: str, chat_id: str, thread_id: str | None) -> None:
        """A catch-up has read the channel's history up to now."""
        await self._note_catch_up(platform, chat_id, thread_id, None)

    async def _note_catch_up(
        self, platform: str, chat_id: str, thread_id: str | None, after: str | None
    ) -> None:
        await self.session.execute(
            update(Channel)
            .where(
                Channel.platform == platform,
                Channel.chat_id == chat_id,
                Channel.thread_id == (thread_id or ""),
            )
            .values(catch_up_after=after)
            .execution_options(synchronize_session=False)
        )

    async def recent_messages(
        self, platform: str, chat_id: str, thread_id: str | None, since: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """(platform message id, text) of the newest ``limit`` messages members (not bots)
        wrote in a channel since ``since`` that are not deleted, newest first."""
        rows = await self.session.execute(
            select(Message.platform_message_id, Message.text)
            .join(Channel, Channel.id == Message.channel_id)
            .join(Member, Member.id == Message.member_id)
            .where(
                Channel.platform == platform,
                Channel.chat_id == chat_id,
                Channel.thread_id == (thread_id or ""),
                Message.deleted.is_(False),
                Message.sent_at >= since,
                Member.is_bot.is_(False),
            )
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(limit)
        )
        return [(mid, text) for mid, text in rows.all()]

    async def add_own_message(
        self,
        platform: str,
        chat_id: str,
        thread_id: str | None,
        platform_message_id: str,
        text: str,
        sent_at: datetime,
        reply_to: str | None = None,
        origin: str | None = None,
    ) -> bool:
        """Store a message copss posted in one statement, under its existing channel and its
        own member (:data:`OWN_USER_ID`); False, storing nothing, when either is missing or
        the message is stored already (then :meth:`add_message` does it the long way)."""
        added = await self.session.scalar(
            _insert_own_message(self.session.get_bind().dialect.name),
            {
                "platform": platform,
                "chat_id": chat_id,
                "thread_id": thread_id or "",
                "platform_message_id": platform_message_id,
                "text": text,
                "reply_to": reply_to,
                "origin": origin,
                "sent_at": sent_at,
                "deleted": False,
            },
        )
        return added is not None

    async def add_message(
        self,
        channel: Channel,
        platform_message_id: str,
        member: Member | None,
        text: str,
        sent_at: datetime,
        reply_to: str | None = None,
        origin: str | None = None,
    ) -> tuple[Message, bool]:
        """Store a message once; returns it and whether it was new."""
        key = ("message", channel.id, platform_message_id)
        known: Message | None = self.seen.get(key)
        if known is not None:
            return known, False
        values = {
            "channel_id": channel.id,
            "platform_message_id": platform_message_id,
            "member_id": member.id if member else None,
            "text": text,
            "sent_at": sent_at,
            "reply_to": reply_to,
            "origin": origin,
            "deleted": False,
        }
        # One Core statement for the usual case (a new message; the ORM's own INSERT ...
        # RETURNING costs several times as much), the row then joins the session as if loaded;
        # a message stored before (seen again) is looked up.
        new_id = await self.session.scalar(
            _insert_message(self.session.get_bind().dialect.name), values
        )
        new = new_id is not None
        message: Message | None
        if new_id is not None:
            message = Message(id=new_id, edited_at=None, **values)
            make_transient_to_detached(message)
            self.session.add(message)
        else:
            message = await self.message(channel.id, platform_message_id)
            if message is None:  # pragma: no cover - the conflict says it exists
                raise LookupError(f"message {platform_message_id} in channel {channel.id}")
        self.seen[key] = message
        return message, new


def newer_id(a: str | None, b: str | None) -> str | None:
    """The newer of two message ids of one channel (numeric ids compare as numbers)."""
    if a is None or b is None:
        return a or b
    if a.isdigit() and b.isdigit():
        return a if int(a) >= int(b) else b
    return a


def resume_after(newest: str | None, note: str | None) -> str | None:
    """Where reading a channel's history starts again: after the newest message stored from
    a member, or after a catch-up's note where one is left and older."""
    if newest is None or note is None:
        return newest or note
    if newest.isdigit() and note.isdigit():
        return newest if int(newest) <= int(note) else note
    return note
