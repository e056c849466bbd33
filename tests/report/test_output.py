"""report.json holds the figures plain SQL finds in the store; report.html is one page with
nothing to fetch and no scripts; ``copss report`` writes both."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config import DEFAULT_OFFICIAL_DOMAINS
from bot.report.output import build_report, write_report
from storage.engine import Database
from tests.report.expected import Expected
from tests.report.store import NOW, build


def _same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value), key


async def test_json_figures_equal_plain_sql(db: Database, tmp_path: Path) -> None:
    built = await build(db)
    report = await build_report(db, DEFAULT_OFFICIAL_DOMAINS, now=NOW)
    json_path, html_path = write_report(report, tmp_path / "out")
    assert json_path.stat().st_mode & 0o777 == 0o600
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert [c["community_id"] for c in data["communities"]] == [built.a, built.b]
    for community in data["communities"]:
        exp = Expected(tmp_path / "copss.db", community["community_id"], NOW)
        for scope in ["all", *community["platforms"]]:
            platform = None if scope == "all" else scope
            _same(community["figures"][scope], exp.figures(platform))
            for week in community["weekly"][scope]:
                _same(week, exp.figures(platform, week["start"]))
            asked, given = exp.hours(platform)
            hours = community["hours"][scope]
            assert (hours["questions"], hours["answers"]) == (asked, given)
            assert hours["without_answers"] == [h for h in range(24) if not given[h]]
        assert [(w["thread_id"], w["link"]) for w in community["backlog"]] == exp.backlog()
    a = data["communities"][0]
    assert a["topics"]["all"] and all(t["questions"] > 0 for t in a["topics"]["all"])
    html = html_path.read_text(encoding="utf-8")
    # Every figure of the summary table is on the page.
    figures = a["figures"]["all"]
    for n in ("members_active", "askers", "answerers", "answers", "newcomers", "questions"):
        assert f"<td>{figures[n]}</td>" in html, n
    assert f"Waiting for an answer ({len(a['backlog'])})" in html
    assert f'href="{a["backlog"][0]["link"]}"' in html


async def test_html_is_self_contained(store: Database, tmp_path: Path) -> None:
    await build(store)
    report = await build_report(store, DEFAULT_OFFICIAL_DOMAINS, now=NOW)
    _, html_path = write_report(report, tmp_path / "out")
    html = html_path.read_text(encoding="utf-8")
    assert "<script" not in html.casefold()
    assert "default-src 'none'" in html
    # No attribute loads anything: links (<a href>) are the only addresses on the page.
    assert not re.search(r"\b(src|srcset|data|action|formaction)\s*=", html)
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?https?:", html, re.I)
    hrefs = re.findall(r"<(\w+)[^>]*\bhref=", html)
    assert set(hrefs) <= {"a", "use"}
    assert "<!DOCTYPE svg" not in html and "<?xml" not in html
    # Four charts per community, and the topics chart where a question matched a topic.
    with_topics = sum(1 for c in report.communities if c.topics["all"])
    assert with_topics == 1 and html.count("<svg") == 4 * 2 + with_topics
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids repeat between charts"


def _copss(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COPSS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'copss.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


async def test_copss_report_command(db: Database, tmp_path: Path) -> None:
    built = await build(db)
    await db.close()
    out = _copss(tmp_path, "report", "--community", str(built.a), "--since", "2025-03-10")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "copss-report"
    data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert [c["community_id"] for c in data["communities"]] == [built.a]
    assert data["since"] == "2025-03-10T00:00:00+00:00"
    since = "2025-03-10 00:00:00"
    asked = [q for q in Expected(tmp_path / "copss.db", built.a, NOW).questions if q[5] >= since]
    assert data["communities"][0]["figures"]["all"]["questions"] == len(asked)
    assert f"{len(asked)} questions" in out.stdout
    assert (folder / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    missing = _copss(tmp_path, "report", "--community", "999")
    assert missing.returncode == 2 and "no community 999" in missing.stderr
    bad = _copss(tmp_path, "report", "--since", "last week")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
