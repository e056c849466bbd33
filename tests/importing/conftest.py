"""Stores for the import tests: each test that takes ``store`` runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.engine import Database
from tests.engines import ENGINES, store_on


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty store on SQLite (a file in tmp_path), then on PostgreSQL (skipped,
    with the reason, where no server answers)."""
    async with store_on(request.param, tmp_path) as db:
        yield db
