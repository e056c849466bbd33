-- The schema of a SQLite store made by copss at commit fedc162 (schema versions 1), as
-- sqlite_master keeps it (FTS5 makes its own shadow tables), with its ledger rows.
CREATE TABLE community (
	id INTEGER NOT NULL,
	name VARCHAR(200) NOT NULL,
	settings JSON NOT NULL,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);
CREATE TABLE member (
	id INTEGER NOT NULL,
	platform VARCHAR(16) NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	display_name VARCHAR(200) NOT NULL,
	is_bot BOOLEAN NOT NULL,
	opted_out BOOLEAN NOT NULL,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (platform, user_id)
);
CREATE TABLE inbox (
	id INTEGER NOT NULL,
	dedup_key VARCHAR(300) NOT NULL,
	payload JSON NOT NULL,
	received_at DATETIME NOT NULL,
	handled_at DATETIME,
	error TEXT,
	PRIMARY KEY (id),
	UNIQUE (dedup_key)
);
CREATE INDEX ix_inbox_pending ON inbox (handled_at);
CREATE TABLE outbox (
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
	platform_message_id VARCHAR(64),
	created_at DATETIME NOT NULL,
	sent_at DATETIME,
	PRIMARY KEY (id),
	UNIQUE (dedup_key)
);
CREATE INDEX ix_outbox_pending ON outbox (platform, state, id);
CREATE TABLE schema_version (
	version INTEGER NOT NULL,
	name VARCHAR(200) NOT NULL,
	applied_at DATETIME NOT NULL,
	PRIMARY KEY (version)
);
CREATE TABLE channel (
	id INTEGER NOT NULL,
	community_id INTEGER NOT NULL,
	platform VARCHAR(16) NOT NULL,
	chat_id VARCHAR(64) NOT NULL,
	thread_id VARCHAR(64) NOT NULL,
	title VARCHAR(200),
	PRIMARY KEY (id),
	UNIQUE (platform, chat_id, thread_id),
	FOREIGN KEY(community_id) REFERENCES community (id)
);
CREATE TABLE faq_entry (
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
	PRIMARY KEY (id),
	UNIQUE (community_id, slug),
	FOREIGN KEY(community_id) REFERENCES community (id)
);
CREATE TABLE audit_log (
	id INTEGER NOT NULL,
	community_id INTEGER,
	actor VARCHAR(200) NOT NULL,
	command VARCHAR(64) NOT NULL,
	args TEXT NOT NULL,
	result TEXT NOT NULL,
	at DATETIME NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(community_id) REFERENCES community (id)
);
CREATE TABLE message (
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
);
CREATE TABLE bridge_link (
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
);
CREATE TABLE thread (
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
);
CREATE INDEX ix_thread_community_status ON thread (community_id, status);
CREATE TABLE message_copy (
	id INTEGER NOT NULL,
	original_id INTEGER NOT NULL,
	channel_id INTEGER NOT NULL,
	copy_platform_message_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (original_id, channel_id),
	FOREIGN KEY(original_id) REFERENCES message (id) ON DELETE CASCADE,
	FOREIGN KEY(channel_id) REFERENCES channel (id) ON DELETE CASCADE
);
CREATE TABLE answer (
	id INTEGER NOT NULL,
	thread_id INTEGER NOT NULL,
	message_id INTEGER NOT NULL,
	answered_at DATETIME NOT NULL,
	votes INTEGER NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (thread_id, message_id),
	FOREIGN KEY(thread_id) REFERENCES thread (id) ON DELETE CASCADE,
	FOREIGN KEY(message_id) REFERENCES message (id) ON DELETE CASCADE
);
CREATE TABLE suggestion (
	id INTEGER NOT NULL,
	message_id INTEGER NOT NULL,
	thread_id INTEGER,
	faq_entry_id INTEGER,
	score FLOAT NOT NULL,
	mode VARCHAR(16) NOT NULL,
	feedback VARCHAR(16),
	bot_message_id VARCHAR(64),
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(message_id) REFERENCES message (id) ON DELETE CASCADE,
	FOREIGN KEY(thread_id) REFERENCES thread (id) ON DELETE CASCADE,
	FOREIGN KEY(faq_entry_id) REFERENCES faq_entry (id) ON DELETE CASCADE
);
CREATE VIRTUAL TABLE search_fts USING fts5(
        text, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE search_vocab USING fts5vocab(search_fts, 'row');
CREATE TRIGGER thread_search_ai AFTER INSERT ON thread WHEN new.status != 'deleted'
       BEGIN INSERT INTO search_fts(rowid, text) VALUES (new.id * 2, new.search_text); END;
CREATE TRIGGER thread_search_au AFTER UPDATE OF search_text, status ON thread BEGIN
         DELETE FROM search_fts WHERE rowid = old.id * 2;
         INSERT INTO search_fts(rowid, text)
           SELECT new.id * 2, new.search_text WHERE new.status != 'deleted';
       END;
CREATE TRIGGER thread_search_ad AFTER DELETE ON thread
       BEGIN DELETE FROM search_fts WHERE rowid = old.id * 2; END;
CREATE TRIGGER faq_search_ai AFTER INSERT ON faq_entry
       BEGIN INSERT INTO search_fts(rowid, text) VALUES (new.id * 2 + 1, new.search_text); END;
CREATE TRIGGER faq_search_au AFTER UPDATE OF search_text ON faq_entry BEGIN
         DELETE FROM search_fts WHERE rowid = old.id * 2 + 1;
         INSERT INTO search_fts(rowid, text) VALUES (new.id * 2 + 1, new.search_text);
       END;
CREATE TRIGGER faq_search_ad AFTER DELETE ON faq_entry
       BEGIN DELETE FROM search_fts WHERE rowid = old.id * 2 + 1; END;
INSERT INTO community (name, settings, created_at) VALUES ('default', '{}', '2026-11-29 12:00:00.000000');
INSERT INTO schema_version (version, name, applied_at) VALUES (1, 'initial schema and search index', '2026-11-29 12:00:00.000000');
