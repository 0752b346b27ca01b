package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyhq/parley/conversation"
)

// errSeen rolls back an Accept whose event was already seen.
var errSeen = errors.New("event already seen")

// Accept stores user message m as accepted by in.Owner and marks the
// events that delivered it, in one transaction; see conversation.Ops. Of
// replicas accepting one event at once, one stores it: the others wait on
// its event's key and then find it seen.
func (s *Store) Accept(ctx context.Context, convID int64, m conversation.Message, in conversation.Intake) (conversation.Message, bool, error) {
	if in.Owner == "" {
		return conversation.Message{}, false, fmt.Errorf("postgres: accept in conversation %d: the owner is empty; name the instance accepting it", convID)
	}
	now := s.timestamp()
	m, atts, err := newMessage(convID, m, now)
	if err != nil {
		return conversation.Message{}, false, fmt.Errorf("postgres: accept in conversation %d: %w", convID, err)
	}
	var stored conversation.Message
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		convID := convID
		if convID == 0 {
			c, err := createConversation(ctx, tx, in.Key, now)
			if err != nil {
				return err
			}
			convID = c.ID
			m.ConversationID = convID
		}
		if len(in.Events) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM events WHERE expires_at <= $1`, now); err != nil {
				return err
			}
		}
		for _, id := range in.Events {
			var first bool
			err := tx.QueryRow(ctx, `INSERT INTO events (platform, workspace, event_id, expires_at)
				VALUES ($1, $2, $3, $4)
				ON CONFLICT (platform, workspace, event_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
					WHERE events.expires_at <= $5
				RETURNING true`, in.Platform, in.Workspace, id, now.Add(in.TTL), now).Scan(&first)
			if errors.Is(err, pgx.ErrNoRows) {
				return errSeen
			}
			if err != nil {
				return err
			}
		}
		tools, err := encodeTools(m.Tools)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, appendPlainSQL,
			convID, m.Role, m.Author, nullable(m.PlatformID), m.Text, m.Model,
			m.PromptTokens, m.CompletionTokens, m.Status, atts, m.ReplyTo, m.CreatedAt, now, tools,
		).Scan(&m.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			// Stored already: read it back, mark nothing.
			stored, err = scanMessage(tx.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
				WHERE platform_id = $1 AND conversation_id = $2`, m.PlatformID, convID))
			if err != nil {
				return err
			}
			return errSeen
		}
		if err != nil {
			return err
		}
		stored = m
		_, err = tx.Exec(ctx, `INSERT INTO inbox (message_id, conversation_id, owner) VALUES ($1, $2, $3)`, m.ID, convID, in.Owner)
		return err
	})
	switch {
	case errors.Is(err, errSeen):
		return stored, false, nil
	case pgCode(err) == codeForeignKeyViolation:
		return conversation.Message{}, false, fmt.Errorf("postgres: accept in conversation %d: %w", convID, conversation.ErrNotFound)
	case err != nil:
		return conversation.Message{}, false, fmt.Errorf("postgres: accept in conversation %d: %w", convID, err)
	}
	return stored, true, nil
}

