-- Usage counters and conversation claims, for usage accounting and for
-- several replicas answering on one database.

-- One counter per user, model, channel and day. The key leads with the
-- user, so that one user's sum over a month reads one range of it.
CREATE TABLE usage (
	platform          text NOT NULL,
	workspace         text NOT NULL,
	user_id           text NOT NULL,
	day               date NOT NULL, -- UTC
	channel           text NOT NULL,
	model             text NOT NULL,
	requests          bigint NOT NULL,
	prompt_tokens     bigint NOT NULL,
	completion_tokens bigint NOT NULL,
	PRIMARY KEY (platform, workspace, user_id, day, channel, model)
);

-- Sums over a workspace, a channel or a model for a range of days.
CREATE INDEX usage_days ON usage (platform, workspace, day);

-- The one replica answering a conversation, until expires_at.
CREATE TABLE claims (
	conversation_id bigint PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
	owner           text NOT NULL,
	expires_at      timestamptz NOT NULL
);

-- Pending: a conversation's user messages in order, and whether an answer
-- replies to one.
CREATE INDEX messages_questions ON messages (conversation_id, created_at, id) WHERE role = 'user';
CREATE INDEX messages_answers ON messages (reply_to) WHERE role = 'assistant';
