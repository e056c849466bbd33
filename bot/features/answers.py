"""Turning matches into what copss says."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from faq.detect import question_part
from faq.matcher import Decision, Gate, Match, Matcher
from storage.models import Answer, Channel, Message
from storage.repos.faq import FaqRepo
from storage.repos.search import SearchRepo
from storage.repos.threads import ThreadRepo

MAX_QUOTE = 400


@dataclass(frozen=True)
class Rendered:
    """One match rendered for a reply: a headline and an optional body."""

    match: Match
    title: str
    body: str
    link: str | None


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to at most ``limit`` characters at a word boundary (…)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # Cut at the last space unless that would drop most of the text (one very long word).
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _quote(text: str, limit: int = MAX_QUOTE) -> str:
    return shorten(text, limit)


def _day(when: datetime) -> str:
    return when.strftime("%d %b %Y")


def message_link(channel: Channel, message: Message) -> str | None:
    """A link to a message where the platform has them."""
    if channel.platform == "telegram" and channel.chat_id.startswith("-100"):
        return f"https://t.me/c/{channel.chat_id[4:]}/{message.platform_message_id}"
    if channel.platform == "discord" and channel.title and channel.title.startswith("guild:"):
        guild = channel.title.removeprefix("guild:")
        return (
            f"https://discord.com/channels/{guild}/{channel.chat_id}/{message.platform_message_id}"
        )
    return None


async def answerable(session: AsyncSession, matches: list[Match]) -> list[Match]:
    """Drop threads nobody has answered yet: pointing a newcomer at an open question helps
    nobody (the matcher ranks them, since they still tell it what the community asks)."""
    thread_ids = [m.ref_id for m in matches if m.kind == "thread"]
    if not thread_ids:
        return matches
    answered = set(
        (
            await session.scalars(
                select(Answer.thread_id)
                .join(Message, Answer.message_id == Message.id)
                .where(Answer.thread_id.in_(thread_ids), Message.deleted.is_(False))
            )
        ).all()
    )
    return [m for m in matches if m.kind != "thread" or m.ref_id in answered]


@dataclass(frozen=True)
class Found:
    """What matching a question gave: the answerable matches (best first) and what the gate
    decided; ``part`` is the asking part matched alone, when the whole text found nothing."""

    matches: list[Match]
    decision: Decision
    part: str | None = None


async def find_answer(
    session: AsyncSession,
    matcher: Matcher,
    gate: Gate,
    text: str,
    *,
    community_id: int | None,
    limit: int,
    exclude_thread: int | None = None,
) -> Found:
    """Match ``text`` and let ``gate`` decide, as copss does for every new question. When the
    whole text finds nothing worth showing and the message also greets or tells a story
    ("Hi all! I moved here last month. How do I file my tax return?"), its asking sentences
    are matched alone, under :func:`fallback_gate`."""
    search = SearchRepo(session)
    matches = await answerable(
        session,
        await matcher.match(
            search, text, community_id=community_id, limit=limit, exclude_thread=exclude_thread
        ),
    )
    decision = gate.decide(matches)
    part = question_part(text) if decision.mode == "quiet" else None
    if part is None:
        return Found(matches, decision)
    again = await answerable(
        session,
        await matcher.match(
            search, part, community_id=community_id, limit=limit, exclude_thread=exclude_thread
        ),
    )
    second = fallback_gate(gate).decide(again)
    if second.mode == "quiet":
        return Found(matches, decision)
    return Found(again, replace(second, reason=f"{second.reason} (matching only: {part!r})"), part)


def fallback_gate(gate: Gate) -> Gate:
    """The gate for the asking sentences of a message whose whole text matched nothing: it
    answers at the same level but suggests only halfway between the suggest and answer levels
    (the part is shorter, so weak matches are more often wrong; bench/context.py)."""
    return replace(gate, suggest_at=(gate.suggest_at + gate.answer_at) / 2)


async def render(session: AsyncSession, match: Match) -> Rendered | None:
    """Describe a match: an entry with its source, or a thread with who answered and when."""
    if match.kind == "faq":
        entry = await FaqRepo(session).get(match.ref_id)
        if entry is None:
            return None
        body = entry.answer
        if entry.source_url:
            body += f"\nSource: {entry.source_url}"
        return Rendered(match, entry.question, body, entry.source_url)
    threads = ThreadRepo(session)
    thread = await threads.get(match.ref_id)
    if thread is None:
        return None
    answers = await threads.answers(thread.id)
    link = None
    if thread.question_message_id is not None:
        question = await session.get(Message, thread.question_message_id)
        if question is not None:
            channel = await session.get(Channel, question.channel_id)
            link = message_link(channel, question) if channel else None
    if not answers:
        return Rendered(match, thread.question_text, "(no answer yet)", link)
    best = answers[0]
    status = "solved" if thread.status == "solved" else "answered"
    body = f"{best.author} {status} it on {_day(best.answered_at)}: “{_quote(best.text)}”"
    if link:
        body += f"\n{link}"
    return Rendered(match, thread.question_text, body, link)


async def compose(session: AsyncSession, decision: Decision) -> tuple[str, list[Match]]:
    """The reply text for a decision and the matches it shows ("" when nothing to say)."""
    rendered = [r for m in decision.matches if (r := await render(session, m)) is not None]
    if not rendered:
        return "", []
    if decision.mode == "answer":
        top = rendered[0]
        head = (
            "This looks like a question the community answered before"
            if top.match.kind == "thread"
            else "From the community's FAQ"
        )
        text = f"{head}: “{_quote(top.title, 200)}”\n{top.body}\nDid this help? React ✅ or ❌."
        return text, [top.match]
    lines = ["Maybe one of these helps:"]
    for i, r in enumerate(rendered, 1):
        # The body is cut short here, so the link (the source, or the thread) goes on its own.
        body = (
            r.body.replace(f"\nSource: {r.link}", "").replace(f"\n{r.link}", "")
            if r.link
            else r.body
        )
        line = f"{i}. “{_quote(r.title, 160)}” — {_quote(body, 300)}"
        lines.append(f"{line} {r.link}" if r.link else line)
    lines.append("React ✅ if one helped, ❌ if not.")
    return "\n".join(lines), [r.match for r in rendered]
