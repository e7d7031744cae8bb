package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
)

// Settings are the server settings an admin may change at run time. Each is
// stored as its own row; a missing row means the default.
type Settings struct {
	CheckInIntervalSeconds int `json:"check_in_interval_seconds"`
	CommandTimeoutSeconds  int `json:"command_timeout_seconds"`
	CommandExpirySeconds   int `json:"command_expiry_seconds"`
}

// DefaultSettings are used for every setting never saved.
func DefaultSettings(checkIn int) Settings {
	if checkIn <= 0 {
		checkIn = 300
	}
	return Settings{CheckInIntervalSeconds: checkIn, CommandTimeoutSeconds: 3600, CommandExpirySeconds: 7 * 24 * 3600}
}

// SettingBounds holds the accepted range of each setting.
var SettingBounds = map[string][2]int{
	"check_in_interval_seconds": {10, 86400},
	"command_timeout_seconds":   {30, 7 * 24 * 3600},
	"command_expiry_seconds":    {60, 90 * 24 * 3600},
}

func (st *Settings) fields() map[string]*int {
	return map[string]*int{
		"check_in_interval_seconds": &st.CheckInIntervalSeconds,
		"command_timeout_seconds":   &st.CommandTimeoutSeconds,
		"command_expiry_seconds":    &st.CommandExpirySeconds,
	}
}

// Validate refuses values outside SettingBounds.
func (st Settings) Validate() error {
	for k, p := range st.fields() {
		b := SettingBounds[k]
		if *p < b[0] || *p > b[1] {
			return fmt.Errorf("%s must be from %d to %d: %w", k, b[0], b[1], ErrInvalid)
		}
	}
	return nil
}

// LoadSettings reads the settings over the defaults.
func (s *Store) LoadSettings(ctx context.Context, defaults Settings) (Settings, error) {
	out := defaults
	f := out.fields()
	rows, err := s.r.QueryContext(ctx, "SELECT key, value FROM settings WHERE key IN ('check_in_interval_seconds','command_timeout_seconds','command_expiry_seconds')")
	if err != nil {
		return out, fmt.Errorf("reading settings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return out, fmt.Errorf("reading settings: %w", err)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return out, fmt.Errorf("setting %s holds %q, not a number", k, v)
		}
		*f[k] = n
	}
	return out, rows.Err()
}

// SaveSettings stores validated settings; a changed check-in interval applies
// to every agent at its next check-in.
func (s *Store) SaveSettings(ctx context.Context, st Settings, a *Audit) error {
	fields := st.fields()
	if err := st.Validate(); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for k, p := range fields {
			if err := upsertSetting(ctx, tx, k, strconv.Itoa(*p)); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE agents SET check_in_interval_seconds = $1 WHERE check_in_interval_seconds <> $1", st.CheckInIntervalSeconds); err != nil {
			return fmt.Errorf("applying the check-in interval: %w", err)
		}
		if a != nil {
			b, _ := json.Marshal(st)
			a.Details = map[string]any{"settings": json.RawMessage(b)}
		}
		return insertAudit(ctx, tx, a)
	})
}
