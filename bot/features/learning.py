"""Each community's answer level, learned from what its members say of copss's answers.

A ✅ or ❌ on copss's reply labels the item it put first: right or wrong. With enough labels
the community's answer level moves to the lowest level at which the labelled items at or above
it were right at least ``1 - MAX_WRONG`` of the time: down when members keep confirming
suggestions copss did not dare to answer, up when they reject its answers. The move is
bounded (``BOUND`` either side of the configured level) and needs ``MIN_LABELS`` labels, of
which ``MIN_ABOVE`` at or above the new level, so a few reactions cannot swing it. A level an
admin sets with ``threshold`` wins over the learned one.

Only labels of the gate's current basis count (confidence for word matching, cosine under
semantic matching): the two scales are not comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.features.settings import LEARNED, update_settings
from faq.matcher import Gate
from storage.models import Channel, Community, Message, Suggestion

#: Labels a community needs before its answer level moves.
MIN_LABELS = 20
#: Labelled items at or above a learned level that must back it.
MIN_ABOVE = 10
#: The largest share of wrong items at or above the learned level.
MAX_WRONG = 0.05
#: How far the learned level may move from the configured one, either way.
BOUND = 0.10
#: The grid the level moves on.
STEP = 0.01


@dataclass(frozen=True)
class Label:
    """The level the gate compared for the item copss put first, and whether it was right."""

    level: float
    right: bool


def learn_answer_at(labels: Sequence[Label], base: float) -> float | None:
    """The answer level these labels support around ``base``; None when there are too few."""
    if len(labels) < MIN_LABELS:
        return None
    low, high = max(0.0, base - BOUND), min(1.0, base + BOUND)
    steps = round((high - low) / STEP)
    backed = False
    for i in range(steps + 1):
        level = round(low + i * STEP, 4)
        above = [label for label in labels if label.level >= level]
        if len(above) < MIN_ABOVE:
            break  # higher levels have fewer still
        backed = True
        wrong = sum(not label.right for label in above)
        if wrong <= MAX_WRONG * len(above):
            # No lower than the weakest label backing it: nothing below that was tried.
            return round(max(level, min(label.level for label in above)), 4)
    if not backed:
        return None  # the labels are all below the range: they say nothing about it
    # The strongest labelled items were rejected too often: answer only what is stronger.
    return high


async def labels_of(session: AsyncSession, community_id: int, basis: str) -> list[Label]:
    """The community's labels: per copss reply with feedback, its first item."""
    first = (
        select(func.min(Suggestion.id))
        .join(Message, Suggestion.message_id == Message.id)
        .join(Channel, Message.channel_id == Channel.id)
        .where(
            Channel.community_id == community_id,
            Suggestion.feedback.is_not(None),
            Suggestion.level.is_not(None),
            Suggestion.basis == basis,
        )
        .group_by(Suggestion.message_id)
    )
    rows = await session.execute(
        select(Suggestion.level, Suggestion.feedback).where(Suggestion.id.in_(first))
    )
    return [
        Label(float(level), feedback == "helpful")
        for level, feedback in rows.all()
        if level is not None
    ]


async def relearn(session: AsyncSession, community: Community, defaults: Gate) -> float | None:
    """Fit the community's answer level again (after new feedback) and keep it in its
    settings; returns the learned level, None while there are too few labels."""
    labels = await labels_of(session, community.id, defaults.basis)
    level = learn_answer_at(labels, defaults.answer_at)
    if level is None:
        return None
    update_settings(
        community,
        **{
            LEARNED: {
                "answer_at": level,
                "labels": len(labels),
                "basis": defaults.basis,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        },
    )
    return level
