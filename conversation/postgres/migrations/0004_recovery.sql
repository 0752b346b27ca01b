-- Recovery: claims carry a fencing token, and the questions an instance
-- accepted and has not answered yet are kept per instance, so that a
-- survivor (or the next start) takes over a dead instance's work.

-- The token changes whenever a claim changes hands (drawn from a
-- sequence, so never given twice); writes of an answer check it
-- (UpdateAnswer).
CREATE SEQUENCE claim_tokens;
ALTER TABLE claims ADD COLUMN token bigint NOT NULL DEFAULT 0;
CREATE INDEX claims_owner ON claims (owner);

-- One row per accepted question until an answer replies to it.
CREATE TABLE inbox (
	message_id      bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
	conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	owner           text NOT NULL,
	reply_id        text -- the platform's message showing it waits, if one does
);
CREATE INDEX inbox_owner ON inbox (owner);
CREATE INDEX inbox_conversation ON inbox (conversation_id);
