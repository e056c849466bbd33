"""``copss report``: every community's figures, written as report.json and report.html."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.report.metrics import CommunityHealth, community_health, community_ids
from bot.report.official import OfficialSources
from storage.engine import Database
from storage.private_files import private_folder, write_private


@dataclass(frozen=True)
class Report:
    """The figures of one or every community, as of ``generated_at``."""

    generated_at: datetime
    since: datetime | None
    official_domains: tuple[str, ...]
    communities: list[CommunityHealth]


async def build_report(
    db: Database,
    official_domains: tuple[str, ...],
    community_id: int | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> Report:
    """The report of one community (or of every community with a channel)."""
    now = now or datetime.now(UTC)
    official = OfficialSources(official_domains)
    async with db.session() as session:
        ids = [community_id] if community_id is not None else await community_ids(session)
        communities = [
            await community_health(session, cid, official, since=since, now=now) for cid in ids
        ]
    return Report(now, since, official.domains, communities)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def as_json(report: Report) -> dict[str, Any]:
    """The report as plain data (what report.json holds)."""
    data = dataclasses.asdict(report)
    for community, health in zip(data["communities"], report.communities, strict=True):
        for scope, hours in health.hours.items():
            community["hours"][scope]["without_answers"] = hours.without_answers
    data["timezone"] = "UTC"
    data["week_starts"] = "Monday"
    return data


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    """Write report.json and report.html into ``out`` (created owner-only: they quote
    members' questions); returns their paths."""
    from bot.report.render_html import render

    private_folder(out)
    json_path, html_path = out / "report.json", out / "report.html"
    text = json.dumps(as_json(report), default=_plain, ensure_ascii=False, indent=1)
    write_private(json_path, text + "\n")
    write_private(html_path, render(report))
    return json_path, html_path
