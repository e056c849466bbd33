"""Schema migrations, applied at every start and by ``copss db upgrade``.

Migrations are Alembic revisions in ``storage/alembic/versions``, run from here on the store's
own connection (no ``alembic.ini``). Each is explicit DDL, written once and never changed;
``tests/storage/test_alembic_models.py`` checks that a store they build agrees with
:mod:`storage.models`.

Schema versions are numbered. Versions 1 to 9 were made by copss's earlier numbered runner;
the first Alembic revision, ``0009``, is the baseline: it creates version 9 at once, as that
runner left it (tables, indexes, the SQLite FTS5 index and its triggers, PostgreSQL's text
search indexes, the embedding triggers, the default community). Each later revision is the
next number (``0010``, ...) and revises the one before.

Every store keeps two ledgers: Alembic's ``alembic_version`` (the revision it is at) and copss's
``schema_version`` (a row per version: 1 to 9 from the baseline or the numbered steps, then one
per revision). The second lets an older copss, which knows only ``schema_version``, refuse a
store a newer copss has moved on, instead of running on a schema it does not know.

An upgrade, in one transaction:

1. On PostgreSQL it first takes an advisory lock, so two processes that start at once migrate
   one after the other: the second finds the work done.
2. A store without ``schema_version`` is new: the Alembic revisions create it from nothing.
3. A store made by the numbered runner (it has ``schema_version`` but no ``alembic_version``)
   is brought to version 9 by the frozen numbered steps (:mod:`storage.legacy_migrations`:
   each missing version's step, whatever its number), then stamped with the baseline; a store
   whose ledger misses versions is completed the same way.
4. Alembic then applies the revisions after the store's own.

A store already at the newest revision is only read: Alembic itself is not even imported.

To change the schema: change :mod:`storage.models`, add ``versions/vNNNN_<what>.py`` with
``revision = "NNNN"`` (the next number) and ``down_revision`` the one before, written as
explicit operations (``op.add_column``, ``op.create_index``, ``op.execute``) for both engines,
and raise :data:`LATEST`. Mind SQLite: rebuilding a table (``op.batch_alter_table``) drops its
triggers, which the revision must then create again. The tests compare a store the revisions
build with the models (Alembic's autogenerate comparison, which also tells what to write).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from storage import legacy_migrations as legacy
from storage.engine import Database, StorageError, _reason
from storage.legacy_migrations import ledger

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BASELINE",
    "DEFAULT_COMMUNITY",
    "LATEST",
    "MIGRATIONS",
    "SCRIPTS",
    "Migration",
    "schema_version",
    "upgrade",
]

log = logging.getLogger(__name__)

#: The community the baseline creates; chats join their own communities since version 3.
DEFAULT_COMMUNITY = "default"

#: The Alembic scripts: ``env.py`` and ``versions/``.
SCRIPTS = Path(__file__).with_name("alembic")
#: The first Alembic revision: schema version 9, as the numbered runner left it.
BASELINE = "0009"
#: The newest schema version, the number of the head revision (a test checks they agree).
LATEST = 11

Migration = legacy.Migration
#: The numbered versions 1 to 9 (the baseline stands for all of them in a new store).
MIGRATIONS = legacy.MIGRATIONS

#: The PostgreSQL advisory lock key under which copss migrates ("copss" in ASCII).
LOCK_KEY = 0x636F707373


def revision_id(version: int) -> str:
    """The Alembic revision id of schema version ``version``."""
    return f"{version:04d}"


def _alembic_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _config(conn: Connection, scripts: Path) -> Config:
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolates "%": a path may hold one.
    config.set_main_option("script_location", str(scripts).replace("%", "%%"))
    config.attributes["connection"] = conn
    return config


def _upgrade(conn: Connection, scripts: Path, latest: int) -> list[int]:
    has_ledger = inspect(conn).has_table("schema_version")
    before = ledger(conn)
    newest = max(before, default=0)
    if newest > latest:
        raise StorageError(
            f"database schema version {newest} is newer than this copss ({latest}); upgrade copss"
        )
    revision = _alembic_revision(conn)
    complete = set(range(1, legacy.FINAL + 1)) <= before
    if revision == revision_id(latest) and complete:
        return []
    if has_ledger:
        if 1 not in before:
            raise StorageError(
                "the schema_version table lists no version 1: not a store copss made"
            )
        if revision is None:
            legacy.repair(conn)
        for version in legacy.bring_to_final(conn, before):
            log.info("applied numbered migration %d", version)
    # copss logs each version it applies (here and in storage/alembic/env.py); Alembic's own
    # INFO lines (its plugins, the dialect it assumes) tell an operator nothing.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.util import CommandError

    config = _config(conn, scripts)
    try:
        if has_ledger and revision is None:
            log.info("stamping the store with the Alembic baseline %s", BASELINE)
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    except CommandError as exc:
        raise StorageError(
            f"cannot migrate: {exc} (was the store upgraded by a newer copss?)"
        ) from exc
    return sorted(ledger(conn) - before)


#: Alembic keeps the migration it runs in module globals (``alembic.op``, ``alembic.context``):
#: one process runs one at a time. A thread lock, polled, so that any event loop can wait.
_alembic_turn = threading.Lock()


@asynccontextmanager
async def _one_at_a_time() -> AsyncIterator[None]:
    while True:
        if _alembic_turn.acquire(blocking=False):
            break
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        _alembic_turn.release()


async def _migrate(db: Database, scripts: Path, latest: int) -> list[int]:
    await db.check()
    try:
        async with db.engine.begin() as conn:
            if not db.is_sqlite:
                # Held until this transaction ends: another process migrating the store waits
                # here, then finds what this one committed. (On SQLite the transaction itself
                # holds the store's write lock from its start.)
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            async with _one_at_a_time():
                return await conn.run_sync(_upgrade, scripts, latest)
    except (DBAPIError, SQLAlchemyError) as exc:
        raise StorageError(f"cannot migrate database {db.describe()}: {_reason(exc)}") from exc


async def upgrade(db: Database) -> list[int]:
    """Bring the schema to the newest version; returns the schema versions applied (1 to 9
    for a new store, whose baseline stands for all of them)."""
    return await _migrate(db, SCRIPTS, LATEST)


async def schema_version(db: Database) -> int:
    """The schema version the store is at (0 when empty)."""
    async with db.engine.connect() as conn:
        return max(await conn.run_sync(ledger), default=0)
