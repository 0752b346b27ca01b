package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parleyhq/parley/conversation"
)

// errSeen rolls back an Accept whose event was already seen.
var errSeen = errors.New("event already seen")

// nextToken draws a fencing token from the store's counter, inside tx.
func nextToken(ctx context.Context, tx *sql.Tx) (int64, error) {
	var token int64
	err := tx.QueryRowContext(ctx, `UPDATE fence SET token = token + 1 WHERE id = 1 RETURNING token`).Scan(&token)
	return token, err
}

// Accept stores user message m as accepted by in.Owner and marks the
// events that delivered it, in one transaction; see conversation.Ops.
func (s *Store) Accept(ctx context.Context, convID int64, m conversation.Message, in conversation.Intake) (conversation.Message, bool, error) {
	if in.Owner == "" {
		return conversation.Message{}, false, fmt.Errorf("sqlite: accept in conversation %d: the owner is empty; name the instance accepting it", convID)
	}
	var (
		stored  conversation.Message
		created bool
	)
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// The clock is read once the write lock is held.
		now := s.timestamp()
		convID := convID
		if convID == 0 {
			c, err := s.createConversation(ctx, tx, in.Key, now)
			if err != nil {
				return err
			}
			convID = c.ID
		}
		msg, atts, err := newMessage(convID, m, now)
		if err != nil {
			return err
		}
		if len(in.Events) > 0 {
			if _, err := tx.StmtContext(ctx, s.stmts.expireEvents).ExecContext(ctx, micros(now)); err != nil {
				return err
			}
		}
		for _, id := range in.Events {
			res, err := tx.StmtContext(ctx, s.stmts.insertEvent).ExecContext(ctx, in.Platform, in.Workspace, id, micros(now.Add(in.TTL)))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return errSeen
			}
		}
		stored, created, err = s.appendTx(ctx, tx, convID, msg, atts, now)
		if err != nil {
			return err
		}
		if !created {
			return errSeen // the message is stored already: mark nothing
		}
		_, err = tx.StmtContext(ctx, s.stmts.insertInbox).ExecContext(ctx, stored.ID, convID, in.Owner)
		return err
	})
	switch {
	case errors.Is(err, errSeen):
		return stored, false, nil
	case sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return conversation.Message{}, false, fmt.Errorf("sqlite: accept in conversation %d: %w", convID, conversation.ErrNotFound)
	case err != nil:
		return conversation.Message{}, false, fmt.Errorf("sqlite: accept in conversation %d: %w", convID, err)
	}
	return stored, created, nil
}

// Seen reports whether an event id was marked within its ttl.
func (s *Store) Seen(ctx context.Context, platform, workspace, eventID string) (bool, error) {
	var one int
	err := s.stmts.seen.QueryRowContext(ctx, platform, workspace, eventID, micros(s.timestamp())).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: seen event %s in %s/%s: %w", eventID, platform, workspace, err)
	}
	return true, nil
}

