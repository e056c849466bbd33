"""Per-community matching settings, kept in ``community.settings``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from faq.matcher import Gate
from faq.normalize import DEFAULT, Synonyms
from storage.models import Community

ANSWER_AT = "answer_at"
SUGGEST_AT = "suggest_at"
SYNONYMS = "synonyms"
#: The answer level learned from members' ✅/❌ (bot.features.learning), with its label count.
LEARNED = "learned"


@dataclass(frozen=True)
class CommunitySettings:
    """A community's gate and synonyms on top of the configured defaults."""

    gate: Gate
    synonyms: Synonyms
    synonym_groups: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, community: Community | None, defaults: Gate) -> CommunitySettings:
        """Read a community's settings: a level an admin set, else the answer level learned
        from feedback (on the same basis as ``defaults``), else ``defaults``."""
        raw: dict[str, Any] = dict(community.settings or {}) if community else {}
        answer_at = learned_answer_at(raw, defaults)
        gate = replace(
            defaults,
            answer_at=float(
                raw.get(ANSWER_AT, answer_at if answer_at is not None else defaults.answer_at)
            ),
            suggest_at=float(raw.get(SUGGEST_AT, defaults.suggest_at)),
        )
        groups = _groups(raw)
        return cls(gate, DEFAULT.extended(groups) if groups else DEFAULT, groups)


def learned_answer_at(raw: dict[str, Any], defaults: Gate) -> float | None:
    """The learned answer level in a community's settings, if it was learned on the basis the
    gate compares now and stays above the suggest level in force."""
    learned = raw.get(LEARNED)
    if not isinstance(learned, dict) or learned.get("basis") != defaults.basis:
        return None
    level = float(learned.get("answer_at", defaults.answer_at))
    return max(level, float(raw.get(SUGGEST_AT, defaults.suggest_at)))


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
