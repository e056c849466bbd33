"""Loading curated knowledge-base files (JSON) into the store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from faq.normalize import search_text
from storage.repos.faq import FaqRepo

STARTER_KB = "starter_kb.json"


class KnowledgeBaseError(ValueError):
    """A knowledge-base file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class KbEntry:
    """One validated entry of a knowledge-base file."""

    slug: str
    question: str
    aliases: tuple[str, ...]
    answer: str
    source_url: str | None
    tags: tuple[str, ...]
    reviewed_at: date | None
    expires_at: date | None


def _date(value: Any, where: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise KnowledgeBaseError(f"{where}: not a date (YYYY-MM-DD): {value!r}") from exc


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KnowledgeBaseError(f"{where}: must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _required(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeBaseError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def parse_entries(data: Any, origin: str) -> list[KbEntry]:
    """Validate a decoded knowledge-base document; every problem names ``origin``."""
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise KnowledgeBaseError(f"{origin}: expected an object with an 'entries' list")
    entries: list[KbEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["entries"]):
        where = f"{origin}: entry {i + 1}"
        if not isinstance(raw, dict):
            raise KnowledgeBaseError(f"{where}: must be an object")
        slug = _required(raw, "slug", where)
        where = f"{origin}: entry {i + 1} ({slug})"
        if slug in seen:
            raise KnowledgeBaseError(f"{where}: duplicate slug")
        seen.add(slug)
        url = raw.get("source_url")
        if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
            raise KnowledgeBaseError(f"{where}: 'source_url' must be an https:// URL")
        entries.append(
            KbEntry(
                slug=slug,
                question=_required(raw, "question", where),
                aliases=_str_list(raw.get("aliases"), f"{where}: 'aliases'"),
                answer=_required(raw, "answer", where),
                source_url=url,
                tags=_str_list(raw.get("tags"), f"{where}: 'tags'"),
                reviewed_at=_date(raw.get("reviewed_at"), f"{where}: 'reviewed_at'"),
                expires_at=_date(raw.get("expires_at"), f"{where}: 'expires_at'"),
            )
        )
    return entries


def read_file(path: Path) -> list[KbEntry]:
    """Read and validate a knowledge-base JSON file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KnowledgeBaseError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{path}: not valid JSON: {exc}") from exc
    return parse_entries(data, str(path))


def starter_entries() -> list[KbEntry]:
    """The starter knowledge base shipped with copss."""
    source = resources.files("faq").joinpath("data", STARTER_KB)
    return parse_entries(json.loads(source.read_text(encoding="utf-8")), f"faq/data/{STARTER_KB}")


async def store_entries(
    repo: FaqRepo, entries: list[KbEntry], community_id: int | None = None
) -> tuple[int, int]:
    """Create or update entries by slug; returns (created, updated)."""
    created = updated = 0
    for e in entries:
        was_new = await repo.upsert(
            community_id,
            e.slug,
            question=e.question,
            aliases=list(e.aliases),
            answer=e.answer,
            source_url=e.source_url,
            tags=list(e.tags),
            reviewed_at=e.reviewed_at,
            expires_at=e.expires_at,
            search_text=search_text([e.question, *e.aliases]),
        )
        created += was_new
        updated += not was_new
    return created, updated
