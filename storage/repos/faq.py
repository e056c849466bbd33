"""Curated knowledge-base entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from storage.models import FaqEntry


class FaqRepo:
    """The community's curated answers (and the global starter set, ``community_id`` NULL)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, entry_id: int) -> FaqEntry | None:
        """An entry by id."""
        return await self.session.get(FaqEntry, entry_id)

    async def by_slug(self, community_id: int | None, slug: str) -> FaqEntry | None:
        """An entry by its slug within a community (or the global set)."""
        cond = (
            FaqEntry.community_id.is_(None)
            if community_id is None
            else FaqEntry.community_id == community_id
        )
        return await self.session.scalar(select(FaqEntry).where(cond, FaqEntry.slug == slug))

    async def by_slugs(self, community_id: int | None, slugs: Sequence[str]) -> dict[str, FaqEntry]:
        """The entries of a community (or of the global set) with these slugs, by slug."""
        cond = (
            FaqEntry.community_id.is_(None)
            if community_id is None
            else FaqEntry.community_id == community_id
        )
        found: dict[str, FaqEntry] = {}
        # In chunks: SQLite before 3.32 takes at most 999 parameters a statement.
        for start in range(0, len(slugs), 500):
            chunk = list(slugs[start : start + 500])
            rows = await self.session.scalars(
                select(FaqEntry).where(cond, FaqEntry.slug.in_(chunk))
            )
            found.update((e.slug, e) for e in rows)
        return found

    def add(self, community_id: int | None, slug: str, **fields: Any) -> FaqEntry:
        """A new entry, written at the session's next flush."""
        entry = FaqEntry(community_id=community_id, slug=slug, **fields)
        self.session.add(entry)
        return entry

    async def upsert(self, community_id: int | None, slug: str, **fields: Any) -> bool:
        """Create or update an entry; returns True when it was created."""
        entry = await self.by_slug(community_id, slug)
        created = entry is None
        if entry is None:
            entry = FaqEntry(community_id=community_id, slug=slug, **fields)
            self.session.add(entry)
        else:
            for key, value in fields.items():
                setattr(entry, key, value)
        await self.session.flush()
        return created

    async def effective(self, community_id: int | None, slug: str) -> FaqEntry | None:
        """The entry a community sees under ``slug``: its own row (None when that row hides
        the global entry), else the global one."""
        if community_id is not None:
            own = await self.by_slug(community_id, slug)
            if own is not None:
                return None if own.hidden else own
        return await self.by_slug(None, slug)

    async def all(self, community_id: int | None = None) -> Sequence[FaqEntry]:
        """The entries a community sees, by slug: its own (not hidden) and the global ones it
        has not overridden or hidden. Without a community: the global entries."""
        mine = aliased(FaqEntry)
        scope: list[ColumnElement[bool]] = [FaqEntry.community_id.is_(None)]
        if community_id is not None:
            scope = [
                and_(
                    FaqEntry.community_id.is_(None),
                    ~exists().where(mine.community_id == community_id, mine.slug == FaqEntry.slug),
                ),
                and_(FaqEntry.community_id == community_id, FaqEntry.hidden.is_(False)),
            ]
        rows = await self.session.scalars(
            select(FaqEntry).where(or_(*scope)).order_by(FaqEntry.slug)
        )
        return rows.all()

    async def stale(
        self, today: date, community_id: int | None = None, max_age_days: int = 365
    ) -> Sequence[FaqEntry]:
        """Entries past their expiry date or not reviewed within ``max_age_days``."""
        entries = await self.all(community_id)
        return [
            e
            for e in entries
            if (e.expires_at is not None and e.expires_at < today)
            or e.reviewed_at is None
            or (today - e.reviewed_at).days > max_age_days
        ]