// Seen reports whether an event id was marked within its ttl.
func (s *Store) Seen(ctx context.Context, platform, workspace, eventID string) (bool, error) {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM events WHERE platform = $1 AND workspace = $2 AND event_id = $3 AND expires_at > $4`,
		platform, workspace, eventID, s.timestamp()).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: seen event %s in %s/%s: %w", eventID, platform, workspace, err)
	}
	return true, nil
}

// Inbox returns the questions of convID still waiting for an answer, with
// the instance that accepted each and whether it is alive by the
// database's clock.
func (s *Store) Inbox(ctx context.Context, convID int64) ([]conversation.Question, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+prefixed("q")+`, COALESCE(i.owner, ''), COALESCE(i.reply_id, ''),
			EXISTS (SELECT 1 FROM replicas r WHERE r.owner = i.owner AND r.expires_at > now())
		FROM messages q LEFT JOIN inbox i ON i.message_id = q.id
		WHERE q.conversation_id = $1 AND q.role = 'user'
			AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.reply_to = q.id AND a.role = 'assistant')
		ORDER BY q.created_at, q.id`, convID)
	if err != nil {
		return nil, fmt.Errorf("postgres: inbox of conversation %d: %w", convID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (conversation.Question, error) {
		var q conversation.Question
		dest, finish := messageDest(&q.Message)
		if err := row.Scan(append(dest, &q.Owner, &q.ReplyID, &q.OwnerAlive)...); err != nil {
			return q, err
		}
		return q, finish()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: inbox of conversation %d: %w", convID, err)
	}
	if len(out) == 0 {
		var one int
		err := s.pool.QueryRow(ctx, `SELECT 1 FROM conversations WHERE id = $1`, convID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			err = conversation.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: inbox of conversation %d: %w", convID, err)
		}
	}
	return out, nil
}

// Takeover moves the claims and questions of dead instances (or, with
// everyone, of all others) in platform's conversations to owner. Replicas
// taking over at once queue on an advisory lock, so that the second finds
// the work moved to the first (alive) and takes nothing.
func (s *Store) Takeover(ctx context.Context, owner, platform string, ttl time.Duration, everyone bool, limit int) ([]conversation.Conversation, error) {
	if owner == "" {
		return nil, errors.New("postgres: takeover: the owner is empty; name the instance taking over")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("postgres: takeover by %s: ttl %v is not positive", owner, ttl)
	}
	dead := `owner <> $1 AND conversation_id IN (SELECT id FROM conversations WHERE platform = $2)`
	if !everyone {
		dead += ` AND owner NOT IN (SELECT owner FROM replicas WHERE expires_at > now())`
	}
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	// The lowest conversations first, both kinds of work of each.
	dead += ` AND conversation_id IN (SELECT conversation_id FROM (
		SELECT conversation_id, owner FROM claims UNION SELECT conversation_id, owner FROM inbox) w
		WHERE ` + dead + ` ORDER BY conversation_id LIMIT $3)`
	var convs []conversation.Conversation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('parley.takeover.' || COALESCE(current_schema(), ''), 0))`); err != nil {
			return err
		}
		var ids []int64
		rows, err := tx.Query(ctx, `UPDATE claims SET owner = $1, expires_at = now() + $4::interval, token = nextval('claim_tokens')
			WHERE `+dead+` RETURNING conversation_id`, owner, platform, lim, leaseTTL(ttl))
		if err != nil {
			return err
		}
		claimed, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE inbox SET owner = $1 WHERE `+dead+` RETURNING conversation_id`, owner, platform, lim)
		if err != nil {
			return err
		}
		queued, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		ids = append(claimed, queued...)
		if len(ids) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `SELECT `+conversationColumns+` FROM conversations WHERE id = ANY($1) ORDER BY id`, ids)
		if err != nil {
			return err
		}
		convs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (conversation.Conversation, error) {
			return scanConversation(row)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: takeover by %s: %w", owner, err)
	}
	return convs, nil
}

// UpdateAnswer is UpdateMessage fenced by owner's claim with token.
func (s *Store) UpdateAnswer(ctx context.Context, convID int64, m conversation.Message, owner string, token int64) error {
	atts, err := encodeAttachments(m.Attachments)
	if err != nil {
		return fmt.Errorf("postgres: update answer %d: %w", m.ID, err)
	}
	tools, err := encodeTools(m.Tools)
	if err != nil {
		return fmt.Errorf("postgres: update answer %d: %w", m.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE messages SET platform_id = $1, text = $2, model = $3,
			prompt_tokens = $4, completion_tokens = $5, status = $6, attachments = $7, updated_at = $8, tools = $13
		WHERE id = $9 AND EXISTS (SELECT 1 FROM claims WHERE conversation_id = $10 AND owner = $11 AND token = $12)`,
		nullable(m.PlatformID), m.Text, m.Model, m.PromptTokens, m.CompletionTokens, m.Status, atts,
		s.timestamp(), m.ID, convID, owner, token, tools)
	if pgCode(err) == codeUniqueViolation {
		return fmt.Errorf("postgres: update answer %d: platform id %q already belongs to another message of the conversation", m.ID, m.PlatformID)
	}
	if err != nil {
		return fmt.Errorf("postgres: update answer %d: %w", m.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var one int
	err = s.pool.QueryRow(ctx, `SELECT 1 FROM messages WHERE id = $1`, m.ID).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: update answer %d: %w", m.ID, conversation.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: update answer %d: %w", m.ID, err)
	}
	return fmt.Errorf("postgres: update answer %d: %w", m.ID, conversation.ErrClaimLost)
}

// SetReply records the message showing that question messageID waits.
func (s *Store) SetReply(ctx context.Context, messageID int64, platformID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE inbox SET reply_id = $1 WHERE message_id = $2`, nullable(platformID), messageID); err != nil {
		return fmt.Errorf("postgres: set reply of message %d: %w", messageID, err)
	}
	return nil
}

// Recent returns platform's conversations active since since, with the
// platform id of each one's newest message.
func (s *Store) Recent(ctx context.Context, platform string, since time.Time, limit int) ([]conversation.Recent, error) {
	var lim any
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.platform, c.workspace, c.channel, c.thread, c.created_at, c.updated_at,
			COALESCE((SELECT m.platform_id FROM messages m WHERE m.conversation_id = c.id AND m.platform_id IS NOT NULL
				ORDER BY length(m.platform_id) DESC, m.platform_id COLLATE "C" DESC LIMIT 1), '')
		FROM conversations c WHERE c.platform = $1 AND c.updated_at >= $2
		ORDER BY c.updated_at DESC LIMIT $3`, platform, since, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: recent conversations of %s: %w", platform, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (conversation.Recent, error) {
		var r conversation.Recent
		err := row.Scan(&r.ID, &r.Key.Platform, &r.Key.Workspace, &r.Key.Channel, &r.Key.Thread, &r.CreatedAt, &r.UpdatedAt, &r.LastID)
		r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: recent conversations of %s: %w", platform, err)
	}
	return out, nil
}
