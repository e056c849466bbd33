"""Rows the import writes below SQLAlchemy read back through the ORM as the same values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from bot.importing.rawsql import Raw, sqlite_time
from storage.engine import Database
from storage.models import Answer, Message, Thread, UTCDateTime
from storage.repos.conversation import ConversationRepo

TIMES = [
    datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
    datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=1))),
    datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(999, 12, 31, 23, 0, tzinfo=UTC),
    datetime(2020, 2, 29, 12, 0),
]


@pytest.mark.parametrize("at", TIMES, ids=str)
def test_sqlite_time_is_what_the_column_type_writes(at: datetime) -> None:
    dialect = sqlite.dialect()
    column = UTCDateTime()
    write = column.dialect_impl(dialect).bind_processor(dialect)
    assert write is not None
    assert sqlite_time(at) == write(column.process_bind_param(at, dialect))


async def test_rows_written_raw_read_back_through_the_orm(store: Database) -> None:
    async with store.session() as s:
        channel = await ConversationRepo(s).ensure_channel("telegram", "-5", None)
        member = await ConversationRepo(s).ensure_member("telegram", "7", "Seven")
        ids = (channel.id, channel.community_id, member.id)

    def write(conn: object) -> None:
        raw = Raw(conn)  # type: ignore[arg-type]
        raw.many(
            "INSERT INTO message (channel_id, platform_message_id, member_id, text, reply_to, "
            "origin, sent_at, edited_at, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (ids[0], str(i), ids[2], f"text {i}", None, None, raw.time(at), raw.time(at), False)
                for i, at in enumerate(TIMES)
            ],
        )
        found = dict(
            raw.rows(
                "SELECT platform_message_id, id FROM message WHERE platform_message_id {in}",
                raw.values(["0", "1"]),
            )
        )
        raw.many(
            "INSERT INTO thread (community_id, question_message_id, question_text, search_text, "
            "status, asked_at, first_answer_at, accepted_answer_id, tags) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ids[1], found["0"], "q", "q", "open", raw.time(TIMES[0]), None, None, "[]")],
        )
        (thread_id,) = raw.rows("SELECT id FROM thread")[0]
        raw.many(
            "INSERT INTO answer (thread_id, message_id, answered_at, votes) VALUES (?, ?, ?, 0)",
            [(thread_id, found["1"], raw.time(TIMES[2]))],
        )
        assert (
            raw.run("UPDATE thread SET status = 'answered' WHERE id {in}", raw.values([thread_id]))
            == 1
        )

    async with store.session() as s:
        await s.run_sync(lambda session: write(session.connection()))
    async with store.session() as s:
        messages = (await s.scalars(select(Message).order_by(Message.id))).all()
        thread = await s.scalar(select(Thread))
        answer = await s.scalar(select(Answer))
    naive_is_utc = [at if at.tzinfo else at.replace(tzinfo=UTC) for at in TIMES]
    assert [m.sent_at for m in messages] == naive_is_utc
    assert [m.edited_at for m in messages] == naive_is_utc
    assert all(m.sent_at.tzinfo == UTC and m.deleted is False for m in messages)
    assert thread is not None and thread.asked_at == TIMES[0] and thread.tags == []
    assert thread.status == "answered" and thread.first_answer_at is None
    assert answer is not None and answer.answered_at == TIMES[2] and answer.votes == 0
