"""Rebuilding questions and their answers from a chat's history, message by message.

Live capture sees one message at a time; so does :class:`ThreadBuilder`, fed in the order the
chat had them, and it decides what live capture would have decided, plus what a history shows
that live capture cannot wait for:

1. **Reply chains first** (as live): a reply to a question or to one of its answers is an answer
   to that question, unless the asker wrote it; the asker's reply that thanks or says it worked
   (:func:`faq.gratitude.is_thanks`) marks the question solved, accepting the answer it replied
   to. A reply to any other message is judged like a message of its own, but never attached by
   the time-window rule (it belongs to another conversation).
2. **Questions**: a message :func:`faq.detect.detect_question` calls a question opens a thread
   (judged by :func:`bot.importing.words.asks`, which gives the same verdicts faster).
3. **Unthreaded chat** (a message that neither replies nor asks), in the same channel:

   * by the asker of a question asked at most :data:`WINDOW` before, which has an answer: a
     thank-you marks it solved, accepting its latest answer;
   * by anyone else: among the unsolved questions of other members asked at most
     :data:`WINDOW` before, the one sharing the most word stems with the message (ties: the
     latest) gets it as an answer when they share at least :data:`MIN_SHARED` stems, or at
     least one stem that is a quarter of the message's. Failing that, the latest question
     gets it when it was asked at most :data:`ADJACENT` before and the message has at least
     :data:`MIN_WORDS` words: in a quiet chat the next substantial message answers it.
4. **Reactions**: a ✅ (or 👍, as live) on an answer from the asker marks the question solved,
   accepting that answer. When the export only counts reactions without naming who reacted, a
   ✅, ✔️ or ☑️ from anyone counts (a 👍 is too common to mean "solved").

Bots' and forwarded messages are stored but are never questions or answers. Memory stays
bounded: the builder remembers the :data:`MEMORY` most recent thread messages; a reply to an
older one is looked up in the store by the writer (:meth:`ThreadBuilder.parents_to_fetch`,
:meth:`ThreadBuilder.remember`), as is a reply to a message stored before (live, or by an
earlier import).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar

from bot.importing.records import ChannelKey, ImportedMessage
from bot.importing.words import asks, terms
from faq.gratitude import is_thanks
from storage.stemmer import stem

#: How long after a question an unthreaded message may still answer (or thank for) it.
WINDOW = timedelta(minutes=30)
#: How recent the latest question must be for the next substantial message to answer it.
ADJACENT = timedelta(minutes=10)
#: Stems a message must share with a question to answer it by similarity alone.
MIN_SHARED = 2
#: Words an unthreaded message needs to answer the latest question without sharing words.
MIN_WORDS = 3
#: Thread messages (questions and answers) remembered for replies.
MEMORY = 200_000

#: Emoji that mark an answer accepted when the asker adds them (as live capture reads them).
SOLVED_BY_ASKER = frozenset({"✅", "✔️", "☑️", "👍"})
#: Emoji that count from anyone when the export does not say who reacted.
SOLVED_BY_ANYONE = frozenset({"✅", "✔️", "☑️"})

#: A message as replies name it: (platform, chat id, platform message id); replies reach
#: across a chat's topics and threads, as live.
MsgKey = tuple[str, str, str]

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """A mapping that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value, or None."""
        return self._data.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __setitem__(self, key: K, value: V) -> None:
        self._data[key] = value
        if len(self._data) > self.limit:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(slots=True)
class ThreadState:
    """What the builder knows of a question."""

    key: MsgKey
    channel: ChannelKey
    asker: str | None
    asked_at: datetime
    stems: frozenset[str] = frozenset()
    last_answer: MsgKey | None = None
    solved: bool = False


class Node(NamedTuple):
    """A remembered thread message: the thread it belongs to, who wrote it (a tuple: the
    builder makes one for most messages of a history)."""

    thread: MsgKey
    author: str | None


@dataclass(slots=True)
class Verdict:
    """What one message turned out to be."""

    question: bool = False
    #: A question's search words (:func:`faq.normalize.search_terms` with the built-in
    #: synonyms), worked out once for similarity and, where they apply, the index.
    terms: list[str] | None = None
    #: The thread (its question's key) this message answers.
    answers: MsgKey | None = None
    #: Threads it marked solved, each with the accepted answer (None: the question itself).
    solves: list[tuple[MsgKey, MsgKey | None]] = field(default_factory=list)


def key_of(message: ImportedMessage, message_id: str | None = None) -> MsgKey:
    """The key of ``message`` (or of another message id in its chat)."""
    c = message.channel
    return (c.platform, c.chat_id, message.message_id if message_id is None else message_id)


def stems_of(text: str) -> frozenset[str]:
    """The word stems similarity is judged on."""
    return frozenset(map(stem, terms(text)))


class ThreadBuilder:
    """Feeds on messages in chat order and says what each one is (see the module doc)."""

    def __init__(self, memory: int = MEMORY) -> None:
        self.nodes: Bounded[MsgKey, Node] = Bounded(memory)
        self.threads: Bounded[MsgKey, ThreadState] = Bounded(memory)
        self.recent: dict[ChannelKey, deque[ThreadState]] = {}

    def parents_to_fetch(self, messages: list[ImportedMessage]) -> set[MsgKey]:
        """Reply targets of ``messages`` the builder does not know (nor are in the batch)."""
        wanted = set()
        for m in messages:
            if m.reply_to is not None:
                parent = key_of(m, m.reply_to)
                if parent not in self.nodes:
                    wanted.add(parent)
        if wanted:
            wanted.difference_update(key_of(m) for m in messages)
        return wanted

    def remember(self, message: MsgKey, author: str | None, thread: ThreadState) -> None:
        """Teach the builder a thread message found in the store."""
        if thread.key not in self.threads:
            self.threads[thread.key] = thread
        self.nodes[message] = Node(thread.key, author)

    def feed(self, m: ImportedMessage) -> Verdict:
        """Judge the next message of the history."""
        verdict = Verdict()
        if m.is_bot or m.forwarded:
            return verdict
        channel = m.channel
        key = (channel.platform, channel.chat_id, m.message_id)
        replied = False
        if m.reply_to is not None:
            replied = True
            parent = self.nodes.get((channel.platform, channel.chat_id, m.reply_to))
            thread = self.threads.get(parent.thread) if parent is not None else None
            if parent is not None and thread is not None:
                if m.author_id is not None and m.author_id == thread.asker:
                    if is_thanks(m.text):
                        answer = None if key_of(m, m.reply_to) == thread.key else parent_key(m)
                        self._solve(thread, answer, verdict)
                    return verdict
                self._answer(thread, key, m, verdict)
                return verdict
        if asks(m.text):
            self._question(key, m, verdict)
            return verdict
        if not replied:
            self._unthreaded(key, m, verdict)
        return verdict

    def _question(self, key: MsgKey, m: ImportedMessage, verdict: Verdict) -> None:
        verdict.question = True
        verdict.terms = terms(m.text)
        channel = m.channel.key
        state = ThreadState(
            key, channel, m.author_id, m.sent_at, frozenset(map(stem, verdict.terms))
        )
        self.threads[key] = state
        self.nodes[key] = Node(key, m.author_id)
        recent = self.recent.get(channel)
        if recent is None:
            recent = self.recent[channel] = deque()
        recent.append(state)

    def _answer(
        self, thread: ThreadState, key: MsgKey, m: ImportedMessage, verdict: Verdict
    ) -> None:
        verdict.answers = thread.key
        thread.last_answer = key
        self.nodes[key] = Node(thread.key, m.author_id)
        for reaction in m.reactions:
            by_asker = thread.asker is not None and thread.asker in reaction.users
            if (reaction.emoji in SOLVED_BY_ASKER and by_asker) or (
                not reaction.users and reaction.emoji in SOLVED_BY_ANYONE
            ):
                self._solve(thread, key, verdict)
                break

    def _solve(self, thread: ThreadState, answer: MsgKey | None, verdict: Verdict) -> None:
        thread.solved = True
        verdict.solves.append((thread.key, answer))

    def _unthreaded(self, key: MsgKey, m: ImportedMessage, verdict: Verdict) -> None:
        recent = self.recent.get(m.channel.key)
        if not recent:
            return
        since = m.sent_at - WINDOW
        while recent and (recent[0].asked_at < since or recent[0].key not in self.threads):
            recent.popleft()
        if not recent:
            return
        # One pass over the recent questions: the latest of the author's own that has an
        # answer, and among the others' unsolved ones the one sharing the most stems.
        author = m.author_id
        own: ThreadState | None = None
        stems: frozenset[str] | None = None
        best, shared = None, 0
        for t in recent:
            if t.asker == author:
                if author is not None and t.last_answer is not None:
                    own = t
                continue
            if t.solved:
                continue
            if stems is None:
                stems = stems_of(m.text)
            if stems.isdisjoint(t.stems):
                continue
            n = len(stems & t.stems)
            if n >= shared:
                best, shared = t, n
        if own is not None and is_thanks(m.text):
            self._solve(own, own.last_answer, verdict)
            return
        if stems is None:  # no other member's unsolved question
            return
        if best is not None and (shared >= MIN_SHARED or shared * 4 >= len(stems)):
            self._answer(best, key, m, verdict)
            return
        latest = recent[-1]
        if (
            latest.asker != m.author_id  # latest is one of the others
            and not latest.solved
            and m.sent_at - latest.asked_at <= ADJACENT
            and len(m.text.split()) >= MIN_WORDS
        ):
            self._answer(latest, key, m, verdict)


def parent_key(m: ImportedMessage) -> MsgKey | None:
    """The key of the message ``m`` replies to."""
    return None if m.reply_to is None else key_of(m, m.reply_to)
