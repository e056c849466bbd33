"""The semantic gate: it reads the best match's cosine and its margin to the best *different*
answer, whatever the blend that ranked them says; lexical-only matching keeps its gate."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from bot.config import Config, MatchingConfig
from bot.features.settings import CommunitySettings
from bot.semantic_setup import gate_of
from faq.embedding import OnnxEmbedder
from faq.matcher import NEAR_COPY, Gate, Match
from faq.semantic import SEMANTIC_GATE, SemanticMatcher
from faq.vector_index import VectorIndex
from storage.engine import Database
from storage.models import Community, Thread
from storage.repos.search import SearchRepo
from tests.faq.test_semantic import _community, _setup, _thread
from tests.faq.tiny_model import make_tiny_model

GATE = Gate(answer_at=0.73, suggest_at=0.58, margin=0.05, basis="cosine")


def _m(
    ref: int, cosine: float, score: float = 0.5, near_best: float = 0.0, kind: str = "thread"
) -> Match:
    signals: tuple[tuple[str, float], ...] = (("cosine", cosine),)
    if near_best:
        signals += (("near_best", near_best),)
    return Match(kind, ref, score, "", signals)


def test_the_semantic_gate_compares_the_cosine_not_the_blend() -> None:
    # A confident blend with a weak cosine is not answered; a modest blend with a strong
    # cosine is.
    assert GATE.decide([_m(1, 0.60, score=0.99)]).mode == "suggest"
    strong = GATE.decide([_m(1, 0.80, score=0.30)])
    assert strong.mode == "answer"
    assert "best cosine 0.80 is above the answer level 0.73" in strong.reason
    assert SEMANTIC_GATE.basis == "cosine" and Gate().basis == "confidence"


def test_decisions_at_and_around_the_levels() -> None:
    assert GATE.decide([_m(1, 0.73)]).mode == "answer"
    below = GATE.decide([_m(1, 0.7299)])
    assert below.mode == "suggest" and "between the suggest level 0.58" in below.reason
    assert GATE.decide([_m(1, 0.58)]).mode == "suggest"
    quiet = GATE.decide([_m(1, 0.5799)])
    assert quiet.mode == "quiet" and quiet.matches == ()
    assert "best cosine 0.58 is below the suggest level 0.58" in quiet.reason
    # Suggestions are the candidates whose cosine reaches the suggest level, in ranked order.
    listed = GATE.decide([_m(1, 0.70), _m(2, 0.50, score=0.9), _m(3, 0.65)])
    assert [m.ref_id for m in listed.matches] == [1, 3]


def test_the_margin_is_to_the_next_different_answer() -> None:
    # Exactly the margin ahead: answered; a hair less: suggested.
    assert GATE.decide([_m(1, 0.80), _m(2, 0.75)]).mode == "answer"
    close = GATE.decide([_m(1, 0.80), _m(2, 0.7501)])
    assert close.mode == "suggest" and "only 0.05 ahead" in close.reason
    # Another wording of the best one's question (its embedding a near-copy of the best's,
    # closer than NEAR_COPY) leads to the same answer: not a rival, even well below 0.9.
    assert NEAR_COPY <= 0.86
    wording = GATE.decide([_m(1, 0.80), _m(2, 0.79, near_best=0.86), _m(3, 0.60)])
    assert wording.mode == "answer" and "0.20 ahead of the next different answer" in wording.reason
    # The same item twice is not its own rival either.
    assert GATE.decide([_m(1, 0.80), _m(1, 0.79)]).mode == "answer"
    # A different answer ranked lower by the blend but closer in meaning is the rival.
    hidden = GATE.decide([_m(1, 0.80), _m(2, 0.40), _m(3, 0.79, score=0.2)])
    assert hidden.mode == "suggest"
    # Zero margin still refuses when a different answer is closer than the best one.
    flat = Gate(answer_at=0.73, suggest_at=0.58, margin=0.0, basis="cosine")
    assert flat.decide([_m(1, 0.80), _m(2, 0.81)]).mode == "suggest"
    assert flat.decide([_m(1, 0.80), _m(2, 0.80)]).mode == "answer"


def test_lexical_only_matching_keeps_its_gate() -> None:
    gate = gate_of(Config(), semantic=False)
    assert gate == Gate()
    # The confidence is compared, whatever cosine a match carries.
    assert gate.decide([_m(1, 0.99, score=0.5)]).mode == "suggest"
    assert gate.decide([_m(1, 0.0, score=0.9)]).mode == "answer"


def test_levels_set_by_the_operator_or_a_community_stay_on_the_cosine() -> None:
    configured = gate_of(Config(matching=MatchingConfig(answer_at=0.9)), semantic=True)
    assert configured.basis == "cosine" and configured.answer_at == 0.9
    assert configured.margin == SEMANTIC_GATE.margin
    community = Community(name="c", settings={"answer_at": 0.85, "suggest_at": 0.7})
    gate = CommunitySettings.of(community, gate_of(Config(), semantic=True)).gate
    assert (gate.basis, gate.answer_at, gate.suggest_at) == ("cosine", 0.85, 0.7)
    assert gate.decide([_m(1, 0.84, score=0.99)]).mode == "suggest"
    assert gate.decide([_m(1, 0.86, score=0.1)]).mode == "answer"
    assert gate.decide([_m(1, 0.69, score=0.99)]).mode == "quiet"


async def test_a_question_whose_thread_is_gone_is_not_answered(db: Database) -> None:
    # End to end through SemanticMatcher: the question asked before is answered outright; once
    # its thread is deleted (the store cannot answer it) the gate stays quiet on what is left.
    embedder, index, ids = await _setup(db)
    community = await _community(db, ids["a"])
    matcher = SemanticMatcher(embedder, index)
    question = "which supermarket sells oat milk"
    async with db.session() as s:
        matches = await matcher.match(SearchRepo(s), question, community_id=community, limit=5)
    decision = SEMANTIC_GATE.decide(matches)
    assert decision.mode == "answer" and decision.matches[0].ref_id == ids["a-other"]
    assert "best cosine 1.00" in decision.reason
    async with db.session() as s:
        await s.execute(update(Thread).where(Thread.id == ids["a-other"]).values(status="deleted"))
    index.remove("thread", ids["a-other"])
    async with db.session() as s:
        left = await matcher.match(SearchRepo(s), question, community_id=community, limit=5)
    assert all(m.ref_id != ids["a-other"] for m in left)
    assert SEMANTIC_GATE.decide(left).mode == "quiet"


async def test_the_tiny_encoder_question_itself_is_answered(db: Database, tmp_path: Path) -> None:
    embedder = OnnxEmbedder.load(make_tiny_model(tmp_path / "models" / "tiny"))
    index = VectorIndex(embedder.model_id, embedder.dim)
    text = "where do i register at the gemeente"
    thread_id = await _thread(db, "c", text)
    async with db.session() as s:
        await s.execute(update(Thread).where(Thread.id == thread_id).values(status="answered"))
        thread = await s.get(Thread, thread_id)
    assert thread is not None
    index.add_many(["thread"], [thread.id], [thread.community_id], embedder.encode([text]))
    async with db.session() as s:
        matches = await SemanticMatcher(embedder, index).match(
            SearchRepo(s), text, community_id=thread.community_id
        )
    decision = SEMANTIC_GATE.decide(matches)
    assert decision.mode == "answer" and "best cosine 1.00" in decision.reason


def test_copss_ask_shows_the_score_parts_and_the_reason(tmp_path: Path) -> None:
    from tests.test_cli import copss

    out = copss(tmp_path, "ask", "How do I apply for DigiD?")
    assert out.returncode == 0, out.stderr
    assert "bm25 " in out.stdout and "coverage " in out.stdout
    assert "copss would answer with the first: best confidence" in out.stdout
