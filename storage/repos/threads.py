"""Threads (questions) and their answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Answer, Member, Message, Thread
from storage.repos.rows import insert_row


@dataclass(frozen=True)
class AnswerView:
    """An answer with who gave it and when."""

    answer_id: int
    text: str
    author: str
    answered_at: datetime
    votes: int


# Built once (building a statement costs more than running it from SQLAlchemy's cache).
_BY_QUESTION = select(Thread).where(Thread.question_message_id == bindparam("message_id"))
_ANSWER_OF = select(Answer).where(Answer.message_id == bindparam("message_id"))


class ThreadRepo:
    """Questions the community asked and what it answered."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, thread_id: int) -> Thread | None:
        """A thread by id."""
        return await self.session.get(Thread, thread_id)

    async def by_question(self, message_id: int) -> Thread | None:
        """The thread a message asked, if any."""
        return await self.session.scalar(_BY_QUESTION, {"message_id": message_id})

    async def create(
        self,
        community_id: int,
        question: Message,
        question_text: str,
        search_text: str,
        asked_at: datetime,
    ) -> Thread:
        """Open a thread for a question message."""
        thread = Thread(
            community_id=community_id,
            question_message_id=question.id,
            question_text=question_text,
            search_text=search_text,
            status="open",
            asked_at=asked_at,
            tags=[],
        )
        await insert_row(self.session, thread)
        return thread

    async def add_answer(self, thread: Thread, message: Message) -> tuple[Answer, bool]:
        """Record ``message`` as an answer; the thread becomes answered. Idempotent."""
        answer = Answer(thread_id=thread.id, message_id=message.id, answered_at=message.sent_at)
        if not await insert_row(self.session, answer, conflict=("thread_id", "message_id")):
            found = await self.session.scalar(
                select(Answer).where(Answer.thread_id == thread.id, Answer.message_id == message.id)
            )
            if found is None:  # pragma: no cover - the conflict says it exists
                raise LookupError(f"answer {message.id} to thread {thread.id}")
            return found, False
        if thread.first_answer_at is None or message.sent_at < thread.first_answer_at:
            thread.first_answer_at = message.sent_at
        if thread.status == "open":
            thread.status = "answered"
        await self.session.flush()
        return answer, True

    async def answers(self, thread_id: int) -> Sequence[AnswerView]:
        """A thread's live answers, accepted first, then by votes and time."""
        thread = await self.get(thread_id)
        accepted = thread.accepted_answer_id if thread else None
        rows = await self.session.execute(
            select(Answer, Message.text, Member.display_name)
            .join(Message, Answer.message_id == Message.id)
            .outerjoin(Member, Message.member_id == Member.id)
            .where(Answer.thread_id == thread_id, Message.deleted.is_(False))
            .order_by(Answer.answered_at)
        )
        views = [
            AnswerView(a.id, text, name or "someone", a.answered_at, a.votes)
            for a, text, name in rows.all()
        ]
        views.sort(key=lambda v: (v.answer_id != accepted, -v.votes))
        return views

    async def answer_for_message(self, message_id: int) -> Answer | None:
        """The answer a message gave, if it is one."""
        return await self.session.scalar(_ANSWER_OF, {"message_id": message_id})

    async def mark_solved(self, thread: Thread, answer: Answer | None = None) -> None:
        """Solved, optionally naming the accepted answer."""
        thread.status = "solved"
        if answer is not None:
            thread.accepted_answer_id = answer.id
        await self.session.flush()

    async def update_question(self, thread: Thread, text: str, search_text: str) -> None:
        """The question was edited; the search index follows by trigger."""
        thread.question_text = text
        thread.search_text = search_text
        await self.session.flush()

    async def mark_deleted(self, thread: Thread) -> None:
        """The question was deleted; it leaves the search index."""
        thread.status = "deleted"
        await self.session.flush()

    async def status_counts(self, community_id: int) -> dict[str, int]:
        """Threads per status in a community."""
        rows = await self.session.execute(
            select(Thread.status, func.count(Thread.id))
            .where(Thread.community_id == community_id)
            .group_by(Thread.status)
        )
        return {status: int(n) for status, n in rows.all()}

    async def count(self) -> int:
        """Number of threads (all states)."""
        return int(await self.session.scalar(select(func.count(Thread.id))) or 0)
