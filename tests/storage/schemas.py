"""What a store's schema is, as data two stores can be compared by, and how it differs from
storage.models by Alembic's autogenerate comparison."""

from __future__ import annotations

import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from storage.engine import Database
from storage.models import Base

#: Search objects the migrations make that the models do not describe (SQLAlchemy has no way
#: to): SQLite's FTS5 table ``search_fts`` with the shadow tables FTS5 makes for it
#: (``search_fts_data``, ``_idx``, ``_content``, ``_docsize``, ``_config``) and its vocabulary
#: view ``search_vocab``; PostgreSQL's GIN indexes over ``to_tsvector('simple', search_text)``.
#: The shape compared below still includes them (and the triggers), so a store missing one is
#: caught there.
SEARCH_TABLES = re.compile(r"search_fts(_\w+)?|search_vocab")
SEARCH_INDEXES = {"ix_thread_search", "ix_faq_search"}


def _not_search(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "table" and name is not None and SEARCH_TABLES.fullmatch(name):
        return False
    return not (type_ == "index" and name in SEARCH_INDEXES)


def model_differences(conn: Connection) -> list[Any]:
    """What Alembic's autogenerate would change to make the store match storage.models
    (types and server defaults compared too), search objects left out."""
    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": _not_search,
        },
    )
    return list(compare_metadata(context, Base.metadata))


def summary(differences: list[Any]) -> set[tuple[str, str, str | None]]:
    """Autogenerate's differences as ``(kind, table, column or index)``."""
    found: set[tuple[str, str, str | None]] = set()
    for diff in differences:
        # Column changes come as lists: ("modify_default", schema, table, column, ...).
        for item in diff if isinstance(diff, list) else [diff]:
            kind = item[0]
            if kind.endswith("_table"):
                found.add((kind, item[1].name, None))
            elif kind.endswith("_column"):
                found.add((kind, item[2], item[3].name))
            elif kind.startswith("modify_"):
                found.add((kind, item[2], item[3]))
            else:  # indexes and constraints
                found.add((kind, item[1].table.name, item[1].name))
    return found


def _words(sql: str) -> str:
    return " ".join(sql.split())


def _default(value: Any) -> str | None:
    # SQLite keeps a default as written: DEFAULT 0 and DEFAULT '0' are one value in an
    # INTEGER column.
    return None if value is None else str(value).strip("'")


def shape(conn: Connection) -> dict[str, Any]:
    """Every table's columns (type, nullability, default), keys, unique constraints and
    indexes, and the store's triggers (and PostgreSQL functions), by name."""
    found = inspect(conn)
    tables: dict[str, Any] = {}
    for table in found.get_table_names():
        tables[table] = {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"], _default(c.get("default")))
                for c in found.get_columns(table)
            },
            "primary key": found.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    (f.get("options") or {}).get("ondelete"),
                )
                for f in found.get_foreign_keys(table)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in found.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (
                    i["name"] or "",
                    tuple(str(c) for c in i["column_names"]),
                    tuple(_words(str(e)) for e in i.get("expressions") or ()),
                    bool(i["unique"]),
                )
                for i in found.get_indexes(table)
            ),
        }
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
        )
        extra = {"triggers": {name: _words(sql) for name, sql in rows}}
        vtables = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")
        )
        extra["virtual tables"] = {name: _words(sql) for name, sql in vtables}
    else:
        rows = conn.execute(
            text("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal")
        )
        extra = {"triggers": dict(rows.all())}
        functions = conn.execute(
            text(
                "SELECT proname, prosrc FROM pg_proc p JOIN pg_namespace n "
                "ON n.oid = p.pronamespace WHERE nspname = 'public'"
            )
        )
        extra["functions"] = {name: _words(src) for name, src in functions}
    return {"tables": tables, **extra}


async def store_shape(db: Database) -> dict[str, Any]:
    """:func:`shape` of the store ``db``."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(shape)


async def store_model_differences(db: Database) -> list[Any]:
    """:func:`model_differences` of the store ``db``."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(model_differences)


async def table_indexes(db: Database, table: str) -> dict[str, list[str]]:
    """A table's named indexes: name -> columns."""
    async with db.engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes(table))
    return {i["name"]: list(i["column_names"]) for i in found if i["name"]}


async def query_plan(db: Database, sql: str) -> str:
    """How the database plans ``sql``, as text (on a fresh connection: pooled ones keep their
    prepared statements across another connection's schema change)."""
    await db.engine.dispose()
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
            return " ".join(str(row[-1]) for row in rows)
        # The tables are small: the planner would scan them anyway unless told not to.
        await conn.exec_driver_sql("SET enable_seqscan = off")
        return " ".join(str(row[0]) for row in await conn.exec_driver_sql("EXPLAIN " + sql))
