"""The community health figures, per community, per platform and per week.

Definitions (docs/design.md, "Community health report"): every figure counts members only —
never a bot (``member.is_bot``), copss's own messages, bridged copies or deleted messages.
Weeks start on Monday 00:00 UTC; hours of the day are UTC.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.features.settings import community_synonyms
from bot.report import rows as load
from bot.report.official import OfficialSources
from bot.report.rows import AnswerRow, MemberSpan, MessageRow, QuestionRow
from bot.report.topics import TopicVocabulary
from storage.models import Channel, Community

#: The scope key of a community's figures over all its platforms.
ALL = "all"
#: A newcomer came back when they wrote again at least this long after their first message.
CAME_BACK_AFTER = timedelta(hours=24)
#: The share of answerers whose part of all answers the concentration figure reports.
TOP_ANSWERERS = 0.10


@dataclass(frozen=True)
class Figures:
    """One scope (community or platform) over one period."""

    start: date | None
    members_active: int
    askers: int
    answerers: int
    answers: int
    #: Share (0..1) of the answers given by the top 10% of answerers (at least one answerer).
    top_answerers_share: float | None
    newcomers: int
    newcomers_returned: int
    questions: int
    answered: int
    solved: int
    unanswered: int
    answered_share: float | None
    solved_share: float | None
    median_hours_to_first_answer: float | None
    official_answers: int
    official_share: float | None


@dataclass(frozen=True)
class Hours:
    """Questions asked and answers given per hour of the day (UTC)."""

    questions: list[int]
    answers: list[int]

    @property
    def without_answers(self) -> list[int]:
        """The hours in which nobody answered."""
        return [h for h in range(24) if self.answers[h] == 0]


@dataclass(frozen=True)
class Topic:
    """Questions about one topic, and how many of them were answered."""

    topic: str
    questions: int
    answered: int


@dataclass(frozen=True)
class Waiting:
    """A question nobody has answered yet."""

    thread_id: int
    platform: str
    asked_at: datetime
    question: str
    link: str | None


@dataclass(frozen=True)
class CommunityHealth:
    """Every figure of one community; the per-scope maps have ``all`` and each platform."""

    community_id: int
    name: str
    platforms: list[str]
    figures: dict[str, Figures]
    weekly: dict[str, list[Figures]]
    hours: dict[str, Hours]
    topics: dict[str, list[Topic]]
    backlog: list[Waiting]


@dataclass
class _Bucket:
    messages: list[MessageRow] = field(default_factory=list)
    newcomers: list[MemberSpan] = field(default_factory=list)
    questions: list[QuestionRow] = field(default_factory=list)
    answers: list[AnswerRow] = field(default_factory=list)

    def extend(self, other: _Bucket) -> None:
        self.messages += other.messages
        self.newcomers += other.newcomers
        self.questions += other.questions
        self.answers += other.answers


def week_of(when: datetime) -> date:
    """The Monday (UTC) of the week ``when`` falls in."""
    day = when.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def top_share(answer_counts: Iterable[int]) -> float | None:
    """The share of all answers given by the top 10% of answerers (rounded up, at least 1)."""
    counts = sorted(answer_counts, reverse=True)
    total = sum(counts)
    if not total:
        return None
    top = max(1, math.ceil(len(counts) * TOP_ANSWERERS))
    return sum(counts[:top]) / total


class _Outcomes:
    """Per thread: whether members answered it and when first (whatever the period)."""

    def __init__(self, answers: Sequence[AnswerRow]) -> None:
        self.first: dict[int, datetime] = {}
        for a in answers:
            seen = self.first.get(a.thread_id)
            if seen is None or a.answered_at < seen:
                self.first[a.thread_id] = a.answered_at

    def answered(self, q: QuestionRow) -> bool:
        # Solved counts as answered: an asker who thanks or an admin who marks it solved says
        # the question needs nothing more.
        return q.thread_id in self.first or q.status == "solved"

    def hours_to_first(self, q: QuestionRow) -> float | None:
        first = self.first.get(q.thread_id)
        return None if first is None else max(0.0, (first - q.asked_at).total_seconds() / 3600)


def _figures(b: _Bucket, outcomes: _Outcomes, start: date | None) -> Figures:
    per_answerer = Counter(a.member_id for a in b.answers)
    answered = sum(outcomes.answered(q) for q in b.questions)
    solved = sum(q.status == "solved" for q in b.questions)
    waits = [h for h in (outcomes.hours_to_first(q) for q in b.questions) if h is not None]
    official = sum(a.official for a in b.answers)
    return Figures(
        start=start,
        members_active=len({m.member_id for m in b.messages}),
        askers=len({q.asker_id for q in b.questions}),
        answerers=len(per_answerer),
        answers=len(b.answers),
        top_answerers_share=top_share(per_answerer.values()),
        newcomers=len(b.newcomers),
        newcomers_returned=sum(n.last_at - n.first_at >= CAME_BACK_AFTER for n in b.newcomers),
        questions=len(b.questions),
        answered=answered,
        solved=solved,
        unanswered=len(b.questions) - answered,
        answered_share=_share(answered, len(b.questions)),
        solved_share=_share(solved, len(b.questions)),
        median_hours_to_first_answer=statistics.median(waits) if waits else None,
        official_answers=official,
        official_share=_share(official, len(b.answers)),
    )


def _weeks(first: date, last: date) -> list[date]:
    return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]


async def community_health(
    session: AsyncSession,
    community_id: int,
    official: OfficialSources,
    since: datetime | None = None,
    now: datetime | None = None,
) -> CommunityHealth:
    """Every figure of a community from ``since`` (all its history when None) to ``now``."""
    now = now or datetime.now(UTC)
    community = await session.get(Community, community_id)
    if community is None:
        raise LookupError(f"no community with id {community_id}")
    messages = [m for m in await load.messages(session, community_id, since) if m.sent_at <= now]
    spans = [
        s
        for s in await load.member_spans(session, community_id)
        if (since is None or s.first_at >= since) and s.first_at <= now
    ]
    questions = [q for q in await load.questions(session, community_id, since) if q.asked_at <= now]
    all_answers = await load.answers(session, community_id, since, official)
    outcomes = _Outcomes([a for a in all_answers if a.answered_at <= now])
    answers = [
        a for a in all_answers if (since is None or a.answered_at >= since) and a.answered_at <= now
    ]
    vocabulary = TopicVocabulary(
        await load.kb_tags(session, community_id), community_synonyms(community)
    )
    # Each question's topics once, for every scope it is counted in.
    topics_of = {q.thread_id: vocabulary.of(q.text, q.tags) for q in questions}

    buckets: dict[tuple[str, date], _Bucket] = defaultdict(_Bucket)
    for m in messages:
        buckets[m.platform, week_of(m.sent_at)].messages.append(m)
    for s in spans:
        buckets[s.platform, week_of(s.first_at)].newcomers.append(s)
    for q in questions:
        buckets[q.platform, week_of(q.asked_at)].questions.append(q)
    for a in answers:
        buckets[a.platform, week_of(a.answered_at)].answers.append(a)
    platforms = sorted(
        {p for p, _ in buckets}
        | set(
            (
                await session.scalars(
                    select(Channel.platform).where(Channel.community_id == community_id)
                )
            ).all()
        )
    )
    weeks = _weeks(min(w for _, w in buckets), week_of(now)) if buckets else []

    figures: dict[str, Figures] = {}
    weekly: dict[str, list[Figures]] = {}
    hours: dict[str, Hours] = {}
    topics: dict[str, list[Topic]] = {}
    for scope in [ALL, *platforms]:
        scoped = [p for p in platforms if scope in (ALL, p)]
        total = _Bucket()
        weekly[scope] = []
        for week in weeks:
            bucket = _Bucket()
            for p in scoped:
                bucket.extend(buckets.get((p, week), _Bucket()))
            weekly[scope].append(_figures(bucket, outcomes, week))
            total.extend(bucket)
        figures[scope] = _figures(total, outcomes, since.date() if since else None)
        hours[scope] = _hours(total)
        topics[scope] = _topics(total.questions, outcomes, topics_of)
    backlog = [
        Waiting(q.thread_id, q.platform, q.asked_at, q.text, q.link)
        for q in questions
        if not outcomes.answered(q)
    ]
    backlog.sort(key=lambda w: (w.asked_at, w.thread_id), reverse=True)
    return CommunityHealth(
        community_id, community.name, platforms, figures, weekly, hours, topics, backlog
    )


def _hours(b: _Bucket) -> Hours:
    asked = Counter(q.asked_at.astimezone(UTC).hour for q in b.questions)
    given = Counter(a.answered_at.astimezone(UTC).hour for a in b.answers)
    return Hours([asked[h] for h in range(24)], [given[h] for h in range(24)])


def _topics(
    questions: Sequence[QuestionRow], outcomes: _Outcomes, topics_of: dict[int, list[str]]
) -> list[Topic]:
    asked: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for q in questions:
        for topic in topics_of[q.thread_id]:
            asked[topic] += 1
            answered[topic] += outcomes.answered(q)
    return [
        Topic(t, n, answered[t]) for t, n in sorted(asked.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


async def community_ids(session: AsyncSession) -> list[int]:
    """Communities that have at least one channel, in id order."""
    return list(
        (
            await session.scalars(
                select(Channel.community_id).distinct().order_by(Channel.community_id)
            )
        ).all()
    )
