"""Keeping the stored embeddings and the in-memory vector index in step with the store.

- :class:`Backfill` embeds, in batches, every thread question and FAQ entry that has no
  embedding under the embedder's model yet or whose text changed since (``text_hash``): after
  a model change, an import, or a first start with semantic matching. Each batch is encoded in
  a worker thread and written in its own transaction, so the job can be cancelled at any point
  and started again without redoing what it finished.
- :func:`load_index` builds the :class:`~faq.vector_index.VectorIndex` from the store at start.
- :func:`embed_now` embeds one thread or entry right after it is written or edited, in the
  caller's transaction.
- :func:`follow_communities` moves documents in the index after chats are linked or unlinked
  (communities merged or split); :func:`forget_other_models` drops the vectors of models no
  longer in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from faq.embedding import Embedder
from faq.index_text import entry_embed_text, thread_embed_text
from faq.vector_index import KINDS, VectorIndex
from storage.engine import Database
from storage.repos.embeddings import (
    EmbeddingRepo,
    NewVector,
    Pending,
    Source,
    text_hash,
)

log = logging.getLogger(__name__)

#: Texts encoded per batch: large enough to keep the model busy, small enough that a cancelled
#: job loses under a second of work and a write transaction stays short.
BATCH = 64
#: Documents read per page while looking for work (most are done on a restart and only
#: hashed).
SCAN = 512
#: Seconds between progress lines.
LOG_EVERY = 5.0
#: Stored embeddings read per transaction while loading the index.
LOAD_BATCH = 5000


def embed_text(source: Source) -> str:
    """The text embedded for a thread or an FAQ entry (``faq.index_text``)."""
    if source.kind == "thread":
        return thread_embed_text(source.question)
    return entry_embed_text(source.question, source.aliases)


@dataclass
class BackfillProgress:
    """What a backfill run has done so far."""

    model_id: str
    #: Documents embedded and stored in this run.
    embedded: int = 0
    #: Documents looked at (most of them already done on a restart).
    scanned: int = 0
    #: Encoded but not stored: deleted or edited again while being encoded (the edit embeds
    #: them anew).
    dropped: int = 0
    #: About how many documents had no embedding when the run started.
    remaining_at_start: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False

    def rate(self, now: float | None = None) -> float:
        """Documents embedded per second so far."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        return self.embedded / elapsed if elapsed > 0 else 0.0


