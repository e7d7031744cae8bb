package store

import (
	"context"
	"database/sql"
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
