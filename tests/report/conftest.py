"""Stores for the report tests. Figures are checked against plain SQL that sqlite3 runs on
the store's file (``db``: SQLite); the tests that need no such file run on SQLite and on
PostgreSQL (``store``), and test_engines.py checks that PostgreSQL gives the SQLite report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.engine import Database, sqlite_url
from tests.conftest import Harness, harness_on
from tests.engines import ENGINES, store_on


@pytest.fixture
async def db(sqlite_db: Database) -> AsyncIterator[Database]:
    """The SQLite store (the root conftest's ``db`` runs on PostgreSQL too)."""
    yield sqlite_db


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty store on SQLite, then on PostgreSQL (skipped, with the reason, where
    no server answers)."""
    async with store_on(request.param, tmp_path) as database:
        yield database


@pytest.fixture
async def copss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """copss on a SQLite file in tmp_path."""
    monkeypatch.setenv("COPSS_HOME", str(tmp_path))
    async with harness_on(sqlite_url(tmp_path / "copss.db"), tmp_path) as harness:
        yield harness
