"""The report's shortcuts give what the plain definitions give: a question's topics (looked up
by first word, over the import's fast search terms) and the hosts an answer names (a quick
check before the full search)."""

from __future__ import annotations

import random

from bot.report.official import _HOST, hosts_in
from bot.report.topics import TopicVocabulary, topic_key
from faq.normalize import DEFAULT, search_terms

TAGS = [
    "health-insurance",
    "driving-licence",
    "bsn",
    "gemeente",
    "residence_permit",
    "tax return",
    "digid",
    "the",
    "rdw",
    "bike",
    "bike theft",
]
WORDS = [
    "how",
    "do",
    "I",
    "get",
    "a",
    "BSN",
    "number",
    "at",
    "the",
    "gemeente",
    "municipality",
    "zorgverzekering",
    "health",
    "insurance",
    "driving",
    "license",
    "licence",
    "rijbewijs",
    "residence",
    "permit",
    "verblijfsvergunning",
    "tax",
    "return",
    "aangifte",
    "DigiD",
    "the",
    "rdw",
    "bike",
    "theft",
    "bike's",
    "it's",
    "can't",
    "Ünïcödé",
    "café?",
    "...",
    ",",
    "!",
    "www.ind.nl",
]


def plain_topics(vocabulary: TopicVocabulary, question: str, tags: list[str]) -> list[str]:
    """The definition: a topic whose words appear, in order and next to each other, among
    the question's search terms; plus the question's own tags."""
    terms = search_terms(question, vocabulary.synonyms)
    found = {
        " ".join(t)
        for t in vocabulary.topics
        if any(tuple(terms[i : i + len(t)]) == t for i in range(len(terms) - len(t) + 1))
    }
    found.update(k for k in (topic_key(t, vocabulary.synonyms) for t in tags) if k)
    return sorted(found)


def test_topics_are_those_of_the_definition() -> None:
    rng = random.Random(3)
    synonyms = DEFAULT.extended([["bike theft", "fietsdiefstal"]])
    for vocabulary in (TopicVocabulary(TAGS, DEFAULT), TopicVocabulary(TAGS, synonyms)):
        seen = 0
        for _ in range(3000):
            question = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 14)))
            tags = rng.sample(TAGS, rng.randrange(0, 2))
            found = vocabulary.of(question, tags)
            assert found == plain_topics(vocabulary, question, tags), question
            seen += bool(found)
        assert seen > 1000


def test_hosts_are_those_the_full_search_finds() -> None:
    texts = [
        "see https://www.ind.nl/en/residence-permits for the steps.",
        "Ask at the desk. It takes a week.",
        "try find.nl or IND.NL, or www.Belastingdienst.nl",
        "3.5 euro, version 2.0, e.g. this",
        "a.b",
        "x.\u212a\u212a and \u017f.nl",  # letters that IGNORECASE folds to ASCII ones
        "",
        "no dot here",
        "end with a dot.",
        "sub.domain.example.org/path?q=1",
    ]
    rng = random.Random(5)
    pieces = ["ind", ".", "nl", " ", "www", "-", "x", "1", "\u212a", "https://", "/", "é"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12))) for _ in range(3000)]
    for text in texts:
        full = [m.group(1).lower().removeprefix("www.") for m in _HOST.finditer(text)]
        assert hosts_in(text) == full, text
    assert hosts_in(texts[0]) == ["ind.nl"]
