"""Schema version 9, as copss's numbered migrations left it: the baseline of every new store.

Revision ID: 0009
Revises:

The DDL is written out per engine, exactly as versions 1 to 9 built it; it never changes. A
store made by the numbered runner is brought to version 9 by its frozen steps
(storage/legacy_migrations.py) and stamped with this revision instead of running it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = None
branch_labels = None
depends_on = None

_SQLITE_TABLES = [
    """CREATE TABLE community (
    id INTEGER NOT NULL,
    name VARCHAR(200) NOT NULL,
    settings JSON NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name)
)""",
    """CREATE TABLE member (
    id INTEGER NOT NULL,
    platform VARCHAR(16) NOT NULL,
    user_id VARCHAR(64) NOT NULL,
    display_name VARCHAR(200) NOT NULL,
    is_bot BOOLEAN NOT NULL,
    opted_out BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (platform, user_id)
)""",
    """CREATE TABLE inbox (
    id INTEGER NOT NULL,
    dedup_key VARCHAR(300) NOT NULL,
    platform VARCHAR(16),
    payload JSON NOT NULL,
    received_at DATETIME NOT NULL,
    handled_at DATETIME,
    error TEXT,
    attempts INTEGER DEFAULT '0' NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (dedup_key)
)""",
    "CREATE INDEX ix_inbox_pending ON inbox (handled_at)",
    "CREATE INDEX ix_inbox_platform_pending ON inbox (platform, handled_at)",
    """CREATE TABLE outbox (
    id INTEGER NOT NULL,
    dedup_key VARCHAR(300),
    platform VARCHAR(16) NOT NULL,
    chat_id VARCHAR(64) NOT NULL,
    thread_id VARCHAR(64) NOT NULL,
    text TEXT NOT NULL,
    reply_to VARCHAR(64),
    as_name VARCHAR(200),
    origin VARCHAR(200),
    meta JSON NOT NULL,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    delivery VARCHAR(16) DEFAULT 'at_least_once' NOT NULL,
    attempted_at DATETIME,
    next_attempt_at DATETIME,
    platform_message_id VARCHAR(64),
    created_at DATETIME NOT NULL,
    sent_at DATETIME,
    PRIMARY KEY (id),
    UNIQUE (dedup_key)
)""",
    "CREATE INDEX ix_outbox_pending ON outbox (platform, state, id)",
    "CREATE INDEX ix_outbox_chat ON outbox (platform, state, chat_id, id)",
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
    CONSTRAINT uq_embedding_ref UNIQUE (kind, ref_id, model_id)
)""",
    "CREATE INDEX ix_embedding_model ON embedding (model_id, id)",
    """CREATE TABLE schema_version (
    version INTEGER NOT NULL,
    name VARCHAR(200) NOT NULL,
    applied_at DATETIME NOT NULL,
    PRIMARY KEY (version)
)""",
    """CREATE TABLE channel (
    id INTEGER NOT NULL,
    community_id INTEGER NOT NULL,
    platform VARCHAR(16) NOT NULL,
    chat_id VARCHAR(64) NOT NULL,
    thread_id VARCHAR(64) NOT NULL,
    title VARCHAR(200),
    PRIMARY KEY (id),
    UNIQUE (platform, chat_id, thread_id),
    FOREIGN KEY(community_id) REFERENCES community (id)
)""",
    """CREATE TABLE faq_entry (
    id INTEGER NOT NULL,
    community_id INTEGER,
    slug VARCHAR(100) NOT NULL,
    question TEXT NOT NULL,
    aliases JSON NOT NULL,
    answer TEXT NOT NULL,
    source_url VARCHAR(500),
    tags JSON NOT NULL,
    reviewed_at DATE,
    expires_at DATE,
    search_text TEXT NOT NULL,
    helpful INTEGER NOT NULL,
    not_helpful INTEGER NOT NULL,
    hidden BOOLEAN NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (community_id, slug),
    FOREIGN KEY(community_id) REFERENCES community (id)
)""",
    """CREATE TABLE audit_log (
    id INTEGER NOT NULL,
    community_id INTEGER,
    actor VARCHAR(200) NOT NULL,
    command VARCHAR(64) NOT NULL,
    args TEXT NOT NULL,
    result TEXT NOT NULL,
    at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(community_id) REFERENCES community (id)
)""",
    """CREATE TABLE message (
    id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    platform_message_id VARCHAR(64) NOT NULL,
    member_id INTEGER,
    text TEXT NOT NULL,
    reply_to VARCHAR(64),
    origin VARCHAR(200),
    sent_at DATETIME NOT NULL,
    edited_at DATETIME,
    deleted BOOLEAN NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (channel_id, platform_message_id),
    FOREIGN KEY(channel_id) REFERENCES channel (id),
    FOREIGN KEY(member_id) REFERENCES member (id) ON DELETE SET NULL
)""",
    """CREATE TABLE bridge_link (
    id INTEGER NOT NULL,
    channel_a_id INTEGER NOT NULL,
    channel_b_id INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    created_by VARCHAR(200),
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (channel_a_id, channel_b_id),
    FOREIGN KEY(channel_a_id) REFERENCES channel (id) ON DELETE CASCADE,
    FOREIGN KEY(channel_b_id) REFERENCES channel (id) ON DELETE CASCADE
)""",
    # SQLite cannot add a foreign key later: the one to answer (created below) is inline.
    """CREATE TABLE thread (
    id INTEGER NOT NULL,
    community_id INTEGER NOT NULL,
    question_message_id INTEGER,
    question_text TEXT NOT NULL,
    search_text TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    asked_at DATETIME NOT NULL,
    first_answer_at DATETIME,
    accepted_answer_id INTEGER,
    tags JSON NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(community_id) REFERENCES community (id),
    UNIQUE (question_message_id),
    FOREIGN KEY(question_message_id) REFERENCES message (id) ON DELETE SET NULL,
    FOREIGN KEY(accepted_answer_id) REFERENCES answer (id) ON DELETE SET NULL
)""",
    "CREATE INDEX ix_thread_community_status ON thread (community_id, status)",
    """CREATE TABLE message_copy (
    id INTEGER NOT NULL,
    original_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    copy_platform_message_id VARCHAR(64) NOT NULL,
    chunk_ids JSON NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (original_id, channel_id),
    FOREIGN KEY(original_id) REFERENCES message (id) ON DELETE CASCADE,
    FOREIGN KEY(channel_id) REFERENCES channel (id) ON DELETE CASCADE
)""",
    """CREATE TABLE answer (
    id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    answered_at DATETIME NOT NULL,
    votes INTEGER NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (thread_id, message_id),
    FOREIGN KEY(thread_id) REFERENCES thread (id) ON DELETE CASCADE,
    FOREIGN KEY(message_id) REFERENCES message (id) ON DELETE CASCADE
)""",
    "CREATE INDEX ix_answer_message ON answer (message_id)",
    """CREATE TABLE suggestion (
    id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    thread_id INTEGER,
    faq_entry_id INTEGER,
    score FLOAT NOT NULL,
    level FLOAT,
    basis VARCHAR(16),
    mode VARCHAR(16) NOT NULL,
    feedback VARCHAR(16),
    bot_message_id VARCHAR(64),
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(message_id) REFERENCES message (id) ON DELETE CASCADE,
    FOREIGN KEY(thread_id) REFERENCES thread (id) ON DELETE CASCADE,
    FOREIGN KEY(faq_entry_id) REFERENCES faq_entry (id) ON DELETE CASCADE
)""",
]

