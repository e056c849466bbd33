"""The asking part of a message that also greets or tells a story."""

from __future__ import annotations

import pytest

from faq.detect import question_part


@pytest.mark.parametrize(
    ("text", "part"),
    [
        (
            "Hi all! I moved to Eindhoven last month and I'm a bit lost. "
            "How do I file my income tax return?",
            "How do I file my income tax return?",
        ),
        (
            "Hello everyone, new here. Does anyone know where to register in Delft",
            "Does anyone know where to register in Delft",
        ),
        (
            "Goedemorgen! Ik woon sinds kort in Utrecht. Hoe vraag ik zorgtoeslag aan?",
            "Hoe vraag ik zorgtoeslag aan?",
        ),
        (
            "Thanks for the tips yesterday. Where do I get a BSN? And how long does DigiD take?",
            "Where do I get a BSN? And how long does DigiD take?",
        ),
    ],
)
def test_the_asking_sentences_are_kept(text: str, part: str) -> None:
    assert question_part(text) == part


@pytest.mark.parametrize(
    "text",
    [
        "How do I get a BSN?",  # all of it asks: the whole text is the question
        "I moved to Eindhoven last month. The weather is grey.",  # nothing asks
        "I moved here from Spain and my employer is slow with paperwork. Any advice?",  # too
        # little to match on its own
        "",
    ],
)
def test_no_part_when_there_is_nothing_to_cut(text: str) -> None:
    assert question_part(text) is None
