"""Topics of questions, from the knowledge base's tags and the synonyms.

Each tag of the community's knowledge base (its own entries and the shared starter entries)
is normalised the way questions are searched (``faq.normalize.search_terms``, with the
community's synonyms), so ``gemeente`` and ``municipality`` become one topic and a question
that says ``zorgverzekering`` is about ``health insurance``. A question is about a topic when
the topic's words appear, in order and next to each other, among the question's search terms.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.importing.words import terms as fast_terms
from faq.normalize import Synonyms, search_terms


def topic_key(tag: str, synonyms: Synonyms) -> str:
    """The normalised form of a tag (``health-insurance`` -> ``health insurance``); ``""``
    when nothing of it is left (a stop word)."""
    return " ".join(search_terms(tag.replace("-", " ").replace("_", " "), synonyms))


class TopicVocabulary:
    """The topics a community's questions are sorted into."""

    def __init__(self, tags: Iterable[str], synonyms: Synonyms) -> None:
        self.synonyms = synonyms
        keys = {topic_key(t, synonyms) for t in tags}
        self.topics: tuple[tuple[str, ...], ...] = tuple(
            sorted(tuple(k.split()) for k in keys if k)
        )
        # Topics by their first word: a question's terms are looked up one by one, instead of
        # every topic being searched for in every question (a large community has tens of
        # thousands of questions and a knowledge base of a hundred tags).
        self._starting: dict[str, list[tuple[str, ...]]] = {}
        for topic in self.topics:
            self._starting.setdefault(topic[0], []).append(topic)

    def of(self, question: str, tags: Iterable[str] = ()) -> list[str]:
        """The topics of a question: vocabulary topics found in its text, plus its own tags
        (normalised the same way), each once, sorted."""
        # search_terms by the import's fast paths (the same terms, tests/importing/test_words.py)
        terms = fast_terms(question, self.synonyms)
        found = set()
        for i, term in enumerate(terms):
            for topic in self._starting.get(term, ()):
                if tuple(terms[i : i + len(topic)]) == topic:
                    found.add(" ".join(topic))
        found.update(k for k in (topic_key(t, self.synonyms) for t in tags) if k)
        return sorted(found)
