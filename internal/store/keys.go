package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SigningKey is the public half of a server signing key.
type SigningKey struct {
	KeyID     string     `json:"key_id"`
	Algorithm string     `json:"algorithm"`
	PublicKey string     `json:"public_key"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	NotAfter  *time.Time `json:"not_after"`
}

// EnsureSigningKey registers the server's key if the table does not know it
// yet; a key that is already there keeps its status.
func (s *Store) EnsureSigningKey(ctx context.Context, keyID, publicKey string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (key_id, algorithm, public_key, status, created_at)
			VALUES ($1, 'ed25519', $2, 'active', $3) ON CONFLICT (key_id) DO NOTHING`, keyID, publicKey, T(now))
		if err != nil {
			return fmt.Errorf("registering signing key %s: %w", keyID, err)
		}
		return nil
	})
}

// SigningKeys lists keys that agents may still trust (active and retiring).
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key_id, algorithm, public_key, status, created_at, not_after
		FROM signing_keys WHERE status IN ('active', 'retiring') ORDER BY created_at DESC, key_id`)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	defer rows.Close()
	out := []SigningKey{}
	for rows.Next() {
		var k SigningKey
		var na sql.NullTime
		if err := rows.Scan(&k.KeyID, &k.Algorithm, &k.PublicKey, &k.Status, &k.CreatedAt, &na); err != nil {
			return nil, fmt.Errorf("reading signing keys: %w", err)
		}
		k.CreatedAt, k.NotAfter = k.CreatedAt.UTC(), timePtr(na)
		out = append(out, k)
	}
	return out, rows.Err()
}

// ActiveSigningKeyID returns the id of the key new commands are signed
// with; ErrNotFound when no key is active.
func (s *Store) ActiveSigningKeyID(ctx context.Context) (string, error) {
	var id string
	err := s.r.QueryRowContext(ctx, "SELECT key_id FROM signing_keys WHERE status = 'active' ORDER BY created_at DESC, key_id LIMIT 1").Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("reading the active signing key: %w", err)
	}
	return id, nil
}

// KeyRotation describes one rotation of the signing key.
type KeyRotation struct {
	OldKeyID     string // the key active when the rotation was prepared
	NewKeyID     string
	NewPublicKey string
	Now          time.Time
	NotAfter     time.Time // when the old key retires
	// Sign builds the rotate_key commands, signed by the old key, for the
	// agents given.
	Sign  func(agentIDs []string) []CommandRecord
	Audit *Audit
}

// RotateSigningKey makes the new key active, the old one retiring until
// NotAfter, and queues a rotate_key command to every agent (a pending
// rotate_key an agent still has is cancelled and replaced), all in one
// transaction. ErrConflict when OldKeyID is no longer the active key (a
// concurrent rotation). It returns the agents that got a command.
func (s *Store) RotateSigningKey(ctx context.Context, r KeyRotation) ([]string, error) {
	now := T(r.Now)
	var agentIDs []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE signing_keys SET status = 'retiring', not_after = $1 WHERE key_id = $2 AND status = 'active'",
			T(r.NotAfter), r.OldKeyID)
		if err != nil {
			return fmt.Errorf("retiring signing key: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("key %s is no longer the active key (another rotation?): %w", r.OldKeyID, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (key_id, algorithm, public_key, status, created_at)
			VALUES ($1, 'ed25519', $2, 'active', $3)`, r.NewKeyID, r.NewPublicKey, now); err != nil {
			return fmt.Errorf("storing the new signing key: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE commands SET status = 'cancelled', finished_at = $1 WHERE type = 'rotate_key' AND status = 'pending'", now); err != nil {
			return fmt.Errorf("replacing pending rotate_key commands: %w", err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT id FROM agents ORDER BY id")
		if err != nil {
			return fmt.Errorf("listing agents: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("listing agents: %w", err)
			}
			agentIDs = append(agentIDs, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("listing agents: %w", err)
		}
		if len(agentIDs) > 0 {
			cmds := r.Sign(agentIDs)
			if _, err := s.insertCommands(ctx, tx, cmds); err != nil {
				return err
			}
			if err := s.notifyAgents(ctx, tx, cmds); err != nil {
				return err
			}
		}
		if r.Audit != nil {
			r.Audit.Details = map[string]any{"key_id": r.NewKeyID, "retiring_key_id": r.OldKeyID,
				"not_after": T(r.NotAfter), "agents": len(agentIDs)}
		}
		return insertAudit(ctx, tx, r.Audit)
	})
	return agentIDs, err
}

// RetireSigningKeys marks retiring keys past their not_after retired (no
// longer published) and returns their ids.
func (s *Store) RetireSigningKeys(ctx context.Context, now time.Time) ([]string, error) {
	var out []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "UPDATE signing_keys SET status = 'retired' WHERE status = 'retiring' AND not_after <= $1 RETURNING key_id", T(now))
		if err != nil {
			return fmt.Errorf("retiring signing keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("retiring signing keys: %w", err)
			}
			out = append(out, id)
		}
		return rows.Err()
	})
	return out, err
}
