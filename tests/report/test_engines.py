"""The report on PostgreSQL: the same history gives the same report as on SQLite (whose
figures test_metrics.py and test_output.py check against plain SQL), through build_report and
through ``copss report``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import DEFAULT_OFFICIAL_DOMAINS
from bot.report.output import Report, as_json, build_report
from storage.engine import Database
from tests.engines import postgres_database, store_on
from tests.report.store import NOW, build

pytestmark = pytest.mark.postgres


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """A report's data without the time it was made and the communities' ids: PostgreSQL's
    sequences skip the ids of rows rolled back (a chat's community merged into another), so
    the same history may give a community another id there. Names, order and every figure,
    thread id and link stay."""
    data.pop("generated_at")
    for community in data["communities"]:
        community.pop("community_id")
    return data


def plain(report: Report) -> dict[str, Any]:
    """The report as report.json holds it, comparable across stores."""
    return comparable(json.loads(json.dumps(as_json(report), default=str, ensure_ascii=False)))


async def reports(db: Database) -> list[dict[str, Any]]:
    """Every community's report, of all time and of the last ten days, and community A's."""
    built = await build(db)
    return [
        plain(await build_report(db, DEFAULT_OFFICIAL_DOMAINS, now=NOW)),
        plain(await build_report(db, DEFAULT_OFFICIAL_DOMAINS, since=NOW - timedelta(10), now=NOW)),
        plain(await build_report(db, DEFAULT_OFFICIAL_DOMAINS, built.a, now=NOW)),
    ]


async def test_postgres_report_equals_the_sqlite_one(tmp_path: Path) -> None:
    async with store_on("sqlite", tmp_path) as sqlite:
        expected = await reports(sqlite)
    async with store_on("postgres", tmp_path) as postgres:
        found = await reports(postgres)
    # The history is varied enough for the comparison to mean something.
    a = expected[0]["communities"][0]
    assert a["figures"]["all"]["questions"] > 50 and a["backlog"] and a["topics"]["all"]
    assert expected[1]["communities"][0]["figures"]["all"] != a["figures"]["all"]
    for on_postgres, on_sqlite in zip(found, expected, strict=True):
        assert on_postgres == on_sqlite


def copss_report(url: str, folder: Path) -> dict[str, Any]:
    env = {**os.environ, "COPSS_DATABASE_URL": url, "COPSS_HOME": str(folder)}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "report", "--out", str(folder / "out")],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return comparable(json.loads((folder / "out" / "report.json").read_text("utf-8")))


@pytest.mark.slow
async def test_copss_report_on_postgres(tmp_path: Path) -> None:
    # The command's own run (now is the time of the run: every figure up to it).
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "postgres").mkdir()
    async with store_on("sqlite", tmp_path / "sqlite") as sqlite:
        await build(sqlite)
        url = sqlite.url.render_as_string(hide_password=False)
    on_sqlite = copss_report(url, tmp_path / "sqlite")
    async with postgres_database() as postgres:
        from storage.migrations import upgrade

        await upgrade(postgres)
        await build(postgres)
        url = postgres.url.render_as_string(hide_password=False)
        on_postgres = copss_report(url, tmp_path / "postgres")
    assert on_postgres["communities"][0]["figures"]["all"]["questions"] > 50
    assert on_postgres == on_sqlite
