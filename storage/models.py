"""Typed SQLAlchemy 2.0 models of the copss data model.

Platform ids are stored as text: Discord snowflakes and Telegram ids both fit, and the store
never does arithmetic on them. ``thread_id`` is ``""`` (not NULL) when a channel has no
topic/thread so that the unique constraint on channels holds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every copss table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Community(Base):
    """A community: the channels it spans share one memory and one set of settings."""

    __tablename__ = "community"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Channel(Base):
    """A Discord channel/thread or a Telegram chat/topic that copss has seen."""

    __tablename__ = "channel"
    __table_args__ = (UniqueConstraint("platform", "chat_id", "thread_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str | None] = mapped_column(String(200))
    #: Discord: a catch-up has not yet read this channel's history past this message id (set
    #: as a gateway session begins, cleared once the channel is read), so that the next
    #: catch-up starts there even if messages newer than it were stored meanwhile (migration 10).
    catch_up_after: Mapped[str | None] = mapped_column(String(64))


class Member(Base):
    """A person (or bot) on one platform."""

    __tablename__ = "member"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """A message seen in a channel (members' and copss's own)."""

    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("channel_id", "platform_message_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"))
    platform_message_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str | None] = mapped_column(String(64))
    origin: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column()
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class Thread(Base):
    """A question and what the community answered to it."""

    __tablename__ = "thread"
    __table_args__ = (Index("ix_thread_community_status", "community_id", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    question_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL"), unique=True
    )
    question_text: Mapped[str] = mapped_column(Text)
    #: Normalised text that the search index holds.
    search_text: Mapped[str] = mapped_column(Text, default="")
    #: ``open``, ``answered``, ``solved`` or ``deleted``.
    status: Mapped[str] = mapped_column(String(16), default="open")
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_answer_at: Mapped[datetime | None] = mapped_column()
    accepted_answer_id: Mapped[int | None] = mapped_column(
        ForeignKey("answer.id", use_alter=True, ondelete="SET NULL")
    )
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)


class Answer(Base):
    """A message that answers a thread's question."""

    __tablename__ = "answer"
    __table_args__ = (
        UniqueConstraint("thread_id", "message_id"),
        # Answers are looked up by message too (migration 9).
        Index("ix_answer_message", "message_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("thread.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)
    votes: Mapped[int] = mapped_column(Integer, default=0)


class FaqEntry(Base):
    """A curated knowledge-base entry (global when ``community_id`` is NULL).

    Global entries are the operator's (``copss kb load``) and read-only from chat; a community
    row with the same slug overrides the global one for that community (or hides it).
    """

    __tablename__ = "faq_entry"
    __table_args__ = (UniqueConstraint("community_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"))
    slug: Mapped[str] = mapped_column(String(100))
    question: Mapped[str] = mapped_column(Text)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    answer: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    reviewed_at: Mapped[date | None] = mapped_column(Date)
    expires_at: Mapped[date | None] = mapped_column(Date)
    search_text: Mapped[str] = mapped_column(Text, default="")
    helpful: Mapped[int] = mapped_column(Integer, default=0)
    not_helpful: Mapped[int] = mapped_column(Integer, default=0)
    #: A community's row that hides the global entry of the same slug for that community.
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)


