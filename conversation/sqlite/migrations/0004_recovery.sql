-- Recovery: claims carry a fencing token, and the questions an instance
-- accepted and has not answered yet are kept per instance, so that a
-- survivor (or the next start) takes over a dead instance's work.

-- The token changes whenever a claim changes hands; writes of an answer
-- check it (UpdateAnswer).
ALTER TABLE claims ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
CREATE INDEX claims_owner ON claims (owner);

-- One row per accepted question until an answer replies to it.
CREATE TABLE inbox (
	message_id      INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
	conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	owner           TEXT NOT NULL,
	reply_id        TEXT -- the platform's message showing it waits, if one does
);
CREATE INDEX inbox_owner ON inbox (owner);
CREATE INDEX inbox_conversation ON inbox (conversation_id);

-- Fencing tokens are drawn from one counter, so that a token is never
-- given twice, also after a claim row was deleted and made again.
CREATE TABLE fence (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	token INTEGER NOT NULL
);
INSERT INTO fence (id, token) VALUES (1, 0);
