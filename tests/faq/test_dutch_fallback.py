"""A question in a language the sentence-embedding model was not trained on is ranked on its
words: with an English-only model, the cosine of a Dutch question is mostly noise."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from faq.embedding import OnnxEmbedder
from faq.index_text import thread_embed_text, thread_search_text
from faq.matcher import LexicalMatcher
from faq.semantic import FALLBACK_WEIGHTS, SemanticMatcher
from faq.vector_index import VectorIndex
from storage.engine import Database
from storage.migrations import DEFAULT_COMMUNITY
from storage.models import Community, Thread
from storage.repos.search import SearchRepo
from tests.faq.tiny_model import make_tiny_model

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DUTCH_QUESTION = "Hoe vraag ik huurtoeslag aan?"
#: The answer: shares the rare word with the question (and, to the tiny model, means something
#: else: its other words are ones the model knows).
ANSWER = "Is huurtoeslag paid with the health insurance?"
#: Shares no word with the question, but the tiny model knows none of the words of either (all
#: are [UNK]), so their vectors are nearly the same, as a real English-only model puts two
#: Dutch texts close together whatever they say.
DECOY = "Waar staat die ene bakker vlakbij?"


async def _store(
    db: Database, tmp_path: Path
) -> tuple[OnnxEmbedder, VectorIndex, int, dict[str, int]]:
    # The tiny model under the English model's name: copss reads its languages from
    # KNOWN_MODELS by that name.
    folder = make_tiny_model(tmp_path / "model", settings={"name": "all-MiniLM-L6-v2"})
    embedder = OnnxEmbedder.load(folder)
    async with db.session() as s:
        community = await s.scalar(select(Community.id).where(Community.name == DEFAULT_COMMUNITY))
        assert community is not None
        ids: dict[str, int] = {}
        for name, question in (("answer", ANSWER), ("decoy", DECOY)):
            thread_id = await s.scalar(
                insert(Thread)
                .values(
                    community_id=community,
                    question_text=question,
                    search_text=thread_search_text(question),
                    status="answered",
                    asked_at=NOW,
                    tags=[],
                )
                .returning(Thread.id)
            )
            assert thread_id is not None
            ids[name] = thread_id
    index = VectorIndex(embedder.model_id, embedder.dim)
    vectors = embedder.encode([thread_embed_text(ANSWER), thread_embed_text(DECOY)])
    index.add_many(["thread", "thread"], [ids["answer"], ids["decoy"]], [community] * 2, vectors)
    return embedder, index, community, ids


async def _top(db: Database, matcher: SemanticMatcher, text: str, community: int) -> int:
    async with db.session() as s:
        ranked = await matcher.rank(SearchRepo(s), text, community_id=community)
    return ranked[0].hit.ref_id


async def test_an_english_only_model_ranks_a_dutch_question_by_its_words(
    db: Database, tmp_path: Path
) -> None:
    embedder, index, community, ids = await _store(db, tmp_path)
    matcher = SemanticMatcher(embedder, index)
    assert matcher.languages == frozenset({"en"})
    assert await _top(db, matcher, DUTCH_QUESTION, community) == ids["answer"]
    # The same matcher told the model knows every language trusts the cosine, which points
    # at the decoy: what copss did before for every question.
    trusting = SemanticMatcher(embedder, index, languages=None)
    assert await _top(db, trusting, DUTCH_QUESTION, community) == ids["decoy"]


async def test_the_fallback_score_is_the_lexical_confidence(db: Database, tmp_path: Path) -> None:
    embedder, index, community, ids = await _store(db, tmp_path)
    matcher = SemanticMatcher(embedder, index)
    async with db.session() as s:
        ranked = await matcher.rank(SearchRepo(s), DUTCH_QUESTION, community_id=community)
    by_id = {r.hit.ref_id: r for r in ranked}
    answer, decoy = by_id[ids["answer"]], by_id[ids["decoy"]]
    # The cosine is still reported (``copss ask`` shows it) but does not count.
    assert decoy.features.cosine > answer.features.cosine
    lexical = LexicalMatcher(weights=FALLBACK_WEIGHTS)
    assert answer.score == lexical.confidence(replace(answer.features, cosine=0.0), answer.signals)
    assert answer.score > decoy.score


async def test_english_questions_and_multilingual_models_keep_the_cosine(
    db: Database, tmp_path: Path
) -> None:
    embedder, index, community, ids = await _store(db, tmp_path)
    matcher = SemanticMatcher(embedder, index)
    async with db.session() as s:
        ranked = await matcher.rank(SearchRepo(s), ANSWER, community_id=community)
    for r in ranked:
        assert r.score == matcher.confidence(r.features, r.signals)
    assert ranked[0].hit.ref_id == ids["answer"]
    # A model copss does not know the languages of (a multilingual one, a Hugging Face
    # owner/repo) is trusted with every question.
    other = make_tiny_model(
        tmp_path / "other", settings={"name": "paraphrase-multilingual-MiniLM-L12-v2"}
    )
    multilingual = SemanticMatcher(OnnxEmbedder.load(other), index)
    assert multilingual.languages is None
    assert multilingual.with_synonyms(multilingual.synonyms).languages is None


async def test_the_gate_reads_the_confidence_of_a_question_ranked_on_its_words(
    db: Database, tmp_path: Path
) -> None:
    # The semantic gate compares cosines; for a Dutch question to an English-only model the
    # cosine says nothing, so the word-matching gate decides, and says so.
    from faq.matcher import WORDS_ONLY, Gate, to_match
    from faq.semantic import SEMANTIC_GATE

    embedder, index, community, ids = await _store(db, tmp_path)
    matcher = SemanticMatcher(embedder, index)
    async with db.session() as s:
        ranked = await matcher.rank(SearchRepo(s), DUTCH_QUESTION, community_id=community)
    assert ranked[0].hit.ref_id == ids["answer"]
    matches = [to_match(x) for x in ranked]
    assert dict(matches[0].signals).get(WORDS_ONLY) == 1.0
    assert SEMANTIC_GATE.for_matches(matches) == Gate(max_suggestions=SEMANTIC_GATE.max_suggestions)
    decision = SEMANTIC_GATE.decide(matches)
    assert decision == replace(
        Gate().decide(matches),
        reason=Gate().decide(matches).reason + " (ranked on its words alone)",
    )
    # An English question keeps the cosine gate.
    async with db.session() as s:
        english = await matcher.rank(SearchRepo(s), ANSWER, community_id=community)
    assert WORDS_ONLY not in dict(to_match(english[0]).signals)
    assert SEMANTIC_GATE.for_matches([to_match(x) for x in english]) is SEMANTIC_GATE
