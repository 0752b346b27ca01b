package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// statements are the store's hot statements, prepared once: SQLite spends
// more time parsing a short query than running it.
type statements struct {
	history           *sql.Stmt // on the read pool
	findConversation  *sql.Stmt // on the read pool
	insertMessage     *sql.Stmt // on the writer
	touchConversation *sql.Stmt // on the writer

	// A question's way in: Seen, Accept, ClaimConversation and Inbox.
	seen         *sql.Stmt // on the read pool
	inbox        *sql.Stmt // on the read pool
	expireEvents *sql.Stmt // on the writer
	insertEvent  *sql.Stmt // on the writer
	insertInbox  *sql.Stmt // on the writer
	claim        *sql.Stmt // on the writer
}

func (s *Store) prepare(ctx context.Context) error {
	var errs []error
	prep := func(db *sql.DB, query string) *sql.Stmt {
		st, err := db.PrepareContext(ctx, query)
		errs = append(errs, err)
		return st
	}
	s.stmts = statements{
		history: prep(s.read, `SELECT `+messageColumns+` FROM messages
			WHERE conversation_id = ? ORDER BY sort_at DESC, sort_id DESC, id DESC LIMIT ?`),
		findConversation: prep(s.read, `SELECT `+conversationColumns+` FROM conversations
			WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?`),
		insertMessage: prep(s.write, `INSERT INTO messages (conversation_id, role, author, platform_id, text, model,
				prompt_tokens, completion_tokens, status, attachments, reply_to, created_at, updated_at, sort_at, sort_id, tools)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING RETURNING id`),
		touchConversation: prep(s.write, `UPDATE conversations SET updated_at = ? WHERE id = ?`),
		seen:              prep(s.read, `SELECT 1 FROM events WHERE platform = ? AND workspace = ? AND event_id = ? AND expires_at > ?`),
		inbox: prep(s.read, `SELECT `+prefixed("q")+`, COALESCE(i.owner, ''), COALESCE(i.reply_id, ''),
				EXISTS (SELECT 1 FROM replicas r WHERE r.owner = i.owner AND r.expires_at > ?)
			FROM messages q LEFT JOIN inbox i ON i.message_id = q.id
			WHERE q.conversation_id = ? AND q.role = 'user'
				AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.reply_to = q.id AND a.role = 'assistant')
			ORDER BY q.created_at, q.id`),
		expireEvents: prep(s.write, `DELETE FROM events WHERE expires_at <= ?`),
		insertEvent: prep(s.write, `INSERT INTO events (platform, workspace, event_id, expires_at)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		insertInbox: prep(s.write, `INSERT INTO inbox (message_id, conversation_id, owner) VALUES (?, ?, ?)`),
		claim: prep(s.write, `INSERT INTO claims (conversation_id, owner, expires_at, token) VALUES (?, ?, ?, ?)
			ON CONFLICT (conversation_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
				token = CASE WHEN claims.owner = excluded.owner THEN claims.token ELSE excluded.token END
				WHERE claims.owner = excluded.owner OR claims.expires_at <= ?
			RETURNING token`),
	}
	if err := errors.Join(errs...); err != nil {
		s.stmts.close()
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

func (st statements) close() {
	for _, x := range []*sql.Stmt{st.history, st.findConversation, st.insertMessage, st.touchConversation,
		st.seen, st.inbox, st.expireEvents, st.insertEvent, st.insertInbox, st.claim} {
		if x != nil {
			x.Close()
		}
	}
}
