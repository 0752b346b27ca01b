-- Tool use: the rounds of tool calls an answer made before its final text,
-- as JSON (conversation.ToolRound), NULL when it used none.
ALTER TABLE messages ADD COLUMN tools TEXT;