#: The full-text index of threads and FAQ entries. Rows are keyed ``id * 2`` for threads and
#: ``id * 2 + 1`` for entries, so a trigger finds its row by rowid without scanning.
_SQLITE_SEARCH = [
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

#: Embeddings name their thread or entry by ``kind`` and ``ref_id``, so no foreign key can
#: remove them: these triggers do, when the thread or entry is deleted and when a thread's
#: question is deleted.
_SQLITE_EMBEDDING_TRIGGERS = [
    """CREATE TRIGGER thread_embedding_ad AFTER DELETE ON thread BEGIN
         DELETE FROM embedding WHERE kind = 'thread' AND ref_id = old.id; END""",
    """CREATE TRIGGER thread_embedding_au AFTER UPDATE OF status ON thread
       WHEN new.status = 'deleted' BEGIN
         DELETE FROM embedding WHERE kind = 'thread' AND ref_id = old.id; END""",
    """CREATE TRIGGER faq_embedding_ad AFTER DELETE ON faq_entry BEGIN
         DELETE FROM embedding WHERE kind = 'faq' AND ref_id = old.id; END""",
]

_POSTGRES_TABLES = [
    """CREATE TABLE community (
    id SERIAL NOT NULL,
    name VARCHAR(200) NOT NULL,
    settings JSON NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name)
)""",
    """CREATE TABLE member (
    id SERIAL NOT NULL,
    platform VARCHAR(16) NOT NULL,
    user_id VARCHAR(64) NOT NULL,
    display_name VARCHAR(200) NOT NULL,
    is_bot BOOLEAN NOT NULL,
    opted_out BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (platform, user_id)
)""",
    """CREATE TABLE inbox (
    id SERIAL NOT NULL,
    dedup_key VARCHAR(300) NOT NULL,
    platform VARCHAR(16),
    payload JSON NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    handled_at TIMESTAMP WITH TIME ZONE,
    error TEXT,
    attempts INTEGER DEFAULT '0' NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (dedup_key)
)""",
    "CREATE INDEX ix_inbox_pending ON inbox (handled_at)",
    "CREATE INDEX ix_inbox_platform_pending ON inbox (platform, handled_at)",
    """CREATE TABLE outbox (
    id SERIAL NOT NULL,
    dedup_key VARCHAR(300),
    platform VARCHAR(16) NOT NULL,
    chat_id VARCHAR(64) NOT NULL,
    thread_id VARCHAR(64) NOT NULL,
    text TEXT NOT NULL,
    reply_to VARCHAR(64),
    as_name VARCHAR(200),
    origin VARCHAR(200),
    meta JSON NOT NULL,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    delivery VARCHAR(16) DEFAULT 'at_least_once' NOT NULL,
    attempted_at TIMESTAMP WITH TIME ZONE,
    next_attempt_at TIMESTAMP WITH TIME ZONE,
    platform_message_id VARCHAR(64),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    sent_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    UNIQUE (dedup_key)
)""",
    "CREATE INDEX ix_outbox_pending ON outbox (platform, state, id)",
    "CREATE INDEX ix_outbox_chat ON outbox (platform, state, chat_id, id)",
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
    CONSTRAINT uq_embedding_ref UNIQUE (kind, ref_id, model_id)
)""",
    "CREATE INDEX ix_embedding_model ON embedding (model_id, id)",
    """CREATE TABLE schema_version (
    version SERIAL NOT NULL,
    name VARCHAR(200) NOT NULL,
    applied_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (version)
)""",
    """CREATE TABLE channel (
    id SERIAL NOT NULL,
    community_id INTEGER NOT NULL,
    platform VARCHAR(16) NOT NULL,
    chat_id VARCHAR(64) NOT NULL,
    thread_id VARCHAR(64) NOT NULL,
    title VARCHAR(200),
    PRIMARY KEY (id),
    UNIQUE (platform, chat_id, thread_id),
    FOREIGN KEY(community_id) REFERENCES community (id)
)""",
    """CREATE TABLE faq_entry (
    id SERIAL NOT NULL,
    community_id INTEGER,
    slug VARCHAR(100) NOT NULL,
    question TEXT NOT NULL,
    aliases JSON NOT NULL,
    answer TEXT NOT NULL,
    source_url VARCHAR(500),
    tags JSON NOT NULL,
    reviewed_at DATE,
    expires_at DATE,
    search_text TEXT NOT NULL,
    helpful INTEGER NOT NULL,
    not_helpful INTEGER NOT NULL,
    hidden BOOLEAN NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (community_id, slug),
    FOREIGN KEY(community_id) REFERENCES community (id)
)""",
    """CREATE TABLE audit_log (
    id SERIAL NOT NULL,
    community_id INTEGER,
    actor VARCHAR(200) NOT NULL,
    command VARCHAR(64) NOT NULL,
    args TEXT NOT NULL,
    result TEXT NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(community_id) REFERENCES community (id)
)""",
    """CREATE TABLE message (
    id SERIAL NOT NULL,
    channel_id INTEGER NOT NULL,
    platform_message_id VARCHAR(64) NOT NULL,
    member_id INTEGER,
    text TEXT NOT NULL,
    reply_to VARCHAR(64),
    origin VARCHAR(200),
    sent_at TIMESTAMP WITH TIME ZONE NOT NULL,
    edited_at TIMESTAMP WITH TIME ZONE,
    deleted BOOLEAN NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (channel_id, platform_message_id),
    FOREIGN KEY(channel_id) REFERENCES channel (id),
    FOREIGN KEY(member_id) REFERENCES member (id) ON DELETE SET NULL
)""",
    """CREATE TABLE bridge_link (
    id SERIAL NOT NULL,
    channel_a_id INTEGER NOT NULL,
    channel_b_id INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    created_by VARCHAR(200),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (channel_a_id, channel_b_id),
    FOREIGN KEY(channel_a_id) REFERENCES channel (id) ON DELETE CASCADE,
    FOREIGN KEY(channel_b_id) REFERENCES channel (id) ON DELETE CASCADE
)""",
    """CREATE TABLE thread (
    id SERIAL NOT NULL,
    community_id INTEGER NOT NULL,
    question_message_id INTEGER,
    question_text TEXT NOT NULL,
    search_text TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    asked_at TIMESTAMP WITH TIME ZONE NOT NULL,
    first_answer_at TIMESTAMP WITH TIME ZONE,
    accepted_answer_id INTEGER,
    tags JSON NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(community_id) REFERENCES community (id),
    UNIQUE (question_message_id),
    FOREIGN KEY(question_message_id) REFERENCES message (id) ON DELETE SET NULL
)""",
    "CREATE INDEX ix_thread_community_status ON thread (community_id, status)",
    """CREATE TABLE message_copy (
    id SERIAL NOT NULL,
    original_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    copy_platform_message_id VARCHAR(64) NOT NULL,
    chunk_ids JSON NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (original_id, channel_id),
    FOREIGN KEY(original_id) REFERENCES message (id) ON DELETE CASCADE,
    FOREIGN KEY(channel_id) REFERENCES channel (id) ON DELETE CASCADE
)""",
    """CREATE TABLE answer (
    id SERIAL NOT NULL,
    thread_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    answered_at TIMESTAMP WITH TIME ZONE NOT NULL,
    votes INTEGER NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (thread_id, message_id),
    FOREIGN KEY(thread_id) REFERENCES thread (id) ON DELETE CASCADE,
    FOREIGN KEY(message_id) REFERENCES message (id) ON DELETE CASCADE
)""",
    "CREATE INDEX ix_answer_message ON answer (message_id)",
    """CREATE TABLE suggestion (
    id SERIAL NOT NULL,
    message_id INTEGER NOT NULL,
    thread_id INTEGER,
    faq_entry_id INTEGER,
    score FLOAT NOT NULL,
    level FLOAT,
    basis VARCHAR(16),
    mode VARCHAR(16) NOT NULL,
    feedback VARCHAR(16),
    bot_message_id VARCHAR(64),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(message_id) REFERENCES message (id) ON DELETE CASCADE,
    FOREIGN KEY(thread_id) REFERENCES thread (id) ON DELETE CASCADE,
    FOREIGN KEY(faq_entry_id) REFERENCES faq_entry (id) ON DELETE CASCADE
)""",
    """ALTER TABLE thread ADD FOREIGN KEY(accepted_answer_id) REFERENCES answer (id)
    ON DELETE SET NULL""",
]

#: Text search over the same ``search_text`` columns: ``to_tsvector('simple', ...)`` indexes.
_POSTGRES_SEARCH = [
    "CREATE INDEX ix_thread_search ON thread USING gin (to_tsvector('simple', search_text))",
    "CREATE INDEX ix_faq_search ON faq_entry USING gin (to_tsvector('simple', search_text))",
]

_POSTGRES_EMBEDDING_TRIGGERS = [
    """CREATE FUNCTION copss_embedding_forget() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
         DELETE FROM embedding WHERE kind = TG_ARGV[0] AND ref_id = OLD.id;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER thread_embedding_ad AFTER DELETE ON thread
       FOR EACH ROW EXECUTE FUNCTION copss_embedding_forget('thread')""",
    """CREATE TRIGGER thread_embedding_au AFTER UPDATE OF status ON thread
       FOR EACH ROW WHEN (NEW.status = 'deleted')
       EXECUTE FUNCTION copss_embedding_forget('thread')""",
    """CREATE TRIGGER faq_embedding_ad AFTER DELETE ON faq_entry
       FOR EACH ROW EXECUTE FUNCTION copss_embedding_forget('faq')""",
]

#: The numbered versions this revision stands for, as the old runner recorded them.
_VERSIONS = [
    (1, "initial schema and search index"),
    (2, "inbox events know their platform"),
    (3, "each chat its own community; global FAQ entries read-only"),
    (4, "inbox events count their handling attempts"),
    (5, "bridged copies keep every chunk's id"),
    (6, "embeddings of threads and FAQ entries"),
    (7, "suggestions keep the level their gate compared"),
    (8, "outbox rows record each send before it and their delivery policy"),
    (9, "answers are indexed by their message"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        statements = _SQLITE_TABLES + _SQLITE_SEARCH + _SQLITE_EMBEDDING_TRIGGERS
    else:
        statements = _POSTGRES_TABLES + _POSTGRES_SEARCH + _POSTGRES_EMBEDDING_TRIGGERS
    for statement in statements:
        op.execute(statement)
    now = datetime.now(UTC)
    community = sa.table(
        "community",
        sa.column("name", sa.String),
        sa.column("settings", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(community, [{"name": "default", "settings": {}, "created_at": now}])
    ledger = sa.table(
        "schema_version",
        sa.column("version", sa.Integer),
        sa.column("name", sa.String),
        sa.column("applied_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        ledger, [{"version": v, "name": name, "applied_at": now} for v, name in _VERSIONS]
    )


def downgrade() -> None:
    raise NotImplementedError("copss does not remove its schema: restore a backup instead")
