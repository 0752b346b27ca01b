package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parleyhq/parley/conversation"
)

const messageColumns = `id, conversation_id, role, author, platform_id, text, model,
	prompt_tokens, completion_tokens, status, attachments, reply_to, created_at, updated_at, tools`

// prefixed returns messageColumns qualified by table alias a.
func prefixed(a string) string {
	return a + `.id, ` + a + `.conversation_id, ` + a + `.role, ` + a + `.author, ` + a + `.platform_id, ` + a + `.text, ` + a + `.model, ` +
		a + `.prompt_tokens, ` + a + `.completion_tokens, ` + a + `.status, ` + a + `.attachments, ` + a + `.reply_to, ` + a + `.created_at, ` + a + `.updated_at, ` + a + `.tools`
}

// messageDest returns the scan destinations of messageColumns for m and a
// function that finishes m once scanned.
func messageDest(m *conversation.Message) ([]any, func() error) {
	var (
		platformID, attachments, tools sql.NullString
		created, updated               int64
	)
	dest := []any{&m.ID, &m.ConversationID, &m.Role, &m.Author, &platformID, &m.Text, &m.Model,
		&m.PromptTokens, &m.CompletionTokens, &m.Status, &attachments, &m.ReplyTo, &created, &updated, &tools}
	return dest, func() error {
		m.PlatformID = platformID.String
		m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
		atts, err := decodeAttachments(attachments.String)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.ID, err)
		}
		m.Attachments = atts
		if m.Tools, err = decodeTools([]byte(tools.String)); err != nil {
			return fmt.Errorf("message %d: %w", m.ID, err)
		}
		return nil
	}
}

func scanMessage(row scanner) (conversation.Message, error) {
	var m conversation.Message
	dest, finish := messageDest(&m)
	if err := row.Scan(dest...); err != nil {
		return m, err
	}
	return m, finish()
}

// encodeAttachments returns the JSON of atts, or nil (NULL) for none.
func encodeAttachments(atts []conversation.Attachment) (any, error) {
	if len(atts) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(atts)
	if err != nil {
		return nil, fmt.Errorf("encode attachments: %w", err)
	}
	return string(b), nil
}

// encodeTools returns the JSON of rounds, or nil (NULL) for none.
func encodeTools(rounds []conversation.ToolRound) (any, error) {
	if len(rounds) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(rounds)
	if err != nil {
		return nil, fmt.Errorf("encode tool calls: %w", err)
	}
	return string(b), nil
}

func decodeAttachments(s string) ([]conversation.Attachment, error) {
	if s == "" {
		return nil, nil
	}
	var atts []conversation.Attachment
	if err := json.Unmarshal([]byte(s), &atts); err != nil {
		return nil, fmt.Errorf("decode attachments: %w", err)
	}
	if len(atts) == 0 {
		return nil, nil
	}
	return atts, nil
}

func decodeTools(b []byte) ([]conversation.ToolRound, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var rounds []conversation.ToolRound
	if err := json.Unmarshal(b, &rounds); err != nil {
		return nil, fmt.Errorf("decode tool calls: %w", err)
	}
	if len(rounds) == 0 {
		return nil, nil
	}
	return rounds, nil
}

// nullable returns s, or nil (NULL) when it is empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Append adds m to conversation convID and returns it as stored. A zero
// CreatedAt is set to now and an empty Status to StatusComplete. It returns
// ErrNotFound when the conversation does not exist.
//
// A message whose ReplyTo names a message of the same conversation takes
// its place in History right after that message (and after any earlier
// answer to it), whenever it is appended.
func (s *Store) Append(ctx context.Context, convID int64, m conversation.Message) (conversation.Message, bool, error) {
	now := s.timestamp()
	m, atts, err := newMessage(convID, m, now)
	if err != nil {
		return conversation.Message{}, false, fmt.Errorf("sqlite: append to conversation %d: %w", convID, err)
	}

	var (
		stored  conversation.Message
		created bool
	)
	err = s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		stored, created, err = s.appendTx(ctx, tx, convID, m, atts, now)
		return err
	})
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return conversation.Message{}, false, fmt.Errorf("sqlite: append to conversation %d: %w", convID, conversation.ErrNotFound)
	}
	if err != nil {
		return conversation.Message{}, false, fmt.Errorf("sqlite: append to conversation %d: %w", convID, err)
	}
	return stored, created, nil
}

// newMessage fills in what Append sets of m, and returns its attachments
// as stored.
func newMessage(convID int64, m conversation.Message, now time.Time) (conversation.Message, any, error) {
	m.ID, m.ConversationID = 0, convID
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Microsecond)
	m.UpdatedAt = now
	if m.Status == "" {
		m.Status = conversation.StatusComplete
	}
	if len(m.Attachments) == 0 {
		m.Attachments = nil
	}
	atts, err := encodeAttachments(m.Attachments)
	return m, atts, err
}

