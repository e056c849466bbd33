"""A chunk never ends inside what a reader sees as one character: a hard cut (no space or
line break to split at) backs off to before an emoji sequence, a flag or an accented letter
rather than posting half of it in each message."""

from __future__ import annotations

import pytest

from adapters.text import split_text

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
THUMB = "\U0001f44d\U0001f3fd"  # thumbs up, medium skin tone
FLAG_NL, FLAG_BE = "\U0001f1f3\U0001f1f1", "\U0001f1e7\U0001f1ea"
E_ACUTE = "e\u0301"  # e + combining acute accent
HEART = "\u2764\ufe0f"  # heart + emoji variation selector


@pytest.mark.parametrize("tail", [FAMILY, THUMB, FLAG_NL, E_ACUTE, HEART, FLAG_NL + FLAG_BE])
@pytest.mark.parametrize("room", range(1, 6))
def test_hard_cut_keeps_characters_whole(tail: str, room: int) -> None:
    # The limit falls at every position inside the sequence in turn.
    text = "x" * 20 + tail + "y" * 3
    limit = 20 + room
    chunks = split_text(text, limit)
    assert "".join(chunks) == text
    assert all(len(c) <= limit for c in chunks)
    for cluster in [FAMILY, THUMB, FLAG_NL, FLAG_BE, E_ACUTE, HEART]:
        if cluster in text:
            assert any(cluster in c for c in chunks), (cluster, chunks)


def test_flags_paired_from_the_start_of_the_run() -> None:
    # Four regional indicators are two flags: a cut may fall between the flags only.
    text = "x" * 9 + FLAG_NL + FLAG_BE
    assert split_text(text, 12) == ["x" * 9 + FLAG_NL, FLAG_BE]


def test_a_cluster_longer_than_the_limit_is_still_cut() -> None:
    text = "e" + "\u0301" * 30
    chunks = split_text(text, 10)
    assert "".join(chunks) == text and all(len(c) <= 10 for c in chunks)
