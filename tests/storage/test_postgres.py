"""The same store on PostgreSQL (skipped where no server answers)."""

from __future__ import annotations

import pytest

from faq.kb import starter_entries, store_entries
from faq.matcher import LexicalMatcher
from storage.engine import Database
from storage.migrations import LATEST, schema_version, upgrade
from storage.repos.faq import FaqRepo
from storage.repos.search import SearchRepo

pytestmark = pytest.mark.postgres


async def test_migrate_and_match_on_postgres(pg: Database) -> None:
    assert await upgrade(pg) == list(range(1, LATEST + 1))
    assert await schema_version(pg) == LATEST
    async with pg.session() as s:
        created, _ = await store_entries(FaqRepo(s), starter_entries())
    assert created >= 40
    async with pg.session() as s:
        matches = await LexicalMatcher().match(
            SearchRepo(s), "How do I get a BSN number?", community_id=None
        )
        entry = await FaqRepo(s).get(matches[0].ref_id)
    assert entry is not None and "bsn" in entry.slug
