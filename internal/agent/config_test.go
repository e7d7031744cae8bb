package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSaveConfigModeAndAtomicity(t *testing.T) {
	k := mustKey(t)
	dir := filepath.Join(t.TempDir(), "etc", "redflag", "agent")
	path := filepath.Join(dir, "config.json")
	c := testConfig("https://rf.example.com", k)
	if err := SaveConfig(path, c); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("config mode %04o, want 0600", st.Mode().Perm())
		}
		dst, _ := os.Stat(dir)
		if dst.Mode().Perm() != 0o700 {
			t.Errorf("config dir mode %04o, want 0700", dst.Mode().Perm())
		}
	}
	// Replace it: the new content arrives by rename, so the old inode is
	// untouched (a reader holding it never sees a half-written file), and
	// no temporary file is left behind.
	before, _ := os.Stat(path)
	c.Token = fakeJWT("tok-new", t0.Add(48*time.Hour))
	if err := SaveConfig(path, c); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Error("SaveConfig rewrote the file in place instead of renaming a new one over it")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files left in the config dir: %v", names)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != c.Token || got.AgentID != c.AgentID || len(got.PinnedKeys) != 1 || len(got.Warnings()) != 0 {
		t.Errorf("round trip: %+v warnings %v", got, got.Warnings())
	}
	// An invalid config is refused and the file on disk stays as it was.
	bad := c.clone()
	bad.MachineID = "nope"
	if err := SaveConfig(path, bad); err == nil {
		t.Fatal("SaveConfig accepted an invalid config")
	}
	if again, err := LoadConfig(path); err != nil || again.MachineID != c.MachineID {
		t.Fatalf("the old config was damaged: %v", err)
	}
}

func TestLoadConfigValidation(t *testing.T) {
	k := mustKey(t)
	other := mustKey(t)
	base := func() map[string]any {
		b, _ := json.Marshal(testConfig("https://rf.example.com", k))
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	tests := []struct {
		name string
		mod  func(m map[string]any)
		raw  string
		want string // "" = valid
	}{
		{name: "valid", mod: func(m map[string]any) {}},
		{name: "empty file", raw: " ", want: "empty"},
		{name: "not json", raw: "{", want: "not valid JSON"},
		{name: "trailing data", raw: "{} {}", want: "after the JSON object"},
		{name: "wrong type", mod: func(m map[string]any) { m["check_in_interval_seconds"] = "300" }, want: "check_in_interval_seconds"},
		{name: "bad server url", mod: func(m map[string]any) { m["server_url"] = "rf.example.com" }, want: "server_url"},
		{name: "missing agent id", mod: func(m map[string]any) { delete(m, "agent_id") }, want: "agent_id"},
		{name: "agent id with a slash", mod: func(m map[string]any) { m["agent_id"] = "../x" }, want: "agent_id"},
		{name: "missing token", mod: func(m map[string]any) { m["token"] = "" }, want: "token"},
		{name: "bad machine id", mod: func(m map[string]any) { m["machine_id"] = strings.ToUpper(testMachineID) }, want: "machine_id"},
		{name: "no pinned keys", mod: func(m map[string]any) { m["pinned_keys"] = []any{} }, want: "pinned_keys is empty"},
		{name: "key id does not match key", mod: func(m map[string]any) {
			m["pinned_keys"] = []any{map[string]any{"key_id": other.ID, "public_key": pinned(k).PublicKey, "status": "active"}}
		}, want: "does not match"},
		{name: "bad key status", mod: func(m map[string]any) {
			m["pinned_keys"] = []any{map[string]any{"key_id": k.ID, "public_key": pinned(k).PublicKey, "status": "trusted"}}
		}, want: "status"},
		{name: "duplicate key", mod: func(m map[string]any) {
			p := map[string]any{"key_id": k.ID, "public_key": pinned(k).PublicKey, "status": "active"}
			m["pinned_keys"] = []any{p, p}
		}, want: "twice"},
		{name: "long poll too long", mod: func(m map[string]any) { m["long_poll_seconds"] = 61 }, want: "long_poll_seconds"},
		{name: "long poll off", mod: func(m map[string]any) { m["long_poll_seconds"] = 0 }},
		{name: "poll interval too short", mod: func(m map[string]any) { m["poll_interval_seconds"] = 1 }, want: "poll_interval_seconds"},
		{name: "backoff inverted", mod: func(m map[string]any) { m["backoff_min_seconds"] = 60; m["backoff_max_seconds"] = 10 }, want: "backoff_min_seconds"},
		{name: "unknown field is only a warning", mod: func(m map[string]any) { m["future_option"] = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.raw)
			if tt.raw == "" {
				m := base()
				tt.mod(m)
				b, _ = json.Marshal(m)
			}
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(path)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadConfig = %v, %v; want an error naming the file and containing %q", c, err, tt.want)
			}
		})
	}
}

func TestLoadConfigWarnings(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not meaningful on Windows")
	}
	k := mustKey(t)
	b, _ := json.Marshal(testConfig("https://rf.example.com", k))
	b = append(b[:len(b)-1], []byte(`,"newer_field":1}`)...)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(c.Warnings(), "\n")
	if !strings.Contains(w, "newer_field") || !strings.Contains(w, "0644") {
		t.Errorf("warnings %q", w)
	}
}

func TestLoadConfigMissing(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.json"))
	if err == nil || !strings.Contains(err.Error(), "redflag-agent register") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigDefaultsAndOverrides(t *testing.T) {
	k := mustKey(t)
	c := testConfig("https://rf.example.com", k)
	if c.Interval() != 300*time.Second || c.LongPoll() != DefaultLongPollSeconds {
		t.Errorf("defaults: %s %d", c.Interval(), c.LongPoll())
	}
	if lo, hi := c.Backoff(); lo != DefaultBackoffMin || hi != DefaultBackoffMax {
		t.Errorf("backoff defaults %s %s", lo, hi)
	}
	zero := 0
	c.PollIntervalSeconds, c.LongPollSeconds, c.BackoffMinSeconds, c.BackoffMaxSeconds = 30, &zero, 1, 60
	if c.Interval() != 30*time.Second || c.LongPoll() != 0 {
		t.Errorf("overrides: %s %d", c.Interval(), c.LongPoll())
	}
	if lo, hi := c.Backoff(); lo != time.Second || hi != time.Minute {
		t.Errorf("backoff overrides %s %s", lo, hi)
	}
}

func TestConfigLogValueHidesTokens(t *testing.T) {
	k := mustKey(t)
	c := testConfig("https://rf.example.com", k)
	s := c.LogValue().String()
	if strings.Contains(s, c.Token) || strings.Contains(s, c.RefreshToken) || !strings.Contains(s, c.AgentID) {
		t.Errorf("LogValue = %s", s)
	}
}

func TestTokenExpiry(t *testing.T) {
	exp := t0.Add(7 * time.Hour)
	if got := tokenExpiry(fakeJWT("x", exp), t0); !got.Equal(exp) {
		t.Errorf("tokenExpiry = %s, want %s", got, exp)
	}
	for _, tok := range []string{"opaque", "a.b.c", "a." + "eyJleHAiOiJzb29uIn0" + ".c"} {
		if got := tokenExpiry(tok, t0); !got.Equal(t0.Add(24 * time.Hour)) {
			t.Errorf("tokenExpiry(%q) = %s, want now+24h", tok, got)
		}
	}
}
