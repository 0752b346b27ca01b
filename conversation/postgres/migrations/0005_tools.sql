-- Tool use: the rounds of tool calls an answer made before its final text,
-- as JSON (conversation.ToolRound), NULL when it used none. text, not
-- jsonb: tool results are untrusted text, and jsonb refuses the \u0000
-- escape that a NUL in a result becomes.
ALTER TABLE messages ADD COLUMN tools text;
