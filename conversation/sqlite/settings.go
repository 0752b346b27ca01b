package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/parleyhq/parley/conversation"
)

// SetSetting stores a setting for a scope; an empty value removes it.
func (s *Store) SetSetting(ctx context.Context, scope conversation.Scope, name conversation.Setting, value string) error {
	id, err := scope.StoredID()
	if err != nil {
		return fmt.Errorf("sqlite: set %s: %w", name, err)
	}
	if value == "" {
		_, err = s.write.ExecContext(ctx, `DELETE FROM settings
			WHERE platform = ? AND workspace = ? AND scope_kind = ? AND scope_id = ? AND name = ?`,
			scope.Platform, scope.Workspace, scope.Kind, id, name)
	} else {
		_, err = s.write.ExecContext(ctx, `INSERT INTO settings (platform, workspace, scope_kind, scope_id, name, value, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (platform, workspace, scope_kind, scope_id, name)
			DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			scope.Platform, scope.Workspace, scope.Kind, id, name, value, micros(s.timestamp()))
	}
	if err != nil {
		return fmt.Errorf("sqlite: set %s for %s %s: %w", name, scope.Kind, id, err)
	}
	return nil
}

// ResolveSetting returns the value of the first scope in scopes that has
// the setting, and that scope; ok is false when none has it. It reads all
// the scopes in one query.
func (s *Store) ResolveSetting(ctx context.Context, name conversation.Setting, scopes ...conversation.Scope) (string, conversation.Scope, bool, error) {
	if len(scopes) == 0 {
		return "", conversation.Scope{}, false, nil
	}
	args := []any{name}
	for _, sc := range scopes {
		id, err := sc.StoredID()
		if err != nil {
			return "", conversation.Scope{}, false, fmt.Errorf("sqlite: resolve %s: %w", name, err)
		}
		args = append(args, sc.Platform, sc.Workspace, sc.Kind, id)
	}
	stmt, err := s.resolveStmt(ctx, len(scopes))
	if err != nil {
		return "", conversation.Scope{}, false, fmt.Errorf("sqlite: resolve %s: %w", name, err)
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return "", conversation.Scope{}, false, fmt.Errorf("sqlite: resolve %s: %w", name, err)
	}
	defer rows.Close()
	found := map[conversation.Scope]string{}
	for rows.Next() {
		var sc conversation.Scope
		var value string
		if err := rows.Scan(&sc.Platform, &sc.Workspace, &sc.Kind, &sc.ID, &value); err != nil {
			return "", conversation.Scope{}, false, fmt.Errorf("sqlite: resolve %s: %w", name, err)
		}
		found[sc] = value
	}
	if err := rows.Err(); err != nil {
		return "", conversation.Scope{}, false, fmt.Errorf("sqlite: resolve %s: %w", name, err)
	}
	for _, sc := range scopes {
		id, _ := sc.StoredID()
		stored := sc
		stored.ID = id
		if value, ok := found[stored]; ok {
			return value, sc, true, nil
		}
	}
	return "", conversation.Scope{}, false, nil
}

// resolveStmt returns the query of ResolveSetting for n scopes, prepared
// once per n: every answer resolves its settings, and SQLite spends more
// time parsing the query than running it.
func (s *Store) resolveStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	if st, ok := s.resolve[n]; ok {
		return st, nil
	}
	var where strings.Builder
	for i := range n {
		if i > 0 {
			where.WriteString(" OR ")
		}
		where.WriteString("(platform = ? AND workspace = ? AND scope_kind = ? AND scope_id = ?)")
	}
	st, err := s.read.PrepareContext(ctx, `SELECT platform, workspace, scope_kind, scope_id, value FROM settings
		WHERE name = ? AND (`+where.String()+`)`)
	if err != nil {
		return nil, err
	}
	if s.resolve == nil {
		s.resolve = make(map[int]*sql.Stmt)
	}
	s.resolve[n] = st
	return st, nil
}
