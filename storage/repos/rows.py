"""New rows stored with one Core statement each, then kept by the session as if loaded.

The ORM's unit of work costs several times what the ``INSERT`` itself does (a flush of the
whole session, its bookkeeping per object). :func:`insert_row` stores one new object's row with
a statement built once per table, fills in the column defaults the ORM would have, and adds
the object to the session as persistent: reading and changing it then work as after a flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast

from sqlalchemy import Column, Insert, Table, bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached


def _columns(table: Table) -> list[Column[Any]]:
    # Every column but the integer primary key the database assigns.
    return [c for c in table.columns if not c.primary_key]


@cache
def _insert(table: Table, dialect: str, conflict: tuple[str, ...]) -> Insert:
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = make(table).values({c.key: bindparam(c.key) for c in _columns(table)})
    if conflict:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
    return cast(Insert, statement.returning(*[c for c in table.columns if c.primary_key]))


async def insert_row(
    session: AsyncSession, obj: DeclarativeBase, conflict: Sequence[str] = ()
) -> bool:
    """Store a new (transient) object's row and add it to ``session`` as persistent, its
    primary key set. Attributes never set get their column's default, as a flush gives them.
    With ``conflict`` (the columns of a unique constraint) a row that already has those values
    makes it store nothing and return False (the object stays transient); without, that is an
    ``IntegrityError`` as with a flush."""
    table = cast(Table, type(obj).__table__)
    state = obj.__dict__
    values: dict[str, Any] = {}
    for column in _columns(table):
        if column.key in state:
            values[column.key] = state[column.key]
            continue
        default = column.default
        value: Any = None
        if default is not None and default.is_scalar:
            value = getattr(default, "arg", None)
        elif default is not None and default.is_callable:
            # SQLAlchemy wraps a plain callable to take the execution context, unused here.
            value = getattr(default, "arg")(None)  # noqa: B009
        setattr(obj, column.key, value)
        values[column.key] = value
    statement = _insert(table, session.get_bind().dialect.name, tuple(conflict))
    new_id = await session.scalar(statement, values)
    if new_id is None:
        return False
    (key,) = [c.key for c in table.columns if c.primary_key]
    setattr(obj, key, new_id)
    make_transient_to_detached(obj)
    session.add(obj)
    return True
