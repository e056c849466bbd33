"""The import stores exactly the rows it stored before its storage path was rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.importing import rawsql, run
from tests.importing.snapshot import GOLDEN, TABLES, build


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "read-again"])
@pytest.mark.parametrize("returning", [True, False], ids=["returning", "look-ups"])
async def test_import_writes_the_rows_of_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, returning: bool, kept: bool
) -> None:
    # "look-ups": as on SQLite before 3.35, ids are looked up after each insert.
    monkeypatch.setattr(rawsql, "SQLITE_RETURNING", returning and rawsql.SQLITE_RETURNING)
    # "read-again": the first pass keeps nothing (as for an export too large to keep), so the
    # import reads each file a second time.
    if not kept:
        monkeypatch.setattr(run, "KEEP", 0)
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    found = json.loads(json.dumps(await build(tmp_path), ensure_ascii=False))
    assert found["stats"] == expected["stats"]
    for table in TABLES:
        assert found[table]["columns"] == expected[table]["columns"], table
        for got, want in zip(found[table]["rows"], expected[table]["rows"], strict=False):
            assert got == want, table
        assert len(found[table]["rows"]) == len(expected[table]["rows"]), table
    assert found["search_fts"] == expected["search_fts"]
