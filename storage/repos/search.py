"""Candidate retrieval over threads and FAQ entries.

SQLite uses the FTS5 table ``search_fts`` kept in sync by triggers (BM25 ranking); PostgreSQL
uses ``to_tsvector`` over the same ``search_text`` columns with GIN indexes (``ts_rank``).
Both return :class:`SearchHit` rows, best first, with ``rank`` larger-is-better.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import FaqEntry, Thread

#: How many of the query's rarest terms go into the full-text query: common words add cost and
#: little precision.
MAX_QUERY_TERMS = 8


@dataclass(frozen=True)
class SearchHit:
    """A retrieved document: ``kind`` is ``thread`` or ``faq``."""

    kind: str
    ref_id: int
    search_text: str
    rank: float
    status: str
    votes: int
    when: datetime | None


def _fts_quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


class SearchRepo:
    """Full-text candidates for a list of normalised search terms."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def candidates(
        self,
        terms: list[str],
        community_id: int | None,
        limit: int = 50,
        freq: dict[str, int] | None = None,
    ) -> list[SearchHit]:
        """Up to ``limit`` threads and entries sharing terms with the query, best first.
        With ``freq`` (from :meth:`document_frequencies`) only the rarest terms are queried."""
        if not terms:
            return []
        if self.dialect == "sqlite":
            ranked = await self._sqlite_ranked(terms, limit, freq)
        else:
            ranked = await self._postgres_ranked(terms, limit)
        return await self._load(ranked, community_id)

    async def document_frequencies(self, terms: list[str]) -> tuple[dict[str, int], int]:
        """How many indexed documents contain each term, and about how many there are."""
        if self.dialect != "sqlite":
            return await self._postgres_frequencies(terms)
        freq: dict[str, int] = {}
        # The index stores Porter stems, which are prefixes of the word in nearly every case:
        # the longest indexed term that begins the query term stands for it.
        sql = text("SELECT term, doc FROM search_vocab WHERE term BETWEEN :lo AND :hi")
        for term in terms:
            rows = await self.session.execute(sql, {"lo": term[:3], "hi": term})
            best, best_doc = "", 0
            for found, doc in rows.all():
                if term.startswith(found) and len(found) > len(best):
                    best, best_doc = found, int(doc)
            freq[term] = best_doc if len(best) >= min(len(term), 3) else 0
        total = await self.session.scalar(text("SELECT max(rowid) FROM search_fts"))
        return freq, max(1, int(total or 0) // 2)

    async def _postgres_frequencies(self, terms: list[str]) -> tuple[dict[str, int], int]:
        freq: dict[str, int] = {}
        for term in terms:
            word = "".join(ch for ch in term if ch.isalnum())
            count = (
                await self.session.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM thread WHERE status != 'deleted' AND "
                        "to_tsvector('simple', search_text) @@ to_tsquery('simple', :w)) + "
                        "(SELECT count(*) FROM faq_entry WHERE "
                        "to_tsvector('simple', search_text) @@ to_tsquery('simple', :w))"
                    ),
                    {"w": word},
                )
                if word
                else 0
            )
            freq[term] = int(count or 0)
        total = await self.session.scalar(
            text("SELECT (SELECT count(*) FROM thread) + (SELECT count(*) FROM faq_entry)")
        )
        return freq, max(1, int(total or 0))

    async def _sqlite_ranked(
        self, terms: list[str], limit: int, freq: dict[str, int] | None = None
    ) -> list[tuple[int, float]]:
        if freq is not None and len(terms) > MAX_QUERY_TERMS:
            terms = sorted(terms, key=lambda t: freq.get(t, 0))[:MAX_QUERY_TERMS]
        terms = [t for t in terms if freq is None or freq.get(t, 1) > 0]
        if not terms:
            return []
        query = " OR ".join(_fts_quote(t) for t in terms)
        rows = await self.session.execute(
            text(
                "SELECT rowid, bm25(search_fts) AS r FROM search_fts "
                "WHERE search_fts MATCH :q ORDER BY r LIMIT :limit"
            ),
            {"q": query, "limit": limit},
        )
        return [(int(rowid), -float(r)) for rowid, r in rows.all()]

    async def _postgres_ranked(self, terms: list[str], limit: int) -> list[tuple[int, float]]:
        query = " | ".join("".join(ch for ch in t if ch.isalnum()) for t in terms if t)
        sql = text(
            "SELECT id * 2 AS k, ts_rank(to_tsvector('simple', search_text), q) AS r "
            "FROM thread, to_tsquery('simple', :q) q "
            "WHERE status != 'deleted' AND to_tsvector('simple', search_text) @@ q "
            "UNION ALL "
            "SELECT id * 2 + 1, ts_rank(to_tsvector('simple', search_text), q) "
            "FROM faq_entry, to_tsquery('simple', :q) q "
            "WHERE to_tsvector('simple', search_text) @@ q "
            "ORDER BY r DESC LIMIT :limit"
        )
        rows = await self.session.execute(sql, {"q": query, "limit": limit})
        return [(int(k), float(r)) for k, r in rows.all()]

    async def _load(
        self, ranked: list[tuple[int, float]], community_id: int | None
    ) -> list[SearchHit]:
        thread_ids = [k // 2 for k, _ in ranked if k % 2 == 0]
        faq_ids = [k // 2 for k, _ in ranked if k % 2 == 1]
        threads: dict[int, Thread] = {}
        faqs: dict[int, FaqEntry] = {}
        if thread_ids:
            found = await self.session.scalars(select(Thread).where(Thread.id.in_(thread_ids)))
            threads = {t.id: t for t in found}
        if faq_ids:
            found_faq = await self.session.scalars(select(FaqEntry).where(FaqEntry.id.in_(faq_ids)))
            faqs = {f.id: f for f in found_faq}
        hits: list[SearchHit] = []
        for key, rank in ranked:
            ref = key // 2
            if key % 2 == 0:
                t = threads.get(ref)
                # Only threads with an answer can answer anyone; open ones are not candidates.
                if t is None or t.status in ("deleted", "open"):
                    continue
                if community_id is not None and t.community_id != community_id:
                    continue
                hits.append(SearchHit("thread", ref, t.search_text, rank, t.status, 0, t.asked_at))
            else:
                f = faqs.get(ref)
                if f is None:
                    continue
                if f.community_id is not None and f.community_id != community_id:
                    continue
                votes = f.helpful - f.not_helpful
                hits.append(SearchHit("faq", ref, f.search_text, rank, "solved", votes, None))
        return hits
