"""The Alembic revisions and storage.models agree: a store the revisions build from nothing
is what the models describe (Alembic's autogenerate finds nothing to change), on SQLite and
on PostgreSQL; and the revisions are numbered as copss's schema versions."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from storage.migrations import BASELINE, LATEST, SCRIPTS, revision_id, schema_version, upgrade
from tests.engines import ENGINES, store_on
from tests.storage.schemas import store_model_differences, store_shape, summary


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_new_store_is_what_the_models_describe(engine: str, tmp_path: Path) -> None:
    async with store_on(engine, tmp_path, migrated=False) as db:
        assert await upgrade(db) == list(range(1, LATEST + 1))
        assert await store_model_differences(db) == []
        async with db.engine.connect() as conn:
            revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        assert revision == revision_id(LATEST)
        assert await schema_version(db) == LATEST
        # The search objects the comparison leaves out are there.
        shape = await store_shape(db)
        if db.is_sqlite:
            assert {"search_fts", "search_vocab"} <= set(shape["virtual tables"])
            assert {"thread_search_ai", "faq_search_ad", "thread_embedding_au"} <= set(
                shape["triggers"]
            )
        else:
            indexes = {i[0] for t in ("thread", "faq_entry") for i in shape["tables"][t]["indexes"]}
            assert {"ix_thread_search", "ix_faq_search"} <= indexes
            assert {"thread_embedding_ad", "faq_embedding_ad"} <= set(shape["triggers"])
        assert await upgrade(db) == []


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_comparison_sees_a_store_that_differs(engine: str, tmp_path: Path) -> None:
    async with store_on(engine, tmp_path) as db:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP INDEX ix_answer_message"))
            await conn.execute(text("ALTER TABLE member ADD COLUMN note TEXT"))
        assert summary(await store_model_differences(db)) == {
            ("add_index", "answer", "ix_answer_message"),
            ("remove_column", "member", "note"),
        }


def test_revisions_are_schema_versions_in_one_line() -> None:
    scripts = ScriptDirectory(str(SCRIPTS))
    assert scripts.get_heads() == [revision_id(LATEST)]
    chain = list(scripts.walk_revisions())  # head first
    assert chain[-1].revision == BASELINE and chain[-1].down_revision is None
    for newer, older in pairwise(chain):
        assert int(newer.revision) == int(older.revision) + 1
        assert newer.down_revision == older.revision
