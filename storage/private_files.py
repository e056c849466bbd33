"""Files that hold members' words are readable by their owner only.

The store (and its ``-wal``/``-shm`` companions, which SQLite creates with the database file's
own mode) and knowledge-base exports are created ``0600`` in folders created ``0700``. A folder
that already existed is left as it is: it may be the operator's home.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(folder: Path) -> None:
    """Create ``folder`` (and missing parents) owner-only; an existing one is left alone."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        path.mkdir(mode=FOLDER_MODE, exist_ok=True)
        # mkdir's mode is filtered by the umask; the folder must not be group-readable either.
        os.chmod(path, FOLDER_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only if missing, else make it owner-only (with the
    SQLite companions of a database file)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            if candidate.stat().st_mode & 0o077:
                os.chmod(candidate, FILE_MODE)
        except (FileNotFoundError, PermissionError):
            # Missing, or not ours to change: opening it will say what is wrong.
            continue


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new owner-only file (replacing any file there)."""
    private_folder(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, FILE_MODE)