// appendTx is Append inside tx. An answer (an assistant message replying
// to a question) takes its question out of the inbox.
func (s *Store) appendTx(ctx context.Context, tx *sql.Tx, convID int64, m conversation.Message, atts any, now time.Time) (conversation.Message, bool, error) {
	if len(m.Tools) == 0 {
		m.Tools = nil
	}
	tools, err := encodeTools(m.Tools)
	if err != nil {
		return conversation.Message{}, false, err
	}
	// An answer sorts right after its question; anything else (or an
	// answer to a question not in this conversation) by itself.
	sortAt, sortID := micros(m.CreatedAt), int64(0)
	if m.ReplyTo != 0 {
		err := tx.QueryRowContext(ctx, `SELECT sort_at, sort_id FROM messages WHERE id = ? AND conversation_id = ?`,
			m.ReplyTo, convID).Scan(&sortAt, &sortID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return conversation.Message{}, false, err
		}
	}
	// The unique (platform_id, conversation_id) makes a redelivered
	// message a no-op; NULL platform ids never collide.
	err = tx.StmtContext(ctx, s.stmts.insertMessage).QueryRowContext(ctx,
		convID, m.Role, m.Author, nullable(m.PlatformID), m.Text, m.Model,
		m.PromptTokens, m.CompletionTokens, m.Status, atts, m.ReplyTo, micros(m.CreatedAt), micros(now), sortAt, sortID, tools,
	).Scan(&m.ID)
	switch {
	case err == nil:
	case errors.Is(err, sql.ErrNoRows):
		stored, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
			WHERE platform_id = ? AND conversation_id = ?`, m.PlatformID, convID))
		return stored, false, err
	default:
		return conversation.Message{}, false, err
	}
	if sortID == 0 { // its own place, known now that it has an id
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET sort_id = id WHERE id = ?`, m.ID); err != nil {
			return conversation.Message{}, false, err
		}
	}
	if m.Role == conversation.RoleAssistant && m.ReplyTo != 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM inbox WHERE message_id = ?`, m.ReplyTo); err != nil {
			return conversation.Message{}, false, err
		}
	}
	if _, err := tx.StmtContext(ctx, s.stmts.touchConversation).ExecContext(ctx, micros(now), convID); err != nil {
		return conversation.Message{}, false, err
	}
	return m, true, nil
}

// UpdateMessage rewrites a message's PlatformID, Text, Model, token counts,
// Status, Attachments and Tools, and sets its UpdatedAt to now. It returns
// ErrNotFound for an unknown ID.
func (s *Store) UpdateMessage(ctx context.Context, m conversation.Message) error {
	atts, err := encodeAttachments(m.Attachments)
	if err != nil {
		return fmt.Errorf("sqlite: update message %d: %w", m.ID, err)
	}
	tools, err := encodeTools(m.Tools)
	if err != nil {
		return fmt.Errorf("sqlite: update message %d: %w", m.ID, err)
	}
	res, err := s.write.ExecContext(ctx, `UPDATE messages SET platform_id = ?, text = ?, model = ?,
			prompt_tokens = ?, completion_tokens = ?, status = ?, attachments = ?, tools = ?, updated_at = ?
		WHERE id = ?`,
		nullable(m.PlatformID), m.Text, m.Model, m.PromptTokens, m.CompletionTokens, m.Status, atts, tools,
		micros(s.timestamp()), m.ID)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return fmt.Errorf("sqlite: update message %d: platform id %q already belongs to another message of the conversation", m.ID, m.PlatformID)
	}
	if err != nil {
		return fmt.Errorf("sqlite: update message %d: %w", m.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: update message %d: %w", m.ID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: update message %d: %w", m.ID, conversation.ErrNotFound)
	}
	return nil
}

// History returns the newest messages of a conversation within q, oldest
// first: by CreatedAt, then by the order they were appended, except that an
// answer follows the question it replies to (see Append). MaxChars
// counts characters (runes) and keeps the newest messages that fit
// together. It returns ErrNotFound when the conversation does not exist.
func (s *Store) History(ctx context.Context, convID int64, q conversation.HistoryQuery) ([]conversation.Message, error) {
	limit := -1 // SQLite's "no limit"
	if q.Limit > 0 {
		limit = q.Limit
	}
	msgs, err := s.history(ctx, convID, limit, q.MaxChars)
	if err != nil {
		return nil, fmt.Errorf("sqlite: history of conversation %d: %w", convID, err)
	}
	if len(msgs) == 0 {
		ok, err := conversationExists(ctx, s.read, convID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: history of conversation %d: %w", convID, err)
		}
		if !ok {
			return nil, fmt.Errorf("sqlite: history of conversation %d: %w", convID, conversation.ErrNotFound)
		}
	}
	slices.Reverse(msgs)
	return msgs, nil
}

// history returns the newest messages, newest first. Rows are read one at a
// time, so a MaxChars budget stops the scan where it runs out.
func (s *Store) history(ctx context.Context, convID int64, limit, maxChars int) ([]conversation.Message, error) {
	rows, err := s.stmts.history.QueryContext(ctx, convID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		msgs  []conversation.Message
		chars int
	)
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		if maxChars > 0 {
			chars += utf8.RuneCountInString(m.Text)
			if chars > maxChars {
				break
			}
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// Forget deletes every message of a conversation; the conversation remains.
// It returns ErrNotFound when the conversation does not exist.
func (s *Store) Forget(ctx context.Context, convID int64) error {
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE conversations SET updated_at = ? WHERE id = ?`, micros(s.timestamp()), convID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return conversation.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM messages WHERE conversation_id = ?`, convID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: forget conversation %d: %w", convID, err)
	}
	return nil
}

// Stranded returns the assistant messages still in StatusStreaming, of one
// platform, oldest first. Messages of a conversation under a live claim
// (ClaimConversation) of any owner are left out: a live process is
// writing them.
func (s *Store) Stranded(ctx context.Context, platform string) ([]conversation.Stranded, error) {
	// CROSS JOIN makes SQLite start from the few streaming messages (their
	// partial index) rather than from every conversation of the platform.
	rows, err := s.read.QueryContext(ctx, `SELECT c.platform, c.workspace, c.channel, c.thread, `+prefixed("m")+`
		FROM messages m CROSS JOIN conversations c ON c.id = m.conversation_id
		WHERE m.status = 'streaming' AND m.role = 'assistant' AND c.platform = ?
			AND NOT EXISTS (SELECT 1 FROM claims k WHERE k.conversation_id = m.conversation_id AND k.expires_at > ?)
		ORDER BY m.created_at, m.id`, platform, micros(s.timestamp()))
	if err != nil {
		return nil, fmt.Errorf("sqlite: stranded messages of %s: %w", platform, err)
	}
	defer rows.Close()
	var out []conversation.Stranded
	for rows.Next() {
		var st conversation.Stranded
		dest, finish := messageDest(&st.Message)
		dest = append([]any{&st.Key.Platform, &st.Key.Workspace, &st.Key.Channel, &st.Key.Thread}, dest...)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("sqlite: stranded messages of %s: %w", platform, err)
		}
		if err := finish(); err != nil {
			return nil, fmt.Errorf("sqlite: stranded messages of %s: %w", platform, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: stranded messages of %s: %w", platform, err)
	}
	return out, nil
}

// MessageByPlatformID finds a message by its platform id inside one
// (platform, workspace), with its conversation, or returns ErrNotFound.
// Should two conversations hold the id, the newest message wins.
func (s *Store) MessageByPlatformID(ctx context.Context, platform, workspace, platformID string) (conversation.Conversation, conversation.Message, error) {
	var (
		c                conversation.Conversation
		m                conversation.Message
		created, updated int64
	)
	if platformID == "" {
		return c, m, fmt.Errorf("sqlite: message with no platform id: %w", conversation.ErrNotFound)
	}
	dest, finish := messageDest(&m)
	dest = append([]any{&c.ID, &c.Key.Platform, &c.Key.Workspace, &c.Key.Channel, &c.Key.Thread, &created, &updated}, dest...)
	// CROSS JOIN makes SQLite start from the message's platform id, not from
	// every conversation of the workspace.
	err := s.read.QueryRowContext(ctx, `SELECT c.id, c.platform, c.workspace, c.channel, c.thread, c.created_at, c.updated_at, `+prefixed("m")+`
		FROM messages m CROSS JOIN conversations c ON c.id = m.conversation_id
		WHERE m.platform_id = ? AND c.platform = ? AND c.workspace = ?
		ORDER BY m.id DESC LIMIT 1`, platformID, platform, workspace).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return conversation.Conversation{}, conversation.Message{}, fmt.Errorf("sqlite: message %s in %s/%s: %w", platformID, platform, workspace, conversation.ErrNotFound)
	}
	if err == nil {
		err = finish()
	}
	if err != nil {
		return conversation.Conversation{}, conversation.Message{}, fmt.Errorf("sqlite: message %s in %s/%s: %w", platformID, platform, workspace, err)
	}
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, m, nil
}
