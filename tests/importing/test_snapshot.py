"""The import stores exactly the rows it stored before its storage path was rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.importing import rawsql
from tests.importing.snapshot import GOLDEN, TABLES, build


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "look-ups"])
async def test_import_writes_the_rows_of_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, returning: bool
) -> None:
    # "look-ups": as on SQLite before 3.35, ids are looked up after each insert.
    monkeypatch.setattr(rawsql, "SQLITE_RETURNING", returning and rawsql.SQLITE_RETURNING)
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    found = json.loads(json.dumps(await build(tmp_path), ensure_ascii=False))
    assert found["stats"] == expected["stats"]
    for table in TABLES:
        assert found[table]["columns"] == expected[table]["columns"], table
        for got, want in zip(found[table]["rows"], expected[table]["rows"], strict=False):
            assert got == want, table
        assert len(found[table]["rows"]) == len(expected[table]["rows"]), table
    assert found["search_fts"] == expected["search_fts"]
