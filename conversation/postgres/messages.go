package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

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
		platformID         *string
		attachments, tools []byte
	)
	dest := []any{&m.ID, &m.ConversationID, &m.Role, &m.Author, &platformID, &m.Text, &m.Model,
		&m.PromptTokens, &m.CompletionTokens, &m.Status, &attachments, &m.ReplyTo, &m.CreatedAt, &m.UpdatedAt, &tools}
	return dest, func() error {
		if platformID != nil {
			m.PlatformID = *platformID
		}
		m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
		atts, err := decodeAttachments(attachments)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.ID, err)
		}
		m.Attachments = atts
		if m.Tools, err = decodeTools(tools); err != nil {
			return fmt.Errorf("message %d: %w", m.ID, err)
		}
		return nil
	}
}

func scanMessage(row pgx.Row) (conversation.Message, error) {
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

func decodeAttachments(b []byte) ([]conversation.Attachment, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var atts []conversation.Attachment
	if err := json.Unmarshal(b, &atts); err != nil {
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

// appendSQL inserts a message unless its conversation holds its platform id
// already, and touches the conversation if it did, in one statement. The id
// is drawn first because a message that answers nothing sorts by its own id.
const appendSQL = `WITH q AS (
	SELECT sort_at, sort_id FROM messages WHERE id = $11 AND conversation_id = $1
), n AS (
	SELECT nextval('messages_id_seq') AS id
), ins AS (
	INSERT INTO messages (id, conversation_id, role, author, platform_id, text, model,
		prompt_tokens, completion_tokens, status, attachments, reply_to, created_at, updated_at, sort_at, sort_id, tools)
	SELECT n.id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
		COALESCE((SELECT sort_at FROM q), $12), COALESCE((SELECT sort_id FROM q), n.id), $14
	FROM n
	ON CONFLICT (platform_id, conversation_id) DO NOTHING
	RETURNING id
), touched AS (
	UPDATE conversations SET updated_at = $13 WHERE id = $1 AND EXISTS (SELECT 1 FROM ins)
), answered AS (
	-- An answer takes its question out of the inbox.
	DELETE FROM inbox WHERE message_id = $11 AND EXISTS (SELECT 1 FROM ins)
)
SELECT id FROM ins`

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

// appendPlainSQL is appendSQL for a message that answers no question.
var appendPlainSQL = appendSQL[:strings.Index(appendSQL, "), answered AS")] + ")\nSELECT id FROM ins"

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
		return conversation.Message{}, false, fmt.Errorf("postgres: append to conversation %d: %w", convID, err)
	}
	if len(m.Tools) == 0 {
		m.Tools = nil
	}
	tools, err := encodeTools(m.Tools)
	if err != nil {
		return conversation.Message{}, false, fmt.Errorf("postgres: append to conversation %d: %w", convID, err)
	}

	// A conflict means the message is stored; it could be deleted (Forget)
	// before it is read back, so try again a few times.
	query := appendSQL
	if m.Role != conversation.RoleAssistant || m.ReplyTo == 0 {
		// Only an answer has a question to take out of the inbox.
		query = appendPlainSQL
	}
	for range 3 {
		err := s.pool.QueryRow(ctx, query,
			convID, m.Role, m.Author, nullable(m.PlatformID), m.Text, m.Model,
			m.PromptTokens, m.CompletionTokens, m.Status, atts, m.ReplyTo, m.CreatedAt, now, tools,
		).Scan(&m.ID)
		switch {
		case err == nil:
			return m, true, nil
		case pgCode(err) == codeForeignKeyViolation:
			return conversation.Message{}, false, fmt.Errorf("postgres: append to conversation %d: %w", convID, conversation.ErrNotFound)
		case !errors.Is(err, pgx.ErrNoRows):
			return conversation.Message{}, false, fmt.Errorf("postgres: append to conversation %d: %w", convID, err)
		}
		stored, err := scanMessage(s.pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
			WHERE platform_id = $1 AND conversation_id = $2`, m.PlatformID, convID))
		if err == nil {
			return stored, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return conversation.Message{}, false, fmt.Errorf("postgres: append to conversation %d: %w", convID, err)
		}
	}
	return conversation.Message{}, false, fmt.Errorf("postgres: append to conversation %d: message %s keeps conflicting and vanishing; try again", convID, m.PlatformID)
}

// UpdateMessage rewrites a message's PlatformID, Text, Model, token counts,
// Status, Attachments and Tools, and sets its UpdatedAt to now. It returns
// ErrNotFound for an unknown ID.
func (s *Store) UpdateMessage(ctx context.Context, m conversation.Message) error {
	atts, err := encodeAttachments(m.Attachments)
	if err != nil {
		return fmt.Errorf("postgres: update message %d: %w", m.ID, err)
	}
	tools, err := encodeTools(m.Tools)
	if err != nil {
		return fmt.Errorf("postgres: update message %d: %w", m.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE messages SET platform_id = $1, text = $2, model = $3,
			prompt_tokens = $4, completion_tokens = $5, status = $6, attachments = $7, tools = $10, updated_at = $8
		WHERE id = $9`,
		nullable(m.PlatformID), m.Text, m.Model, m.PromptTokens, m.CompletionTokens, m.Status, atts,
		s.timestamp(), m.ID, tools)
	if pgCode(err) == codeUniqueViolation {
		return fmt.Errorf("postgres: update message %d: platform id %q already belongs to another message of the conversation", m.ID, m.PlatformID)
	}
	if err != nil {
		return fmt.Errorf("postgres: update message %d: %w", m.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update message %d: %w", m.ID, conversation.ErrNotFound)
	}
	return nil
}

// historyPage is how many messages History reads at a time while a
// MaxChars budget lasts, so a small budget does not drag a long
// conversation over the network. Tests make it small.
var historyPage = 100

// History returns the newest messages of a conversation within q, oldest
// first: by CreatedAt, then by the order they were appended, except that an
// answer follows the question it replies to (see Append). MaxChars
// counts characters (runes) and keeps the newest messages that fit
// together. It returns ErrNotFound when the conversation does not exist.
func (s *Store) History(ctx context.Context, convID int64, q conversation.HistoryQuery) ([]conversation.Message, error) {
	msgs, err := s.history(ctx, convID, q)
	if err != nil {
		return nil, fmt.Errorf("postgres: history of conversation %d: %w", convID, err)
	}
	if len(msgs) == 0 {
		var one int
		err := s.pool.QueryRow(ctx, `SELECT 1 FROM conversations WHERE id = $1`, convID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			err = conversation.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: history of conversation %d: %w", convID, err)
		}
	}
	slices.Reverse(msgs)
	return msgs, nil
}

// history returns the newest messages, newest first.
func (s *Store) history(ctx context.Context, convID int64, q conversation.HistoryQuery) ([]conversation.Message, error) {
	const columns = `SELECT ` + messageColumns + `, sort_at, sort_id FROM messages WHERE conversation_id = $1 `
	const order = ` ORDER BY sort_at DESC, sort_id DESC, id DESC LIMIT $2`
	var (
		msgs   []conversation.Message
		chars  int
		sortAt time.Time
		sortID int64
	)
	for {
		page := historyPage
		switch {
		case q.Limit > 0 && q.MaxChars == 0:
			page = q.Limit // one read
		case q.Limit > 0:
			page = min(page, q.Limit-len(msgs))
		case q.MaxChars == 0:
			page = -1 // everything, in one read
		}
		var rows pgx.Rows
		var err error
		switch {
		case page < 0:
			rows, err = s.pool.Query(ctx, columns+` ORDER BY sort_at DESC, sort_id DESC, id DESC`, convID)
		case len(msgs) == 0:
			rows, err = s.pool.Query(ctx, columns+order, convID, page)
		default: // the next page, past the last message read
			rows, err = s.pool.Query(ctx, columns+`AND (sort_at, sort_id, id) < ($3, $4, $5)`+order,
				convID, page, sortAt, sortID, msgs[len(msgs)-1].ID)
		}
		if err != nil {
			return nil, err
		}
		n, full := 0, false
		for rows.Next() {
			var m conversation.Message
			dest, finish := messageDest(&m)
			if err := rows.Scan(append(dest, &sortAt, &sortID)...); err != nil {
				rows.Close()
				return nil, err
			}
			if err := finish(); err != nil {
				rows.Close()
				return nil, err
			}
			n++
			if q.MaxChars > 0 {
				chars += utf8.RuneCountInString(m.Text)
				if chars > q.MaxChars {
					full = true
					break
				}
			}
			msgs = append(msgs, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if full || page < 0 || n < page || (q.Limit > 0 && len(msgs) >= q.Limit) {
			return msgs, nil
		}
	}
}

// Forget deletes every message of a conversation; the conversation remains.
// It returns ErrNotFound when the conversation does not exist.
func (s *Store) Forget(ctx context.Context, convID int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE conversations SET updated_at = $1 WHERE id = $2`, s.timestamp(), convID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return conversation.ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM messages WHERE conversation_id = $1`, convID)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: forget conversation %d: %w", convID, err)
	}
	return nil
}

// Stranded returns the assistant messages still in StatusStreaming, of one
// platform, oldest first. Messages of a conversation under a live claim
// (ClaimConversation) of any owner are left out: a live replica is
// writing them.
func (s *Store) Stranded(ctx context.Context, platform string) ([]conversation.Stranded, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.platform, c.workspace, c.channel, c.thread, `+prefixed("m")+`
		FROM messages m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.status = 'streaming' AND m.role = 'assistant' AND c.platform = $1
			AND NOT EXISTS (SELECT 1 FROM claims k WHERE k.conversation_id = m.conversation_id AND k.expires_at > now())
		ORDER BY m.created_at, m.id`, platform)
	if err != nil {
		return nil, fmt.Errorf("postgres: stranded messages of %s: %w", platform, err)
	}
	defer rows.Close()
	var out []conversation.Stranded
	for rows.Next() {
		var st conversation.Stranded
		dest, finish := messageDest(&st.Message)
		dest = append([]any{&st.Key.Platform, &st.Key.Workspace, &st.Key.Channel, &st.Key.Thread}, dest...)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("postgres: stranded messages of %s: %w", platform, err)
		}
		if err := finish(); err != nil {
			return nil, fmt.Errorf("postgres: stranded messages of %s: %w", platform, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: stranded messages of %s: %w", platform, err)
	}
	return out, nil
}

// MessageByPlatformID finds a message by its platform id inside one
// (platform, workspace), with its conversation, or returns ErrNotFound.
// Should two conversations hold the id, the newest message wins.
func (s *Store) MessageByPlatformID(ctx context.Context, platform, workspace, platformID string) (conversation.Conversation, conversation.Message, error) {
	var (
		c conversation.Conversation
		m conversation.Message
	)
	if platformID == "" {
		return c, m, fmt.Errorf("postgres: message with no platform id: %w", conversation.ErrNotFound)
	}
	dest, finish := messageDest(&m)
	dest = append(conversationDest(&c), dest...)
	err := s.pool.QueryRow(ctx, `SELECT c.id, c.platform, c.workspace, c.channel, c.thread, c.created_at, c.updated_at, `+prefixed("m")+`
		FROM messages m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.platform_id = $1 AND c.platform = $2 AND c.workspace = $3
		ORDER BY m.id DESC LIMIT 1`, platformID, platform, workspace).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return conversation.Conversation{}, conversation.Message{}, fmt.Errorf("postgres: message %s in %s/%s: %w", platformID, platform, workspace, conversation.ErrNotFound)
	}
	if err == nil {
		err = finish()
	}
	if err != nil {
		return conversation.Conversation{}, conversation.Message{}, fmt.Errorf("postgres: message %s in %s/%s: %w", platformID, platform, workspace, err)
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, m, nil
}
