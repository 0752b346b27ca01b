package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parleyhq/parley/conversation"
)

var _ conversation.Ops = (*Store)(nil)

// day returns the UTC date of t as stored: midnight UTC, Unix microseconds.
func day(t time.Time) int64 {
	y, m, d := t.UTC().Date()
	return micros(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
}

// AddUsage adds u to the counter k, creating it. Only the UTC date of
// k.Day counts. It returns an error when k has no Platform or no Day.
func (s *Store) AddUsage(ctx context.Context, k conversation.UsageKey, u conversation.Usage) error {
	if k.Platform == "" {
		return errors.New("sqlite: add usage: the key has no platform")
	}
	if k.Day.IsZero() {
		return fmt.Errorf("sqlite: add usage in %s/%s: the key has no day; set UsageKey.Day to the time of the request", k.Platform, k.Workspace)
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO usage (platform, workspace, user_id, day, channel, model,
			requests, prompt_tokens, completion_tokens)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (platform, workspace, user_id, day, channel, model) DO UPDATE SET
			requests = requests + excluded.requests,
			prompt_tokens = prompt_tokens + excluded.prompt_tokens,
			completion_tokens = completion_tokens + excluded.completion_tokens`,
		k.Platform, k.Workspace, k.User, day(k.Day), k.Channel, k.Model,
		u.Requests, u.PromptTokens, u.CompletionTokens)
	if err != nil {
		return fmt.Errorf("sqlite: add usage in %s/%s: %w", k.Platform, k.Workspace, err)
	}
	return nil
}

// SumUsage adds up the counters f selects: always those of f's Platform
// and Workspace (an empty Workspace is Discord's DMs, not a wildcard); an
// empty Channel, User or Model matches all. Since and Until count by their
// UTC date: Since's day is included, Until's is not.
func (s *Store) SumUsage(ctx context.Context, f conversation.UsageFilter) (conversation.Usage, error) {
	var u conversation.Usage
	if f.Platform == "" {
		return u, errors.New("sqlite: sum usage: the filter has no platform")
	}
	query := `SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
		FROM usage WHERE platform = ? AND workspace = ?`
	args := []any{f.Platform, f.Workspace}
	for _, c := range []struct {
		column, value string
	}{{"user_id", f.User}, {"channel", f.Channel}, {"model", f.Model}} {
		if c.value != "" {
			query += ` AND ` + c.column + ` = ?`
			args = append(args, c.value)
		}
	}
	if !f.Since.IsZero() {
		query += ` AND day >= ?`
		args = append(args, day(f.Since))
	}
	if !f.Until.IsZero() {
		query += ` AND day < ?`
		args = append(args, day(f.Until))
	}
	if err := s.read.QueryRowContext(ctx, query, args...).Scan(&u.Requests, &u.PromptTokens, &u.CompletionTokens); err != nil {
		return conversation.Usage{}, fmt.Errorf("sqlite: sum usage in %s/%s: %w", f.Platform, f.Workspace, err)
	}
	return u, nil
}

// ClaimConversation makes owner the one process answering conversation
// convID until ttl has passed by the store's clock. It reports false while
// another owner's claim is live; claiming again as the same owner renews
// the claim (keeping its token), and an expired claim is taken over (with
// a new one). It returns ErrNotFound when the conversation does not exist.
func (s *Store) ClaimConversation(ctx context.Context, convID int64, owner string, ttl time.Duration) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("sqlite: claim conversation %d: the owner is empty; name the process claiming it", convID)
	}
	if ttl <= 0 {
		return 0, false, fmt.Errorf("sqlite: claim conversation %d: ttl %v is not positive", convID, ttl)
	}
	var (
		token int64
		won   bool
	)
	// One statement in an IMMEDIATE transaction: the write lock, taken
	// first, makes the check and the write one step for every process.
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		now := s.timestamp()
		fresh, err := nextToken(ctx, tx)
		if err != nil {
			return err
		}
		err = tx.StmtContext(ctx, s.stmts.claim).QueryRowContext(ctx, convID, owner, micros(now.Add(ttl)), fresh, micros(now)).Scan(&token)
		switch {
		case err == nil:
			won = true
			return nil
		case errors.Is(err, sql.ErrNoRows): // another owner's claim is live
			return nil
		default:
			return err
		}
	})
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return 0, false, fmt.Errorf("sqlite: claim conversation %d: %w", convID, conversation.ErrNotFound)
	}
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: claim conversation %d: %w", convID, err)
	}
	return token, won, nil
}

// ReleaseConversation ends owner's claim on convID; releasing a claim one
// does not hold (never held, expired and taken over, or released) is not
// an error.
func (s *Store) ReleaseConversation(ctx context.Context, convID int64, owner string) error {
	if _, err := s.write.ExecContext(ctx, `DELETE FROM claims WHERE conversation_id = ? AND owner = ?`, convID, owner); err != nil {
		return fmt.Errorf("sqlite: release conversation %d: %w", convID, err)
	}
	return nil
}

// Pending returns the user messages of conversation convID that no
// assistant message answers yet (none has ReplyTo equal to their ID), by
// CreatedAt then ID, at most limit (0: all). It returns ErrNotFound when
// the conversation does not exist.
func (s *Store) Pending(ctx context.Context, convID int64, limit int) ([]conversation.Message, error) {
	if limit <= 0 {
		limit = -1 // SQLite's "no limit"
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+prefixed("q")+` FROM messages q
		WHERE q.conversation_id = ? AND q.role = 'user'
			AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.reply_to = q.id AND a.role = 'assistant')
		ORDER BY q.created_at, q.id LIMIT ?`, convID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pending messages of conversation %d: %w", convID, err)
	}
	defer rows.Close()
	var msgs []conversation.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: pending messages of conversation %d: %w", convID, err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pending messages of conversation %d: %w", convID, err)
	}
	if len(msgs) == 0 {
		ok, err := conversationExists(ctx, s.read, convID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: pending messages of conversation %d: %w", convID, err)
		}
		if !ok {
			return nil, fmt.Errorf("sqlite: pending messages of conversation %d: %w", convID, conversation.ErrNotFound)
		}
	}
	return msgs, nil
}
