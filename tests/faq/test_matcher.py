"""Ranking, the confidence gate and index sync, on a real SQLite file (the ``db`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import storage.repos.search as search_module
from faq.kb import starter_entries, store_entries
from faq.matcher import Gate, LexicalMatcher, Match, term_similarity
from faq.normalize import search_text
from storage.engine import Database
from storage.models import Community
from storage.repos.conversation import ConversationRepo
from storage.repos.faq import FaqRepo
from storage.repos.search import SearchRepo
from storage.repos.threads import ThreadRepo

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def _thread(
    db: Database,
    text: str,
    *,
    answer: str | None = "Some answer.",
    solved: bool = False,
    chat: str = "c",
    asked_at: datetime = NOW,
) -> int:
    """Record a question (and optionally an answer) the way the bot does."""
    async with db.session() as s:
        repo = ConversationRepo(s)
        channel = await repo.ensure_channel("console", chat, None)
        asker = await repo.ensure_member("console", "alice", "alice")
        n = await ThreadRepo(s).count()
        message, _ = await repo.add_message(channel, f"q{n}", asker, text, asked_at)
        threads = ThreadRepo(s)
        thread = await threads.create(
            channel.community_id, message, text, search_text([text]), asked_at
        )
        if answer is not None:
            helper = await repo.ensure_member("console", "bob", "bob")
            reply, _ = await repo.add_message(channel, f"a{n}", helper, answer, asked_at)
            ans, _ = await threads.add_answer(thread, reply)
            if solved:
                await threads.mark_solved(thread, ans)
        return thread.id


async def _match(db: Database, text: str, community_id: int | None = None) -> list[Match]:
    async with db.session() as s:
        return await LexicalMatcher(now=NOW).match(
            SearchRepo(s), text, community_id=community_id, limit=5
        )


async def test_matches_are_data_with_an_explanation(db: Database) -> None:
    target = await _thread(db, "Where can I recycle old paint in Groningen?")
    await _thread(db, "Which supermarket in Groningen is open on Sunday?")
    matches = await _match(db, "how do I get rid of old paint in groningen")
    assert matches and matches[0].kind == "thread" and matches[0].ref_id == target
    top = matches[0]
    assert 0.0 <= top.score <= 1.0
    assert "bm25" in top.why and "similarity" in top.why
    signals = dict(top.signals)
    assert set(signals) == {"bm25", "coverage", "line_agreement", "similarity", "cosine", "signals"}
    assert signals["cosine"] == 0.0  # the lexical matcher has no embeddings
    assert signals["coverage"] > 0.3
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


async def test_paraphrase_and_misspelling_rank_the_right_thread_first(db: Database) -> None:
    target = await _thread(db, "How do I add a recipient of an email as a contact in Gmail?")
    await _thread(db, "How do I delete all my mail from my Gmail account?")
    await _thread(db, "Can I see only the mail I archived in Gmail?")
    [first, *_] = await _match(db, "adding the recepient of a mail to my gmail contacts")
    assert first.ref_id == target


async def test_unknown_subject_scores_low(db: Database) -> None:
    await _thread(db, "Where can I recycle old paint in Groningen?")
    matches = await _match(db, "Which dentist in Leiden takes new patients?")
    assert all(m.score < Gate().suggest_at for m in matches)


async def test_solved_thread_outranks_an_unanswered_twin(db: Database) -> None:
    unanswered = await _thread(db, "Is there a night train from Amsterdam to Vienna?", answer=None)
    solved = await _thread(db, "Is there a night train from Amsterdam to Vienna?", solved=True)
    matches = await _match(db, "night train amsterdam vienna")
    assert [m.ref_id for m in matches[:2]] == [solved, unanswered]
    assert dict(matches[0].signals)["signals"] > dict(matches[1].signals)["signals"]


async def test_recent_thread_breaks_a_tie(db: Database) -> None:
    old = await _thread(
        db, "Cheap bouldering hall in Eindhoven?", asked_at=NOW - timedelta(days=900)
    )
    new = await _thread(db, "Cheap bouldering hall in Eindhoven?", asked_at=NOW - timedelta(days=2))
    matches = await _match(db, "cheap bouldering hall eindhoven")
    assert [m.ref_id for m in matches[:2]] == [new, old]


async def test_threads_of_another_community_are_not_returned(db: Database) -> None:
    here = await _thread(db, "Where can I recycle old paint in Groningen?", chat="c1")
    async with db.session() as s:
        other = Community(name="other", settings={})
        s.add(other)
        await s.flush()
        channel = await ConversationRepo(s).ensure_channel("console", "c2", None)
        channel.community_id = other.id
        other_id = other.id
    elsewhere = await _thread(db, "Where can I recycle old paint in Groningen?", chat="c2")
    found = [m.ref_id for m in await _match(db, "recycle paint groningen", community_id=other_id)]
    assert elsewhere in found and here not in found


async def test_starter_kb_answers_bsn_and_ignores_small_talk(db: Database) -> None:
    async with db.session() as s:
        await store_entries(FaqRepo(s), starter_entries())
    gate = Gate()
    async with db.session() as s:
        matches = await _match(db, "How do I get a BSN number?")
        entry = await FaqRepo(s).get(matches[0].ref_id)
    assert entry is not None and entry.slug.startswith("bsn")
    assert gate.decide(matches).mode == "answer"
    for chat in (
        "Where can I buy a second hand bike cheaply?",
        "Good morning everyone, lovely sunny day today",
        "Anyone up for football on Sunday?",
    ):
        assert gate.decide(await _match(db, chat)).mode == "quiet", chat


async def test_index_follows_insert_edit_and_delete(db: Database) -> None:
    thread_id = await _thread(db, "Where can I recycle old paint in Groningen?")
    assert [m.ref_id for m in await _match(db, "recycle paint groningen")] == [thread_id]
    async with db.session() as s:
        threads = ThreadRepo(s)
        thread = await threads.get(thread_id)
        assert thread is not None
        new = "Where can I hand in empty batteries in Zwolle?"
        await threads.update_question(thread, new, search_text([new]))
    assert await _match(db, "recycle paint groningen") == []
    assert [m.ref_id for m in await _match(db, "batteries zwolle")] == [thread_id]
    async with db.session() as s:
        threads = ThreadRepo(s)
        thread = await threads.get(thread_id)
        assert thread is not None
        await threads.mark_deleted(thread)
    assert await _match(db, "batteries zwolle") == []


async def test_kb_entry_edit_is_reflected(db: Database) -> None:
    async with db.session() as s:
        await FaqRepo(s).upsert(
            None,
            "bike-theft",
            question="What do I do when my bike is stolen?",
            aliases=[],
            answer="Report it to the police online.",
            search_text=search_text(["What do I do when my bike is stolen?"]),
        )
    [hit] = await _match(db, "my bike was stolen")
    assert hit.kind == "faq"
    async with db.session() as s:
        entry = await FaqRepo(s).get(hit.ref_id)
        assert entry is not None
        entry.search_text = search_text(["Where do I report a lost passport?"])
    assert await _match(db, "my bike was stolen") == []
    assert [m.ref_id for m in await _match(db, "lost passport")] == [hit.ref_id]


async def test_common_words_stay_within_the_posting_budget(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = await _thread(db, "Where do I recycle a broken fridge in Groningen?")
    for i in range(6):
        await _thread(db, f"Groningen question number {i} about something else")
    # With room for one word's postings only, the rarest word ("fridge") is what is searched.
    monkeypatch.setattr(search_module, "POSTING_BUDGET", 1)
    matches = await _match(db, "broken fridge groningen")
    assert matches[0].ref_id == target
    # Only common words: the newest rows holding about a budget's worth of them are searched.
    newest = [m.ref_id for m in await _match(db, "groningen question")]
    assert newest and target not in newest


def test_term_similarity() -> None:
    assert term_similarity("bsn", "bsn") == 1.0
    assert term_similarity("doc", "document") == 0.7
    assert term_similarity("mail", "email") == 0.6
    assert 0.6 < term_similarity("recepi", "recipi") < 0.8
    assert term_similarity("bike", "visa") == 0.0


def _m(score: float, ref: int = 1) -> Match:
    return Match("faq", ref, score, "constructed")


def test_gate_answers_above_threshold_with_margin() -> None:
    gate = Gate(answer_at=0.8, suggest_at=0.4, margin=0.05)
    decision = gate.decide([_m(0.9, 1), _m(0.5, 2)])
    assert decision.mode == "answer" and [m.ref_id for m in decision.matches] == [1]


def test_gate_suggests_when_close_runner_up_or_middling_score() -> None:
    gate = Gate(answer_at=0.8, suggest_at=0.4, margin=0.05, max_suggestions=3)
    close = gate.decide([_m(0.9, 1), _m(0.88, 2), _m(0.6, 3), _m(0.5, 4), _m(0.3, 5)])
    assert close.mode == "suggest" and [m.ref_id for m in close.matches] == [1, 2, 3]
    middling = gate.decide([_m(0.6, 1), _m(0.3, 2)])
    assert middling.mode == "suggest" and [m.ref_id for m in middling.matches] == [1]


def test_gate_is_quiet_below_suggest_threshold_or_without_matches() -> None:
    gate = Gate(answer_at=0.8, suggest_at=0.4)
    assert gate.decide([_m(0.39)]).mode == "quiet"
    assert gate.decide([]).mode == "quiet"
    assert gate.decide([_m(0.39)]).matches == ()


def _signalled(score: float, similarity: float, agreement: float, ref: int = 1) -> Match:
    signals = (("similarity", similarity), ("line_agreement", agreement))
    return Match("faq", ref, score, "", signals)


def test_gate_answers_a_near_exact_question_despite_a_close_sibling() -> None:
    gate = Gate(answer_at=0.8, suggest_at=0.4, margin=0.05)
    exact = _signalled(0.998, 1.0, 1.0)
    sibling = _signalled(0.989, 0.73, 0.59, ref=2)
    decision = gate.decide([exact, sibling])
    assert decision.mode == "answer" and decision.matches == (exact,)
    assert "word for word" in decision.reason
    # Two near-exact candidates are a real tie: the member chooses.
    twin = _signalled(0.99, 0.97, 0.96, ref=3)
    assert gate.decide([exact, twin]).mode == "suggest"
    # A close, not near-exact, top item still needs its margin.
    close = _signalled(0.95, 0.9, 0.7)
    tied = gate.decide([close, _signalled(0.91, 0.73, 0.59, ref=2)])
    assert tied.mode == "suggest" and "only 0.04 ahead" in tied.reason


async def test_the_entrys_own_question_is_answered_not_listed(db: Database) -> None:
    async with db.session() as s:
        await store_entries(FaqRepo(s), starter_entries())
    for question in ("How do I apply for DigiD?", "how do I get a BSN??"):
        matches = await _match(db, question)
        decision = Gate().decide(matches)
        assert decision.mode == "answer", (question, decision)


def test_the_margin_is_to_the_best_different_answer() -> None:
    gate = Gate(answer_at=0.8, suggest_at=0.4, margin=0.05)
    top = Match("thread", 1, 0.93, "", (("similarity", 0.5), ("line_agreement", 0.5)))
    # The same question asked twice: a near-copy of the best is not its rival...
    copy = Match("thread", 2, 0.92, "", (("near_best", 0.96),))
    other = Match("thread", 3, 0.80, "", (("near_best", 0.40),))
    decision = gate.decide([top, copy, other])
    assert decision.mode == "answer" and "0.13 ahead" in decision.reason
    # ...but a different answer scoring close behind is.
    rival = Match("thread", 4, 0.91, "", (("near_best", 0.50),))
    assert gate.decide([top, rival, other]).mode == "suggest"


async def test_a_term_in_more_documents_than_the_estimated_total_is_matched(
    db: Database,
) -> None:
    # The document count is estimated from the larger of the two tables (threads, entries);
    # a term in threads and entries alike can be in more documents than that, which made
    # every question using it fail (the log of a negative number) once a community had asked
    # it often enough.
    async with db.session() as s:
        await store_entries(FaqRepo(s), starter_entries())
    entries = len(starter_entries())
    for n in range(entries + 5):  # more threads than entries: the estimate counts threads
        await _thread(db, f"How do I get a BSN number? (asked {n} times)", answer=None)
    matches = await _match(db, "How do I get a BSN number?")
    assert len(matches) == 5 and all(m.score > 0 for m in matches)
