-- The statements copss at commit 7ba273c ran to make a PostgreSQL store (schema versions
-- 1, 2, 3, 4, 5, 6, 7), with its ledger rows.
CREATE TABLE community (
	id SERIAL NOT NULL,
	name VARCHAR(200) NOT NULL,
	settings JSON NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);
CREATE TABLE member (
	id SERIAL NOT NULL,
	platform VARCHAR(16) NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	display_name VARCHAR(200) NOT NULL,
	is_bot BOOLEAN NOT NULL,
	opted_out BOOLEAN NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (platform, user_id)
);
CREATE TABLE inbox (
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
);
CREATE INDEX ix_inbox_pending ON inbox (handled_at);
CREATE TABLE outbox (
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
	platform_message_id VARCHAR(64),
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	sent_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id),
	UNIQUE (dedup_key)
);
CREATE INDEX ix_outbox_pending ON outbox (platform, state, id);
CREATE TABLE embedding (
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
);
CREATE INDEX ix_embedding_model ON embedding (model_id, id);
CREATE TABLE schema_version (
	version SERIAL NOT NULL,
	name VARCHAR(200) NOT NULL,
	applied_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (version)
);
CREATE TABLE channel (
	id SERIAL NOT NULL,
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
);
CREATE TABLE audit_log (
	id SERIAL NOT NULL,
	community_id INTEGER,
	actor VARCHAR(200) NOT NULL,
	command VARCHAR(64) NOT NULL,
	args TEXT NOT NULL,
	result TEXT NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(community_id) REFERENCES community (id)
);
CREATE TABLE message (
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
);
CREATE TABLE bridge_link (
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
);
CREATE TABLE thread (
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
);
CREATE INDEX ix_thread_community_status ON thread (community_id, status);
CREATE TABLE message_copy (
	id SERIAL NOT NULL,
	original_id INTEGER NOT NULL,
	channel_id INTEGER NOT NULL,
	copy_platform_message_id VARCHAR(64) NOT NULL,
	chunk_ids JSON NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (original_id, channel_id),
	FOREIGN KEY(original_id) REFERENCES message (id) ON DELETE CASCADE,
	FOREIGN KEY(channel_id) REFERENCES channel (id) ON DELETE CASCADE
);
CREATE TABLE answer (
	id SERIAL NOT NULL,
	thread_id INTEGER NOT NULL,
	message_id INTEGER NOT NULL,
	answered_at TIMESTAMP WITH TIME ZONE NOT NULL,
	votes INTEGER NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (thread_id, message_id),
	FOREIGN KEY(thread_id) REFERENCES thread (id) ON DELETE CASCADE,
	FOREIGN KEY(message_id) REFERENCES message (id) ON DELETE CASCADE
);
CREATE TABLE suggestion (
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
);
ALTER TABLE thread ADD FOREIGN KEY(accepted_answer_id) REFERENCES answer (id) ON DELETE SET NULL;
CREATE INDEX ix_thread_search ON thread
       USING gin (to_tsvector('simple', search_text));
CREATE INDEX ix_faq_search ON faq_entry
       USING gin (to_tsvector('simple', search_text));
CREATE INDEX ix_inbox_platform_pending ON inbox (platform, handled_at);
CREATE OR REPLACE FUNCTION copss_embedding_forget() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
         DELETE FROM embedding WHERE kind = TG_ARGV[0] AND ref_id = OLD.id;
         RETURN NULL;
       END $$;
DROP TRIGGER IF EXISTS thread_embedding_ad ON thread;
CREATE TRIGGER thread_embedding_ad AFTER DELETE ON thread
       FOR EACH ROW EXECUTE FUNCTION copss_embedding_forget('thread');
DROP TRIGGER IF EXISTS thread_embedding_au ON thread;
CREATE TRIGGER thread_embedding_au AFTER UPDATE OF status ON thread
       FOR EACH ROW WHEN (NEW.status = 'deleted')
       EXECUTE FUNCTION copss_embedding_forget('thread');
DROP TRIGGER IF EXISTS faq_embedding_ad ON faq_entry;
CREATE TRIGGER faq_embedding_ad AFTER DELETE ON faq_entry
       FOR EACH ROW EXECUTE FUNCTION copss_embedding_forget('faq');
INSERT INTO community (name, settings, created_at) VALUES ('default', '{}', '2026-11-29 12:00:00+00');
INSERT INTO schema_version (version, name, applied_at) VALUES (1, 'initial schema and search index', '2026-11-29 12:00:00+00');
INSERT INTO schema_version (version, name, applied_at) VALUES (2, 'inbox events know their platform', '2026-11-29 12:00:00+00');
INSERT INTO schema_version (version, name, applied_at) VALUES (3, 'each chat its own community; global FAQ entries read-only', '2026-11-29 12:00:00+00');
INSERT INTO schema_version (version, name, applied_at) VALUES (4, 'inbox events count their handling attempts', '2026-11-29 12:00:00+00');
INSERT INTO schema_version (version, name, applied_at) VALUES (5, 'bridged copies keep every chunk''s id', '2026-11-29 12:00:00+00');
INSERT INTO schema_version (version, name, applied_at) VALUES (6, 'embeddings of threads and FAQ entries', '2026-11-29 12:00:00+00');
INSERT INTO schema_version (version, name, applied_at) VALUES (7, 'suggestions keep the level their gate compared', '2026-11-29 12:00:00+00');
