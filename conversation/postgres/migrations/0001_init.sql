CREATE TABLE conversations (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	platform   text NOT NULL,
	workspace  text NOT NULL,
	channel    text NOT NULL,
	thread     text NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	UNIQUE (platform, workspace, channel, thread)
);

-- Append takes a message's id before inserting it (sort_id needs it).
CREATE SEQUENCE messages_id_seq AS bigint;

CREATE TABLE messages (
	id                bigint PRIMARY KEY DEFAULT nextval('messages_id_seq'),
	conversation_id   bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	role              text NOT NULL,
	author            text NOT NULL,
	platform_id       text, -- NULL until the platform gave the message an id
	text              text NOT NULL,
	model             text NOT NULL,
	prompt_tokens     integer NOT NULL,
	completion_tokens integer NOT NULL,
	status            text NOT NULL,
	attachments       jsonb, -- NULL when there are none
	reply_to          bigint NOT NULL, -- the question an answer answers; 0 when unknown
	created_at        timestamptz NOT NULL,
	updated_at        timestamptz NOT NULL,
	-- Where History places the message: an answer right after its question
	-- (the question's sort_at and sort_id), anything else at its own
	-- created_at and id. Fixed at Append, as reply_to is, so that History
	-- reads one index in order.
	sort_at           timestamptz NOT NULL,
	sort_id           bigint NOT NULL,
	-- Append's idempotency, and MessageByPlatformID's lookup (platform_id first).
	UNIQUE (platform_id, conversation_id)
);

ALTER SEQUENCE messages_id_seq OWNED BY messages.id;

-- History: the newest messages of one conversation.
CREATE INDEX messages_history ON messages (conversation_id, sort_at, sort_id, id);

-- Stranded: the few assistant messages still streaming.
CREATE INDEX messages_streaming ON messages (created_at, id)
	WHERE status = 'streaming' AND role = 'assistant';

CREATE TABLE events (
	platform   text NOT NULL,
	workspace  text NOT NULL,
	event_id   text NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (platform, workspace, event_id)
);

CREATE INDEX events_expiry ON events (expires_at);

CREATE TABLE settings (
	platform   text NOT NULL,
	workspace  text NOT NULL,
	scope_kind text NOT NULL,
	scope_id   text NOT NULL,
	name       text NOT NULL,
	value      text NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (platform, workspace, scope_kind, scope_id, name)
);
