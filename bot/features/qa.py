"""Q&A capture: questions open threads and get suggestions, replies become answers, the asker's
✅ or thanks marks a thread solved, edits and deletes follow into the store."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core import Context
from bot.events import (
    ChannelDeleteEvent,
    DeleteEvent,
    EditEvent,
    Event,
    MessageEvent,
    Outgoing,
    ReactionEvent,
)
from bot.features.answers import compose, find_answer
from bot.features.indexing import embed_document, matcher_for, synonyms_for
from bot.features.learning import relearn
from bot.features.settings import CommunitySettings
from faq.detect import detect_question
from faq.gratitude import is_thanks
from faq.index_text import thread_search_text
from faq.matcher import Gate, LexicalMatcher, Matcher
from storage.models import (
    Answer,
    Channel,
    FaqEntry,
    Member,
    Message,
    OutboxMessage,
    Suggestion,
    Thread,
)
from storage.repos.conversation import ConversationRepo
from storage.repos.rows import insert_row
from storage.repos.threads import ThreadRepo

log = logging.getLogger(__name__)

#: Texts up to this long are judged (question or not) on the event loop (tens of microseconds).
INLINE_DETECTION_CHARS = 500

SOLVED_EMOJI = frozenset({"✅", "✔️", "☑️", "👍"})
UNHELPFUL_EMOJI = frozenset({"❌", "👎"})


class QaFeature:
    """The handler for messages, edits, deletes and reactions."""

    def __init__(self, matcher: Matcher | None = None, gate: Gate | None = None) -> None:
        self.matcher: Matcher = matcher or LexicalMatcher()
        self.gate = gate or Gate()

    async def __call__(self, event: Event, ctx: Context) -> bool:
        if isinstance(event, MessageEvent):
            await self.on_message(event, ctx)
            return True
        if isinstance(event, EditEvent):
            await self.on_edit(event, ctx)
            return True
        if isinstance(event, DeleteEvent):
            await self.on_delete(event, ctx)
            return True
        if isinstance(event, ReactionEvent):
            await self.on_reaction(event, ctx)
            return True
        if isinstance(event, ChannelDeleteEvent):
            await self.on_channel_delete(event, ctx)
            return True
        return False

    async def on_message(self, event: MessageEvent, ctx: Context) -> None:
        """Store the message, then treat it as an answer, a thanks, or a new question."""
        repo = ConversationRepo(ctx.session)
        channel = await repo.ensure_channel(
            event.channel.platform, event.channel.chat_id, event.channel.thread_id
        )
        a = event.author
        member = await repo.ensure_member(a.platform, a.user_id, a.display_name, a.is_bot)
        if member.opted_out:
            return
        message, _ = await repo.add_message(
            channel,
            event.message_id,
            member,
            event.text,
            event.sent_at,
            event.reply_to,
            event.origin,
        )
        # The inbox hands each message over once; an earlier handler (the bridge) may have
        # stored it already in this same transaction.
        if a.is_bot or event.origin or event.forwarded:
            return
        threads = ThreadRepo(ctx.session)
        if event.reply_to is not None:
            # The parent may sit in the chat itself while the reply is in a topic or thread.
            # A reply to a bridged copy answers the original, wherever it was asked.
            target = await repo.reply_target(
                event.channel.platform, event.channel.chat_id, event.reply_to
            )
            if target is not None and await self._on_reply(ctx, threads, *target, message, member):
                return
        # Judging up to 4,096 characters takes milliseconds: not on the event loop; a short
        # text takes microseconds, less than handing it to a thread.
        if len(event.text) <= INLINE_DETECTION_CHARS:
            detection = detect_question(event.text)
        else:
            detection = await asyncio.to_thread(detect_question, event.text)
        if detection.is_question:
            await self._on_question(ctx, event, channel, message)

    async def _on_reply(
        self,
        ctx: Context,
        threads: ThreadRepo,
        parent: Message,
        asked: Thread | None,
        answered: Answer | None,
        message: Message,
        member: Member,
    ) -> bool:
        """A reply to ``parent``, which asked the thread ``asked`` or gave the answer
        ``answered`` (as looked up with it)."""
        thread = asked
        answer_to = None
        if thread is None:
            answer_to = answered
            if answer_to is not None:
                thread = await threads.get(answer_to.thread_id)
        if thread is None or thread.status == "deleted":
            return False
        question = (
            await ctx.session.get(Message, thread.question_message_id)
            if thread.question_message_id
            else None
        )
        is_asker = question is not None and question.member_id == member.id
        if is_asker:
            if is_thanks(message.text):
                await threads.mark_solved(thread, answer_to)
            return True
        await threads.add_answer(thread, message)
        return True

    async def _on_question(
        self, ctx: Context, event: MessageEvent, channel: Channel, message: Message
    ) -> None:
        threads = ThreadRepo(ctx.session)
        community = await ConversationRepo(ctx.session).community(channel.community_id)
        settings = CommunitySettings.of(community, self.gate)
        thread = await threads.create(
            channel.community_id,
            message,
            event.text,
            thread_search_text(event.text, settings.synonyms),
            event.sent_at,
        )
        await embed_document(ctx.session, self.matcher, "thread", thread.id)
        # A community with its own synonyms needs them on the query side too.
        matcher = matcher_for(self.matcher, settings.synonyms)
        found = await find_answer(
            ctx.session,
            matcher,
            settings.gate,
            event.text,
            community_id=channel.community_id,
            limit=settings.gate.max_suggestions + 3,
            exclude_thread=thread.id,
        )
        decision = found.decision
        if decision.mode == "quiet":
            return
        text, shown = await compose(ctx.session, decision)
        if not text:
            return
        # The gate that decided (the word-matching one for a question in a language the
        # model does not know): its level and basis are what feedback teaches.
        deciding = settings.gate.for_matches(found.matches)
        suggestion_ids = []
        for m in shown:
            s = Suggestion(
                message_id=message.id,
                thread_id=m.ref_id if m.kind == "thread" else None,
                faq_entry_id=m.ref_id if m.kind == "faq" else None,
                score=m.score,
                level=deciding.level(m),
                basis=deciding.basis,
                mode="auto" if decision.mode == "answer" else "suggest",
            )
            await insert_row(ctx.session, s)
            suggestion_ids.append(s.id)
        await ctx.send(
            Outgoing(event.channel, text, reply_to=event.message_id),
            key=f"suggest:{event.channel.key()}:{event.message_id}",
            meta={"suggestion_ids": suggestion_ids},
        )

    async def on_edit(self, event: EditEvent, ctx: Context) -> None:
        """Keep the stored text (and a question's search entry) in step with the platform."""
        message = await _stored(ctx, event)
        if message is None:
            return
        message.text = event.text
        message.edited_at = event.edited_at
        thread = await ThreadRepo(ctx.session).by_question(message.id)
        if thread is not None:
            synonyms = await synonyms_for(ctx.session, thread.community_id)
            await ThreadRepo(ctx.session).update_question(
                thread, event.text, thread_search_text(event.text, synonyms)
            )
            await embed_document(ctx.session, self.matcher, "thread", thread.id)

    async def on_delete(self, event: DeleteEvent, ctx: Context) -> None:
        """A deleted message is kept as deleted (its text erased); a deleted question's thread
        leaves the index."""
        message = await _stored(ctx, event)
        if message is None:
            return
        message.deleted = True
        message.text = ""
        thread = await ThreadRepo(ctx.session).by_question(message.id)
        if thread is not None:
            await ThreadRepo(ctx.session).mark_deleted(thread)

    async def on_channel_delete(self, event: ChannelDeleteEvent, ctx: Context) -> None:
        """A deleted channel (a thread or forum post) takes its messages with it: each is kept
        as deleted with its text erased, as :meth:`on_delete` keeps one, and every question
        asked there leaves the index. Answers given there stop counting for questions asked
        elsewhere (a thread opened from a message in its parent channel)."""
        e = event.channel
        channel = await ConversationRepo(ctx.session).channel(e.platform, e.chat_id, e.thread_id)
        if channel is None:
            return
        said_there = select(Message.id).where(Message.channel_id == channel.id)
        threads = ThreadRepo(ctx.session)
        asked = await ctx.session.scalars(
            select(Thread).where(
                Thread.question_message_id.in_(said_there), Thread.status != "deleted"
            )
        )
        for thread in asked.all():
            await threads.mark_deleted(thread)
        await ctx.session.execute(
            update(Message)
            .where(Message.channel_id == channel.id, Message.deleted.is_(False))
            .values(deleted=True, text="")
        )

    async def on_reaction(self, event: ReactionEvent, ctx: Context) -> None:
        """✅ by the asker on an answer (or on copss's bridged copy of it) solves the thread;
        ✅/❌ on a suggestion is feedback."""
        if not event.added:
            return
        repo = ConversationRepo(ctx.session)
        message = await _stored(ctx, event)
        member = await repo.member(event.author.platform, event.author.user_id)
        if message is None or member is None:
            return
        threads = ThreadRepo(ctx.session)
        answer = await threads.answer_for_message(message.id)
        if answer is None:
            # copss's copy of an answer given on the other side of a bridge: the asker sees
            # the copy, and their ✅ there accepts the original.
            original = await repo.original_of(message.channel_id, message.platform_message_id)
            if original is not None:
                answer = await threads.answer_for_message(original.id)
        if answer is not None and event.emoji in SOLVED_EMOJI:
            thread = await threads.get(answer.thread_id)
            if thread is not None and await _asked_by(ctx, thread, member):
                await threads.mark_solved(thread, answer)
            return
        if await _feedback(ctx, message, member, event.emoji):
            # The community's answer level learns from what its members say of copss's replies.
            channel = await ctx.session.get(Channel, message.channel_id)
            if channel is not None:
                community = await ConversationRepo(ctx.session).community(channel.community_id)
                if community is not None:
                    await relearn(ctx.session, community, self.gate)


async def _stored(ctx: Context, event: EditEvent | DeleteEvent | ReactionEvent) -> Message | None:
    # Looked up across the whole chat: Telegram reactions, for one, do not say the topic.
    e = event.channel
    return await ConversationRepo(ctx.session).find_message(e.platform, e.chat_id, event.message_id)


async def _asked_by(ctx: Context, thread: Thread, member: Member) -> bool:
    if thread.question_message_id is None:
        return False
    question = await ctx.session.get(Message, thread.question_message_id)
    return question is not None and question.member_id == member.id


async def _feedback(ctx: Context, bot_message: Message, member: Member, emoji: str) -> bool:
    """Record the asker's ✅/❌ on copss's reply; whether anything was recorded."""
    if emoji in SOLVED_EMOJI:
        verdict = "helpful"
    elif emoji in UNHELPFUL_EMOJI:
        verdict = "not_helpful"
    else:
        return False
    recorded = False
    suggestions = (
        await ctx.session.scalars(
            select(Suggestion).where(Suggestion.bot_message_id == bot_message.platform_message_id)
        )
    ).all()
    for s in suggestions:
        question = await ctx.session.get(Message, s.message_id)
        if (
            question is None
            or question.channel_id != bot_message.channel_id
            or question.member_id != member.id
            or s.feedback is not None
        ):
            continue
        s.feedback = verdict
        recorded = True
        delta = 1 if verdict == "helpful" else -1
        if s.faq_entry_id is not None:
            entry = await ctx.session.get(FaqEntry, s.faq_entry_id)
            if entry is not None:
                if delta > 0:
                    entry.helpful += 1
                else:
                    entry.not_helpful += 1
        elif s.thread_id is not None:
            thread = await ctx.session.get(Thread, s.thread_id)
            answer_id = thread.accepted_answer_id if thread else None
            if answer_id is None and thread is not None:
                answer_id = await ctx.session.scalar(
                    select(Answer.id).where(Answer.thread_id == thread.id).order_by(Answer.id)
                )
            if answer_id is not None:
                answer = await ctx.session.get(Answer, answer_id)
                if answer is not None:
                    answer.votes += delta
    return recorded


async def record_suggestion_message(
    session: AsyncSession, row: OutboxMessage, message_id: str
) -> None:
    """Outbox hook: remember which posted message carried which suggestions (for feedback)."""
    ids = row.meta.get("suggestion_ids", [])
    if ids:
        # One statement (the session's copies of the rows, if any, are brought up to date).
        await session.execute(
            update(Suggestion).where(Suggestion.id.in_(ids)).values(bot_message_id=message_id)
        )
