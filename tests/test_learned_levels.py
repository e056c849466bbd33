"""Each community's answer level learns from its members' ✅/❌ on copss's replies."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.events import Author, ChannelRef, ReactionEvent
from bot.features.learning import (
    BOUND,
    MIN_ABOVE,
    MIN_LABELS,
    Label,
    labels_of,
    learn_answer_at,
)
from storage.models import Channel, Community, Message, Suggestion
from tests.conftest import Harness
from tests.test_communities import run, say


def test_too_few_labels_change_nothing() -> None:
    labels = [Label(0.9, True)] * (MIN_LABELS - 1)
    assert learn_answer_at(labels, 0.8) is None


def test_confirmed_suggestions_lower_the_level_within_the_bound() -> None:
    # Members keep confirming matches at 0.74-0.79 that copss only suggested (level 0.8).
    labels = [Label(0.74 + 0.0025 * i, True) for i in range(MIN_LABELS)]
    assert learn_answer_at(labels, 0.8) == pytest.approx(0.74)
    # Never below the bound, however low the confirmed matches.
    labels = [Label(0.5 + 0.01 * i, True) for i in range(40)]
    assert learn_answer_at(labels, 0.8) == pytest.approx(0.8 - BOUND)


def test_rejected_answers_raise_the_level() -> None:
    # Answers at 0.80-0.85 rejected, answers at 0.86 and up confirmed.
    labels = [Label(0.80 + 0.005 * i, False) for i in range(10)] + [
        Label(0.86 + 0.002 * i, True) for i in range(MIN_ABOVE + 5)
    ]
    assert learn_answer_at(labels, 0.8) == pytest.approx(0.86)
    # Rejected all the way up: the top of the bound.
    labels = [Label(0.8 + 0.004 * i, False) for i in range(MIN_LABELS + 5)]
    assert learn_answer_at(labels, 0.8) == pytest.approx(0.8 + BOUND)


def test_a_few_wrong_among_many_right_are_tolerated() -> None:
    labels = [Label(0.75, False)] + [Label(0.76 + 0.001 * i, True) for i in range(25)]
    assert learn_answer_at(labels, 0.8) == pytest.approx(0.75)


def test_labels_below_the_range_say_nothing() -> None:
    labels = [Label(0.4 + 0.001 * i, True) for i in range(30)]
    assert learn_answer_at(labels, 0.8) is None


async def _react(copss: Harness, chat: str, bot_message: str, user: str, emoji: str) -> None:
    assert copss.app.hub is not None
    await copss.app.hub.sink(
        ReactionEvent(
            ChannelRef("console", chat), bot_message, Author("console", user, user), emoji, True
        )
    )
    await copss.settle()


async def _ask(copss: Harness, chat: str, text: str, user: str) -> Suggestion:
    """Post a question; the first item of copss's reply to it."""
    await say(copss, chat, text, user=user)
    async with copss.db.session() as s:
        first = await s.scalar(select(Suggestion).order_by(Suggestion.id.desc()).limit(1))
        assert first is not None
        top = await s.scalar(
            select(Suggestion)
            .where(Suggestion.message_id == first.message_id)
            .order_by(Suggestion.id)
            .limit(1)
        )
    assert top is not None
    return top


async def _seed_labels(copss: Harness, chat: str, levels: list[float]) -> None:
    """Earlier replies in ``chat`` its askers marked ✅, at these levels."""
    async with copss.db.session() as s:
        channel = await s.scalar(select(Channel).where(Channel.chat_id == chat))
        assert channel is not None
        for n, level in enumerate(levels):
            question = Message(
                channel_id=channel.id, platform_message_id=f"earlier-{n}", text="earlier"
            )
            s.add(question)
            await s.flush()
            s.add(
                Suggestion(
                    message_id=question.id,
                    score=level,
                    level=level,
                    basis="confidence",
                    mode="suggest",
                    feedback="helpful",
                )
            )


QUESTION = "huurtoeslag for a room?"


async def test_members_feedback_moves_their_own_communitys_level_only(copss: Harness) -> None:
    await say(copss, "b", "hello")  # chat b exists, its own community
    first = await _ask(copss, "a", QUESTION, "m0")
    level = first.level
    assert first.mode == "suggest" and first.basis == "confidence" and level is not None
    assert 0.82 - BOUND + 0.01 <= level < 0.82, "the question must be suggested, not answered"
    # Nineteen earlier replies in chat a were confirmed at about this level; one more real ✅
    # (by the asker: a stranger's teaches nothing) makes twenty labels, and the level moves.
    await _seed_labels(copss, "a", [level - 0.01 + 0.001 * n for n in range(MIN_LABELS - 1)])
    assert first.bot_message_id is not None
    await _react(copss, "a", first.bot_message_id, "stranger", "✅")
    assert "answer 0.82 (the default)" in await run(copss, "a", "threshold")
    await _react(copss, "a", first.bot_message_id, "m0", "✅")
    shown = await run(copss, "a", "threshold")
    learned = round(level - 0.01, 4)  # the weakest confirmed level
    assert f"answer {learned:.2f} (learned from {MIN_LABELS} ✅/❌ in this community" in shown
    assert "answer 0.82 (the default)" in await run(copss, "b", "threshold")
    async with copss.db.session() as s:
        a = await s.scalar(select(Channel.community_id).where(Channel.chat_id == "a"))
        assert a is not None
        assert len(await labels_of(s, a, "confidence")) == MIN_LABELS
        assert await labels_of(s, a, "cosine") == []
        b = await s.scalar(select(Channel.community_id).where(Channel.chat_id == "b"))
        assert b is not None and b != a and await labels_of(s, b, "confidence") == []
        other = await s.get(Community, b)
        assert other is not None and "learned" not in (other.settings or {})
        community = await s.get(Community, a)
        assert community is not None
        assert community.settings["learned"]["labels"] == MIN_LABELS
        assert community.settings["learned"]["answer_at"] == pytest.approx(learned)
    # The next member asking the same is answered outright.
    assert (await _ask(copss, "a", QUESTION, "m1")).mode == "auto"
    # An admin's own level wins over the learned one; reset goes back to the default.
    await run(copss, "a", "threshold", "answer 0.95")
    assert "answer 0.95 (set in this chat" in await run(copss, "a", "threshold")
    assert "Back to the default levels" in await run(copss, "a", "threshold", "reset")
    assert "answer 0.82 (the default)" in await run(copss, "a", "threshold")
