-- Times are Unix microseconds, UTC.

CREATE TABLE conversations (
	id         INTEGER PRIMARY KEY,
	platform   TEXT NOT NULL,
	workspace  TEXT NOT NULL,
	channel    TEXT NOT NULL,
	thread     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (platform, workspace, channel, thread)
);

CREATE TABLE messages (
	-- AUTOINCREMENT: an id is never reused, so a stream still updating a
	-- message that a reset deleted cannot overwrite a newer one.
	id                INTEGER PRIMARY KEY AUTOINCREMENT,
	conversation_id   INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	role              TEXT NOT NULL,
	author            TEXT NOT NULL,
	platform_id       TEXT, -- NULL until the platform gave the message an id
	text              TEXT NOT NULL,
	model             TEXT NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	status            TEXT NOT NULL,
	attachments       TEXT, -- JSON array; NULL when there are none
	reply_to          INTEGER NOT NULL, -- the question an answer answers; 0 when unknown
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL,
	-- Where History places the message: an answer right after its question
	-- (the question's sort_at and sort_id), anything else at its own
	-- created_at and id. Fixed at Append, as reply_to is, so that History
	-- reads one index in order.
	sort_at           INTEGER NOT NULL,
	sort_id           INTEGER NOT NULL,
	-- Append's idempotency, and MessageByPlatformID's lookup (platform_id first).
	UNIQUE (platform_id, conversation_id)
);

-- History: the newest messages of one conversation.
CREATE INDEX messages_history ON messages (conversation_id, sort_at, sort_id, id);

-- Stranded: the few assistant messages still streaming.
CREATE INDEX messages_streaming ON messages (created_at, id)
	WHERE status = 'streaming' AND role = 'assistant';

CREATE TABLE events (
	platform   TEXT NOT NULL,
	workspace  TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (platform, workspace, event_id)
) WITHOUT ROWID;

CREATE INDEX events_expiry ON events (expires_at);

CREATE TABLE settings (
	platform   TEXT NOT NULL,
	workspace  TEXT NOT NULL,
	scope_kind TEXT NOT NULL,
	scope_id   TEXT NOT NULL,
	name       TEXT NOT NULL,
	value      TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (platform, workspace, scope_kind, scope_id, name)
) WITHOUT ROWID;
