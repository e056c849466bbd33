"""The health figures equal what plain SQL over the same store says; bots never count, and
one community's rows never reach another's figures."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import DEFAULT_OFFICIAL_DOMAINS
from bot.report.metrics import ALL, CommunityHealth, Figures, community_health
from bot.report.official import OfficialSources
from faq.normalize import search_text
from storage.engine import Database
from storage.repos.conversation import ConversationRepo
from storage.repos.threads import ThreadRepo
from tests.report.expected import Expected
from tests.report.store import NOW, build

OFFICIAL = OfficialSources(DEFAULT_OFFICIAL_DOMAINS)


def _plain(f: Figures) -> dict[str, Any]:
    data = dataclasses.asdict(f)
    data.pop("start")
    return data


def _same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value), key


async def _health(db: Database, community: int, since: datetime | None = None) -> CommunityHealth:
    async with db.session() as s:
        return await community_health(s, community, OFFICIAL, since=since, now=NOW)


async def test_every_figure_equals_plain_sql(db: Database, tmp_path: Path) -> None:
    built = await build(db)
    health = await _health(db, built.a)
    exp = Expected(tmp_path / "copss.db", built.a, NOW)
    assert health.platforms == ["discord", "telegram"]
    for scope in (ALL, "discord", "telegram"):
        platform = None if scope == ALL else scope
        _same(_plain(health.figures[scope]), exp.figures(platform))
        weeks = [f.start.isoformat() for f in health.weekly[scope] if f.start]
        # Every week from the first activity to now's, empty weeks included.
        assert weeks[-1] == "2025-03-17" and len(weeks) == len(set(weeks)) >= 5
        for f in health.weekly[scope]:
            assert f.start is not None
            _same(_plain(f), exp.figures(platform, f.start.isoformat()))
        asked, given = exp.hours(platform)
        assert health.hours[scope].questions == asked
        assert health.hours[scope].answers == given
        assert health.hours[scope].without_answers == [h for h in range(24) if not given[h]]
    everything = health.figures[ALL]
    # The data is varied enough for every figure to mean something.
    assert everything.questions > 50 and 0 < everything.unanswered < everything.questions
    assert 0 < everything.official_answers < everything.answers
    assert everything.newcomers > 10 and 0 < everything.newcomers_returned < everything.newcomers
    assert [(w.thread_id, w.link) for w in health.backlog] == exp.backlog()
    assert any(w.link and w.link.startswith("https://t.me/c/1234/") for w in health.backlog)
    assert any(
        w.link and w.link.startswith("https://discord.com/channels/999/555/")
        for w in health.backlog
    )


async def test_since_limits_the_period_but_not_who_is_new(db: Database, tmp_path: Path) -> None:
    built = await build(db)
    since = NOW - timedelta(days=10)
    health = await _health(db, built.a, since)
    whole = await _health(db, built.a)
    recent = [f for f in whole.weekly[ALL] if f.start and f.start >= since.date()]
    assert health.weekly[ALL][0].start == since.date() - timedelta(days=since.weekday())
    # The first week is cut at ``since``: only whole weeks after it equal the full history's.
    for cut, full in zip(health.weekly[ALL][1:], recent[1:], strict=True):
        assert cut == full
    assert health.figures[ALL].questions == sum(
        1
        for q in Expected(tmp_path / "copss.db", built.a, NOW).questions
        if q[5] >= str(since)[:19]
    )


async def test_topics_come_from_kb_tags_and_synonyms(store: Database) -> None:
    db = store
    built = await build(db)
    health = await _health(db, built.a)
    topics = {t.topic: t for t in health.topics[ALL]}
    # "driving license" maps to the canonical "driving licence" (a synonym of the tag
    # "driving-licence"); "zorgverzekering" to the tag "health-insurance" of no entry here, so
    # it is no topic; "games" is a shared entry's tag, found in "board game" only as "game".
    assert "driving licence" in topics
    assert "health insurance" not in topics
    exp_licence = 0
    async with db.session() as s:
        from sqlalchemy import select

        from storage.models import Member, Message, Thread

        rows = (
            await s.execute(
                select(Thread.question_text)
                .join(Message, Message.id == Thread.question_message_id)
                .join(Member, Member.id == Message.member_id)
                .where(
                    Thread.community_id == built.a,
                    Thread.status != "deleted",
                    Member.is_bot.is_(False),
                )
            )
        ).all()
        exp_licence = sum("driving license" in text for (text,) in rows)
    assert topics["driving licence"].questions == exp_licence > 0


async def test_bots_never_count(store: Database) -> None:
    db = store
    t0 = NOW - timedelta(hours=5)
    async with db.session() as s:
        conv, threads = ConversationRepo(s), ThreadRepo(s)
        chat = await conv.ensure_channel("telegram", "-1005", None)
        alice = await conv.ensure_member("telegram", "1", "alice")
        bot = await conv.ensure_member("telegram", "2", "copss", is_bot=True)
        other_bot = await conv.ensure_member("telegram", "3", "GroupHelp", is_bot=True)
        q, _ = await conv.add_message(chat, "10", alice, "How do I get DigiD?", t0)
        thread = await threads.create(chat.community_id, q, q.text, search_text([q.text]), t0)
        reply, _ = await conv.add_message(chat, "11", bot, "See https://digid.nl", t0)
        await threads.add_answer(thread, reply)
        bq, _ = await conv.add_message(chat, "12", other_bot, "Who wants a raffle?", t0)
        await threads.create(chat.community_id, bq, bq.text, search_text([bq.text]), t0)
        community = chat.community_id
    health = await _health(db, community)
    f = health.figures[ALL]
    assert (f.members_active, f.askers, f.newcomers) == (1, 1, 1)
    assert (f.answerers, f.answers, f.official_answers, f.official_share) == (0, 0, 0, None)
    assert (f.questions, f.answered, f.unanswered, f.median_hours_to_first_answer) == (
        1,
        0,
        1,
        None,
    )
    assert [(w.thread_id, w.link) for w in health.backlog] == [(thread.id, "https://t.me/c/5/10")]
    assert health.hours[ALL].without_answers == list(range(24))


async def test_another_communitys_rows_do_not_leak(db: Database, tmp_path: Path) -> None:
    alone = await build(db, with_b=False)
    before = await _health(db, alone.a)
    # The same history again in a second store, this time beside community B (which shares
    # member t0): A's figures must not change.
    db_path = tmp_path / "copss.db"
    other = Database(f"sqlite+aiosqlite:///{tmp_path / 'two.db'}")
    from storage.migrations import upgrade

    await upgrade(other)
    both = await build(other, with_b=True)
    after = await _health(other, both.a)
    assert after.figures == before.figures
    assert after.weekly == before.weekly
    assert after.backlog == before.backlog
    b = await _health(other, both.b)
    exp = Expected(tmp_path / "two.db", both.b, NOW)
    _same(_plain(b.figures[ALL]), exp.figures())
    assert b.platforms == ["telegram"] and b.figures[ALL].members_active == 5
    await other.close()
    assert db_path.exists()
