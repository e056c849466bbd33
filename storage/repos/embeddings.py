"""Stored sentence embeddings of thread questions and FAQ entries, one row per model.

Vectors are kept as float16, little-endian (half the bytes of float32; cosine similarity
between unit vectors moves by about 1e-3, far below what separates a match from a miss) and
come back as float32 matrices. What is embedded is decided by the caller: this module only
stores, compares hashes and reads; it takes the text-building function as an argument so
that storage does not depend on the matcher.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Embedding, FaqEntry, Thread, utcnow

#: The two kinds of document that are embedded.
KINDS = ("thread", "faq")

#: How vectors are stored: float16, little-endian whatever the machine.
STORED_DTYPE = np.dtype("<f2")

#: Rows per insert statement: a few hundred vectors of ~1 KiB each stay well inside both
#: backends' statement and parameter limits.
_WRITE_CHUNK = 500


def text_hash(text: str) -> str:
    """SHA-256 (hex) of the embedded text, as stored in ``embedding.text_hash``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_blob(vector: npt.ArrayLike) -> bytes:
    """A vector as stored: float16 little-endian bytes."""
    return np.asarray(vector, dtype=np.float32).astype(STORED_DTYPE).tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> npt.NDArray[np.float32]:
    """Stored vectors as a float32 matrix ``(len(blobs), dim)``."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype=STORED_DTYPE)
    return flat.reshape(len(blobs), dim).astype(np.float32)


@dataclass(frozen=True)
class Source:
    """What a thread or an FAQ entry offers to embed, and where it may be served.

    ``aliases`` is empty for threads. ``searchable`` mirrors the lexical search: threads whose
    question was deleted and entries that hide a global entry are never served."""

    kind: str
    ref_id: int
    community_id: int | None
    question: str
    aliases: tuple[str, ...]
    status: str
    searchable: bool


#: Builds the embedded text of a :class:`Source` (``faq.index_text`` has the two builders).
TextOf = Callable[[Source], str]


@dataclass(frozen=True)
class Pending:
    """A document whose embedding under a model is missing or was made from another text."""

    source: Source
    text: str
    text_hash: str


@dataclass(frozen=True)
class PendingPage:
    """One page of a scan for pending work: what needs embedding among the rows scanned, and
    where the next page starts (``None``: the scan is done)."""

    pending: list[Pending]
    next_after: int | None
    scanned: int


@dataclass(frozen=True)
class NewVector:
    """One embedding to store."""

    kind: str
    ref_id: int
    text_hash: str


@dataclass
class LoadedBatch:
    """A batch of stored embeddings with where each may be served.

    Row ``i`` of ``vectors`` belongs to ``kinds[i]``/``ref_ids[i]``, served in community
    ``community_ids[i]`` (``None``: a global FAQ entry); ``statuses[i]`` is the thread's
    status, or ``entry``/``hidden`` for FAQ entries; ``searchable[i]`` says whether the
    lexical search would serve it at all. ``last_id`` is the key to continue after."""

    kinds: list[str]
    ref_ids: npt.NDArray[np.int64]
    community_ids: list[int | None]
    statuses: list[str]
    searchable: list[bool]
    vectors: npt.NDArray[np.float32]
    last_id: int

    def __len__(self) -> int:
        return len(self.kinds)


def _thread_source(row: Any) -> Source:
    return Source(
        "thread",
        int(row.id),
        int(row.community_id),
        row.question_text or "",
        (),
        str(row.status),
        row.status != "deleted",
    )


def _entry_source(row: Any) -> Source:
    return Source(
        "faq",
        int(row.id),
        None if row.community_id is None else int(row.community_id),
        row.question or "",
        tuple(str(a) for a in (row.aliases or [])),
        "hidden" if row.hidden else "entry",
        not row.hidden,
    )


class EmbeddingRepo:
    """Embeddings of threads and FAQ entries; wraps a session it does not own."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def sources(
        self, kind: str, ref_ids: Sequence[int], *, lock: bool = False
    ) -> dict[int, Source]:
        """The current text and scope of some threads or entries (missing ids are absent).

        With ``lock`` the rows are share-locked on PostgreSQL until the transaction ends, so a
        thread cannot be deleted (and its trigger run) between this check and the write that
        follows; SQLite's write transactions are serialised anyway."""
        _check_kind(kind)
        if not ref_ids:
            return {}
        query: Any
        if kind == "thread":
            query = select(
                Thread.id, Thread.community_id, Thread.question_text, Thread.status
            ).where(Thread.id.in_(list(ref_ids)))
            build = _thread_source
        else:
            query = select(
                FaqEntry.id,
                FaqEntry.community_id,
                FaqEntry.question,
                FaqEntry.aliases,
                FaqEntry.hidden,
            ).where(FaqEntry.id.in_(list(ref_ids)))
            build = _entry_source
        if lock:
            query = query.with_for_update(read=True)
        rows = await self.session.execute(query)
        return {int(row.id): build(row) for row in rows.all()}

    async def stored(
        self, kind: str, ref_id: int, model_id: str
    ) -> tuple[str, npt.NDArray[np.float32]] | None:
        """A document's embedding under ``model_id``: the hash of the text it was made from,
        and the vector (float32); None when it has none."""
        row = (
            await self.session.execute(
                select(Embedding.text_hash, Embedding.dim, Embedding.vector).where(
                    Embedding.kind == kind,
                    Embedding.ref_id == ref_id,
                    Embedding.model_id == model_id,
                )
            )
        ).first()
        if row is None:
            return None
        return str(row.text_hash), from_blobs([bytes(row.vector)], int(row.dim))[0]

    async def pending(
        self,
        model_id: str,
        kind: str,
        text_of: TextOf,
        *,
        after: int | None = None,
        scan: int = 500,
    ) -> PendingPage:
        """Scan ``scan`` documents of ``kind``, newest first, starting below id ``after``, and
        return those whose embedding under ``model_id`` is missing or was made from another
        text than ``text_of`` builds now. Threads whose question was deleted are skipped."""
        _check_kind(kind)
        joined = and_(
            Embedding.kind == kind,
            Embedding.model_id == model_id,
        )
        query: Any
        if kind == "thread":
            query = (
                select(
                    Thread.id,
                    Thread.community_id,
                    Thread.question_text,
                    Thread.status,
                    Embedding.text_hash,
                )
                .outerjoin(Embedding, and_(joined, Embedding.ref_id == Thread.id))
                .where(Thread.status != "deleted")
                .order_by(Thread.id.desc())
                .limit(scan)
            )
            if after is not None:
                query = query.where(Thread.id < after)
            build = _thread_source
        else:
            query = (
                select(
                    FaqEntry.id,
                    FaqEntry.community_id,
                    FaqEntry.question,
                    FaqEntry.aliases,
                    FaqEntry.hidden,
                    Embedding.text_hash,
                )
                .outerjoin(Embedding, and_(joined, Embedding.ref_id == FaqEntry.id))
                .order_by(FaqEntry.id.desc())
                .limit(scan)
            )
            if after is not None:
                query = query.where(FaqEntry.id < after)
            build = _entry_source
        rows = (await self.session.execute(query)).all()
        found: list[Pending] = []
        for row in rows:
            source = build(row)
            text = text_of(source)
            digest = text_hash(text)
            if row.text_hash != digest:
                found.append(Pending(source, text, digest))
        next_after = int(rows[-1].id) if len(rows) == scan else None
        return PendingPage(found, next_after, len(rows))

    async def places(
        self,
        kind: str,
        community_ids: Sequence[int] | None,
        *,
        after: int = 0,
        limit: int = 5000,
    ) -> list[tuple[int, int | None, bool]]:
        """``(ref_id, community_id, searchable)`` of up to ``limit`` threads or entries with id
        above ``after``, in id order: those of ``community_ids``, or all (None)."""
        _check_kind(kind)
        query: Any
        if kind == "thread":
            query = select(Thread.id, Thread.community_id, Thread.status != "deleted").where(
                Thread.id > after
            )
            if community_ids is not None:
                query = query.where(Thread.community_id.in_(list(community_ids)))
            query = query.order_by(Thread.id).limit(limit)
        else:
            query = select(FaqEntry.id, FaqEntry.community_id, ~FaqEntry.hidden).where(
                FaqEntry.id > after
            )
            if community_ids is not None:
                query = query.where(FaqEntry.community_id.in_(list(community_ids)))
            query = query.order_by(FaqEntry.id).limit(limit)
        rows = await self.session.execute(query)
        return [
            (int(ref), None if community is None else int(community), bool(served))
            for ref, community, served in rows.all()
        ]

    async def remaining(self, model_id: str) -> int:
        """About how many documents have no embedding under ``model_id`` yet (edited texts
        are not counted: telling those apart needs every text read)."""
        threads = await self.session.scalar(
            select(func.count(Thread.id)).where(Thread.status != "deleted")
        )
        entries = await self.session.scalar(select(func.count(FaqEntry.id)))
        stored = await self.count(model_id)
        return max(0, int(threads or 0) + int(entries or 0) - stored)

    async def count(self, model_id: str) -> int:
        """Stored embeddings under ``model_id``."""
        return int(
            await self.session.scalar(
                select(func.count(Embedding.id)).where(Embedding.model_id == model_id)
            )
            or 0
        )

    async def upsert_many(
        self,
        model_id: str,
        rows: Sequence[NewVector],
        vectors: npt.ArrayLike,
    ) -> int:
        """Store embeddings (row ``i`` of ``vectors`` for ``rows[i]``), replacing what a
        document had under ``model_id``: bulk statements, not one flush per row. Returns how
        many were written."""
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(rows):
            raise ValueError(f"{len(rows)} rows but vectors of shape {matrix.shape}")
        if not rows:
            return 0
        for row in rows:
            _check_kind(row.kind)
        dim = int(matrix.shape[1])
        blobs = matrix.astype(STORED_DTYPE)
        now = utcnow()
        values = [
            {
                "kind": row.kind,
                "ref_id": row.ref_id,
                "model_id": model_id,
                "dim": dim,
                "vector": blobs[i].tobytes(),
                "text_hash": row.text_hash,
                "updated_at": now,
            }
            for i, row in enumerate(rows)
        ]
        insert = sqlite_insert if self.dialect == "sqlite" else pg_insert
        for start in range(0, len(values), _WRITE_CHUNK):
            stmt = insert(Embedding).values(values[start : start + _WRITE_CHUNK])
            stmt = stmt.on_conflict_do_update(
                index_elements=["kind", "ref_id", "model_id"],
                set_={
                    "dim": stmt.excluded.dim,
                    "vector": stmt.excluded.vector,
                    "text_hash": stmt.excluded.text_hash,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
            await self.session.execute(stmt)
        return len(values)

    async def load_batch(self, model_id: str, *, after: int = 0, limit: int = 5000) -> LoadedBatch:
        """Up to ``limit`` embeddings under ``model_id`` with row id above ``after`` (in id
        order), with the community, kind and status of their thread or entry. Rows of another
        dimension than the batch's first are skipped (a model id names one dimension)."""
        query = (
            select(
                Embedding.id,
                Embedding.kind,
                Embedding.ref_id,
                Embedding.dim,
                Embedding.vector,
                Thread.community_id.label("t_community"),
                Thread.status,
                FaqEntry.id.label("f_id"),
                FaqEntry.community_id.label("f_community"),
                FaqEntry.hidden,
            )
            .outerjoin(Thread, and_(Embedding.kind == "thread", Thread.id == Embedding.ref_id))
            .outerjoin(FaqEntry, and_(Embedding.kind == "faq", FaqEntry.id == Embedding.ref_id))
            .where(Embedding.model_id == model_id, Embedding.id > after)
            .order_by(Embedding.id)
            .limit(limit)
        )
        rows = (await self.session.execute(query)).all()
        kinds: list[str] = []
        ref_ids: list[int] = []
        communities: list[int | None] = []
        statuses: list[str] = []
        searchable: list[bool] = []
        blobs: list[bytes] = []
        dim = int(rows[0].dim) if rows else 0
        for row in rows:
            if row.dim != dim or len(row.vector) != dim * STORED_DTYPE.itemsize:
                continue
            if row.kind == "thread" and row.t_community is not None:
                communities.append(int(row.t_community))
                statuses.append(str(row.status))
                searchable.append(row.status != "deleted")
            elif row.kind == "faq" and row.f_id is not None:
                communities.append(None if row.f_community is None else int(row.f_community))
                statuses.append("hidden" if row.hidden else "entry")
                searchable.append(not row.hidden)
            else:
                # Its thread or entry is gone (the triggers make this a passing moment).
                continue
            kinds.append(str(row.kind))
            ref_ids.append(int(row.ref_id))
            blobs.append(bytes(row.vector))
        return LoadedBatch(
            kinds,
            np.asarray(ref_ids, dtype=np.int64),
            communities,
            statuses,
            searchable,
            from_blobs(blobs, dim),
            int(rows[-1].id) if rows else after,
        )

    async def load_all(self, model_id: str, *, batch: int = 5000) -> AsyncIterator[LoadedBatch]:
        """Every embedding under ``model_id``, in batches of up to ``batch`` rows, within this
        session (to let writers in between batches, call :meth:`load_batch` in a session per
        batch, as ``bot.features.embeddings.load_index`` does)."""
        after = 0
        while True:
            loaded = await self.load_batch(model_id, after=after, limit=batch)
            if loaded.last_id == after:
                return
            after = loaded.last_id
            if len(loaded):
                yield loaded

    async def delete_model(self, model_id: str) -> int:
        """Remove every embedding made by ``model_id``; returns how many."""
        result: Any = await self.session.execute(
            delete(Embedding).where(Embedding.model_id == model_id)
        )
        return int(result.rowcount or 0)

    async def models(self) -> dict[str, int]:
        """The models with stored embeddings, and how many each has."""
        rows = await self.session.execute(
            select(Embedding.model_id, func.count(Embedding.id)).group_by(Embedding.model_id)
        )
        return {str(m): int(n) for m, n in rows.all()}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
