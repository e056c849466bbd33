"""``copss import``: read an export twice, store it once.

The first pass reads the whole file without writing anything: a malformed or truncated file
stops the import there, with the position, before the store is touched (and the pass counts
the messages for the progress bar). The second pass writes batch by batch, each batch its own
short transaction, so a copss running on the same store keeps working. Should the second pass
stop anyway (the process is killed, the disk fills), what was committed stays, and running the
same import again adds exactly what is missing: every row has a stable key.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bot.importing import discord_export, telegram_export
from bot.importing.gcpolicy import fewer_collections
from bot.importing.records import ImportedMessage
from bot.importing.writer import BATCH, ImportStats, Writer
from storage.engine import Database

READERS: dict[str, Callable[[Path], Iterator[ImportedMessage]]] = {
    "telegram": telegram_export.read,
    "discord": discord_export.read,
}
#: The first pass of each reader: the same reading, without building the messages.
CHECKS: dict[str, Callable[[Path], int]] = {
    "telegram": telegram_export.check,
    "discord": discord_export.check,
}


def count(platform: str, path: Path) -> int:
    """How many member messages the export holds; raises
    :class:`~bot.importing.records.ImportFileError` for a file that cannot be read whole."""
    with fewer_collections():
        return CHECKS[platform](path)


async def import_file(
    db: Database,
    platform: str,
    path: Path,
    *,
    progress: bool = False,
    batch: int = BATCH,
    total: int | None = None,
) -> ImportStats:
    """Import an export of ``platform`` (``telegram`` or ``discord``) into ``db``; ``total``:
    the message count of a first pass already made (:func:`count`), else it is made here."""
    if total is None:
        total = count(platform, path)
    writer = Writer(db, batch=batch)
    if not progress:
        return await writer.write(READERS[platform](path))
    from tqdm import tqdm

    with tqdm(
        total=total, unit="msg", unit_scale=True, desc=f"importing {path.name}", file=sys.stderr
    ) as bar:
        return await writer.write(READERS[platform](path), bar.update)
