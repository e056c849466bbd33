"""What the report reads from the store: one SQLAlchemy query per kind of row, for one
community, with members' participation only (bots, copss's own messages and bridged copies,
deleted messages and deleted questions are left out here, once, for every figure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.features.answers import message_link
from bot.report.official import OfficialSources
from storage.models import Answer, Channel, FaqEntry, Member, Message, Thread

#: How many rows are fetched from the database at a time while streaming messages.
_BATCH = 5000


@dataclass(frozen=True)
class MessageRow:
    """A member's message: who, on which platform, when."""

    member_id: int
    platform: str
    sent_at: datetime


@dataclass(frozen=True)
class MemberSpan:
    """A member's first and last message in the community (ever, not only in the period)."""

    member_id: int
    platform: str
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class QuestionRow:
    """A question a member asked (a thread that is not deleted)."""

    thread_id: int
    platform: str
    asker_id: int
    asked_at: datetime
    status: str
    text: str
    tags: tuple[str, ...]
    #: Where it was asked (platform, chat id, topic or thread id, channel title) and the
    #: message's platform id: its link is worked out when asked for (only the questions still
    #: waiting are shown with one).
    place: tuple[str, str, str, str | None]
    message_id: str

    @property
    def link(self) -> str | None:
        """A link to the question where the platform has them."""
        platform, chat, topic, title = self.place
        channel = Channel(platform=platform, chat_id=chat, thread_id=topic, title=title)
        return message_link(channel, Message(platform_message_id=self.message_id))


@dataclass(frozen=True)
class AnswerRow:
    """An answer a member gave, and whether it cites an official source."""

    thread_id: int
    member_id: int
    platform: str
    answered_at: datetime
    official: bool


def _participation(community_id: int) -> tuple[ColumnElement[bool], ...]:
    # A member's own words in this community: not a bot's, not a copy copss relayed (origin),
    # not deleted.
    return (
        Channel.community_id == community_id,
        Member.is_bot.is_(False),
        Message.deleted.is_(False),
        Message.origin.is_(None),
    )


async def messages(
    session: AsyncSession, community_id: int, since: datetime | None
) -> list[MessageRow]:
    """Members' messages in the community since ``since`` (all when None)."""
    query = (
        select(Member.id, Channel.platform, Message.sent_at)
        .join(Channel, Message.channel_id == Channel.id)
        .join(Member, Message.member_id == Member.id)
        .where(*_participation(community_id), Message.sent_at >= since if since else true())
        .execution_options(yield_per=_BATCH)
    )
    out: list[MessageRow] = []
    # By partitions of rows: iterating the stream row by row awaits (and switches) per row.
    async for rows in (await session.stream(query)).partitions():
        out += [MessageRow(member_id, platform, sent_at) for member_id, platform, sent_at in rows]
    return out


async def member_spans(session: AsyncSession, community_id: int) -> list[MemberSpan]:
    """Every member's first and last message in the community."""
    rows = await session.execute(
        select(
            Member.id,
            Channel.platform,
            func.min(Message.sent_at),
            func.max(Message.sent_at),
        )
        .join(Channel, Message.channel_id == Channel.id)
        .join(Member, Message.member_id == Member.id)
        .where(*_participation(community_id))
        .group_by(Member.id, Channel.platform)
    )
    return [MemberSpan(m, p, first, last) for m, p, first, last in rows.all()]


async def questions(
    session: AsyncSession, community_id: int, since: datetime | None
) -> list[QuestionRow]:
    """Members' questions in the community asked since ``since``, with a link to each where
    the platform gives one."""
    rows = await session.execute(
        select(
            Thread.id,
            Channel.platform,
            Channel.chat_id,
            Channel.thread_id,
            Channel.title,
            Message.platform_message_id,
            Member.id,
            Thread.asked_at,
            Thread.status,
            Thread.question_text,
            Thread.tags,
        )
        .join(Message, Thread.question_message_id == Message.id)
        .join(Channel, Message.channel_id == Channel.id)
        .join(Member, Message.member_id == Member.id)
        .where(
            Thread.community_id == community_id,
            Thread.status != "deleted",
            Member.is_bot.is_(False),
            Message.deleted.is_(False),
            Thread.asked_at >= since if since else true(),
        )
        .order_by(Thread.asked_at, Thread.id)
    )
    return [
        QuestionRow(
            tid,
            platform,
            asker,
            asked,
            status,
            text,
            tuple(tags or ()),
            (platform, chat, topic, title),
            mid,
        )
        for tid, platform, chat, topic, title, mid, asker, asked, status, text, tags in rows.all()
    ]


async def answers(
    session: AsyncSession, community_id: int, since: datetime | None, official: OfficialSources
) -> list[AnswerRow]:
    """Members' answers to the community's questions, given since ``since`` or to a question
    asked since then."""
    recent = or_(Answer.answered_at >= since, Thread.asked_at >= since) if since else true()
    rows = await session.execute(
        select(Answer.thread_id, Member.id, Channel.platform, Answer.answered_at, Message.text)
        .join(Thread, Answer.thread_id == Thread.id)
        .join(Message, Answer.message_id == Message.id)
        .join(Channel, Message.channel_id == Channel.id)
        .join(Member, Message.member_id == Member.id)
        .where(
            and_(
                Thread.community_id == community_id,
                Thread.status != "deleted",
                Member.is_bot.is_(False),
                Message.deleted.is_(False),
                recent,
            )
        )
    )
    return [
        AnswerRow(tid, member, platform, at, official.cites(text or ""))
        for tid, member, platform, at, text in rows.all()
    ]


async def kb_tags(session: AsyncSession, community_id: int) -> list[str]:
    """Tags of the knowledge base the community sees: the shared entries and its own."""
    rows: Sequence[list[str]] = (
        await session.scalars(
            select(FaqEntry.tags).where(
                or_(FaqEntry.community_id.is_(None), FaqEntry.community_id == community_id),
                FaqEntry.hidden.is_(False),
            )
        )
    ).all()
    return [tag for tags in rows for tag in (tags or ())]
