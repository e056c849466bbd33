"""Fewer garbage collections while a history is read and judged.

An import allocates a few container objects per message (records, keys, thread states) and
keeps up to :data:`bot.importing.threads.MEMORY` of them; with CPython's default thresholds
(700, 10, 10) the cyclic collector runs every few messages and rescans the growing memory of
the builder, about a tenth of an import's time. Reading and judging create hardly any
reference cycles, so collecting less often frees the same memory a little later.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Thresholds while importing: a young collection every 50,000 allocations instead of 700.
THRESHOLDS = (50_000, 20, 100)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds (never lower them) for the block, then restore them."""
    before = gc.get_threshold()
    gc.set_threshold(*(max(now, wanted) for now, wanted in zip(before, THRESHOLDS, strict=True)))
    try:
        yield
    finally:
        gc.set_threshold(*before)
