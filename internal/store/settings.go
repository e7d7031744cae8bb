package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

func upsertSetting(ctx context.Context, tx *sql.Tx, key, value string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value, updated_at) VALUES ($1,$2,$3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, key, value, Now())
	if err != nil {
		return fmt.Errorf("saving setting %s: %w", key, err)
	}
	return nil
}

// Setting reads one setting; ok is false when it is not set.
func (s *Store) Setting(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = $1", key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading setting %s: %w", key, err)
	}
	return value, true, nil
}

// SetSetting writes one setting, with its audit row.
func (s *Store) SetSetting(ctx context.Context, key, value string, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := upsertSetting(ctx, tx, key, value); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a)
	})
}
