package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Audit is one row of the audit log: who did what to what, when, from where.
// Mutating store methods take one and write it in the same transaction as
// the change, so the log and the data never disagree.
type Audit struct {
	ID         int64          `json:"id"`
	At         time.Time      `json:"at"`
	ActorType  string         `json:"actor_type"` // user, agent, system
	ActorID    string         `json:"actor_id"`
	ActorName  string         `json:"actor_name"`
	Action     string         `json:"action"`
	TargetType string         `json:"target_type"`
	TargetID   string         `json:"target_id"`
	IP         string         `json:"ip"`
	Details    map[string]any `json:"details"`
}

func insertAudit(ctx context.Context, tx *sql.Tx, a *Audit) error {
	if a == nil {
		return nil
	}
	if a.At.IsZero() {
		a.At = Now()
	}
	details := []byte("{}")
	if len(a.Details) > 0 {
		var err error
		if details, err = json.Marshal(a.Details); err != nil {
			return fmt.Errorf("encoding audit details: %w", err)
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_log
		(at, actor_type, actor_id, actor_name, action, target_type, target_id, ip, details)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
		T(a.At), a.ActorType, a.ActorID, a.ActorName, a.Action, a.TargetType, a.TargetID, a.IP, string(details))
	if err != nil {
		return fmt.Errorf("writing audit log: %w", err)
	}
	return nil
}

// RecordAudit writes an audit row on its own (for actions without a data change, such as a login).
func (s *Store) RecordAudit(ctx context.Context, a Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return insertAudit(ctx, tx, &a) })
}

// AuditFilter narrows ListAudit.
type AuditFilter struct {
	Action   string
	ActorID  string
	TargetID string
	BeforeID int64 // keyset cursor: rows with id < BeforeID
	Limit    int
}

// ListAudit returns audit rows newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]Audit, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	q := `SELECT id, at, actor_type, actor_id, actor_name, action, target_type, target_id, ip, details
		FROM audit_log WHERE ($1 = '' OR action = $1) AND ($2 = '' OR actor_id = $2)
		AND ($3 = '' OR target_id = $3) AND ($4 <= 0 OR id < $4) ORDER BY id DESC LIMIT $5`
	rows, err := s.r.QueryContext(ctx, q, f.Action, f.ActorID, f.TargetID, f.BeforeID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing audit log: %w", err)
	}
	defer rows.Close()
	out := []Audit{}
	for rows.Next() {
		var a Audit
		var details string
		if err := rows.Scan(&a.ID, &a.At, &a.ActorType, &a.ActorID, &a.ActorName, &a.Action,
			&a.TargetType, &a.TargetID, &a.IP, &details); err != nil {
			return nil, fmt.Errorf("reading audit log: %w", err)
		}
		a.At = a.At.UTC()
		_ = json.Unmarshal([]byte(details), &a.Details)
		out = append(out, a)
	}
	return out, rows.Err()
}

// CountAudit counts rows, for tests that prove a refused request wrote nothing.
func (s *Store) CountAudit(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM audit_log").Scan(&n)
	return n, err
}
