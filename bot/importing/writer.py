"""Storing imported messages, questions and answers exactly as live capture stores them.

The same tables (``channel``, ``member``, ``message``, ``thread``, ``answer``), the same
rules: a new chat gets its own community and a topic or thread joins its chat's, so a chat
copss already serves keeps its community (``storage/repos/conversation.py``); a thread's
``search_text`` is what :func:`faq.index_text.thread_search_text` builds with the community's
synonyms (worked out by :mod:`bot.importing.words`, from the words the builder found for the
question where the community has no synonyms of its own), and the store's triggers keep the
full-text index in step; embeddings are left to
:class:`bot.features.embeddings.Backfill`, which copss runs at every start (and ``copss ask``
before it answers). Members who opted out are not stored, nor are their messages.

Every row has a stable key from the platform's ids (channel: platform, chat, thread; member:
platform, user; message: channel, message id; thread: its question; answer: thread, message),
so importing the same file again adds nothing.

Each batch of :data:`BATCH` messages is judged outside any transaction; what it adds is then
written in one short transaction of driver-level bulk statements (:mod:`bot.importing.rawsql`),
so a running copss on the same SQLite file (one writer at a time) waits for one batch's writes
at most. A batch that brings a new channel or member, or replies to a message the builder
does not remember, first looks them up (and stores the new ones) in a transaction of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from bot.importing.gcpolicy import collector_paused
from bot.importing.rawsql import Raw
from bot.importing.records import ChannelKey, ImportedMessage
from bot.importing.threads import Bounded, MsgKey, ThreadBuilder, ThreadState, Verdict, key_of
from bot.importing.words import search_text
from faq.normalize import DEFAULT, Synonyms
from storage.engine import Database
from storage.models import Answer, Channel, Community, Member, Message, Thread
from storage.repos.communities import new_community

#: Messages per batch: its writes take about 15 ms, so a running copss on the same SQLite file
#: waits little for its turn.
BATCH = 1000
#: Thread ids remembered (as the builder remembers threads); older ones are looked up.
MEMORY = 200_000


@dataclass
class ImportStats:
    """What an import read and added."""

    read: int = 0
    messages: int = 0
    questions: int = 0
    answers: int = 0
    solved: int = 0
    #: Messages of members who opted out: not stored.
    skipped: int = 0
    channels: int = 0


@dataclass
class _Place:
    channel_id: int
    community_id: int
    synonyms: Synonyms


class Writer:
    """Writes a message stream batch by batch; :meth:`write` returns what it added."""

    def __init__(self, db: Database, *, batch: int = BATCH, memory: int = MEMORY) -> None:
        self.db = db
        self.batch = max(1, batch)
        self.builder = ThreadBuilder(memory)
        self.stats = ImportStats()
        self._places: dict[ChannelKey, _Place] = {}
        self._members: dict[tuple[str, str], tuple[int, bool]] = {}
        #: The members among them who opted out.
        self._opted: set[tuple[str, str]] = set()
        self._threads: Bounded[MsgKey, int] = Bounded(memory)
        # Each dialect's module is imported only when its store is used (copss import starts
        # faster without the other one).
        if db.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            self._insert: Any = postgresql.insert
        else:
            from sqlalchemy.dialects import sqlite

            self._insert = sqlite.insert
        #: The longest transaction so far, in seconds (from its first statement to its commit),
        #: how many there were and how long they took together.
        self.longest = 0.0
        self.transactions = 0
        self.in_transactions = 0.0

    async def write(
        self, messages: Iterable[ImportedMessage], progress: Callable[[int], None] | None = None
    ) -> ImportStats:
        """Store every message, one write transaction per batch."""
        pending: list[ImportedMessage] = []
        with collector_paused():
            for message in messages:
                pending.append(message)
                if len(pending) >= self.batch:
                    await self._flush(pending, progress)
                    pending = []
            if pending:
                await self._flush(pending, progress)
        return self.stats

    async def _flush(
        self, batch: list[ImportedMessage], progress: Callable[[int], None] | None
    ) -> None:
        # A batch's messages share a few channel objects (the reader makes one per channel).
        channels = {id(m.channel): m.channel for m in batch}.values()
        authors = {(m.channel.platform, m.author_id) for m in batch if m.author_id is not None}
        if any(c.key not in self._places for c in channels) or not authors.issubset(self._members):
            await self._transaction(lambda conn: self._know(conn, batch))
        if not self._opted.isdisjoint(authors):
            kept = [m for m in batch if not self._opted_out(m)]
            self.stats.skipped += len(batch) - len(kept)
        else:
            kept = batch
        wanted = self.builder.parents_to_fetch(kept)
        if wanted:
            await self._transaction(lambda conn: self._fetch_parents(conn, wanted))
        # Judged while no transaction is open; the writes then go in one short transaction.
        # (Judging the next batch while the database thread writes this one is slower: the
        # driver takes the GIL back for every row it binds, and waits for it each time.)
        verdicts = [self.builder.feed(m) for m in kept]
        await self._transaction(lambda conn: self._store(conn, kept, verdicts))
        self.stats.read += len(batch)
        if progress is not None:
            progress(len(batch))

    async def _transaction(self, work: Callable[[Connection], None]) -> None:
        async with self.db.session() as session:
            start = time.perf_counter()
            await session.run_sync(lambda s: work(s.connection()))
        took = time.perf_counter() - start
        self.longest = max(self.longest, took)
        self.transactions += 1
        self.in_transactions += took

    # -- what a batch needs to know first ------------------------------------------------------

    def _know(self, conn: Connection, batch: list[ImportedMessage]) -> None:
        for m in batch:
            if m.channel.key not in self._places:
                self._places[m.channel.key] = self._place(conn, m)
        self._resolve_members(conn, batch)

    def _place(self, conn: Connection, m: ImportedMessage) -> _Place:
        platform, chat, thread = m.channel.key
        row = conn.execute(
            select(Channel.id, Channel.community_id).where(
                Channel.platform == platform, Channel.chat_id == chat, Channel.thread_id == thread
            )
        ).first()
        if row is not None:
            channel_id, community_id = int(row[0]), int(row[1])
        else:
            found = conn.scalar(
                select(Channel.community_id)
                .where(Channel.platform == platform, Channel.chat_id == chat)
                .limit(1)
            )
            community_id = (
                int(found) if found is not None else new_community(conn, platform, chat, {})
            )
            channel_id = int(
                conn.execute(
                    insert(Channel)
                    .values(
                        community_id=community_id,
                        platform=platform,
                        chat_id=chat,
                        thread_id=thread,
                        title=m.channel.title,
                    )
                    .returning(Channel.id)
                ).scalar_one()
            )
            self.stats.channels += 1
        settings = conn.scalar(select(Community.settings).where(Community.id == community_id))
        synonyms = DEFAULT  # what a community without settings has (a new one)
        if settings:
            # Imported here: bot.features.settings brings the matcher, which an import needs
            # only for this (once per channel of a community with settings).
            from bot.features.settings import community_synonyms

            synonyms = community_synonyms(Community(settings=dict(settings)))
        return _Place(channel_id, community_id, synonyms)

    def _resolve_members(self, conn: Connection, batch: list[ImportedMessage]) -> None:
        wanted: dict[tuple[str, str], ImportedMessage] = {}
        for m in batch:
            if m.author_id is not None:
                key = (m.channel.platform, m.author_id)
                if key not in self._members:
                    wanted.setdefault(key, m)
        if not wanted:
            return
        by_platform: dict[str, list[str]] = {}
        for platform, user in wanted:
            by_platform.setdefault(platform, []).append(user)

        def load() -> None:
            for platform, users in by_platform.items():
                rows = conn.execute(
                    select(Member.user_id, Member.id, Member.opted_out).where(
                        Member.platform == platform, Member.user_id.in_(users)
                    )
                )
                for user, member_id, opted_out in rows:
                    self._members[(platform, user)] = (int(member_id), bool(opted_out))
                    if opted_out:
                        self._opted.add((platform, user))

        load()
        missing = [
            {
                "platform": platform,
                "user_id": user,
                "display_name": m.author_name[:200],
                "is_bot": m.is_bot,
                "opted_out": False,
            }
            for (platform, user), m in wanted.items()
            if (platform, user) not in self._members
        ]
        if missing:
            conn.execute(
                self._insert(Member).on_conflict_do_nothing(index_elements=["platform", "user_id"]),
                missing,
            )
            load()

    def _opted_out(self, m: ImportedMessage) -> bool:
        return m.author_id is not None and (m.channel.platform, m.author_id) in self._opted

    def _fetch_parents(self, conn: Connection, wanted: set[MsgKey]) -> None:
        """Teach the builder the reply targets it does not remember that the store has in a
        thread (stored live, by an earlier import, or forgotten for memory)."""
        found = self._message_rows(conn, wanted)
        if not found:
            return
        by_id = {row[0]: key for key, row in found.items()}
        thread_of: dict[int, int] = {}
        for thread_id, question_id in conn.execute(
            select(Thread.id, Thread.question_message_id).where(
                Thread.question_message_id.in_(list(by_id))
            )
        ):
            if question_id is not None:
                thread_of[int(question_id)] = int(thread_id)
        for thread_id, message_id in conn.execute(
            select(Answer.thread_id, Answer.message_id).where(Answer.message_id.in_(list(by_id)))
        ):
            thread_of.setdefault(int(message_id), int(thread_id))
        if not thread_of:
            return
        states = self._thread_states(conn, set(thread_of.values()))
        for message_id, thread_id in thread_of.items():
            state = states.get(thread_id)
            if state is not None:
                key = by_id[message_id]
                self.builder.remember(key, found[key][1], state)

    def _thread_states(self, conn: Connection, thread_ids: set[int]) -> dict[int, ThreadState]:
        rows = conn.execute(
            select(
                Thread.id,
                Thread.status,
                Thread.asked_at,
                Channel.platform,
                Channel.chat_id,
                Channel.thread_id,
                Message.platform_message_id,
                Member.user_id,
            )
            .join(Message, Message.id == Thread.question_message_id)
            .join(Channel, Channel.id == Message.channel_id)
            .outerjoin(Member, Member.id == Message.member_id)
            .where(Thread.id.in_(list(thread_ids)), Thread.status != "deleted")
        )
        states = {}
        for thread_id, status, asked_at, platform, chat, topic, pmid, asker in rows:
            key = (platform, chat, pmid)
            states[int(thread_id)] = ThreadState(
                key, (platform, chat, topic), asker, asked_at, solved=status == "solved"
            )
            self._threads[key] = int(thread_id)
        return states

    def _message_rows(
        self, conn: Connection, keys: Iterable[MsgKey]
    ) -> dict[MsgKey, tuple[int, str | None]]:
        """(message id, author's user id) of stored messages by key."""
        by_chat: dict[tuple[str, str], list[str]] = {}
        for platform, chat, pmid in keys:
            by_chat.setdefault((platform, chat), []).append(pmid)
        found: dict[MsgKey, tuple[int, str | None]] = {}
        for (platform, chat), pmids in by_chat.items():
            rows = conn.execute(
                select(Message.id, Message.platform_message_id, Member.user_id)
                .join(Channel, Channel.id == Message.channel_id)
                .outerjoin(Member, Member.id == Message.member_id)
                .where(
                    Channel.platform == platform,
                    Channel.chat_id == chat,
                    Message.platform_message_id.in_(pmids),
                )
            )
            for message_id, pmid, user in rows:
                found.setdefault((platform, chat, pmid), (int(message_id), user))
        return found

    # -- one batch's writes, in one transaction -------------------------------------------------

    def _store(
        self, conn: Connection, batch: list[ImportedMessage], verdicts: list[Verdict]
    ) -> None:
        raw = Raw(conn)
        if raw.postgres:
            # A statement prepared while the tables were small keeps its first plan (a scan)
            # as they grow under the import; planned each time, lookups use the indexes.
            raw.run("SET LOCAL plan_cache_mode = force_custom_plan")
        try:
            ids, fresh = self._store_messages(raw, batch)
            self._store_threads(conn, raw, batch, verdicts, ids, fresh)
        finally:
            raw.close()

    def _store_messages(
        self, raw: Raw, batch: list[ImportedMessage]
    ) -> tuple[dict[MsgKey, int], set[int]]:
        """Store the batch's messages: the store id of each (new or stored before), and the ids
        of those this batch added (no thread or answer can name them yet)."""
        ids: dict[MsgKey, int] = {}
        fresh: set[int] = set()
        at = raw.time
        members = self._members
        for channel_id, messages in self._by_channel(batch).items():
            # One store channel: one platform and chat (what a message's key is made of).
            platform, chat = messages[0].channel.platform, messages[0].channel.chat_id
            pmids = [m.message_id for m in messages]
            # Without RETURNING, the ids are looked up after the insert, and on PostgreSQL
            # (whose driver does not count the rows a statement added) the stored ones before.
            existing = self._ids_in(raw, channel_id, pmids) if not raw.returning else {}
            rows = []
            for m in messages if len(set(pmids)) == len(pmids) else _unique(messages):
                if m.message_id in existing:
                    continue
                author = m.author_id
                member = None if author is None else members.get((platform, author))
                edited = m.edited_at
                rows.append(
                    (
                        channel_id,
                        m.message_id,
                        None if member is None else member[0],
                        m.text,
                        m.reply_to,
                        None,
                        at(m.sent_at),
                        None if edited is None else at(edited),
                        False,
                    )
                )
            statement = (
                "INSERT INTO message (channel_id, platform_message_id, member_id, text, "
                "reply_to, origin, sent_at, edited_at, deleted) VALUES {values} "
                "ON CONFLICT (channel_id, platform_message_id) DO NOTHING"
            )
            if raw.returning:
                added = raw.insert(statement, rows, "platform_message_id, id")
                self.stats.messages += len(added)
                existing = {str(pmid): int(mid) for pmid, mid in added}
                fresh.update(existing.values())
                if len(existing) < len(pmids):  # in the store before (or twice in the batch)
                    stored = [p for p in pmids if p not in existing]
                    existing.update(self._ids_in(raw, channel_id, stored))
            elif rows:
                raw.insert(statement, rows)
                self.stats.messages += len(rows)
                before = set(existing.values())
                existing = self._ids_in(raw, channel_id, pmids)
                fresh.update(i for i in existing.values() if i not in before)
            for pmid in pmids:
                found = existing.get(pmid)
                if found is not None:
                    ids[(platform, chat, pmid)] = found
        return ids, fresh

    def _by_channel(self, batch: list[ImportedMessage]) -> dict[int, list[ImportedMessage]]:
        """The batch's messages by store channel id, in batch order."""
        # A reader makes one channel object per channel: each is looked up once.
        places: dict[int, int] = {}
        by_channel: dict[int, list[ImportedMessage]] = {}
        for m in batch:
            channel_id = places.get(id(m.channel))
            if channel_id is None:
                channel_id = places[id(m.channel)] = self._places[m.channel.key].channel_id
            by_channel.setdefault(channel_id, []).append(m)
        return by_channel

    def _ids_in(self, raw: Raw, channel_id: int, pmids: list[str]) -> dict[str, int]:
        rows = raw.rows(
            "SELECT platform_message_id, id FROM message "
            "WHERE channel_id = ? AND platform_message_id {in}",
            channel_id,
            raw.values(pmids),
        )
        return {str(pmid): int(mid) for pmid, mid in rows}

    def _store_threads(
        self,
        conn: Connection,
        raw: Raw,
        batch: list[ImportedMessage],
        verdicts: list[Verdict],
        ids: dict[MsgKey, int],
        fresh: set[int],
    ) -> None:
        # What this batch did to each thread: answers (message key, time), solved, accepted.
        answered: dict[MsgKey, list[tuple[MsgKey, datetime]]] = {}
        solved: dict[MsgKey, MsgKey | None] = {}
        questions: list[tuple[ImportedMessage, Verdict]] = []
        for m, v in zip(batch, verdicts, strict=True):
            if v.question:
                questions.append((m, v))
            if v.answers is not None:
                answered.setdefault(v.answers, []).append((key_of(m), m.sent_at))
            for thread, accepted in v.solves:
                solved[thread] = accepted if accepted is not None else solved.get(thread)
        opened: set[int] = set()
        if questions:
            opened = self._insert_threads(raw, questions, ids, fresh, answered, solved)
        touched = set(answered) | set(solved)
        self._thread_ids(conn, touched)
        answer_rows: list[tuple[int, int, datetime]] = []
        for thread, given in answered.items():
            thread_id = self._threads.get(thread)
            if thread_id is None:
                continue
            for message, at in given:
                message_id = ids.get(message)
                if message_id is not None:
                    answer_rows.append((thread_id, message_id, at))
        if answer_rows:
            # Only messages stored before this batch can be answers already.
            older = {t for t, m, _ in answer_rows if m not in fresh}
            existing = set(self._answers_of(raw, older)) if older else set()
            new = [r for r in answer_rows if (r[0], r[1]) not in existing]
            if new:
                raw.insert(
                    "INSERT INTO answer (thread_id, message_id, answered_at, votes) "
                    "VALUES {values} ON CONFLICT (thread_id, message_id) DO NOTHING",
                    [(t, m, raw.time(at), 0) for t, m, at in new],
                )
                self.stats.answers += len(new)
        self._update_threads(conn, raw, answered, solved, ids, opened)

    def _answers_of(self, raw: Raw, thread_ids: set[int]) -> dict[tuple[int, int], int]:
        """(thread id, message id) -> answer id of the threads' stored answers."""
        rows = raw.rows(
            "SELECT thread_id, message_id, id FROM answer WHERE thread_id {in}",
            raw.values(sorted(thread_ids)),
        )
        return {(int(t), int(m)): int(a) for t, m, a in rows}

    def _insert_threads(
        self,
        raw: Raw,
        questions: list[tuple[ImportedMessage, Verdict]],
        ids: dict[MsgKey, int],
        fresh: set[int],
        answered: dict[MsgKey, list[tuple[MsgKey, datetime]]],
        solved: dict[MsgKey, MsgKey | None],
    ) -> set[int]:
        """Open a thread for each question that has none; the ids of the threads opened."""
        message_ids = {}
        for m, _ in questions:
            key = key_of(m)
            if key in ids:
                message_ids[key] = ids[key]
        # Only a message stored before this batch can have opened a thread already.
        older = [i for i in message_ids.values() if i not in fresh]
        stored = self._threads_of(raw, older) if older else {}
        taken = set(stored)
        rows = []
        status_solved = 0
        for m, verdict in questions:
            key = key_of(m)
            message_id = message_ids.get(key)
            if message_id is None or message_id in taken:
                continue
            taken.add(message_id)  # a question the file holds twice opens one thread
            place = self._places[m.channel.key]
            given = answered.get(key)
            # The status it ends the batch with, so the index trigger runs once per thread.
            status = "solved" if key in solved else "answered" if given else "open"
            status_solved += status == "solved"
            rows.append(
                (
                    place.community_id,
                    message_id,
                    m.text,
                    _search_text(m.text, verdict.terms, place.synonyms),
                    status,
                    raw.time(m.sent_at),
                    raw.time(min(at for _, at in given)) if given else None,
                    None,
                    "[]",
                )
            )
        if rows:
            added = raw.insert(
                "INSERT INTO thread (community_id, question_message_id, question_text, "
                "search_text, status, asked_at, first_answer_at, accepted_answer_id, tags) "
                "VALUES {values}",
                rows,
                "question_message_id, id" if raw.returning else "",
            )
            self.stats.questions += len(rows)
            self.stats.solved += status_solved
            before = set(stored.values())
            if raw.returning:
                stored.update((int(q), int(t)) for q, t in added)
            else:
                stored = self._threads_of(raw, list(message_ids.values()))
            opened = {t for t in stored.values() if t not in before}
        else:
            opened = set()
        by_message = {mid: key for key, mid in message_ids.items()}
        for question_id, thread_id in stored.items():
            self._threads[by_message[question_id]] = thread_id
        return opened

    def _threads_of(self, raw: Raw, message_ids: list[int]) -> dict[int, int]:
        """Question message id -> thread id of the threads these messages opened."""
        rows = raw.rows(
            "SELECT question_message_id, id FROM thread WHERE question_message_id {in}",
            raw.values(message_ids),
        )
        return {int(q): int(t) for q, t in rows if q is not None}

    def _thread_ids(self, conn: Connection, keys: set[MsgKey]) -> None:
        """Find the store ids of threads the builder knows but this writer forgot."""
        missing = [k for k in keys if k not in self._threads]
        if not missing:
            return
        found = self._message_rows(conn, missing)
        by_message = {row[0]: key for key, row in found.items()}
        if not by_message:
            return
        for question_id, thread_id in conn.execute(
            select(Thread.question_message_id, Thread.id).where(
                Thread.question_message_id.in_(list(by_message))
            )
        ):
            if question_id is not None:
                self._threads[by_message[int(question_id)]] = int(thread_id)

    def _update_threads(
        self,
        conn: Connection,
        raw: Raw,
        answered: dict[MsgKey, list[tuple[MsgKey, datetime]]],
        solved: dict[MsgKey, MsgKey | None],
        ids: dict[MsgKey, int],
        opened: set[int],
    ) -> None:
        # Only rows that change are touched (each WHERE says so): the index trigger fires on
        # a status update, and a re-import must leave everything as it was. A thread this
        # batch opened was inserted with the status and first answer the batch gave it.
        firsts = []
        for thread, given in answered.items():
            thread_id = self._threads.get(thread)
            if thread_id is not None and thread_id not in opened:
                firsts.append((thread_id, min(at for _, at in given)))
        if firsts:
            raw.run(
                "UPDATE thread SET status = 'answered' WHERE id {in} AND status = 'open'",
                raw.values([t for t, _ in firsts]),
            )
            raw.many(
                "UPDATE thread SET first_answer_at = ? "
                "WHERE id = ? AND (first_answer_at IS NULL OR first_answer_at > ?)",
                [(raw.time(at), t, raw.time(at)) for t, at in firsts],
            )
        if not solved:
            return
        to_solve = [
            t
            for t in (self._threads.get(key) for key in solved)
            if t is not None and t not in opened
        ]
        if to_solve:
            self.stats.solved += raw.run(
                "UPDATE thread SET status = 'solved' "
                "WHERE id {in} AND (status = 'open' OR status = 'answered')",
                raw.values(to_solve),
            )
        accepted = []
        for thread, answer in solved.items():
            thread_id = self._threads.get(thread)
            if thread_id is None or answer is None:
                continue
            message_id = ids.get(answer)
            if message_id is None:
                row = self._message_rows(conn, [answer]).get(answer)
                message_id = row[0] if row else None
            if message_id is not None:
                accepted.append((thread_id, message_id))
        if not accepted:
            return
        answer_ids = self._answers_of(raw, {t for t, _ in accepted})
        raw.many(
            "UPDATE thread SET accepted_answer_id = ? WHERE id = ? AND accepted_answer_id IS NULL",
            [(answer_ids[(t, m)], t) for t, m in accepted if (t, m) in answer_ids],
        )


def _search_text(text: str, terms: list[str] | None, synonyms: Synonyms) -> str:
    # The builder worked the question's words out with the built-in synonyms; a community
    # with synonyms of its own has its index text worked out again with them.
    if terms is not None and synonyms is DEFAULT:
        return " ".join(terms) if text.strip() else ""
    return search_text(text, synonyms)


def _unique(messages: list[ImportedMessage]) -> list[ImportedMessage]:
    # A file may hold a message twice (overlapping exports joined): the first one counts.
    seen: set[str] = set()
    out = []
    for m in messages:
        if m.message_id not in seen:
            seen.add(m.message_id)
            out.append(m)
    return out
