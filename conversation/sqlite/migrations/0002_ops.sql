-- Usage counters and conversation claims, for usage accounting and for
-- several processes answering on one database.

-- One counter per user, model, channel and day. The key leads with the
-- user, so that one user's sum over a month reads one range of it.
CREATE TABLE usage (
	platform          TEXT NOT NULL,
	workspace         TEXT NOT NULL,
	user_id           TEXT NOT NULL,
	day               INTEGER NOT NULL, -- midnight UTC, Unix microseconds
	channel           TEXT NOT NULL,
	model             TEXT NOT NULL,
	requests          INTEGER NOT NULL,
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	PRIMARY KEY (platform, workspace, user_id, day, channel, model)
) WITHOUT ROWID;

-- Sums over a workspace, a channel or a model for a range of days.
CREATE INDEX usage_days ON usage (platform, workspace, day);

-- The one process answering a conversation, until expires_at.
CREATE TABLE claims (
	conversation_id INTEGER PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
	owner           TEXT NOT NULL,
	expires_at      INTEGER NOT NULL
);

-- Pending: a conversation's user messages in order, and whether an answer
-- replies to one.
CREATE INDEX messages_questions ON messages (conversation_id, created_at, id) WHERE role = 'user';
CREATE INDEX messages_answers ON messages (reply_to) WHERE role = 'assistant';
