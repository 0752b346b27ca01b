package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleyhq/parley/conversation"
)

const conversationColumns = `id, platform, workspace, channel, thread, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanConversation(row scanner) (conversation.Conversation, error) {
	var c conversation.Conversation
	var created, updated int64
	err := row.Scan(&c.ID, &c.Key.Platform, &c.Key.Workspace, &c.Key.Channel, &c.Key.Thread, &created, &updated)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, err
}

// Conversation returns the conversation for key, creating it if needed.
func (s *Store) Conversation(ctx context.Context, key conversation.Key) (conversation.Conversation, error) {
	if key.Platform == "" {
		return conversation.Conversation{}, errors.New("sqlite: conversation: the key has no platform")
	}
	// Most calls find it: look on the read pool first, leaving the writer free.
	c, err := scanConversation(s.stmts.findConversation.QueryRowContext(ctx, key.Platform, key.Workspace, key.Channel, key.Thread))
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return c, wrapConversationErr(key, err)
	}
	err = s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		c, err = s.createConversation(ctx, tx, key, s.timestamp())
		return err
	})
	return c, wrapConversationErr(key, err)
}

// createConversation returns key's conversation, creating it if needed, in tx.
func (s *Store) createConversation(ctx context.Context, tx *sql.Tx, key conversation.Key, at time.Time) (conversation.Conversation, error) {
	if key.Platform == "" {
		return conversation.Conversation{}, errors.New("the conversation's key has no platform")
	}
	now := micros(at)
	if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key.Platform, key.Workspace, key.Channel, key.Thread, now, now); err != nil {
		return conversation.Conversation{}, err
	}
	return s.find(ctx, tx, key)
}

// FindConversation returns the conversation for key or ErrNotFound.
func (s *Store) FindConversation(ctx context.Context, key conversation.Key) (conversation.Conversation, error) {
	c, err := scanConversation(s.stmts.findConversation.QueryRowContext(ctx, key.Platform, key.Workspace, key.Channel, key.Thread))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("sqlite: conversation %s/%s/%s/%s: %w", key.Platform, key.Workspace, key.Channel, key.Thread, conversation.ErrNotFound)
	}
	return c, wrapConversationErr(key, err)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) find(ctx context.Context, q querier, key conversation.Key) (conversation.Conversation, error) {
	return scanConversation(q.QueryRowContext(ctx, `SELECT `+conversationColumns+` FROM conversations
		WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?`,
		key.Platform, key.Workspace, key.Channel, key.Thread))
}

func wrapConversationErr(key conversation.Key, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlite: conversation %s/%s/%s/%s: %w", key.Platform, key.Workspace, key.Channel, key.Thread, err)
}

// conversationExists reports whether conversation id exists.
func conversationExists(ctx context.Context, q querier, id int64) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM conversations WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
