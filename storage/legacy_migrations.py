"""The numbered schema steps copss ran before Alembic: they bring a store made by an older
copss (schema versions 1 to 8) to version 9, the schema the Alembic baseline starts from.

These steps are frozen: they use SQL and table sketches written out here, never
:mod:`storage.models` or the repositories, so that later changes to the models cannot change
what they do. Version 1 has no step: a store without it is new, and the Alembic baseline
(``storage/alembic/versions``) creates version 9 in one go. A store at version 1 may have been
created from the models of any release before version 2, so each step checks what the store
already has before it adds anything.

A step runs for every version missing from the store's ``schema_version`` ledger, not only for
those above its newest one: stores made while version 4 was being written had version 5 and not
4, and the old runner never added version 4's column to them. :func:`repair` also makes good
what no step did: the first release's ``bridge_link`` had no ``status``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, DateTime, Integer, String, bindparam, inspect, text

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


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(table)}


def _timestamp(conn: Connection) -> str:
    return "DATETIME" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"


def _inbox_platform(conn: Connection) -> None:
    # Several processes can share one PostgreSQL store, each running some of the platforms; an
    # event must be handled where its platform's adapter lives (admin checks ask it). A store
    # created at version 1 by a later release has the column already.
    if "platform" not in _columns(conn, "inbox"):
        conn.execute(text("ALTER TABLE inbox ADD COLUMN platform VARCHAR(16)"))
    rows = conn.execute(text("SELECT id, payload FROM inbox WHERE platform IS NULL")).all()
    for row_id, payload in rows:
        data = json.loads(payload) if isinstance(payload, str) else payload
        platform = ((data or {}).get("channel") or {}).get("platform")
        conn.execute(
            text("UPDATE inbox SET platform = :p WHERE id = :id"), {"p": platform, "id": row_id}
        )
    conn.execute(text("CREATE INDEX ix_inbox_platform_pending ON inbox (platform, handled_at)"))


def _components(
    chats: Iterable[tuple[str, str]], edges: Iterable[tuple[tuple[str, str], tuple[str, str]]]
) -> list[list[tuple[str, str]]]:
    # Union-find over chats joined by active links; components in first-seen order.
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(c: tuple[str, str]) -> tuple[str, str]:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    order = []
    for c in chats:
        if c not in parent:
            parent[c] = c
            order.append(c)
    for a, b in edges:
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for c in order:
        groups.setdefault(root(c), []).append(c)
    return list(groups.values())


def _new_community(conn: Connection, source: int, platform: str, chat_id: str) -> int:
    # Named after its first chat (numbered if taken), with the old community's settings.
    base = f"{platform}:{chat_id}"[:190]
    name, n = base, 1
    taken = text("SELECT id FROM community WHERE name = :name")
    while conn.execute(taken, {"name": name}).first() is not None:
        n += 1
        name = f"{base}#{n}"
    created = conn.execute(
        text(
            "INSERT INTO community (name, settings, created_at) "
            "SELECT :name, settings, :now FROM community WHERE id = :source RETURNING id"
        ).bindparams(bindparam("now", type_=DateTime(timezone=True))),
        {"name": name, "now": datetime.now(UTC), "source": source},
    )
    return int(created.scalar_one())


def _split_community(conn: Connection, community_id: int) -> None:
    # Each group of the community's chats that no active link joins gets its own community;
    # the group of the first chat keeps this one. Threads follow the chat their question was
    # asked in; the community's own FAQ entries are copied to each new community.
    rows = conn.execute(
        text("SELECT id, platform, chat_id FROM channel WHERE community_id = :c ORDER BY id"),
        {"c": community_id},
    ).all()
    chat_of = {int(cid): (str(platform), str(chat)) for cid, platform, chat in rows}
    if len(set(chat_of.values())) < 2:
        return
    links = conn.execute(
        text(
            "SELECT channel_a_id, channel_b_id FROM bridge_link WHERE status = 'active' "
            "AND channel_a_id IN :ids AND channel_b_id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": list(chat_of)},
    ).all()
    groups = _components(chat_of.values(), ((chat_of[a], chat_of[b]) for a, b in links))
    copied = sorted(_columns(conn, "faq_entry") - {"id", "community_id"})
    for group in groups[1:]:
        platform, chat = group[0]
        new_id = _new_community(conn, community_id, platform, chat)
        channel_ids = [cid for cid, key in chat_of.items() if key in group]
        conn.execute(
            text("UPDATE channel SET community_id = :new WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"new": new_id, "ids": channel_ids},
        )
        conn.execute(
            text(
                "UPDATE thread SET community_id = :new WHERE community_id = :old AND "
                "question_message_id IN (SELECT id FROM message WHERE channel_id IN :ids)"
            ).bindparams(bindparam("ids", expanding=True)),
            {"new": new_id, "old": community_id, "ids": channel_ids},
        )
        names = ", ".join(copied)
        conn.execute(
            text(
                f"INSERT INTO faq_entry (community_id, {names}) "
                f"SELECT :new, {names} FROM faq_entry WHERE community_id = :old"
            ).bindparams(bindparam("new", type_=Integer)),
            {"new": new_id, "old": community_id},
        )


def _communities_per_chat(conn: Connection) -> None:
    # Every chat used to join one shared community, so an admin of any group administered
    # everyone's knowledge base. Each group of chats joined by active links now gets its own
    # community (the first keeps the old one, its settings and audit log); the old community's
    # FAQ entries are copied to each, so no group loses one. Global entries become read-only
    # from chat: a community hides one with a ``hidden`` row of the same slug.
    if "hidden" not in _columns(conn, "faq_entry"):
        false = "0" if conn.dialect.name == "sqlite" else "false"
        conn.execute(
            text(f"ALTER TABLE faq_entry ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT {false}")
        )
    for (community_id,) in conn.execute(text("SELECT id FROM community ORDER BY id")).all():
        _split_community(conn, int(community_id))


def _inbox_attempts(conn: Connection) -> None:
    # The dispatcher counts each try at handling an event, committed before the handlers run,
    # so an event that keeps failing, hanging or crashing copss is parked instead of holding
    # up the inbox. Existing rows start at no attempt.
    if "attempts" not in _columns(conn, "inbox"):
        conn.execute(text("ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0"))


def _copy_chunks(conn: Connection) -> None:
    # A bridged copy longer than its platform allows is several messages; all their ids are
    # kept so that edits and deletes reach every one. Copies made before knew only their
    # first chunk.
    if "chunk_ids" in _columns(conn, "message_copy"):
        return
    conn.execute(text("ALTER TABLE message_copy ADD COLUMN chunk_ids JSON NOT NULL DEFAULT '[]'"))
    first = (
        "json_array(copy_platform_message_id)"
        if conn.dialect.name == "sqlite"
        else "json_build_array(copy_platform_message_id)"
    )
    conn.execute(text(f"UPDATE message_copy SET chunk_ids = {first}"))


def _embeddings(conn: Connection) -> None:
    # Semantic matching keeps one vector per thread question and FAQ entry per model. A store
    # created at version 1 by a later release has the table already, but never the triggers,
    # and rows written before the triggers existed may point at deleted threads or entries.
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
    # each community's gate where its answer level belongs. Older rows have neither.
    columns = _columns(conn, "suggestion")
    if "level" not in columns:
        conn.execute(text("ALTER TABLE suggestion ADD COLUMN level FLOAT"))
    if "basis" not in columns:
        conn.execute(text("ALTER TABLE suggestion ADD COLUMN basis VARCHAR(16)"))


def _outbox_delivery(conn: Connection) -> None:
    # Every send is recorded as under way before the platform call, so a send copss did not
    # see finish (killed mid-call, a timeout) follows its row's delivery policy; transient
    # failures wait for next_attempt_at.
    columns = _columns(conn, "outbox")
    if "delivery" not in columns:
        conn.execute(
            text(
                "ALTER TABLE outbox ADD COLUMN delivery VARCHAR(16) NOT NULL "
                "DEFAULT 'at_least_once'"
            )
        )
        # Only bridged copies name an author; everything else is copss's own words.
        conn.execute(text("UPDATE outbox SET delivery = 'at_most_once' WHERE as_name IS NULL"))
    for column in ("attempted_at", "next_attempt_at"):
        if column not in columns:
            conn.execute(text(f"ALTER TABLE outbox ADD COLUMN {column} {_timestamp(conn)}"))
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_outbox_chat ON outbox (platform, state, chat_id, id)")
    )


def _answer_message_index(conn: Connection) -> None:
    # Answers are looked up by their message: the answer a reacted-to message gave, the
    # threads a forgotten member answered, the reply targets of an import, and every message
    # delete (its answers go with it by foreign key).
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_answer_message ON answer (message_id)"))


def repair(conn: Connection) -> None:
    """Make good what no numbered step did, before the steps run: the first release's
    ``bridge_link`` had no ``status`` (a later release added it to the models only), and
    version 3 reads it. A link of unknown standing is ``pending``: it relays nothing until an
    admin confirms it again."""
    if "status" not in _columns(conn, "bridge_link"):
        conn.execute(
            text("ALTER TABLE bridge_link ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT 'pending'")
        )


@dataclass(frozen=True)
class Migration:
    """One numbered schema version; ``apply`` brings a store at the version before to it
    (``None`` for version 1, which only the Alembic baseline creates now)."""

    version: int
    name: str
    apply: Callable[[Connection], None] | None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema and search index", None),
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
#: The schema version the numbered steps end at, and the Alembic baseline starts from.
FINAL = MIGRATIONS[-1].version


def ledger(conn: Connection) -> set[int]:
    """The versions the store's ``schema_version`` table lists (empty when it has none)."""
    if not inspect(conn).has_table("schema_version"):
        return set()
    return {int(v) for (v,) in conn.execute(text("SELECT version FROM schema_version"))}


def record(conn: Connection, version: int, name: str) -> None:
    """Add ``version`` to the store's ``schema_version`` ledger."""
    conn.execute(
        text(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (:v, :name, :at)"
        ).bindparams(
            bindparam("v", type_=Integer),
            bindparam("name", type_=String),
            bindparam("at", type_=DateTime(timezone=True)),
        ),
        {"v": version, "name": name, "at": datetime.now(UTC)},
    )


def bring_to_final(conn: Connection, done: set[int]) -> list[int]:
    """Run the steps of every version missing from ``done`` (the ledger), in order, recording
    each; returns the versions applied."""
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done or migration.apply is None:
            continue
        migration.apply(conn)
        record(conn, migration.version, migration.name)
        applied.append(migration.version)
    return applied
