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
	}
	if err := errors.Join(errs...); err != nil {
		s.stmts.close()
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

func (st statements) close() {
	for _, x := range []*sql.Stmt{st.history, st.findConversation, st.insertMessage, st.touchConversation} {
		if x != nil {
			x.Close()
		}
	}
}
