"""Database URLs a newcomer may write are accepted or refused with a way forward."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.engine import Database, StorageError
from storage.migrations import upgrade


async def test_a_plain_sqlite_url_uses_the_async_driver(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        assert db.url.drivername == "sqlite+aiosqlite"
        await upgrade(db)
    finally:
        await db.close()


def test_a_plain_postgresql_url_names_the_async_driver() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/test")
    assert db.url.drivername == "postgresql+asyncpg"


def test_another_database_is_refused_clearly() -> None:
    with pytest.raises(StorageError, match="SQLite or PostgreSQL, not mysql"):
        Database("mysql://root@127.0.0.1/test")


def test_a_missing_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if it were not installed
    with pytest.raises(StorageError, match=r"pip install 'copss\[postgres\]'"):
        Database("postgresql+asyncpg://postgres@127.0.0.1/test")
