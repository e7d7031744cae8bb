package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Settings are the server settings an admin may change at run time. Each is
// stored as its own row; a missing row means the default.
type Settings struct {
	CheckInIntervalSeconds int `json:"check_in_interval_seconds"`
	CommandTimeoutSeconds  int `json:"command_timeout_seconds"`
	CommandExpirySeconds   int `json:"command_expiry_seconds"`
	// ScanIntervalSeconds is how often agents are assumed to scan when a
	// report does not say: a scanner with no success for twice this long
	// is stale.
	ScanIntervalSeconds int `json:"scan_interval_seconds"`
	// MinAgentVersion, when set, makes the server upgrade every agent that
	// reports an older version (to the version it serves), at most
	// AgentUpgradesPerMinute a minute; "" turns automatic upgrades off.
	MinAgentVersion        string `json:"min_agent_version"`
	AgentUpgradesPerMinute int    `json:"agent_upgrades_per_minute"`
	// KeyRotationGraceSeconds is how long a rotated-out signing key stays
	// trusted (retiring) after POST /api/v1/security/keys/rotate.
	KeyRotationGraceSeconds int `json:"key_rotation_grace_seconds"`
}

// settingMinAgentVersion is the one text setting.
const settingMinAgentVersion = "min_agent_version"

// DefaultSettings are used for every setting never saved.
func DefaultSettings(checkIn int) Settings {
	if checkIn <= 0 {
		checkIn = 300
	}
	return Settings{CheckInIntervalSeconds: checkIn, CommandTimeoutSeconds: 3600, CommandExpirySeconds: 7 * 24 * 3600,
		ScanIntervalSeconds: DefaultScanIntervalSeconds, AgentUpgradesPerMinute: 10,
		KeyRotationGraceSeconds: 30 * 24 * 3600}
}

// SettingBounds holds the accepted range of each setting.
var SettingBounds = map[string][2]int{
	"check_in_interval_seconds":  {10, 86400},
	"command_timeout_seconds":    {30, 7 * 24 * 3600},
	"command_expiry_seconds":     {60, 90 * 24 * 3600},
	"scan_interval_seconds":      {300, 30 * 24 * 3600},
	"agent_upgrades_per_minute":  {1, 1000},
	"key_rotation_grace_seconds": {3600, 365 * 24 * 3600},
}

func (st *Settings) fields() map[string]*int {
	return map[string]*int{
		"check_in_interval_seconds":  &st.CheckInIntervalSeconds,
		"command_timeout_seconds":    &st.CommandTimeoutSeconds,
		"command_expiry_seconds":     &st.CommandExpirySeconds,
		"scan_interval_seconds":      &st.ScanIntervalSeconds,
		"agent_upgrades_per_minute":  &st.AgentUpgradesPerMinute,
		"key_rotation_grace_seconds": &st.KeyRotationGraceSeconds,
	}
}

// Validate refuses values outside SettingBounds and a min_agent_version
// that is not a semantic version.
func (st Settings) Validate() error {
	if st.MinAgentVersion != "" && !protocol.ValidVersion(st.MinAgentVersion) {
		return fmt.Errorf("min_agent_version must be a semantic version such as 1.4.2, or empty to turn automatic agent upgrades off: %w", ErrInvalid)
	}
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
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	keys = append(keys, settingMinAgentVersion)
	sort.Strings(keys)
	rows, err := s.r.QueryContext(ctx, "SELECT key, value FROM settings WHERE key IN ('"+strings.Join(keys, "','")+"')")
	if err != nil {
		return out, fmt.Errorf("reading settings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return out, fmt.Errorf("reading settings: %w", err)
		}
		if k == settingMinAgentVersion {
			out.MinAgentVersion = v
			continue
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
		if err := upsertSetting(ctx, tx, settingMinAgentVersion, st.MinAgentVersion); err != nil {
			return err
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
