package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RegistrationToken lets agents enrol: a number of seats until it expires or
// is revoked. Only its SHA-256 is stored.
type RegistrationToken struct {
	ID        string     `json:"id"`
	TokenHash string     `json:"-"`
	Note      string     `json:"note"`
	Seats     int        `json:"seats"`
	SeatsUsed int        `json:"seats_used"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// Status is derived, never stored: active, expired, revoked or exhausted.
func (t RegistrationToken) Status(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	case t.SeatsUsed >= t.Seats:
		return "exhausted"
	}
	return "active"
}

const regCols = "id, token_hash, note, seats, seats_used, created_by, created_at, expires_at, revoked_at"

func scanReg(sc interface{ Scan(...any) error }) (RegistrationToken, error) {
	var t RegistrationToken
	var rev sql.NullTime
	err := sc.Scan(&t.ID, &t.TokenHash, &t.Note, &t.Seats, &t.SeatsUsed, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &rev)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC(), timePtr(rev)
	return t, err
}

// CreateRegistrationToken stores a new token.
func (s *Store) CreateRegistrationToken(ctx context.Context, t RegistrationToken, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO registration_tokens (id, token_hash, note, seats, seats_used, created_by, created_at, expires_at)
			VALUES ($1,$2,$3,$4,0,$5,$6,$7)`, t.ID, t.TokenHash, t.Note, t.Seats, t.CreatedBy, T(t.CreatedAt), T(t.ExpiresAt))
		if err != nil {
			return fmt.Errorf("creating registration token: %w", err)
		}
		return insertAudit(ctx, tx, a)
	})
}

// RegistrationTokenByID reads one token.
func (s *Store) RegistrationTokenByID(ctx context.Context, id string) (RegistrationToken, error) {
	t, err := scanReg(s.r.QueryRowContext(ctx, "SELECT "+regCols+" FROM registration_tokens WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("reading registration token: %w", err)
	}
	return t, nil
}

// ListRegistrationTokens lists tokens newest first, with the total count.
func (s *Store) ListRegistrationTokens(ctx context.Context, p Page) ([]RegistrationToken, int, error) {
	p = p.norm()
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM registration_tokens").Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("counting registration tokens: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+regCols+" FROM registration_tokens ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2", p.Limit, p.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("listing registration tokens: %w", err)
	}
	defer rows.Close()
	out := []RegistrationToken{}
	for rows.Next() {
		t, err := scanReg(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("reading registration tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, total, rows.Err()
}

// RevokeRegistrationToken stops a token from enrolling more agents.
// Revoking twice is harmless and returns the token as it is.
func (s *Store) RevokeRegistrationToken(ctx context.Context, id string, now time.Time, a *Audit) (RegistrationToken, error) {
	var t RegistrationToken
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE registration_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2", T(now), id)
		if err != nil {
			return fmt.Errorf("revoking registration token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if t, err = scanReg(tx.QueryRowContext(ctx, "SELECT "+regCols+" FROM registration_tokens WHERE id = $1", id)); err != nil {
			return fmt.Errorf("reading registration token: %w", err)
		}
		return insertAudit(ctx, tx, a)
	})
	return t, err
}

// DeleteRegistrationToken removes a token; agents it enrolled stay.
func (s *Store) DeleteRegistrationToken(ctx context.Context, id string, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM registration_tokens WHERE id = $1", id)
		if err != nil {
			return fmt.Errorf("deleting registration token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return insertAudit(ctx, tx, a)
	})
}
