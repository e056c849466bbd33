"""Stores made by earlier copss releases reach the Alembic head with the schema of a new store,
on SQLite and on PostgreSQL.

``old_stores/`` holds, for every schema version the numbered runner ever left a store at, the
schema an earlier copss made (SQLite: as ``sqlite_master`` keeps it; PostgreSQL: the statements
it ran), with the store's ``schema_version`` rows. Among them: the first release, whose
``bridge_link`` had no ``status``, and version 5 without 4 (made while 4 was being written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from faq.matcher import LexicalMatcher
from storage.engine import Database
from storage.migrations import LATEST, revision_id, schema_version, upgrade
from storage.repos.search import SearchRepo
from tests.engines import ENGINES, store_on
from tests.storage.legacy_stores import OLD, STATES, old_store
from tests.storage.schemas import store_model_differences, store_shape, summary

#: Server defaults a store that came through the numbered steps keeps and a new store lacks:
#: those steps added these NOT NULL columns to tables that may have had rows, which needs a
#: default. copss writes all three on every insert, so the defaults are never used.
KEPT_DEFAULTS = {
    ("faq_entry", "hidden"),
    ("message_copy", "chunk_ids"),
    ("bridge_link", "status"),
}


def without_kept_defaults(shape: dict[str, Any]) -> dict[str, Any]:
    for table, column in KEPT_DEFAULTS:
        kind, nullable, _ = shape["tables"][table]["columns"][column]
        shape["tables"][table]["columns"][column] = (kind, nullable, None)
    return shape


async def ledger(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT version FROM schema_version ORDER BY version"))
        return [int(v) for (v,) in rows]


async def alembic_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.scalar(text("SELECT version_num FROM alembic_version"))


def test_every_version_the_numbered_runner_made_is_here() -> None:
    tops = set()
    for state in STATES:
        rows = (OLD / f"{state}.sqlite.sql").read_text()
        versions = {int(v) for v in _ledger_rows(rows)}
        assert versions == {
            int(v) for v in _ledger_rows((OLD / f"{state}.postgresql.sql").read_text())
        }
        tops.add(max(versions))
    # Versions 3 and 4 were never a store's newest: they came with 5.
    assert tops == {1, 2, 5, 6, 7, 8, 9}


def _ledger_rows(sql: str) -> list[str]:
    marker = "INSERT INTO schema_version (version, name, applied_at) VALUES ("
    return [
        line[len(marker) :].split(",")[0] for line in sql.splitlines() if line.startswith(marker)
    ]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("engine", ENGINES)
async def test_an_old_store_reaches_the_head_with_a_new_stores_schema(
    engine: str, state: str, tmp_path: Path
) -> None:
    async with store_on(engine, tmp_path / "new") as new:
        fresh = await store_shape(new)
    async with old_store(engine, state, tmp_path) as db:
        before = await ledger(db)
        missing = [v for v in range(1, LATEST + 1) if v not in before]
        assert await upgrade(db) == missing
        assert await ledger(db) == list(range(1, LATEST + 1))
        assert await alembic_revision(db) == revision_id(LATEST)
        assert await schema_version(db) == LATEST
        upgraded = await store_shape(db)
        assert without_kept_defaults(upgraded) == without_kept_defaults(fresh)
        # What the models describe, but for the defaults the numbered steps gave.
        differences = summary(await store_model_differences(db))
        assert differences <= {("modify_default", t, c) for t, c in KEPT_DEFAULTS}
        assert await upgrade(db) == []


async def fill_first_release_store(db: Database) -> None:
    """Rows as the first release wrote them: two chats in the shared default community, each
    with a question, a global and a community FAQ entry, a bridge link, an unhandled event, a
    reply in the outbox and a bridged copy."""
    statements = [
        "INSERT INTO member (platform, user_id, display_name, is_bot, opted_out, created_at) "
        "VALUES ('telegram', '7', 'ann', false, false, '2026-11-27 10:00:00+00')",
        "INSERT INTO channel (community_id, platform, chat_id, thread_id, title) VALUES "
        "(1, 'telegram', '-100', '', 'expats'), (1, 'discord', '55', '', 'help')",
        "INSERT INTO message (channel_id, platform_message_id, member_id, text, sent_at, deleted) "
        "VALUES (1, '1', 1, 'How do I register at the gemeente?', '2026-11-27 10:00:00+00', "
        "false), (2, '1', 1, 'Where is the nearest huisarts?', '2026-11-27 10:00:00+00', false)",
        "INSERT INTO thread (community_id, question_message_id, question_text, search_text, "
        "status, asked_at, tags) VALUES (1, 1, 'How do I register at the gemeente?', "
        "'regist gemeent', 'open', '2026-11-27 10:00:00+00', '[]'), (1, 2, 'Where is the "
        "nearest huisarts?', 'nearest huisart', 'open', '2026-11-27 10:00:00+00', '[]')",
        "INSERT INTO faq_entry (community_id, slug, question, aliases, answer, tags, "
        "search_text, helpful, not_helpful) VALUES (1, 'bsn', 'What is a BSN?', '[]', "
        "'Your citizen number.', '[]', 'bsn citizen number', 0, 0), (NULL, 'digid', "
        "'What is DigiD?', '[]', 'Your login.', '[]', 'digid login', 0, 0)",
        "INSERT INTO bridge_link (channel_a_id, channel_b_id, created_at) "
        "VALUES (1, 2, '2026-11-27 10:00:00+00')",
        "INSERT INTO inbox (dedup_key, payload, received_at) VALUES ('message:telegram:1', "
        f"'{json.dumps({'kind': 'message', 'channel': {'platform': 'telegram'}})}', "
        "'2026-11-27 10:00:00+00')",
        "INSERT INTO outbox (platform, chat_id, thread_id, text, meta, state, attempts, "
        "created_at) VALUES ('telegram', '-100', '', 'See the FAQ.', '{}', 'pending', 0, "
        "'2026-11-27 10:00:00+00')",
        "INSERT INTO message_copy (original_id, channel_id, copy_platform_message_id) "
        "VALUES (1, 2, '900')",
    ]
    async with db.engine.begin() as conn:
        for statement in statements:
            if db.is_sqlite:
                statement = statement.replace("false", "0").replace("+00'", "'")
            await conn.execute(text(statement))


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_first_releases_rows_come_through(engine: str, tmp_path: Path) -> None:
    async with old_store(engine, "v1-first-release", tmp_path) as db:
        await fill_first_release_store(db)
        assert await upgrade(db) == list(range(2, LATEST + 1))
        async with db.engine.connect() as conn:

            async def rows(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in (await conn.execute(text(sql))).all()]

            # The link had no standing: it waits for an admin to confirm it again, so the
            # two chats part (version 3), the second taking a copy of the community's entry.
            assert await rows("SELECT status FROM bridge_link") == [("pending",)]
            assert await rows("SELECT chat_id, community_id FROM channel ORDER BY id") == [
                ("-100", 1),
                ("55", 2),
            ]
            assert await rows("SELECT id, community_id FROM thread ORDER BY id") == [(1, 1), (2, 2)]
            assert await rows("SELECT community_id, slug, hidden FROM faq_entry ORDER BY id") == [
                (1, "bsn", False),
                (None, "digid", False),
                (2, "bsn", False),
            ]
            assert await rows("SELECT platform, attempts FROM inbox") == [("telegram", 0)]
            assert await rows("SELECT delivery FROM outbox") == [("at_most_once",)]
            [(chunks,)] = await rows("SELECT chunk_ids FROM message_copy")
            assert (json.loads(chunks) if isinstance(chunks, str) else chunks) == ["900"]
        # The search index still finds the old threads, scoped to their new communities.
        async with db.read() as s:
            repo = SearchRepo(s)
            hits = await repo.candidates(["huisart"], community_id=2)
            assert [(h.kind, h.ref_id) for h in hits] == [("thread", 2)]
            assert await repo.candidates(["huisart"], community_id=1) == []
            matches = await LexicalMatcher().match(repo, "what is a bsn", community_id=2)
            assert matches and matches[0].kind == "faq"
