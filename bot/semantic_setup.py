"""Turning semantic matching on at start: the model, the vector index, the backfill job.

When the model cannot be had (offline at first start, a broken model folder, fetching turned
off) copss says so in one line and matches on words only; nothing else changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.config import Config
from bot.features.embeddings import Backfill, fill_index
from faq.embedding import Embedder, ModelUnavailable, OnnxEmbedder, RecentVectors, ensure_model
from faq.matcher import Gate
from faq.semantic import SEMANTIC_GATE, SemanticMatcher
from faq.vector_index import VectorIndex
from storage.engine import Database, default_database_path

log = logging.getLogger(__name__)

#: Seconds between progress lines while a model downloads.
PROGRESS_EVERY = 5.0


def data_dir(config: Config) -> Path:
    """The data folder models are kept in (beside the default store)."""
    del config  # one data folder per machine user: models are shared by every store
    return default_database_path().parent


@dataclass
class Semantic:
    """The parts semantic matching runs on. The index starts empty: :meth:`load` fills it
    from the store (in the background while copss runs; a large store takes minutes), and
    until then the matcher ranks on words and the word-matching gate decides."""

    embedder: Embedder
    index: VectorIndex
    loaded: asyncio.Event = field(default_factory=asyncio.Event)

    def matcher(self) -> SemanticMatcher:
        """A matcher over this model and index (on words until the index is loaded)."""
        return SemanticMatcher(self.embedder, self.index, ready=self.loaded.is_set)

    async def load(self, db: Database) -> None:
        """Fill the index from the store; matching uses it from then on."""
        if self.loaded.is_set():
            return
        await fill_index(db, self.index)
        self.loaded.set()
        log.info(
            "semantic matching with %s (%d documents indexed)",
            self.embedder.model_id,
            len(self.index),
        )

    def backfill(self, db: Database) -> Backfill:
        """The job that embeds whatever the store holds without an embedding yet."""
        return Backfill(db, self.embedder, self.index)


def _progress(name: str) -> Callable[[int, int], None]:
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY and done != total:
            return
        last[0] = now
        if total:
            log.info("downloading %s: %.0f of %.0f MB", name, done / 1e6, total / 1e6)
        else:
            log.info("downloading %s: %.0f MB", name, done / 1e6)

    return report


def gate_of(config: Config, semantic: bool) -> Gate:
    """The confidence gate: the config's levels where set, else those calibrated for the
    matcher in use; what the levels are compared with (the cosine with semantic matching, the
    confidence without) and the margin are the matcher's."""
    m = config.matching
    base = SEMANTIC_GATE if semantic else Gate()
    return replace(
        base,
        answer_at=m.answer_at if m.answer_at is not None else base.answer_at,
        suggest_at=m.suggest_at if m.suggest_at is not None else base.suggest_at,
        max_suggestions=m.max_suggestions,
    )


def may_fetch(config: Config) -> bool:
    """Whether copss may download a missing model: the config allows it and the environment
    does not forbid it (``COPSS_FETCH_MODEL=0`` on offline machines and in the test suite,
    whatever config a test builds)."""
    off = os.environ.get("COPSS_FETCH_MODEL", "").strip().casefold() in ("0", "false", "no")
    return config.matching.fetch_model and not off


async def start_semantic(config: Config, db: Database) -> Semantic | None:
    """Load (and, the first time, download) the configured model and build the index from the
    store; None, after one log line, when semantic matching is off or cannot run."""
    name = config.matching.model
    if not name:
        return None
    report = _progress(name)
    try:
        folder = await ensure_model(
            name,
            data_dir(config),
            progress=report,
            fetch=may_fetch(config),
        )
        embedder = await asyncio.to_thread(OnnxEmbedder.load, folder)
    except ModelUnavailable as exc:
        log.warning("semantic matching is off, matching words only: %s", exc)
        return None
    del db  # the index is filled by Semantic.load, in the background (App.run)
    log.info("semantic matching with %s; loading the vector index", embedder.model_id)
    # A question is embedded to be stored and again to be matched: the second is a look-up.
    return Semantic(RecentVectors(embedder), VectorIndex(embedder.model_id, embedder.dim))
