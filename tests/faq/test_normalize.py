"""Normalisation for matching."""

from __future__ import annotations

from faq.normalize import Synonyms, clean, search_terms, search_text, strip_invisible


def test_clean_strips_urls_mentions_emoji_markup_accents() -> None:
    text = "**Hoe** werkt <@123> de   Bürger-zaak? 🎉 zie https://www.rvig.nl/bsn @bob café"
    assert clean(text) == "hoe werkt de burger zaak zie cafe"


def test_invisible_characters_removed() -> None:
    assert strip_invisible("a\u200bb\u202ec\u2066d") == "abcd"
    assert clean("B\u200bSN") == "bsn"


def test_stop_words_and_synonyms() -> None:
    assert search_terms("How do I get a burgerservicenummer?") == ["bsn"]
    assert search_terms("Hoe kan ik me inschrijven bij de gemeente?") == ["register", "gemeente"]
    assert search_terms("citizen service number at the town hall") == ["bsn", "gemeente"]


def test_community_synonyms_extend_defaults() -> None:
    syn = Synonyms().extended([("ind", "immigratie en naturalisatiedienst")])
    assert search_terms("immigratie en naturalisatiedienst appointment", syn) == [
        "ind",
        "appointment",
    ]
    assert search_terms("sofinummer", syn) == ["bsn"]


def test_search_text_keeps_one_line_per_part() -> None:
    assert search_text(["How do I get a BSN?", "", "sofinummer aanvragen"]) == "bsn\nbsn aanvragen"


def test_contractions_and_possessives_resolved() -> None:
    assert search_terms("What's Google's policy? I don't know, it's odd") == [
        "google",
        "policy",
        "odd",
    ]
    assert search_terms("the 5 o'clock train") == ["5", "clock", "train"]
