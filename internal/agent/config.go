package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

// Key statuses (SPEC §4 public keys).
const (
	KeyActive   = "active"
	KeyRetiring = "retiring"
)

// PinnedKey is a server signing key the agent trusts (SPEC §5). Keys come
// only from the registration answer or from a verified rotate_key command.
type PinnedKey struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
	Status    string `json:"status"`
	// NotAfter (Unix seconds), when set, is when the agent stops trusting
	// the key (a retired key after its grace period).
	NotAfter int64 `json:"not_after,omitempty"`
}

// Config is the agent's config file (SPEC §8), JSON, mode 0600. It holds the
// agent's credentials, so it is written only by SaveConfig.
type Config struct {
	ServerURL      string      `json:"server_url"`
	AgentID        string      `json:"agent_id"`
	Token          string      `json:"token"`
	RefreshToken   string      `json:"refresh_token"`
	TokenExpiresAt time.Time   `json:"token_expires_at"`
	MachineID      string      `json:"machine_id"`
	PinnedKeys     []PinnedKey `json:"pinned_keys"`
	// CheckInIntervalSeconds is the server's interval as of registration;
	// every check-in answer updates it in memory.
	CheckInIntervalSeconds int `json:"check_in_interval_seconds"`

	// Optional overrides (0 or absent: the default or the server's value).

	// PollIntervalSeconds replaces the server's check-in interval.
	PollIntervalSeconds int `json:"poll_interval_seconds,omitempty"`
	// BackoffMinSeconds and BackoffMaxSeconds bound the retry delay after
	// failures (defaults 2 and 300).
	BackoffMinSeconds int `json:"backoff_min_seconds,omitempty"`
	BackoffMaxSeconds int `json:"backoff_max_seconds,omitempty"`
	// LongPollSeconds is the check-in's ?wait= (default 30, at most 60);
	// 0 turns long-polling off (plain polling at the interval).
	LongPollSeconds *int `json:"long_poll_seconds,omitempty"`
	// Scanners configures update scanning (all optional).
	Scanners *ScanConfig `json:"scanners,omitempty"`
	// UpgradeWatchdogSeconds is how long a self-upgraded agent has to check
	// in before the previous version is restored (default 300).
	UpgradeWatchdogSeconds int `json:"upgrade_watchdog_seconds,omitempty"`

	// unknown lists top-level keys this version does not know; they are
	// ignored (a config written by a newer agent must still load after a
	// rollback) and reported by Warnings.
	unknown []string
	// loosePerm is set when the file was readable by group or others.
	loosePerm os.FileMode
}

// Defaults of the overrides.
const (
	DefaultLongPollSeconds  = 30
	DefaultCheckInInterval  = 300 * time.Second
	DefaultBackoffMin       = 2 * time.Second
	DefaultBackoffMax       = 5 * time.Minute
	minCheckInInterval      = 5 * time.Second
	maxCheckInIntervalLimit = 24 * 60 * 60
)

// LogValue keeps the credentials out of every log line.
func (c *Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("server_url", c.ServerURL), slog.String("agent_id", c.AgentID),
		slog.String("machine_id", c.MachineID), slog.Int("pinned_keys", len(c.PinnedKeys)))
}

// Warnings returns problems that did not stop LoadConfig.
func (c *Config) Warnings() []string {
	var w []string
	if len(c.unknown) > 0 {
		w = append(w, fmt.Sprintf("the config has fields this agent version does not know and ignores: %v", c.unknown))
	}
	if c.loosePerm != 0 {
		w = append(w, fmt.Sprintf("the config file holds the agent's tokens but has mode %04o; it should be 0600 (chmod 600 it)", c.loosePerm))
	}
	return w
}

// Interval returns the check-in interval: the override, else the server's
// value, else the default.
func (c *Config) Interval() time.Duration {
	if c.PollIntervalSeconds > 0 {
		return time.Duration(c.PollIntervalSeconds) * time.Second
	}
	if c.CheckInIntervalSeconds > 0 {
		return time.Duration(c.CheckInIntervalSeconds) * time.Second
	}
	return DefaultCheckInInterval
}

// LongPoll returns the long-poll wait in seconds (0: off).
func (c *Config) LongPoll() int {
	if c.LongPollSeconds == nil {
		return DefaultLongPollSeconds
	}
	return *c.LongPollSeconds
}

// Backoff returns the retry delay bounds.
func (c *Config) Backoff() (lo, hi time.Duration) {
	lo, hi = DefaultBackoffMin, DefaultBackoffMax
	if c.BackoffMinSeconds > 0 {
		lo = time.Duration(c.BackoffMinSeconds) * time.Second
	}
	if c.BackoffMaxSeconds > 0 {
		hi = time.Duration(c.BackoffMaxSeconds) * time.Second
	}
	return lo, max(lo, hi)
}

// clone returns a deep copy (the pinned keys are not shared).
func (c *Config) clone() *Config {
	cp := *c
	cp.PinnedKeys = slices.Clone(c.PinnedKeys)
	cp.unknown = slices.Clone(c.unknown)
	if c.LongPollSeconds != nil {
		v := *c.LongPollSeconds
		cp.LongPollSeconds = &v
	}
	if c.Scanners != nil {
		sc := *c.Scanners
		sc.Enabled = slices.Clone(c.Scanners.Enabled)
		sc.Intervals = maps.Clone(c.Scanners.Intervals)
		cp.Scanners = &sc
	}
	return &cp
}

