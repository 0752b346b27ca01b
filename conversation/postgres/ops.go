package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyhq/parley/conversation"
)

var _ conversation.Ops = (*Store)(nil)

// day returns the UTC date of t, as a midnight UTC for a date column.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// AddUsage adds u to the counter k, creating it, in one statement: replicas
// adding to one counter at once lose nothing. Only the UTC date of k.Day
// counts. It returns an error when k has no Platform or no Day.
func (s *Store) AddUsage(ctx context.Context, k conversation.UsageKey, u conversation.Usage) error {
	if k.Platform == "" {
		return errors.New("postgres: add usage: the key has no platform")
	}
	if k.Day.IsZero() {
		return fmt.Errorf("postgres: add usage in %s/%s: the key has no day; set UsageKey.Day to the time of the request", k.Platform, k.Workspace)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO usage (platform, workspace, user_id, day, channel, model,
			requests, prompt_tokens, completion_tokens)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (platform, workspace, user_id, day, channel, model) DO UPDATE SET
			requests = usage.requests + EXCLUDED.requests,
			prompt_tokens = usage.prompt_tokens + EXCLUDED.prompt_tokens,
			completion_tokens = usage.completion_tokens + EXCLUDED.completion_tokens`,
		k.Platform, k.Workspace, k.User, day(k.Day), k.Channel, k.Model,
		u.Requests, u.PromptTokens, u.CompletionTokens)
	if err != nil {
		return fmt.Errorf("postgres: add usage in %s/%s: %w", k.Platform, k.Workspace, err)
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
		return u, errors.New("postgres: sum usage: the filter has no platform")
	}
	query := `SELECT COALESCE(SUM(requests), 0)::bigint, COALESCE(SUM(prompt_tokens), 0)::bigint, COALESCE(SUM(completion_tokens), 0)::bigint
		FROM usage WHERE platform = $1 AND workspace = $2`
	args := []any{f.Platform, f.Workspace}
	where := func(cond string, v any) {
		args = append(args, v)
		query += ` AND ` + cond + ` $` + strconv.Itoa(len(args))
	}
	if f.User != "" {
		where("user_id =", f.User)
	}
	if f.Channel != "" {
		where("channel =", f.Channel)
	}
	if f.Model != "" {
		where("model =", f.Model)
	}
	if !f.Since.IsZero() {
		where("day >=", day(f.Since))
	}
	if !f.Until.IsZero() {
		where("day <", day(f.Until))
	}
	if err := s.pool.QueryRow(ctx, query, args...).Scan(&u.Requests, &u.PromptTokens, &u.CompletionTokens); err != nil {
		return conversation.Usage{}, fmt.Errorf("postgres: sum usage in %s/%s: %w", f.Platform, f.Workspace, err)
	}
	return u, nil
}

// ClaimConversation makes owner the one replica answering conversation
// convID until ttl has passed by the database's clock (now(), never the
// replica's, so that replicas whose clocks disagree agree on claims). It
// reports false while another owner's claim is live; claiming again as
// the same owner renews the claim (keeping its token), and an expired
// claim is taken over (with a new one). Of replicas claiming at once, one
// wins: the upsert's conflict check and its update are one step. It
// returns ErrNotFound when the conversation does not exist.
func (s *Store) ClaimConversation(ctx context.Context, convID int64, owner string, ttl time.Duration) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("postgres: claim conversation %d: the owner is empty; name the replica claiming it", convID)
	}
	if ttl <= 0 {
		return 0, false, fmt.Errorf("postgres: claim conversation %d: ttl %v is not positive", convID, ttl)
	}
	var token int64
	err := s.pool.QueryRow(ctx, `INSERT INTO claims (conversation_id, owner, expires_at, token)
		VALUES ($1, $2, now() + $3::interval, nextval('claim_tokens'))
		ON CONFLICT (conversation_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at,
			token = CASE WHEN claims.owner = EXCLUDED.owner THEN claims.token ELSE EXCLUDED.token END
			WHERE claims.owner = EXCLUDED.owner OR claims.expires_at <= now()
		RETURNING token`, convID, owner, leaseTTL(ttl)).Scan(&token)
	switch {
	case err == nil:
		return token, true, nil
	case errors.Is(err, pgx.ErrNoRows): // another owner's claim is live
		return 0, false, nil
	case pgCode(err) == codeForeignKeyViolation:
		return 0, false, fmt.Errorf("postgres: claim conversation %d: %w", convID, conversation.ErrNotFound)
	default:
		return 0, false, fmt.Errorf("postgres: claim conversation %d: %w", convID, err)
	}
}

// ReleaseConversation ends owner's claim on convID; releasing a claim one
// does not hold (never held, expired and taken over, or released) is not
// an error.
func (s *Store) ReleaseConversation(ctx context.Context, convID int64, owner string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM claims WHERE conversation_id = $1 AND owner = $2`, convID, owner); err != nil {
		return fmt.Errorf("postgres: release conversation %d: %w", convID, err)
	}
	return nil
}

// Pending returns the user messages of conversation convID that no
// assistant message answers yet (none has ReplyTo equal to their ID), by
// CreatedAt then ID, at most limit (0: all). It returns ErrNotFound when
// the conversation does not exist.
func (s *Store) Pending(ctx context.Context, convID int64, limit int) ([]conversation.Message, error) {
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+prefixed("q")+` FROM messages q
		WHERE q.conversation_id = $1 AND q.role = 'user'
			AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.reply_to = q.id AND a.role = 'assistant')
		ORDER BY q.created_at, q.id LIMIT $2`, convID, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: pending messages of conversation %d: %w", convID, err)
	}
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (conversation.Message, error) {
		return scanMessage(row)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: pending messages of conversation %d: %w", convID, err)
	}
	if len(msgs) == 0 {
		var one int
		err := s.pool.QueryRow(ctx, `SELECT 1 FROM conversations WHERE id = $1`, convID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			err = conversation.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: pending messages of conversation %d: %w", convID, err)
		}
	}
	return msgs, nil
}