class BridgeLink(Base):
    """Two channels whose messages copss relays both ways."""

    __tablename__ = "bridge_link"
    __table_args__ = (UniqueConstraint("channel_a_id", "channel_b_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_a_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    channel_b_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    #: ``pending`` until an admin of channel B confirms it from there, then ``active``.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageCopy(Base):
    """A bridged copy of a message on another channel."""

    __tablename__ = "message_copy"
    __table_args__ = (
        UniqueConstraint("original_id", "channel_id"),
        # A reply to a copy finds the original by the copy's id in its channel (migration 11).
        Index("ix_message_copy_channel_copy", "channel_id", "copy_platform_message_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    original_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    #: The copy's first chunk (what replies to the copy point at).
    copy_platform_message_id: Mapped[str] = mapped_column(String(64))
    #: Every chunk the copy was split into on its platform, first first (edits change them).
    chunk_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class Suggestion(Base):
    """What copss pointed a question at, and whether the asker found it helpful."""

    __tablename__ = "suggestion"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("thread.id", ondelete="CASCADE"))
    faq_entry_id: Mapped[int | None] = mapped_column(ForeignKey("faq_entry.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    #: What the gate compared with its levels (``score``, or the cosine under semantic
    #: matching), and which of the two (``basis``): the labels per-community levels learn from.
    level: Mapped[float | None] = mapped_column(Float)
    basis: Mapped[str | None] = mapped_column(String(16))
    #: ``auto`` (answered outright) or ``suggest`` (one of several).
    mode: Mapped[str] = mapped_column(String(16))
    #: ``helpful``, ``not_helpful`` or NULL.
    feedback: Mapped[str | None] = mapped_column(String(16))
    bot_message_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """One admin action."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id"))
    actor: Mapped[str] = mapped_column(String(200))
    command: Mapped[str] = mapped_column(String(64))
    args: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class InboxEvent(Base):
    """An incoming event, stored before it is handled (``handled_at`` NULL until then)."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_pending", "handled_at"),
        # Each process claims the pending events of its own platforms (migration 2).
        Index("ix_inbox_platform_pending", "platform", "handled_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    #: The platform the event came from: each process handles the events of its own adapters.
    platform: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column()
    #: Why the last attempt failed while the event is pending; once handled, why it was given
    #: up (``parked: ...``), or NULL when it was handled.
    error: Mapped[str | None] = mapped_column(Text)
    #: Tries at handling it, each committed before the handlers ran (so a crash counts too).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class OutboxMessage(Base):
    """Something copss will post. ``state``: ``pending``; ``sending`` while a send is under
    way (recorded before the platform call); ``sent``; ``failed`` (refused for good);
    ``unsure`` (the send may or may not have arrived and the row's ``delivery`` says not to
    send it again); ``dead`` (given up after too many attempts; an admin may retry it)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "platform", "state", "id"),
        Index("ix_outbox_chat", "platform", "state", "chat_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(64), default="")
    text: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(String(64))
    as_name: Mapped[str | None] = mapped_column(String(200))
    origin: Mapped[str | None] = mapped_column(String(200))
    #: What to do once sent, e.g. ``{"suggestion_id": 3}``; the hub adds ``chunks``: the ids
    #: of every chunk of the message posted so far (``bot.core.CHUNKS``).
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: What a send that may or may not have arrived (a timeout after the request went out,
    #: copss killed mid-call) leads to: ``at_least_once`` sends it again (bridged copies: a
    #: member's words must arrive), ``at_most_once`` does not (copss's own replies: a missing
    #: hint is better than a repeated one). See docs/reliability.md.
    delivery: Mapped[str] = mapped_column(
        String(16), default="at_least_once", server_default="at_least_once"
    )
    #: When the last attempt started (committed before the platform call).
    attempted_at: Mapped[datetime | None] = mapped_column()
    #: Not tried again before this time (backoff after a transient failure).
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class Embedding(Base):
    """A sentence embedding of a thread's question or an FAQ entry under one model.

    ``vector`` holds ``dim`` float16 values, little-endian; ``text_hash`` is the SHA-256 of the
    text that was embedded, so an unchanged text is not embedded again. ``ref_id`` names a
    thread (``kind`` ``thread``) or an FAQ entry (``faq``): triggers remove the row when its
    thread or entry is deleted, or when the thread's question is deleted (migration 6).
    """

    __tablename__ = "embedding"
    __table_args__ = (
        UniqueConstraint("kind", "ref_id", "model_id", name="uq_embedding_ref"),
        Index("ix_embedding_model", "model_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``thread`` or ``faq``.
    kind: Mapped[str] = mapped_column(String(8))
    ref_id: Mapped[int] = mapped_column(Integer)
    #: The embedder's stable id of model and weights.
    model_id: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    text_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchemaVersion(Base):
    """Migrations applied to this database."""

    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
