"""Telling a Dutch chat question from an English one, and which models need to know."""

from __future__ import annotations

import pytest

from faq.language import detect, model_languages, outside

DUTCH = [
    "Weet iemand hoe lang het duurt voordat de IND reageert?",
    "hoe lang duurt het voordat mijn DigiD binnen is",
    "Kan iemand me helpen met de aangifte?",
    "Waar moet ik zijn voor een nieuw paspoort",
    "heeft iemand ervaring met de huurcommissie",
    "ik snap die brief van de gemeente niet",
    # No function word at all: Dutch spellings decide.
    "huurtoeslag schuldhulpverlening",
]
ENGLISH = [
    "Does anyone know how long the IND takes to reply?",
    "how long until my DigiD arrives",
    "Can someone help me with the tax return?",
    "Where should I go for a new passport",
    "has anyone got experience with the rent tribunal",
    "i don't get this letter from the municipality",
]


@pytest.mark.parametrize("text", DUTCH)
def test_dutch_questions_are_dutch(text: str) -> None:
    assert detect(text) == "nl"


@pytest.mark.parametrize("text", ENGLISH)
def test_english_questions_are_english(text: str) -> None:
    assert detect(text) == "en"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "DigiD",
        "30% ruling",
        "BSN IND DUO",
        # Words both languages spell alike are no evidence.
        "in is over",
        # Mixed, as many function words of each.
        "what is de deadline",
    ],
)
def test_without_evidence_the_language_is_unknown(text: str) -> None:
    assert detect(text) is None


def test_a_hostile_message_is_read_only_in_part() -> None:
    # Only the first words are read: what follows a megabyte of filler does not count.
    assert detect("hoe vraag ik dit aan, " * 20 + "the " * 250_000 + "hoe " * 9) == "nl"
    assert detect("the " * 250_000 + "hoe vraag ik dit aan") == "en"


def test_outside_the_models_languages() -> None:
    english_only = frozenset({"en"})
    assert outside(english_only, "Hoe vraag ik huurtoeslag aan?")
    assert not outside(english_only, "How do I apply for rent allowance?")
    assert not outside(english_only, "DigiD")  # unknown language: trust the model
    assert not outside(None, "Hoe vraag ik huurtoeslag aan?")  # a model of many languages


def test_model_languages_come_from_known_models() -> None:
    assert model_languages("all-MiniLM-L6-v2:c74599cac680") == frozenset({"en"})
    assert model_languages("paraphrase-multilingual-MiniLM-L12-v2:0123456789ab") is None
    assert model_languages("multilingual-e5-small:0123456789ab") is None
    assert model_languages("someone/their-model:0123456789ab") is None
