"""Topics of questions, from the knowledge base's tags and the synonyms.

Each tag of the community's knowledge base (its own entries and the shared starter entries)
is normalised the way questions are searched (``faq.normalize.search_terms``, with the
community's synonyms), so ``gemeente`` and ``municipality`` become one topic and a question
that says ``zorgverzekering`` is about ``health insurance``. A question is about a topic when
the topic's words appear, in order and next to each other, among the question's search terms.
"""

from __future__ import annotations

from collections.abc import Iterable

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

    def of(self, question: str, tags: Iterable[str] = ()) -> list[str]:
        """The topics of a question: vocabulary topics found in its text, plus its own tags
        (normalised the same way), each once, sorted."""
        terms = search_terms(question, self.synonyms)
        found = {" ".join(t) for t in self.topics if _contains(terms, t)}
        found.update(k for k in (topic_key(t, self.synonyms) for t in tags) if k)
        return sorted(found)


def _contains(terms: list[str], run: tuple[str, ...]) -> bool:
    n = len(run)
    return any(tuple(terms[i : i + n]) == run for i in range(len(terms) - n + 1))
