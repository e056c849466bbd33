"""A revision after the baseline: it reaches new stores, stores at the baseline and stores of
the numbered runner alike, adds its version to ``schema_version``, and a copss that does not
know it refuses the store instead of running on a schema it does not know."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from storage.engine import Database, StorageError
from storage.migrations import LATEST, SCRIPTS, _migrate, schema_version, upgrade
from tests.engines import ENGINES, store_on
from tests.storage.legacy_stores import old_store
from tests.storage.schemas import store_shape

NEXT = LATEST + 1
REVISION = f'''"""Members can carry a note.

Revision ID: {NEXT:04d}
Revises: {LATEST:04d}
"""

import sqlalchemy as sa
from alembic import op

revision = "{NEXT:04d}"
down_revision = "{LATEST:04d}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("member", sa.Column("note", sa.Text()))
    {{then}}


def downgrade() -> None:
    op.drop_column("member", "note")
'''


def scripts_with(tmp_path: Path, then: str = "pass") -> Path:
    """copss's scripts with one more revision (which does ``then`` after its change)."""
    copy = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    revision = REVISION.replace("{then}", then)
    (copy / "versions" / f"v{NEXT:04d}_member_note.py").write_text(revision)
    return copy


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """copss's scripts with one more revision."""
    return scripts_with(tmp_path)


async def state(db: Database) -> tuple[str, list[tuple[int, str]], bool]:
    async with db.engine.connect() as conn:
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        rows = await conn.execute(text("SELECT version, name FROM schema_version ORDER BY 1"))
        columns = await conn.run_sync(lambda c: inspect(c).get_columns("member"))
    return (
        str(revision),
        [(int(v), str(n)) for v, n in rows],
        "note" in {c["name"] for c in columns},
    )


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_new_store_runs_every_revision(engine: str, scripts: Path, tmp_path: Path) -> None:
    async with store_on(engine, tmp_path, migrated=False) as db:
        assert await _migrate(db, scripts, NEXT) == list(range(1, NEXT + 1))
        revision, ledger, has_note = await state(db)
        assert revision == f"{NEXT:04d}" and has_note
        assert ledger[-1] == (NEXT, "Members can carry a note.")
        assert [v for v, _ in ledger] == list(range(1, NEXT + 1))
        assert await _migrate(db, scripts, NEXT) == []


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_store_at_the_baseline_gets_the_revision_and_an_older_copss_refuses_it(
    engine: str, scripts: Path, tmp_path: Path
) -> None:
    async with store_on(engine, tmp_path) as db:
        assert await _migrate(db, scripts, NEXT) == [NEXT]
        assert await schema_version(db) == NEXT
        with pytest.raises(StorageError, match=f"version {NEXT} is newer than this copss"):
            await upgrade(db)


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_store_of_the_numbered_runner_gets_the_revision(
    engine: str, scripts: Path, tmp_path: Path
) -> None:
    async with old_store(engine, "v8", tmp_path) as db:
        assert await _migrate(db, scripts, NEXT) == list(range(9, NEXT + 1))
        revision, ledger, has_note = await state(db)
        assert revision == f"{NEXT:04d}" and has_note
        assert [v for v, _ in ledger] == list(range(1, NEXT + 1))


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_failing_revision_leaves_the_store_as_it_was(engine: str, tmp_path: Path) -> None:
    broken = scripts_with(tmp_path, then='op.execute("UPDATE no_such_table SET x = 1")')
    async with old_store(engine, "v8", tmp_path) as db:
        before = await store_shape(db)
        with pytest.raises(StorageError, match="no_such_table"):
            await _migrate(db, broken, NEXT)
        # Neither the numbered step 9, nor the stamp, nor the new column stayed.
        assert await store_shape(db) == before
        async with db.engine.connect() as conn:
            assert (
                max((await conn.execute(text("SELECT version FROM schema_version"))).scalars()) == 8
            )


async def test_an_unknown_revision_is_refused(sqlite_db: Database) -> None:
    async with sqlite_db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0042'"))
    with pytest.raises(StorageError, match="0042"):
        await upgrade(sqlite_db)


async def test_two_stores_migrate_at_once_in_one_process(tmp_path: Path) -> None:
    # Alembic's operations are module globals: the two runs must take turns.
    stores = [Database(f"sqlite+aiosqlite:///{tmp_path / name}") for name in ("a.db", "b.db")]
    try:
        results = await asyncio.gather(*(upgrade(db) for db in stores))
        assert results == [list(range(1, LATEST + 1))] * 2
        for db in stores:
            assert await schema_version(db) == LATEST
    finally:
        for db in stores:
            await db.close()
