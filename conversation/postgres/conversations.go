package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyhq/parley/conversation"
)

const conversationColumns = `id, platform, workspace, channel, thread, created_at, updated_at`

func conversationDest(c *conversation.Conversation) []any {
	return []any{&c.ID, &c.Key.Platform, &c.Key.Workspace, &c.Key.Channel, &c.Key.Thread, &c.CreatedAt, &c.UpdatedAt}
}

func scanConversation(row pgx.Row) (conversation.Conversation, error) {
	var c conversation.Conversation
	err := row.Scan(conversationDest(&c)...)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, err
}

// Conversation returns the conversation for key, creating it if needed.
// Replicas racing to create one key all get the same conversation.
func (s *Store) Conversation(ctx context.Context, key conversation.Key) (conversation.Conversation, error) {
	if key.Platform == "" {
		return conversation.Conversation{}, errors.New("postgres: conversation: the key has no platform")
	}
	// Most calls find it; a plain read writes nothing.
	c, err := s.find(ctx, key)
	if !errors.Is(err, pgx.ErrNoRows) {
		return c, wrapConversationErr(key, err)
	}
	c, err = createConversation(ctx, s.pool, key, s.timestamp())
	return c, wrapConversationErr(key, err)
}

// queryRower is a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// createConversation returns key's conversation, creating it if needed.
func createConversation(ctx context.Context, q queryRower, key conversation.Key, now time.Time) (conversation.Conversation, error) {
	if key.Platform == "" {
		return conversation.Conversation{}, errors.New("the conversation's key has no platform")
	}
	c, err := scanConversation(q.QueryRow(ctx, `INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (platform, workspace, channel, thread) DO NOTHING
		RETURNING `+conversationColumns, key.Platform, key.Workspace, key.Channel, key.Thread, now))
	if errors.Is(err, pgx.ErrNoRows) {
		// Another replica created it since the first look; it has committed
		// (ON CONFLICT waited for it), so this read sees it.
		c, err = scanConversation(q.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations
			WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4`,
			key.Platform, key.Workspace, key.Channel, key.Thread))
	}
	return c, err
}

// FindConversation returns the conversation for key or ErrNotFound.
func (s *Store) FindConversation(ctx context.Context, key conversation.Key) (conversation.Conversation, error) {
	c, err := s.find(ctx, key)
	if errors.Is(err, pgx.ErrNoRows) {
		err = conversation.ErrNotFound
	}
	return c, wrapConversationErr(key, err)
}

func (s *Store) find(ctx context.Context, key conversation.Key) (conversation.Conversation, error) {
	return scanConversation(s.pool.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations
		WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4`,
		key.Platform, key.Workspace, key.Channel, key.Thread))
}

func wrapConversationErr(key conversation.Key, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("postgres: conversation %s/%s/%s/%s: %w", key.Platform, key.Workspace, key.Channel, key.Thread, err)
}
