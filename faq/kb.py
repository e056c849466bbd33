"""Loading curated knowledge-base files (JSON) into the store."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from faq.index_text import entry_search_text
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


#: What an entry may contain; anything else is a typo that would otherwise vanish silently.
FIELDS = frozenset(
    {"slug", "question", "aliases", "answer", "source_url", "tags", "reviewed_at", "expires_at"}
)
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,99}$")
MAX_QUESTION = 500
#: An answer fits one chat message together with copss's headline and the source link.
MAX_ANSWER = 3000
MAX_URL = 500
MAX_ITEMS = 20
MAX_ITEM = 200


def _date(value: Any, where: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise KnowledgeBaseError(f"{where}: not a date (YYYY-MM-DD): {str(value)[:40]!r}") from exc


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise KnowledgeBaseError(f"{where}: must be a list of strings")
    items = tuple(v.strip() for v in value if v.strip())
    if len(items) > MAX_ITEMS or any(len(v) > MAX_ITEM for v in items):
        raise KnowledgeBaseError(
            f"{where}: at most {MAX_ITEMS} items of at most {MAX_ITEM} characters each"
        )
    return items


def _required(raw: dict[str, Any], key: str, where: str, limit: int) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeBaseError(f"{where}: '{key}' must be a non-empty string")
    if len(value.strip()) > limit:
        raise KnowledgeBaseError(f"{where}: '{key}' is longer than {limit} characters")
    return value.strip()


def validate_slug(value: Any, where: str) -> str:
    """A valid slug (lowercase letters, digits and ``-``, 2-100 characters) or an error."""
    if not isinstance(value, str) or not SLUG.match(value.strip()):
        shown = value[:40] if isinstance(value, str) else value
        raise KnowledgeBaseError(
            f"{where}: slug {shown!r} must be 2-100 lowercase letters, digits and '-'"
        )
    return value.strip()


def validate_url(value: Any, where: str) -> str | None:
    """An https:// link without spaces (or None) or an error."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value.startswith("https://")
        or any(ch.isspace() for ch in value)
        or len(value) > MAX_URL
        or len(value) <= len("https://")
    ):
        raise KnowledgeBaseError(
            f"{where}: 'source_url' must be an https:// link without spaces, "
            f"at most {MAX_URL} characters"
        )
    return value


def parse_entry(raw: Any, where: str) -> KbEntry:
    """Validate one entry; the one set of rules for knowledge-base files and chat commands."""
    if not isinstance(raw, dict):
        raise KnowledgeBaseError(f"{where}: must be an object")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise KnowledgeBaseError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(FIELDS))}"
        )
    slug = validate_slug(raw.get("slug"), where)
    where = f"{where} ({slug})"
    return KbEntry(
        slug=slug,
        question=_required(raw, "question", where, MAX_QUESTION),
        aliases=_str_list(raw.get("aliases"), f"{where}: 'aliases'"),
        answer=_required(raw, "answer", where, MAX_ANSWER),
        source_url=validate_url(raw.get("source_url"), where),
        tags=_str_list(raw.get("tags"), f"{where}: 'tags'"),
        reviewed_at=_date(raw.get("reviewed_at"), f"{where}: 'reviewed_at'"),
        expires_at=_date(raw.get("expires_at"), f"{where}: 'expires_at'"),
    )


def parse_entries(data: Any, origin: str) -> list[KbEntry]:
    """Validate a decoded knowledge-base document; every problem names ``origin``."""
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise KnowledgeBaseError(f"{origin}: expected an object with an 'entries' list")
    entries: list[KbEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["entries"]):
        entry = parse_entry(raw, f"{origin}: entry {i + 1}")
        if entry.slug in seen:
            raise KnowledgeBaseError(f"{origin}: entry {i + 1} ({entry.slug}): duplicate slug")
        seen.add(entry.slug)
        entries.append(entry)
    return entries


class EntryFields(Protocol):
    """What a validated entry and a stored ``FaqEntry`` row both have."""

    @property
    def question(self) -> str: ...
    @property
    def aliases(self) -> Sequence[str]: ...
    @property
    def answer(self) -> str: ...
    @property
    def source_url(self) -> str | None: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def reviewed_at(self) -> date | None: ...
    @property
    def expires_at(self) -> date | None: ...


def as_fields(entry: EntryFields) -> dict[str, Any]:
    """The stored columns of an entry (without its slug): of a validated one to store it, of a
    stored one to copy it."""
    return {
        "question": entry.question,
        "aliases": list(entry.aliases),
        "answer": entry.answer,
        "source_url": entry.source_url,
        "tags": list(entry.tags),
        "reviewed_at": entry.reviewed_at,
        "expires_at": entry.expires_at,
    }


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
    """Create or update entries by slug; returns (created, updated). Entries are indexed with
    the built-in synonyms (the global set is shared by every community). The stored entries
    are looked up together and the changes written in one flush (not a look-up and a write
    per entry: loading the starter set into a new store took twice as long)."""
    stored = await repo.by_slugs(community_id, [e.slug for e in entries])
    created = updated = 0
    for e in entries:
        fields = {**as_fields(e), "search_text": entry_search_text(e.question, e.aliases)}
        entry = stored.get(e.slug)
        if entry is None:
            # Noted, so that a slug given twice updates the entry its first giving made.
            stored[e.slug] = repo.add(community_id, e.slug, **fields)
            created += 1
        else:
            for key, value in fields.items():
                setattr(entry, key, value)
            updated += 1
    await repo.session.flush()
    return created, updated
