"""Candidate retrieval over threads and FAQ entries.

SQLite uses the FTS5 table ``search_fts`` kept in sync by triggers (BM25 ranking, Porter stems);
PostgreSQL uses ``to_tsvector('simple', ...)`` over the same ``search_text`` columns with GIN
indexes (``ts_rank``, stems matched as prefixes). Both return :class:`SearchHit` rows, best
first, with ``rank`` larger-is-better; the hits carry the thread signals the ranker weighs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Answer, FaqEntry, Thread
from storage.stemmer import stem

#: How many of the query's rarest terms go into the full-text query: each term costs a posting
#: list scan, and past the rarest dozen or so the common ones barely change which documents
#: come back (measured in ``bench/quality.py``: 16 terms rank as well as all of them).
MAX_QUERY_TERMS = 16

#: How many postings (term occurrences) one full-text query may read on SQLite. FTS5 scores
#: every row that matches any term, about a microsecond each, so a common word in a large store
#: costs tens of milliseconds while adding little to which rows come first: rarer terms are
#: added only while the total stays under this; the common ones still count when the matcher
#: re-ranks the candidates.
POSTING_BUDGET = 1_000

#: ``fts5vocab`` counts a term's documents by walking its posting list (tens of nanoseconds a
#: posting, so milliseconds for a common word in a big store). Counts at least this large are
#: kept for :data:`FREQ_TTL` seconds: they barely move in that time and IDF hardly notices.
#: Smaller counts are read fresh, so a brand-new word is findable at once.
FREQ_CACHE_MIN = 1_000
FREQ_TTL = 600.0
_FREQ_CACHE_SIZE = 50_000
_freq_cache: dict[tuple[str, str], tuple[int, float]] = {}


#: Which threads a community sees (``:c``; NULL: every community's, for the operator's
#: ``copss ask``), as SQL over a thread alias ``{t}``.
_THREAD_SCOPE = "(CAST(:c AS INTEGER) IS NULL OR {t}.community_id = :c)"
#: Which FAQ entries a community sees: its own unless hidden, and the global ones it has not
#: overridden or hidden with a row of the same slug (without a community: the global ones).
_ENTRY_SCOPE = (
    "(NOT {f}.hidden AND ({f}.community_id = :c OR ({f}.community_id IS NULL AND NOT EXISTS "
    "(SELECT 1 FROM faq_entry o WHERE o.community_id = :c AND o.slug = {f}.slug))))"
)


@dataclass(frozen=True)
class SearchHit:
    """A retrieved document: ``kind`` is ``thread`` or ``faq``; ``rank`` is the backend's own
    relevance (larger is better); the rest are signals for the ranker."""

    kind: str
    ref_id: int
    search_text: str
    rank: float
    status: str
    votes: int
    when: datetime | None
    #: Live answers a thread has (FAQ entries count as one answer).
    answers: int = 1
    #: The asker accepted an answer (threads) or the entry is curated (FAQ).
    accepted: bool = False
    #: The community that owns the document; ``None`` for the global starter entries.
    community_id: int | None = None


def _fts_quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _ts_word(term: str) -> str:
    return "".join(ch for ch in term if ch.isalnum())


def _ts_lexeme(term: str) -> str:
    # 'simple' does not stem: match the Porter stem as a prefix instead ("regist:*" finds
    # "register" and "registration"); very short stems stay exact or they would match
    # everything.
    root = _ts_word(stem(term))
    return f"{root}:*" if len(root) >= 4 else _ts_word(term)


def _remembered(store: str, term: str, count: int, now: float) -> int:
    """``count``, kept in the frequency cache when the term is common enough to be worth it."""
    if count >= FREQ_CACHE_MIN:
        if len(_freq_cache) >= _FREQ_CACHE_SIZE:
            _freq_cache.clear()
        _freq_cache[(store, term)] = (count, now + FREQ_TTL)
    return count


class SearchRepo:
    """Full-text candidates for a list of normalised search terms."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        # Which store: the frequency cache is shared by every session of the process.
        self._store = str(session.get_bind().engine.url)
        #: The largest index key, as last read by :meth:`document_frequencies`.
        self._max_key: int | None = None

    async def candidates(
        self,
        terms: list[str],
        community_id: int | None,
        limit: int = 50,
        freq: dict[str, int] | None = None,
    ) -> list[SearchHit]:
        """Up to ``limit`` threads and entries sharing terms with the query, best first.
        With ``freq`` (from :meth:`document_frequencies`) terms no document has are skipped
        and only the :data:`MAX_QUERY_TERMS` rarest are queried."""
        if freq is not None:
            terms = [t for t in terms if freq.get(t, 0) > 0]
            if len(terms) > MAX_QUERY_TERMS:
                terms = sorted(terms, key=lambda t: freq.get(t, 0))[:MAX_QUERY_TERMS]
        terms = [t for t in terms if _ts_word(t)]
        if not terms:
            return []
        if self.dialect == "sqlite":
            return await self._sqlite_candidates(terms, community_id, limit, freq)
        ranked = await self._postgres_ranked(terms, community_id, limit)
        return await self._load(ranked)

    async def document_frequencies(self, terms: list[str]) -> tuple[dict[str, int], int]:
        """How many indexed documents contain each term (as the index matches it: by stem on
        SQLite, by stem prefix on PostgreSQL), and about how many documents there are."""
        if self.dialect != "sqlite":
            return await self._postgres_frequencies(terms)
        stems = {t: stem(t) for t in terms}
        store = self._store
        now = time.monotonic()
        found: dict[str, int] = {}
        for s in set(stems.values()):
            cached = _freq_cache.get((store, s))
            if cached is not None and cached[1] > now:
                found[s] = cached[0]
        # One round trip: the vocabulary rows and, first, the largest row key (rows are keyed
        # id*2 for threads and id*2+1 for entries, so half of it is the size of the larger
        # table -- close enough for IDF, and free to read, unlike count(*)).
        rows = await self.session.execute(
            text(
                "SELECT NULL, max(rowid) FROM search_fts UNION ALL "
                "SELECT term, doc FROM search_vocab WHERE term IN :stems"
            ).bindparams(bindparam("stems", expanding=True)),
            {"stems": sorted(set(stems.values()) - found.keys()) or [""]},
        )
        total = 0
        for term, count in rows.all():
            if term is None:
                self._max_key = int(count or 0)
                total = self._max_key // 2
                continue
            found[str(term)] = _remembered(store, str(term), int(count), now)
        return {t: found.get(s, 0) for t, s in stems.items()}, max(1, total)

    async def _postgres_frequencies(self, terms: list[str]) -> tuple[dict[str, int], int]:
        # One round trip for every term and the document count (a query each used to cost
        # a third of a question's statements); common terms come from the cache as on SQLite.
        lexemes = {t: _ts_lexeme(t) for t in terms}
        store, now = self._store, time.monotonic()
        found: dict[str, int] = {}
        for lexeme in set(lexemes.values()):
            cached = _freq_cache.get((store, lexeme))
            if lexeme and cached is not None and cached[1] > now:
                found[lexeme] = cached[0]
        wanted = sorted({w for w in lexemes.values() if w} - found.keys())
        rows = await self.session.execute(
            text(
                "SELECT NULL, (SELECT count(*) FROM thread) + (SELECT count(*) FROM faq_entry) "
                "UNION ALL SELECT w, (SELECT count(*) FROM thread WHERE status != 'deleted' "
                "AND to_tsvector('simple', search_text) @@ to_tsquery('simple', w)) + "
                "(SELECT count(*) FROM faq_entry WHERE "
                "to_tsvector('simple', search_text) @@ to_tsquery('simple', w)) "
                "FROM unnest(CAST(:ws AS text[])) AS w"
            ),
            {"ws": wanted},
        )
        total = 0
        for lexeme, count in rows.all():
            if lexeme is None:
                total = int(count or 0)
                continue
            found[str(lexeme)] = _remembered(store, str(lexeme), int(count), now)
        return {t: found.get(w, 0) if w else 0 for t, w in lexemes.items()}, max(1, total)

    def _budgeted(self, terms: list[str], freq: dict[str, int] | None) -> tuple[list[str], float]:
        """The terms to query within :data:`POSTING_BUDGET` (rarest first, at least one) and,
        when even the rarest is too common, the share of the newest rows to search."""
        if freq is None:
            return terms, 1.0
        ordered = sorted(terms, key=lambda t: freq.get(t, 0))
        chosen, postings = [ordered[0]], freq.get(ordered[0], 0)
        for term in ordered[1:]:
            postings += freq.get(term, 0)
            if postings > POSTING_BUDGET:
                break
            chosen.append(term)
        first = freq.get(ordered[0], 0)
        # A question made only of very common words: search the newest rows that should hold
        # about a budget's worth of its rarest word rather than every row.
        return chosen, min(1.0, POSTING_BUDGET / first) if first else 1.0

    async def _sqlite_candidates(
        self,
        terms: list[str],
        community_id: int | None,
        limit: int,
        freq: dict[str, int] | None,
    ) -> list[SearchHit]:
        chosen, share = self._budgeted(terms, freq)
        floor = 0
        if share < 1.0:
            top = self._max_key
            if top is None:
                top = int(await self.session.scalar(text("SELECT max(rowid) FROM search_fts")) or 0)
            floor = int(top * (1.0 - share))
        hits = await self._sqlite_query(chosen, community_id, limit, floor)
        if floor and len(hits) < limit:
            # The newest rows held too few of this community's documents: search them all.
            hits = await self._sqlite_query(chosen, community_id, limit, 0)
        return hits

    async def _sqlite_query(
        self, chosen: list[str], community_id: int | None, limit: int, floor: int
    ) -> list[SearchHit]:
        # One round trip: the full-text hits joined to their thread or entry and the thread's
        # answer count and best answer votes. Which community may see a document is decided
        # inside the full-text query, before its LIMIT: filtering afterwards would let another
        # community's documents crowd out this one's.
        sql = text(
            "WITH hits AS (SELECT search_fts.rowid AS k, bm25(search_fts) AS r FROM search_fts "
            "LEFT JOIN thread ht ON search_fts.rowid % 2 = 0 AND ht.id = search_fts.rowid / 2 "
            "LEFT JOIN faq_entry hf ON search_fts.rowid % 2 = 1 AND hf.id = search_fts.rowid / 2 "
            "WHERE search_fts MATCH :q AND search_fts.rowid >= :floor AND ("
            f"(ht.id IS NOT NULL AND ht.status != 'deleted' AND {_THREAD_SCOPE.format(t='ht')}) "
            f"OR (hf.id IS NOT NULL AND {_ENTRY_SCOPE.format(f='hf')})) "
            "ORDER BY r LIMIT :limit) "
            "SELECT hits.k, -hits.r AS rank, "
            "t.community_id AS t_community, t.search_text AS t_text, t.status, t.asked_at, "
            "t.accepted_answer_id, "
            "(SELECT count(*) FROM answer a WHERE a.thread_id = t.id) AS answers, "
            "(SELECT max(a.votes) FROM answer a WHERE a.thread_id = t.id) AS votes, "
            "f.id AS f_id, f.community_id AS f_community, f.search_text AS f_text, "
            "f.helpful, f.not_helpful "
            "FROM hits "
            "LEFT JOIN thread t ON hits.k % 2 = 0 AND t.id = hits.k / 2 "
            "LEFT JOIN faq_entry f ON hits.k % 2 = 1 AND f.id = hits.k / 2 "
            "ORDER BY hits.r"
        ).columns(asked_at=Thread.__table__.c.asked_at.type)
        rows = await self.session.execute(
            sql,
            {
                "q": " OR ".join(_fts_quote(t) for t in chosen),
                "floor": floor,
                "limit": limit,
                "c": community_id,
            },
        )
        hits: list[SearchHit] = []
        for row in rows.all():
            ref = int(row.k) // 2
            if int(row.k) % 2 == 0:
                hits.append(
                    SearchHit(
                        "thread",
                        ref,
                        row.t_text,
                        float(row.rank),
                        row.status,
                        int(row.votes or 0),
                        row.asked_at,
                        answers=int(row.answers),
                        accepted=row.accepted_answer_id is not None,
                        community_id=row.t_community,
                    )
                )
            elif row.f_id is not None:
                hits.append(
                    SearchHit(
                        "faq",
                        ref,
                        row.f_text,
                        float(row.rank),
                        "solved",
                        int(row.helpful) - int(row.not_helpful),
                        None,
                        answers=1,
                        accepted=True,
                        community_id=row.f_community,
                    )
                )
        return hits

    async def _postgres_ranked(
        self, terms: list[str], community_id: int | None, limit: int
    ) -> list[tuple[int, float]]:
        query = " | ".join(dict.fromkeys(_ts_lexeme(t) for t in terms))
        # The community scope is part of the ranked query, before its LIMIT.
        sql = text(
            "SELECT t.id * 2 AS k, ts_rank(to_tsvector('simple', t.search_text), q) AS r "
            "FROM thread t, to_tsquery('simple', :q) q "
            "WHERE t.status != 'deleted' AND to_tsvector('simple', t.search_text) @@ q "
            f"AND {_THREAD_SCOPE.format(t='t')} "
            "UNION ALL "
            "SELECT f.id * 2 + 1, ts_rank(to_tsvector('simple', f.search_text), q) "
            "FROM faq_entry f, to_tsquery('simple', :q) q "
            "WHERE to_tsvector('simple', f.search_text) @@ q "
            f"AND {_ENTRY_SCOPE.format(f='f')} "
            "ORDER BY r DESC LIMIT :limit"
        ).bindparams(bindparam("c", type_=Integer))
        rows = await self.session.execute(sql, {"q": query, "limit": limit, "c": community_id})
        return [(int(k), float(r)) for k, r in rows.all()]

    async def hits_for(
        self, keys: Sequence[tuple[str, int]], community_id: int | None
    ) -> list[SearchHit]:
        """The threads and entries ``keys`` (``("thread" | "faq", id)``, e.g. found by vector
        search) as hits with rank 0, in the order given, keeping only what the community may
        see: the same scope as :meth:`candidates`."""
        thread_ids = [i for kind, i in keys if kind == "thread"]
        entry_ids = [i for kind, i in keys if kind == "faq"]
        allowed: set[tuple[str, int]] = set()
        if thread_ids:
            rows = await self.session.execute(
                text(
                    "SELECT t.id FROM thread t WHERE t.id IN :ids AND t.status != 'deleted' "
                    f"AND {_THREAD_SCOPE.format(t='t')}"
                ).bindparams(bindparam("ids", expanding=True), bindparam("c", type_=Integer)),
                {"ids": thread_ids, "c": community_id},
            )
            allowed |= {("thread", int(i)) for (i,) in rows.all()}
        if entry_ids:
            rows = await self.session.execute(
                text(
                    "SELECT f.id FROM faq_entry f WHERE f.id IN :ids "
                    f"AND {_ENTRY_SCOPE.format(f='f')}"
                ).bindparams(bindparam("ids", expanding=True), bindparam("c", type_=Integer)),
                {"ids": entry_ids, "c": community_id},
            )
            allowed |= {("faq", int(i)) for (i,) in rows.all()}
        ranked = [
            (i * 2 if kind == "thread" else i * 2 + 1, 0.0)
            for kind, i in dict.fromkeys(keys)
            if (kind, i) in allowed
        ]
        return await self._load(ranked)

    async def _load(self, ranked: list[tuple[int, float]]) -> list[SearchHit]:
        thread_ids = [k // 2 for k, _ in ranked if k % 2 == 0]
        faq_ids = [k // 2 for k, _ in ranked if k % 2 == 1]
        # Plain column selects: ORM objects for fifty candidates would cost more than the
        # full-text query itself.
        threads: dict[int, Any] = {}
        answers: dict[int, tuple[int, int]] = {}
        if thread_ids:
            rows = await self.session.execute(
                select(
                    Thread.id,
                    Thread.community_id,
                    Thread.search_text,
                    Thread.status,
                    Thread.asked_at,
                    Thread.accepted_answer_id,
                ).where(Thread.id.in_(thread_ids))
            )
            threads = {row.id: row for row in rows.all()}
            counts = await self.session.execute(
                select(Answer.thread_id, func.count(Answer.id), func.max(Answer.votes))
                .where(Answer.thread_id.in_(thread_ids))
                .group_by(Answer.thread_id)
            )
            answers = {tid: (int(n), int(v or 0)) for tid, n, v in counts.all()}
        faqs: dict[int, Any] = {}
        if faq_ids:
            rows = await self.session.execute(
                select(
                    FaqEntry.id,
                    FaqEntry.community_id,
                    FaqEntry.search_text,
                    FaqEntry.helpful,
                    FaqEntry.not_helpful,
                ).where(FaqEntry.id.in_(faq_ids))
            )
            faqs = {row.id: row for row in rows.all()}
        hits: list[SearchHit] = []
        for key, rank in ranked:
            ref = key // 2
            if key % 2 == 0:
                t = threads.get(ref)
                if t is None or t.status == "deleted":
                    continue
                n_answers, votes = answers.get(ref, (0, 0))
                hits.append(
                    SearchHit(
                        "thread",
                        ref,
                        t.search_text,
                        rank,
                        t.status,
                        votes,
                        t.asked_at,
                        answers=n_answers,
                        accepted=t.accepted_answer_id is not None,
                        community_id=t.community_id,
                    )
                )
            else:
                f = faqs.get(ref)
                if f is None:
                    continue
                hits.append(
                    SearchHit(
                        "faq",
                        ref,
                        f.search_text,
                        rank,
                        "solved",
                        f.helpful - f.not_helpful,
                        None,
                        answers=1,
                        accepted=True,
                        community_id=f.community_id,
                    )
                )
        return hits
