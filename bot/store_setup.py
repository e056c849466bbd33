"""Opening the store for any copss command: migrate it, check it takes writes, load the
starter knowledge base. Kept apart from bot.app so that commands which only need the store
(import, report, kb, db) start without loading the adapters and the matcher."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Config
from faq.kb import starter_entries, store_entries
from storage.engine import (
    Database,
    StorageError,
    _reason,
    default_database_path,
    default_database_url,
)
from storage.migrations import upgrade
from storage.repos.faq import FaqRepo

log = logging.getLogger(__name__)


def export_dir(config: Config) -> Path:
    """Where ``export`` writes: beside the SQLite file, else in the default data folder."""
    url = make_url(config.storage.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / "exports"
    return default_database_path().parent / "exports"


async def prepare_store(config: Config, *, writable: bool = False) -> Database:
    """Open the store, migrate it, and load the starter knowledge base into an empty one.
    ``writable``: also make sure it takes writes (``copss run``, ``kb load``), so that a
    read-only store stops copss with one message at start instead of failing every event."""
    # Only copss's own default location is created; a configured folder that is missing may
    # have held a store that was removed (docs/reliability.md).
    db = Database(config.storage.url, create_folder=config.storage.url == default_database_url())
    try:
        await upgrade(db)
        if writable:
            await db.check_writable()
        # From now on every transaction checks that the SQLite file is still this one.
        db.remember_file()
        if config.matching.load_starter_kb:
            try:
                async with db.session() as session:
                    repo = FaqRepo(session)
                    if not await repo.all():
                        created, _ = await store_entries(repo, starter_entries())
                        log.info("loaded %d starter knowledge-base entries", created)
            except SQLAlchemyError as exc:
                raise StorageError(
                    f"cannot load the starter knowledge base into {db.where()}: {_reason(exc)}"
                ) from exc
    except BaseException:
        await db.close()
        raise
    return db
