"""``copss import``: read an export whole before storing any of it, then store it once.

The first pass reads the whole file without writing anything: a malformed or truncated file
stops the import there, with the position, before the store is touched (and the pass counts
the messages for the progress bar). It keeps the messages it read while they take less than
:data:`KEEP` bytes; the import then stores those, and only a larger file is read a second
time. The writing goes batch by batch, each batch its own short transaction, so a copss
running on the same store keeps working. Should it stop anyway (the process is killed, the
disk fills), what was committed stays, and running the same import again adds exactly what
is missing: every row has a stable key.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bot.importing import discord_export, telegram_export
from bot.importing.gcpolicy import collector_paused
from bot.importing.records import FirstPass, ImportedMessage
from bot.importing.writer import BATCH, ImportStats, Writer
from storage.engine import Database

READERS: dict[str, Callable[[Path], Iterator[ImportedMessage]]] = {
    "telegram": telegram_export.read,
    "discord": discord_export.read,
}
#: The first pass of each reader: the same reading, building the messages only to keep them.
CHECKS: dict[str, Callable[[Path, FirstPass | None], int]] = {
    "telegram": telegram_export.check,
    "discord": discord_export.check,
}
#: Bytes of messages (estimated, :data:`~bot.importing.records.RECORD_BYTES` each plus the
#: text) the first pass keeps for the import: reading the file again takes about a tenth of
#: an import's time, keeping 100,000 short chat messages about 42 MB.
KEEP = 64 * 2**20


def first_pass(platform: str, path: Path, keep: int | None = None) -> FirstPass:
    """Read the whole export once, keeping its messages up to ``keep`` bytes (default
    :data:`KEEP`); raises :class:`~bot.importing.records.ImportFileError` for a file that
    cannot be read whole."""
    found = FirstPass(KEEP if keep is None else keep)
    with collector_paused():
        CHECKS[platform](path, found)
    return found


def count(platform: str, path: Path) -> int:
    """How many member messages the export holds; raises
    :class:`~bot.importing.records.ImportFileError` for a file that cannot be read whole."""
    return first_pass(platform, path, 0).count


async def import_file(
    db: Database,
    platform: str,
    path: Path,
    *,
    progress: bool = False,
    batch: int = BATCH,
    checked: FirstPass | None = None,
) -> ImportStats:
    """Import an export of ``platform`` (``telegram`` or ``discord``) into ``db``; ``checked``:
    the :func:`first_pass` already made over ``path``, else it is made here."""
    if checked is None:
        checked = first_pass(platform, path)
    messages = checked.take()
    if messages is None:
        messages = READERS[platform](path)
    writer = Writer(db, batch=batch)
    if not progress:
        return await writer.write(messages)
    from tqdm import tqdm

    with tqdm(
        total=checked.count,
        unit="msg",
        unit_scale=True,
        desc=f"importing {path.name}",
        file=sys.stderr,
    ) as bar:
        return await writer.write(messages, bar.update)