// agentIDRe accepts the server's UUIDs and any similar plain identifier; it
// keeps the id safe inside a URL path and the signed ':'-joined message.
var agentIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks every field and returns the first problem as a sentence
// naming the field.
func (c *Config) Validate() error {
	if _, err := client.ParseServerURL(c.ServerURL); err != nil {
		return fmt.Errorf("server_url: %v", err)
	}
	if !agentIDRe.MatchString(c.AgentID) {
		return errors.New("agent_id is missing or malformed; run `redflag-agent register` again")
	}
	if c.Token == "" || c.RefreshToken == "" {
		return errors.New("token and refresh_token are required; run `redflag-agent register` again")
	}
	for _, f := range [][2]string{{"token", c.Token}, {"refresh_token", c.RefreshToken}} {
		if err := protocol.CheckText(f[1], 4096, false); err != nil {
			return fmt.Errorf("%s: %v", f[0], err)
		}
	}
	if !protocol.ValidMachineID(c.MachineID) {
		return errors.New("machine_id must be 64 lowercase hexadecimal characters")
	}
	if len(c.PinnedKeys) == 0 {
		return errors.New("pinned_keys is empty: the agent could not verify any command; run `redflag-agent register` again")
	}
	seen := map[string]bool{}
	for i, k := range c.PinnedKeys {
		if err := k.validate(); err != nil {
			return fmt.Errorf("pinned_keys[%d]: %v", i, err)
		}
		if seen[k.KeyID] {
			return fmt.Errorf("pinned_keys[%d]: key_id %s is listed twice", i, k.KeyID)
		}
		seen[k.KeyID] = true
	}
	if c.CheckInIntervalSeconds < 0 || c.CheckInIntervalSeconds > maxCheckInIntervalLimit {
		return fmt.Errorf("check_in_interval_seconds must be between 0 and %d", maxCheckInIntervalLimit)
	}
	if c.PollIntervalSeconds != 0 && (c.PollIntervalSeconds < int(minCheckInInterval/time.Second) || c.PollIntervalSeconds > maxCheckInIntervalLimit) {
		return fmt.Errorf("poll_interval_seconds must be between %d and %d (or absent)", int(minCheckInInterval/time.Second), maxCheckInIntervalLimit)
	}
	if c.BackoffMinSeconds < 0 || c.BackoffMaxSeconds < 0 || c.BackoffMaxSeconds > maxCheckInIntervalLimit {
		return fmt.Errorf("backoff_min_seconds and backoff_max_seconds must be between 0 and %d", maxCheckInIntervalLimit)
	}
	if c.BackoffMinSeconds > 0 && c.BackoffMaxSeconds > 0 && c.BackoffMinSeconds > c.BackoffMaxSeconds {
		return errors.New("backoff_min_seconds must not exceed backoff_max_seconds")
	}
	if c.UpgradeWatchdogSeconds != 0 && (c.UpgradeWatchdogSeconds < 5 || c.UpgradeWatchdogSeconds > maxCheckInIntervalLimit) {
		return fmt.Errorf("upgrade_watchdog_seconds must be between 5 and %d (or absent)", maxCheckInIntervalLimit)
	}
	if c.LongPollSeconds != nil && (*c.LongPollSeconds < 0 || *c.LongPollSeconds > client.MaxLongPollWait) {
		return fmt.Errorf("long_poll_seconds must be between 0 (off) and %d", client.MaxLongPollWait)
	}
	return c.Scanners.Validate()
}

func (k PinnedKey) validate() error {
	pub, err := signing.ParsePublicKey(k.PublicKey)
	if err != nil {
		return fmt.Errorf("public_key: %v", err)
	}
	if id := signing.KeyID(pub); id != k.KeyID {
		return fmt.Errorf("key_id %q does not match its public key (whose id is %s)", k.KeyID, id)
	}
	if k.Status != KeyActive && k.Status != KeyRetiring {
		return fmt.Errorf("status must be %q or %q", KeyActive, KeyRetiring)
	}
	if k.NotAfter < 0 {
		return errors.New("not_after cannot be negative")
	}
	return nil
}

// maxConfigBytes bounds the config file; a real one is about 1 kB.
const maxConfigBytes = 1 << 20

// LoadConfig reads and validates the config at path. Unknown fields are
// ignored and reported by Config.Warnings.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no agent config at %s: register this machine first with `redflag-agent register --server URL --token TOKEN`", path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the agent config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading the agent config: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("the agent config %s is not a regular file", path)
	}
	if st.Size() > maxConfigBytes {
		return nil, fmt.Errorf("the agent config %s is larger than %d bytes; it is not a RedFlag agent config", path, maxConfigBytes)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("reading the agent config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("the agent config %s: %w", path, err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		c.loosePerm = st.Mode().Perm()
	}
	return c, nil
}

// ParseConfig decodes and validates config JSON.
func ParseConfig(b []byte) (*Config, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("the file is empty")
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("field %q has the wrong JSON type (%s)", te.Field, te.Value)
		}
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err == nil {
		known := knownConfigFields()
		for k := range raw {
			if !known[k] {
				c.unknown = append(c.unknown, k)
			}
		}
		slices.Sort(c.unknown)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func knownConfigFields() map[string]bool {
	return map[string]bool{"server_url": true, "agent_id": true, "token": true, "refresh_token": true,
		"token_expires_at": true, "machine_id": true, "pinned_keys": true, "check_in_interval_seconds": true,
		"poll_interval_seconds": true, "backoff_min_seconds": true, "backoff_max_seconds": true, "long_poll_seconds": true, "scanners": true,
		"upgrade_watchdog_seconds": true}
}

// SaveConfig validates c and writes it atomically to path with mode 0600
// (a temporary file in the same directory, fsynced, then renamed over the
// old one), creating the directory (0700) when missing.
func SaveConfig(path string, c *Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("refusing to write an invalid agent config: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the agent config: %w", err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the config directory: %w", err)
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return fmt.Errorf("writing the agent config: %w", err)
	}
	return nil
}