class Backfill:
    """Embeds whatever the store holds without an up-to-date embedding for ``embedder``.

    ``await Backfill(db, embedder, index).run()``; run it as a background task and cancel it
    to stop. FAQ entries come first (few, and answered outright), then threads, newest first.
    """

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        index: VectorIndex,
        *,
        batch: int = BATCH,
        scan: int = SCAN,
        log_every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if index.model_id != embedder.model_id:
            raise ValueError(
                f"index is for model {index.model_id!r}, embedder is {embedder.model_id!r}"
            )
        self.db = db
        self.embedder = embedder
        self.index = index
        self.batch = max(1, batch)
        self.scan = max(self.batch, scan)
        self.log_every = log_every
        self.clock = clock
        self.progress = BackfillProgress(embedder.model_id, started=clock())
        self._logged_at = self.progress.started

    async def run(self) -> BackfillProgress:
        """Embed everything pending; returns what was done."""
        model = self.embedder.model_id
        async with self.db.session() as session:
            self.progress.remaining_at_start = await EmbeddingRepo(session).remaining(model)
        if self.progress.remaining_at_start:
            log.info(
                "embedding %d questions and FAQ entries with %s",
                self.progress.remaining_at_start,
                model,
            )
        for kind in ("faq", "thread"):
            await self._kind(kind)
        self.progress.finished = True
        p = self.progress
        if p.embedded:
            elapsed = self.clock() - p.started
            log.info(
                "embeddings up to date for %s: %d embedded in %.1f s (%.0f/s)",
                model,
                p.embedded,
                elapsed,
                p.rate(self.clock()),
            )
        return p

    async def _kind(self, kind: str) -> None:
        after: int | None = None
        waiting: list[Pending] = []
        while True:
            async with self.db.session() as session:
                page = await EmbeddingRepo(session).pending(
                    self.embedder.model_id, kind, embed_text, after=after, scan=self.scan
                )
            self.progress.scanned += page.scanned
            waiting.extend(page.pending)
            while len(waiting) >= self.batch or (page.next_after is None and waiting):
                chunk, waiting = waiting[: self.batch], waiting[self.batch :]
                await self._embed(kind, chunk)
            if page.next_after is None:
                return
            after = page.next_after

    async def _embed(self, kind: str, chunk: list[Pending]) -> None:
        # Encoding a batch blocks for a few hundred milliseconds: a worker thread.
        vectors = await asyncio.to_thread(self.embedder.encode, [p.text for p in chunk])
        model = self.embedder.model_id
        async with self.db.session() as session:
            repo = EmbeddingRepo(session)
            # Read again, locked, in the writing transaction: a document deleted or edited
            # while it was being encoded is left alone (its delete trigger has run; its edit
            # is embedded by whoever made it, or by the next run).
            current = await repo.sources(kind, [p.source.ref_id for p in chunk], lock=True)
            keep: list[int] = []
            sources: list[Source] = []
            for i, p in enumerate(chunk):
                now = current.get(p.source.ref_id)
                if now is None or (kind == "thread" and not now.searchable):
                    continue
                if text_hash(embed_text(now)) != p.text_hash:
                    continue
                keep.append(i)
                sources.append(now)
            kept = vectors[keep]
            await repo.upsert_many(
                model,
                [
                    NewVector(kind, s.ref_id, chunk[i].text_hash)
                    for i, s in zip(keep, sources, strict=True)
                ],
                kept,
            )
        if sources:
            await asyncio.to_thread(
                self.index.add_many,
                [kind] * len(sources),
                [s.ref_id for s in sources],
                [s.community_id for s in sources],
                kept,
                [s.searchable for s in sources],
            )
        self.progress.embedded += len(sources)
        self.progress.dropped += len(chunk) - len(sources)
        self._maybe_log()

    def _maybe_log(self) -> None:
        now = self.clock()
        if now - self._logged_at < self.log_every:
            return
        self._logged_at = now
        p = self.progress
        left = max(0, p.remaining_at_start - p.embedded)
        log.info(
            "embedding with %s: %d done, %.0f/s, about %d to go",
            p.model_id,
            p.embedded,
            p.rate(now),
            left,
        )


async def load_index(
    db: Database, model_id: str, dim: int | None = None, *, batch: int = LOAD_BATCH
) -> VectorIndex:
    """The vector index of ``model_id``, built from the store (one short transaction per
    ``batch`` rows, so writers are not held up). ``dim`` may be left out when unknown."""
    index = VectorIndex(model_id, dim)
    await fill_index(db, index, batch=batch)
    return index


async def fill_index(db: Database, index: VectorIndex, *, batch: int = LOAD_BATCH) -> int:
    """Load the store's embeddings of the index's model into ``index``, which copss may be
    using meanwhile: a document already in it was embedded since the load began (a new or
    edited question), so its fresher vector is kept. Returns how many were loaded."""
    model_id = index.model_id
    started = time.monotonic()
    loaded_count = 0
    after = 0
    while True:
        async with db.session() as session:
            loaded = await EmbeddingRepo(session).load_batch(model_id, after=after, limit=batch)
        if loaded.last_id == after:
            break
        after = loaded.last_id
        if not len(loaded):
            continue
        if index.dim is not None and loaded.vectors.shape[1] != index.dim:
            log.warning(
                "skipping %d stored embeddings of %s: %d dimensions, not %d",
                len(loaded),
                model_id,
                loaded.vectors.shape[1],
                index.dim,
            )
            continue
        keep = [
            i
            for i, (kind, ref_id) in enumerate(zip(loaded.kinds, loaded.ref_ids, strict=True))
            if (kind, int(ref_id)) not in index
        ]
        if not keep:
            continue
        # Adding to a large HNSW group takes a while: off the event loop.
        await asyncio.to_thread(
            index.add_many,
            [loaded.kinds[i] for i in keep],
            loaded.ref_ids[keep],
            [loaded.community_ids[i] for i in keep],
            loaded.vectors[keep],
            [loaded.searchable[i] for i in keep],
        )
        loaded_count += len(keep)
    if loaded_count:
        log.info(
            "vector index of %s: %d documents loaded in %.1f s",
            model_id,
            loaded_count,
            time.monotonic() - started,
        )
    return loaded_count