// Inbox returns the questions of convID still waiting for an answer, with
// the instance that accepted each and whether it is alive.
func (s *Store) Inbox(ctx context.Context, convID int64) ([]conversation.Question, error) {
	rows, err := s.stmts.inbox.QueryContext(ctx, micros(s.timestamp()), convID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: inbox of conversation %d: %w", convID, err)
	}
	defer rows.Close()
	var out []conversation.Question
	for rows.Next() {
		var q conversation.Question
		dest, finish := messageDest(&q.Message)
		if err := rows.Scan(append(dest, &q.Owner, &q.ReplyID, &q.OwnerAlive)...); err != nil {
			return nil, fmt.Errorf("sqlite: inbox of conversation %d: %w", convID, err)
		}
		if err := finish(); err != nil {
			return nil, fmt.Errorf("sqlite: inbox of conversation %d: %w", convID, err)
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: inbox of conversation %d: %w", convID, err)
	}
	if len(out) == 0 {
		ok, err := conversationExists(ctx, s.read, convID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: inbox of conversation %d: %w", convID, err)
		}
		if !ok {
			return nil, fmt.Errorf("sqlite: inbox of conversation %d: %w", convID, conversation.ErrNotFound)
		}
	}
	return out, nil
}

// Takeover moves the claims and questions of dead instances (or, with
// everyone, of all others) in platform's conversations to owner. Writes
// on one file are serialized, so one takeover sees another's result.
func (s *Store) Takeover(ctx context.Context, owner, platform string, ttl time.Duration, everyone bool, limit int) ([]conversation.Conversation, error) {
	if owner == "" {
		return nil, errors.New("sqlite: takeover: the owner is empty; name the instance taking over")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("sqlite: takeover by %s: ttl %v is not positive", owner, ttl)
	}
	var convs []conversation.Conversation
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		now := micros(s.timestamp())
		dead := `owner <> ? AND conversation_id IN (SELECT id FROM conversations WHERE platform = ?)`
		args := []any{owner, platform}
		if !everyone {
			dead += ` AND owner NOT IN (SELECT owner FROM replicas WHERE expires_at > ?)`
			args = append(args, now)
		}
		if limit > 0 {
			// The lowest conversations first, both kinds of work of each.
			dead += ` AND conversation_id IN (SELECT conversation_id FROM (
				SELECT conversation_id, owner FROM claims UNION SELECT conversation_id, owner FROM inbox)
				WHERE ` + dead + ` ORDER BY conversation_id LIMIT ?)`
			args = append(args, args...)
			args = append(args, limit)
		}
		token, err := nextToken(ctx, tx)
		if err != nil {
			return err
		}
		ids := make(map[int64]bool)
		collect := func(rows *sql.Rows, err error) error {
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids[id] = true
			}
			return rows.Err()
		}
		if err := collect(tx.QueryContext(ctx, `UPDATE claims SET owner = ?, expires_at = ?, token = ? WHERE `+dead+` RETURNING conversation_id`,
			append([]any{owner, now + leaseMicros(ttl), token}, args...)...)); err != nil {
			return err
		}
		if err := collect(tx.QueryContext(ctx, `UPDATE inbox SET owner = ? WHERE `+dead+` RETURNING conversation_id`,
			append([]any{owner}, args...)...)); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
		var in []any
		for id := range ids {
			in = append(in, id)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+conversationColumns+` FROM conversations WHERE id IN (`+marks+`) ORDER BY id`, in...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanConversation(rows)
			if err != nil {
				return err
			}
			convs = append(convs, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: takeover by %s: %w", owner, err)
	}
	return convs, nil
}

// UpdateAnswer is UpdateMessage fenced by owner's claim with token.
func (s *Store) UpdateAnswer(ctx context.Context, convID int64, m conversation.Message, owner string, token int64) error {
	atts, err := encodeAttachments(m.Attachments)
	if err != nil {
		return fmt.Errorf("sqlite: update answer %d: %w", m.ID, err)
	}
	tools, err := encodeTools(m.Tools)
	if err != nil {
		return fmt.Errorf("sqlite: update answer %d: %w", m.ID, err)
	}
	res, err := s.write.ExecContext(ctx, `UPDATE messages SET platform_id = ?, text = ?, model = ?,
			prompt_tokens = ?, completion_tokens = ?, status = ?, attachments = ?, tools = ?, updated_at = ?
		WHERE id = ? AND EXISTS (SELECT 1 FROM claims WHERE conversation_id = ? AND owner = ? AND token = ?)`,
		nullable(m.PlatformID), m.Text, m.Model, m.PromptTokens, m.CompletionTokens, m.Status, atts, tools,
		micros(s.timestamp()), m.ID, convID, owner, token)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return fmt.Errorf("sqlite: update answer %d: platform id %q already belongs to another message of the conversation", m.ID, m.PlatformID)
	}
	if err != nil {
		return fmt.Errorf("sqlite: update answer %d: %w", m.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: update answer %d: %w", m.ID, err)
	}
	if n == 1 {
		return nil
	}
	var one int
	err = s.read.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE id = ?`, m.ID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: update answer %d: %w", m.ID, conversation.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: update answer %d: %w", m.ID, err)
	}
	return fmt.Errorf("sqlite: update answer %d: %w", m.ID, conversation.ErrClaimLost)
}

// SetReply records the message showing that question messageID waits.
func (s *Store) SetReply(ctx context.Context, messageID int64, platformID string) error {
	if _, err := s.write.ExecContext(ctx, `UPDATE inbox SET reply_id = ? WHERE message_id = ?`, nullable(platformID), messageID); err != nil {
		return fmt.Errorf("sqlite: set reply of message %d: %w", messageID, err)
	}
	return nil
}

// Recent returns platform's conversations active since since, with the
// platform id of each one's newest message.
func (s *Store) Recent(ctx context.Context, platform string, since time.Time, limit int) ([]conversation.Recent, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+prefixedConversation("c")+`,
			COALESCE((SELECT m.platform_id FROM messages m WHERE m.conversation_id = c.id AND m.platform_id IS NOT NULL
				ORDER BY length(m.platform_id) DESC, m.platform_id DESC LIMIT 1), '')
		FROM conversations c WHERE c.platform = ? AND c.updated_at >= ?
		ORDER BY c.updated_at DESC LIMIT ?`, platform, micros(since), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: recent conversations of %s: %w", platform, err)
	}
	defer rows.Close()
	var out []conversation.Recent
	for rows.Next() {
		var r conversation.Recent
		var created, updated int64
		if err := rows.Scan(&r.ID, &r.Key.Platform, &r.Key.Workspace, &r.Key.Channel, &r.Key.Thread, &created, &updated, &r.LastID); err != nil {
			return nil, fmt.Errorf("sqlite: recent conversations of %s: %w", platform, err)
		}
		r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: recent conversations of %s: %w", platform, err)
	}
	return out, nil
}

func prefixedConversation(a string) string {
	return a + `.id, ` + a + `.platform, ` + a + `.workspace, ` + a + `.channel, ` + a + `.thread, ` + a + `.created_at, ` + a + `.updated_at`
}
