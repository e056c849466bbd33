"""Per-community matching settings, kept in ``community.settings``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faq.matcher import Gate
from faq.normalize import DEFAULT, Synonyms
from storage.models import Community

ANSWER_AT = "answer_at"
SUGGEST_AT = "suggest_at"
SYNONYMS = "synonyms"


@dataclass(frozen=True)
class CommunitySettings:
    """A community's gate and synonyms on top of the configured defaults."""

    gate: Gate
    synonyms: Synonyms
    synonym_groups: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, community: Community | None, defaults: Gate) -> CommunitySettings:
        """Read a community's settings (missing keys fall back to ``defaults``)."""
        raw: dict[str, Any] = dict(community.settings or {}) if community else {}
        gate = Gate(
            answer_at=float(raw.get(ANSWER_AT, defaults.answer_at)),
            suggest_at=float(raw.get(SUGGEST_AT, defaults.suggest_at)),
            margin=defaults.margin,
            max_suggestions=defaults.max_suggestions,
        )
        groups = _groups(raw)
        return cls(gate, DEFAULT.extended(groups) if groups else DEFAULT, groups)


def _groups(raw: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(g) for g in raw.get(SYNONYMS, []) if g)


def community_synonyms(community: Community | None) -> Synonyms:
    """The built-in synonyms extended with the community's own groups."""
    groups = _groups(dict(community.settings or {})) if community else ()
    return DEFAULT.extended(groups) if groups else DEFAULT


def update_settings(community: Community, **changes: Any) -> None:
    """Store changed settings (the JSON column is replaced so the change is persisted)."""
    merged = dict(community.settings or {})
    merged.update(changes)
    community.settings = merged
