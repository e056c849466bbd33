"""The cyclic garbage collector is paused while a history is read, judged and written.

An import allocates a few container objects per message (records, keys, thread states) and
keeps up to :data:`bot.importing.threads.MEMORY` of them. The collector passes over every
such object that lives on, once in each of its generations: with CPython's default
thresholds (700, 10, 10) that was about a tenth of an import's time, and with thresholds
raised to (50,000, 20, 100) it still was 5-12 % of the import's CPU. Reading, judging and
writing free what they allocate by reference counting: a 100,000-message import leaves about
300 objects in reference cycles (its transactions' session and connection wrappers) for the
collector to find once it runs again, so pausing it holds back almost nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block, then let it run again if it ran before
    (blocks may nest: the outermost one restores it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
