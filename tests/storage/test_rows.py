"""storage.repos.rows.insert_row: a new object's row in one statement, the object then kept by
the session as if a flush had stored it (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage.engine import Database
from storage.models import Member, OutboxMessage
from storage.repos.rows import insert_row


async def test_defaults_identity_and_later_changes(db: Database) -> None:
    async with db.session() as session:
        member = Member(platform="telegram", user_id="7", display_name="Ann")
        assert await insert_row(session, member)
        assert member.id is not None
        # The defaults a flush would have given.
        assert member.is_bot is False and member.opted_out is False
        assert member.created_at is not None
        # The session holds it as persistent: a query returns that very object, and a change
        # to it is stored at the next flush.
        assert await session.scalar(select(Member).where(Member.id == member.id)) is member
        member.display_name = "Anne"
    async with db.read() as session:
        stored = await session.scalar(select(Member).where(Member.user_id == "7"))
        assert stored is not None and stored.display_name == "Anne" and stored.is_bot is False
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await insert_row(session, Member(platform="telegram", user_id="7", display_name="x"))


async def test_a_conflict_stores_nothing(db: Database) -> None:
    async with db.session() as session:
        first = OutboxMessage(dedup_key="k", platform="telegram", chat_id="1", text="a")
        assert await insert_row(session, first, ("dedup_key",))
        assert first.state == "pending" and first.attempts == 0 and first.meta == {}
        again = OutboxMessage(dedup_key="k", platform="telegram", chat_id="1", text="b")
        assert not await insert_row(session, again, ("dedup_key",))
        assert again.id is None
    async with db.read() as session:
        texts = (await session.scalars(select(OutboxMessage.text))).all()
        assert texts == ["a"]
