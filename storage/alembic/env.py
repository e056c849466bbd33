"""Alembic's environment for copss: run by :mod:`storage.migrations` with the connection it
migrates (``config.attributes["connection"]``), inside the transaction it holds.

Each revision applied adds its schema version to the ``schema_version`` ledger (the revision id
is the version's number), so that an older copss sees the store is newer than it knows.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script
from sqlalchemy import Connection

from storage.legacy_migrations import ledger, record
from storage.models import Base

log = logging.getLogger("storage.migrations")


def _record_version(
    ctx: MigrationContext,
    step: MigrationInfo,
    heads: Collection[Any],
    run_args: Mapping[str, Any],
) -> None:
    # The baseline writes versions 1 to 9 itself; a stamp changes no schema and is recorded
    # by whoever made the schema it names.
    if not step.is_upgrade or step.is_stamp:
        return
    version = int(step.up_revision_id or 0)
    connection = ctx.connection
    assert connection is not None
    script = step.up_revision
    name = script.doc if isinstance(script, Script) else str(version)
    log.info("applied revision %s: %s", step.up_revision_id, name)
    if version not in ledger(connection):
        record(connection, version, name)


def run() -> None:
    """Run the revisions on the connection copss passed in."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "copss runs its migrations itself: `copss db upgrade` (storage.migrations)"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        on_version_apply=_record_version,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
