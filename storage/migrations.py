"""Versioned schema migrations, applied in order at start-up and by ``copss db upgrade``.

Each migration is a function of a synchronous connection (run inside ``run_sync``) and is
recorded in ``schema_version``. A migration, once released, never changes: later schema changes
are new migrations with explicit DDL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from storage.engine import Database, StorageError, _reason
from storage.models import Base, Community, SchemaVersion
from storage.repos.communities import split_by_links

log = logging.getLogger(__name__)

DEFAULT_COMMUNITY = "default"

#: Search index rows are keyed ``id * 2`` for threads and ``id * 2 + 1`` for FAQ entries, so a
#: trigger can find its row by rowid without scanning.
_SQLITE_SEARCH_DDL = [
    """CREATE VIRTUAL TABLE search_fts USING fts5(
        text, tokenize = 'porter unicode61 remove_diacritics 2')""",
    "CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, 'row')",
    """CREATE TRIGGER thread_search_ai AFTER INSERT ON thread WHEN new.status != 'deleted'
       BEGIN INSERT INTO search_fts(rowid, text) VALUES (new.id * 2, new.search_text); END""",
    """CREATE TRIGGER thread_search_au AFTER UPDATE OF search_text, status ON thread BEGIN
         DELETE FROM search_fts WHERE rowid = old.id * 2;
         INSERT INTO search_fts(rowid, text)
           SELECT new.id * 2, new.search_text WHERE new.status != 'deleted';
       END""",
    """CREATE TRIGGER thread_search_ad AFTER DELETE ON thread
       BEGIN DELETE FROM search_fts WHERE rowid = old.id * 2; END""",
    """CREATE TRIGGER faq_search_ai AFTER INSERT ON faq_entry
       BEGIN INSERT INTO search_fts(rowid, text) VALUES (new.id * 2 + 1, new.search_text); END""",
    """CREATE TRIGGER faq_search_au AFTER UPDATE OF search_text ON faq_entry BEGIN
         DELETE FROM search_fts WHERE rowid = old.id * 2 + 1;
         INSERT INTO search_fts(rowid, text) VALUES (new.id * 2 + 1, new.search_text);
       END""",
    """CREATE TRIGGER faq_search_ad AFTER DELETE ON faq_entry
       BEGIN DELETE FROM search_fts WHERE rowid = old.id * 2 + 1; END""",
]

_POSTGRES_SEARCH_DDL = [
    """CREATE INDEX ix_thread_search ON thread
       USING gin (to_tsvector('simple', search_text))""",
    """CREATE INDEX ix_faq_search ON faq_entry
       USING gin (to_tsvector('simple', search_text))""",
]


def _initial(conn: Connection) -> None:
    # The v1 tables are the models as first released; later migrations alter them explicitly.
    Base.metadata.create_all(conn)
    ddl = _SQLITE_SEARCH_DDL if conn.dialect.name == "sqlite" else _POSTGRES_SEARCH_DDL
    for statement in ddl:
        conn.execute(text(statement))
    conn.execute(insert(Community).values(name=DEFAULT_COMMUNITY, settings={}))


def _inbox_platform(conn: Connection) -> None:
    # Several processes can share one PostgreSQL store, each running some of the platforms; an
    # event must be handled where its platform's adapter lives (admin checks ask it). A store
    # created by migration 1 from the current models has the column already.
    columns = {c["name"] for c in inspect(conn).get_columns("inbox")}
    if "platform" not in columns:
        conn.execute(text("ALTER TABLE inbox ADD COLUMN platform VARCHAR(16)"))
    rows = conn.execute(text("SELECT id, payload FROM inbox WHERE platform IS NULL")).all()
    for row_id, payload in rows:
        data = json.loads(payload) if isinstance(payload, str) else payload
        platform = ((data or {}).get("channel") or {}).get("platform")
        conn.execute(
            text("UPDATE inbox SET platform = :p WHERE id = :id"), {"p": platform, "id": row_id}
        )
    conn.execute(text("CREATE INDEX ix_inbox_platform_pending ON inbox (platform, handled_at)"))


def _communities_per_chat(conn: Connection) -> None:
    # Every chat used to join one shared community, so an admin of any group administered
    # everyone's knowledge base. Each group of chats joined by active links now gets its own
    # community (the first keeps the old one, its settings and audit log); the old community's
    # FAQ entries are copied to each, so no group loses one. Global entries become read-only
    # from chat: a community hides one with a ``hidden`` row of the same slug.
    columns = {c["name"] for c in inspect(conn).get_columns("faq_entry")}
    if "hidden" not in columns:
        false = "0" if conn.dialect.name == "sqlite" else "false"
        conn.execute(
            text(f"ALTER TABLE faq_entry ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT {false}")
        )
    for (community_id,) in conn.execute(text("SELECT id FROM community ORDER BY id")).all():
        split_by_links(conn, int(community_id))


def _copy_chunks(conn: Connection) -> None:
    # A bridged copy longer than its platform allows is several messages; all their ids are
    # kept so that edits and deletes reach every one. Copies made before knew only their
    # first chunk. A store created by migration 1 from the current models has the column.
    columns = {c["name"] for c in inspect(conn).get_columns("message_copy")}
    if "chunk_ids" in columns:
        return
    conn.execute(text("ALTER TABLE message_copy ADD COLUMN chunk_ids JSON NOT NULL DEFAULT '[]'"))
    first = (
        "json_array(copy_platform_message_id)"
        if conn.dialect.name == "sqlite"
        else "json_build_array(copy_platform_message_id)"
    )
    conn.execute(text(f"UPDATE message_copy SET chunk_ids = {first}"))


def _inbox_attempts(conn: Connection) -> None:
    # The dispatcher counts each try at handling an event, committed before the handlers run,
    # so an event that keeps failing, hanging or crashing copss is parked instead of holding
    # up the inbox. A store created by migration 1 from the current models has the column.
    columns = {c["name"] for c in inspect(conn).get_columns("inbox")}
    if "attempts" in columns:
        return
    # The same statement on SQLite and PostgreSQL; existing rows start at no attempt.
    conn.execute(text("ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0"))


#: Embeddings of threads and FAQ entries (float16 vectors per model). ``ref_id`` points at a
#: thread or an entry depending on ``kind``, so no foreign key can remove the row: triggers do,
#: when the thread or entry is deleted and when a thread's question is deleted (its text is
#: then no longer served, and what it said should not linger as a vector).
_SQLITE_EMBEDDING_TABLE = [
    """CREATE TABLE embedding (
        id INTEGER NOT NULL,
        kind VARCHAR(8) NOT NULL,
        ref_id INTEGER NOT NULL,
        model_id VARCHAR(200) NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        text_hash VARCHAR(64) NOT NULL,
        updated_at DATETIME NOT NULL,
        PRIMARY KEY (id),
        CONSTRAINT uq_embedding_ref UNIQUE (kind, ref_id, model_id))""",
    "CREATE INDEX ix_embedding_model ON embedding (model_id, id)",
]
_SQLITE_EMBEDDING_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS thread_embedding_ad AFTER DELETE ON thread BEGIN
         DELETE FROM embedding WHERE kind = 'thread' AND ref_id = old.id; END""",
    """CREATE TRIGGER IF NOT EXISTS thread_embedding_au AFTER UPDATE OF status ON thread
       WHEN new.status = 'deleted' BEGIN
         DELETE FROM embedding WHERE kind = 'thread' AND ref_id = old.id; END""",
    """CREATE TRIGGER IF NOT EXISTS faq_embedding_ad AFTER DELETE ON faq_entry BEGIN
         DELETE FROM embedding WHERE kind = 'faq' AND ref_id = old.id; END""",
]
_POSTGRES_EMBEDDING_TABLE = [
    """CREATE TABLE embedding (
        id SERIAL NOT NULL,
        kind VARCHAR(8) NOT NULL,
        ref_id INTEGER NOT NULL,
        model_id VARCHAR(200) NOT NULL,
        dim INTEGER NOT NULL,
        vector BYTEA NOT NULL,
        text_hash VARCHAR(64) NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        PRIMARY KEY (id),
        CONSTRAINT uq_embedding_ref UNIQUE (kind, ref_id, model_id))""",
    "CREATE INDEX ix_embedding_model ON embedding (model_id, id)",
]
_POSTGRES_EMBEDDING_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION copss_embedding_forget() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
         DELETE FROM embedding WHERE kind = TG_ARGV[0] AND ref_id = OLD.id;
         RETURN NULL;
       END $$""",
    "DROP TRIGGER IF EXISTS thread_embedding_ad ON thread",
    """CREATE TRIGGER thread_embedding_ad AFTER DELETE ON thread
       FOR EACH ROW EXECUTE FUNCTION copss_embedding_forget('thread')""",
    "DROP TRIGGER IF EXISTS thread_embedding_au ON thread",
    """CREATE TRIGGER thread_embedding_au AFTER UPDATE OF status ON thread
       FOR EACH ROW WHEN (NEW.status = 'deleted')
       EXECUTE FUNCTION copss_embedding_forget('thread')""",
    "DROP TRIGGER IF EXISTS faq_embedding_ad ON faq_entry",
    """CREATE TRIGGER faq_embedding_ad AFTER DELETE ON faq_entry
       FOR EACH ROW EXECUTE FUNCTION copss_embedding_forget('faq')""",
]


def _embeddings(conn: Connection) -> None:
    # Semantic matching keeps one vector per thread question and FAQ entry per model. A store
    # created by migration 1 from the current models has the table already, but never the
    # triggers (create_all does not make them), and rows written before the triggers existed
    # may point at deleted threads or entries.
    sqlite = conn.dialect.name == "sqlite"
    if not inspect(conn).has_table("embedding"):
        for statement in _SQLITE_EMBEDDING_TABLE if sqlite else _POSTGRES_EMBEDDING_TABLE:
            conn.execute(text(statement))
    for statement in _SQLITE_EMBEDDING_TRIGGERS if sqlite else _POSTGRES_EMBEDDING_TRIGGERS:
        conn.execute(text(statement))
    conn.execute(
        text(
            "DELETE FROM embedding WHERE (kind = 'thread' AND NOT EXISTS (SELECT 1 FROM thread t "
            "WHERE t.id = embedding.ref_id AND t.status != 'deleted')) OR (kind = 'faq' AND "
            "NOT EXISTS (SELECT 1 FROM faq_entry f WHERE f.id = embedding.ref_id))"
        )
    )


def _suggestion_levels(conn: Connection) -> None:
    # Each suggestion keeps the level the gate compared (the confidence, or the cosine under
    # semantic matching) and which of the two it was: the ✅/❌ on copss's answers then tell
    # each community's gate where its answer level belongs. Older rows have neither and teach
    # nothing. A store created by migration 1 from the current models has the columns.
    columns = {c["name"] for c in inspect(conn).get_columns("suggestion")}
    if "level" not in columns:
        conn.execute(text("ALTER TABLE suggestion ADD COLUMN level FLOAT"))
    if "basis" not in columns:
        conn.execute(text("ALTER TABLE suggestion ADD COLUMN basis VARCHAR(16)"))


def _outbox_delivery(conn: Connection) -> None:
    # Every send is recorded as under way before the platform call, so a send copss did not
    # see finish (killed mid-call, a timeout) follows its row's delivery policy; transient
    # failures wait for next_attempt_at. A store created by migration 1 from the current
    # models has the columns already.
    columns = {c["name"] for c in inspect(conn).get_columns("outbox")}
    if "delivery" not in columns:
        conn.execute(
            text(
                "ALTER TABLE outbox ADD COLUMN delivery VARCHAR(16) NOT NULL "
                "DEFAULT 'at_least_once'"
            )
        )
        # Only bridged copies name an author; everything else is copss's own words.
        conn.execute(text("UPDATE outbox SET delivery = 'at_most_once' WHERE as_name IS NULL"))
    timestamp = "DATETIME" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    for column in ("attempted_at", "next_attempt_at"):
        if column not in columns:
            conn.execute(text(f"ALTER TABLE outbox ADD COLUMN {column} {timestamp}"))
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_outbox_chat ON outbox (platform, state, chat_id, id)")
    )


def _answer_message_index(conn: Connection) -> None:
    # Answers are looked up by their message: the answer a reacted-to message gave, the
    # threads a forgotten member answered, the reply targets of an import, and every message
    # delete (its answers go with it by foreign key). The unique (thread_id, message_id)
    # index cannot serve those, so each scanned the whole table. A store created by migration
    # 1 from the current models has the index already.
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_answer_message ON answer (message_id)"))


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema and search index", _initial),
    Migration(2, "inbox events know their platform", _inbox_platform),
    Migration(
        3, "each chat its own community; global FAQ entries read-only", _communities_per_chat
    ),
    Migration(4, "inbox events count their handling attempts", _inbox_attempts),
    Migration(5, "bridged copies keep every chunk's id", _copy_chunks),
    Migration(6, "embeddings of threads and FAQ entries", _embeddings),
    Migration(7, "suggestions keep the level their gate compared", _suggestion_levels),
    Migration(
        8, "outbox rows record each send before it and their delivery policy", _outbox_delivery
    ),
    Migration(9, "answers are indexed by their message", _answer_message_index),
)
LATEST = MIGRATIONS[-1].version


def _current_version(conn: Connection) -> int:
    if not inspect(conn).has_table(SchemaVersion.__tablename__):
        return 0
    versions = conn.execute(select(SchemaVersion.version)).scalars().all()
    return max(versions, default=0)


def _upgrade(conn: Connection) -> list[int]:
    current = _current_version(conn)
    if current > LATEST:
        raise StorageError(
            f"database schema version {current} is newer than this copss ({LATEST}); upgrade copss"
        )
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        log.info("applying migration %d: %s", migration.version, migration.name)
        migration.apply(conn)
        conn.execute(insert(SchemaVersion).values(version=migration.version, name=migration.name))
        applied.append(migration.version)
    return applied


async def upgrade(db: Database) -> list[int]:
    """Bring the schema to the latest version; returns the versions applied."""
    await db.check()
    try:
        async with db.engine.begin() as conn:
            return await conn.run_sync(_upgrade)
    except (DBAPIError, SQLAlchemyError) as exc:
        raise StorageError(f"cannot migrate database {db.describe()}: {_reason(exc)}") from exc


async def schema_version(db: Database) -> int:
    """The schema version the store is at (0 when empty)."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(_current_version)
