"""The report's figures are checked against plain SQL that sqlite3 runs on the store's file,
so these tests use a SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.engine import Database, sqlite_url
from tests.conftest import Harness, harness_on


@pytest.fixture
async def db(sqlite_db: Database) -> AsyncIterator[Database]:
    """The SQLite store (the root conftest's ``db`` runs on PostgreSQL too)."""
    yield sqlite_db


@pytest.fixture
async def copss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """copss on a SQLite file in tmp_path."""
    monkeypatch.setenv("COPSS_HOME", str(tmp_path))
    async with harness_on(sqlite_url(tmp_path / "copss.db"), tmp_path) as harness:
        yield harness
