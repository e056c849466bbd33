"""The store and its companions are readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from storage.models import Member


async def test_new_store_folder_and_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "copss" / "copss.db"
    db = Database(sqlite_url(path))
    try:
        await upgrade(db)
        async with db.session() as s:
            s.add(Member(platform="console", user_id="a", display_name="a"))
        files = [p for p in path.parent.iterdir() if p.name.startswith("copss.db")]
        assert {p.name for p in files} >= {"copss.db", "copss.db-wal", "copss.db-shm"}
        for p in files:
            assert p.stat().st_mode & 0o777 == 0o600, p
        for folder in (path.parent, path.parent.parent):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
    finally:
        await db.close()


async def test_an_existing_world_readable_store_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "copss.db"
    db = Database(sqlite_url(path))
    await upgrade(db)
    await db.close()
    os.chmod(path, 0o644)
    db = Database(sqlite_url(path))
    try:
        await db.check()
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        await db.close()