async def embed_now(
    session: AsyncSession, embedder: Embedder, index: VectorIndex, kind: str, ref_id: int
) -> bool:
    """Embed one thread (``kind`` ``thread``) or FAQ entry (``faq``) as it now is, in the
    caller's transaction, and update ``index``. Call it after the thread or entry was
    written, edited, hidden or moved; an unchanged text is not encoded again. A thread that is
    gone or whose question was deleted leaves the index (its row goes by trigger). Returns
    whether the document was encoded.

    The index changes at once, before the caller commits: were the transaction rolled back,
    search could return an id the store does not have, which callers drop as they load hits
    from the store (or a vector of a text that was not kept, until the next start)."""
    repo = EmbeddingRepo(session)
    source = (await repo.sources(kind, [ref_id])).get(ref_id)
    if source is None or (kind == "thread" and not source.searchable):
        index.remove(kind, ref_id)
        return False
    text = embed_text(source)
    digest = text_hash(text)
    stored = await repo.stored(kind, ref_id, embedder.model_id)
    encoded = False
    if stored is not None and stored[0] == digest:
        vector = stored[1]
    else:
        vector = (await asyncio.to_thread(embedder.encode, [text]))[0]
        await repo.upsert_many(
            embedder.model_id, [NewVector(kind, ref_id, digest)], np.asarray(vector)[None, :]
        )
        encoded = True
    # In a worker thread: the add that takes a community past HNSW_ABOVE builds its graph,
    # which takes seconds.
    await asyncio.to_thread(
        index.add, kind, ref_id, source.community_id, vector, searchable=source.searchable
    )
    return encoded


async def follow_communities(
    db: Database, index: VectorIndex, community_ids: Sequence[int] | None = None
) -> int:
    """Serve the threads and entries of ``community_ids`` (None: of every community) in the
    community the store now says they belong to, after chats were linked or unlinked (a
    merge moves the other community's threads and entries into the kept one; a split moves
    some to new communities: pass the old and the new ids). Returns how many moved. FAQ
    entries copied into a new community have no embedding yet: run a :class:`Backfill` too."""
    moved = 0
    for kind in KINDS:
        after = 0
        while True:
            async with db.session() as session:
                rows = await EmbeddingRepo(session).places(
                    kind, community_ids, after=after, limit=LOAD_BATCH
                )
            if not rows:
                break
            after = rows[-1][0]
            moved += _follow(index, kind, rows)
    return moved


async def follow_in_session(
    session: AsyncSession,
    embedder: Embedder,
    index: VectorIndex,
    community_ids: Sequence[int],
) -> int:
    """:func:`follow_communities` inside the caller's transaction (the link and unlink
    commands, which move chats between communities): documents move in the index, and FAQ
    entries the move copied into a new community are embedded. Returns how many moved."""
    moved = 0
    repo = EmbeddingRepo(session)
    for kind in KINDS:
        after = 0
        while True:
            rows = await repo.places(kind, community_ids, after=after, limit=LOAD_BATCH)
            if not rows:
                break
            after = rows[-1][0]
            moved += _follow(index, kind, rows)
            if kind == "faq":
                # Entries copied by a split are new rows: not in the index yet.
                for ref_id, _, _ in rows:
                    if index.place(kind, ref_id) is None:
                        await embed_now(session, embedder, index, kind, ref_id)
    return moved


def _follow(index: VectorIndex, kind: str, rows: Sequence[tuple[int, int | None, bool]]) -> int:
    moved = 0
    for ref_id, community_id, searchable in rows:
        place = index.place(kind, ref_id)
        if place is None:
            continue
        if place[0] != community_id:
            index.move(kind, ref_id, community_id)
            moved += 1
        if place[1] != searchable:
            index.set_searchable(kind, ref_id, searchable)
    return moved


async def forget_other_models(db: Database, model_id: str) -> dict[str, int]:
    """Delete the stored vectors of every model but ``model_id`` (after a model change, once
    the new model's backfill has finished); returns how many rows each model had."""
    async with db.session() as session:
        repo = EmbeddingRepo(session)
        others = {m: n for m, n in (await repo.models()).items() if m != model_id}
        for other in others:
            await repo.delete_model(other)
    if others:
        log.info("deleted the stored embeddings of %s", ", ".join(sorted(others)))
    return others
