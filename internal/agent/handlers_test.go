package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

// processOne verifies and runs one command directly (no server) and
// returns the result left on file.
func processOne(t *testing.T, h *harness, sc protocol.SignedCommand) protocol.CommandResult {
	t.Helper()
	h.agent.process(context.Background(), sc)
	ps, err := h.state.Pending()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.CommandID == sc.ID {
			if p.Running {
				t.Fatalf("%s still marked running", sc.ID)
			}
			return p.Result
		}
	}
	t.Fatalf("no result on file for %s", sc.ID)
	return protocol.CommandResult{}
}

type fakeScanner struct {
	got protocol.ScanUpdatesParams
	err error
}

func (f *fakeScanner) ScanUpdates(ctx context.Context, p protocol.ScanUpdatesParams) (Outcome, error) {
	f.got = p
	if f.err != nil {
		return Outcome{}, f.err
	}
	return Succeeded("3 updates found", map[string]int{"updates": 3}), nil
}

type fakeInstaller struct{ got json.RawMessage }

func (f *fakeInstaller) InstallUpdates(ctx context.Context, params json.RawMessage) (Outcome, error) {
	f.got = params
	return Outcome{ExitCode: 100, Output: "apt failed"}, nil
}

func TestHandlers(t *testing.T) {
	var mu sync.Mutex
	var reboots []time.Duration
	scanner := &fakeScanner{}
	installer := &fakeInstaller{}
	withReboot := func(o *Options, c *Config) {
		o.Reboot = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			reboots = append(reboots, d)
			mu.Unlock()
			return nil
		}
	}
	tests := []struct {
		name       string
		mod        func(o *Options, c *Config)
		typ        string
		params     string
		wantStatus string
		wantOutput string
		check      func(t *testing.T, h *harness, res protocol.CommandResult)
	}{
		{name: "reboot with delay", mod: withReboot, typ: protocol.CmdReboot, params: `{"delay_seconds":120}`,
			wantStatus: protocol.StateSucceeded, wantOutput: "reboot scheduled",
			check: func(t *testing.T, h *harness, res protocol.CommandResult) {
				mu.Lock()
				defer mu.Unlock()
				if len(reboots) != 1 || reboots[0] != 2*time.Minute {
					t.Errorf("reboot action called with %v", reboots)
				}
			}},
		{name: "reboot negative delay", mod: withReboot, typ: protocol.CmdReboot, params: `{"delay_seconds":-1}`,
			wantStatus: protocol.StateFailed, wantOutput: "delay_seconds"},
		{name: "reboot unknown param", mod: withReboot, typ: protocol.CmdReboot, params: `{"delay":1}`,
			wantStatus: protocol.StateFailed, wantOutput: "invalid params"},
		{name: "reboot without an action", typ: protocol.CmdReboot, params: `{}`,
			wantStatus: protocol.StateFailed, wantOutput: "no reboot action"},
		{name: "scan without scanner", typ: protocol.CmdScanUpdates, params: `{}`,
			wantStatus: protocol.StateFailed, wantOutput: "no scanner available"},
		{name: "scan with scanner", mod: func(o *Options, c *Config) { o.Scanner = scanner }, typ: protocol.CmdScanUpdates,
			params: `{"scanners":["apt"]}`, wantStatus: protocol.StateSucceeded, wantOutput: "3 updates found",
			check: func(t *testing.T, h *harness, res protocol.CommandResult) {
				if len(scanner.got.Scanners) != 1 || scanner.got.Scanners[0] != "apt" || string(res.Details) != `{"updates":3}` {
					t.Errorf("scanner got %+v, details %s", scanner.got, res.Details)
				}
			}},
		{name: "scanner error", mod: func(o *Options, c *Config) { o.Scanner = &fakeScanner{err: errors.New("dpkg lock held")} },
			typ: protocol.CmdScanUpdates, params: `{}`, wantStatus: protocol.StateFailed, wantOutput: "dpkg lock held"},
		{name: "install without installer", typ: protocol.CmdInstallUpdates, params: `{"updates":[]}`,
			wantStatus: protocol.StateFailed, wantOutput: "no installer available"},
		{name: "install with installer", mod: func(o *Options, c *Config) { o.Installer = installer }, typ: protocol.CmdInstallUpdates,
			params: `{"updates":[],"dry_run":true}`, wantStatus: protocol.StateFailed, wantOutput: "apt failed",
			check: func(t *testing.T, h *harness, res protocol.CommandResult) {
				if string(installer.got) != `{"updates":[],"dry_run":true}` || res.ExitCode != 100 {
					t.Errorf("installer got %s, exit %d", installer.got, res.ExitCode)
				}
			}},
		{name: "unknown type", typ: "format_disk", params: `{}`, wantStatus: protocol.StateFailed, wantOutput: "unknown command type"},
		{name: "known but not yet supported", typ: protocol.CmdRollbackUpdate, params: `{}`, wantStatus: protocol.StateFailed, wantOutput: "not supported"},
		{name: "update_agent without params", typ: protocol.CmdUpdateAgent, params: `{}`, wantStatus: protocol.StateFailed, wantOutput: "not a semantic version"},
		{name: "handler panic", mod: func(o *Options, c *Config) {
			o.Handlers = map[string]Handler{"boom": HandlerFunc(func(context.Context, Command) Outcome { panic("kaboom") })}
		}, typ: "boom", params: `{}`, wantStatus: protocol.StateFailed, wantOutput: "crashed: kaboom"},
		{name: "heartbeat bounds", typ: protocol.CmdEnableHeartbeat, params: `{"interval_seconds":0,"duration_seconds":999999}`,
			wantStatus: protocol.StateFailed, wantOutput: "duration_seconds"},
		{name: "heartbeat defaults", typ: protocol.CmdEnableHeartbeat, params: `{}`, wantStatus: protocol.StateSucceeded, wantOutput: "every 10s",
			check: func(t *testing.T, h *harness, res protocol.CommandResult) {
				if hb, on := h.agent.heartbeatState(); !on || hb.interval != 10*time.Second {
					t.Errorf("heartbeat %+v on=%v", hb, on)
				}
			}},
		{name: "disable heartbeat when off", typ: protocol.CmdDisableHeartbeat, params: `{}`, wantStatus: protocol.StateSucceeded, wantOutput: "already off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mod)
			res := processOne(t, h, h.sign("c-"+strings.ReplaceAll(tt.name, " ", "-"), tt.typ, tt.params))
			if res.Status != tt.wantStatus || !strings.Contains(res.Output, tt.wantOutput) {
				t.Fatalf("result %s %q, want %s containing %q", res.Status, res.Output, tt.wantStatus, tt.wantOutput)
			}
			if res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) {
				t.Errorf("times %s → %s", res.StartedAt, res.FinishedAt)
			}
			if tt.check != nil {
				tt.check(t, h, res)
			}
		})
	}
}

func TestRotateKey(t *testing.T) {
	h := newHarness(t, nil)
	newKey := mustKey(t)
	stranger := mustKey(t)
	params := func(k *signing.Key, retire string) string {
		b, _ := json.Marshal(protocol.RotateKeyParams{KeyID: k.ID, PublicKey: signing.EncodePublicKey(k.Public), RetireKeyID: retire,
			NotAfter: t0.Add(30 * 24 * time.Hour).Unix()})
		return string(b)
	}

	// Before rotation a command signed by the new key is refused.
	res := processOne(t, h, signCmd(newKey, "early", testAgentID, protocol.CmdDisableHeartbeat, `{}`, h.clock.Now()))
	if res.Status != protocol.StateFailed || !strings.Contains(res.Output, "not pinned") {
		t.Fatalf("a command under an unpinned key: %+v", res)
	}
	// A rotate_key signed by an unpinned key adds nothing.
	res = processOne(t, h, signCmd(stranger, "rogue-rotate", testAgentID, protocol.CmdRotateKey, params(stranger, ""), h.clock.Now()))
	if res.Status != protocol.StateFailed || len(h.agent.Config().PinnedKeys) != 1 {
		t.Fatalf("a rotate_key under an unpinned key: %+v, keys %d", res, len(h.agent.Config().PinnedKeys))
	}
	// A key_id that does not match the key is refused.
	bad := strings.Replace(params(newKey, ""), newKey.ID, stranger.ID, 1)
	if res := processOne(t, h, h.sign("rotate-bad", protocol.CmdRotateKey, bad)); res.Status != protocol.StateFailed || !strings.Contains(res.Output, "does not match") {
		t.Fatalf("mismatched key id: %+v", res)
	}

	// The real rotation, signed by the pinned key.
	res = processOne(t, h, h.sign("rotate-1", protocol.CmdRotateKey, params(newKey, h.key.ID)))
	if res.Status != protocol.StateSucceeded {
		t.Fatalf("rotate_key: %+v", res)
	}
	onDisk, err := LoadConfig(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(onDisk.PinnedKeys) != 2 || onDisk.PinnedKeys[1].KeyID != newKey.ID || onDisk.PinnedKeys[0].Status != KeyRetiring ||
		onDisk.PinnedKeys[0].NotAfter != t0.Add(30*24*time.Hour).Unix() {
		t.Fatalf("pinned keys on disk: %+v", onDisk.PinnedKeys)
	}
	// Now the new key is trusted, and the old one still is during its grace.
	if res := processOne(t, h, signCmd(newKey, "after", testAgentID, protocol.CmdDisableHeartbeat, `{}`, h.clock.Now())); res.Status != protocol.StateSucceeded {
		t.Fatalf("a command under the new key: %+v", res)
	}
	if res := processOne(t, h, h.sign("old-still", protocol.CmdDisableHeartbeat, `{}`)); res.Status != protocol.StateSucceeded {
		t.Fatalf("a command under the retiring key within its grace: %+v", res)
	}
	// After the grace period the old key is refused.
	h.clock.Advance(31 * 24 * time.Hour)
	res = processOne(t, h, h.sign("old-late", protocol.CmdDisableHeartbeat, `{}`))
	if res.Status != protocol.StateFailed || !strings.Contains(res.Output, "stopped trusting") {
		t.Fatalf("a command under the retired key: %+v", res)
	}
	// A restart keeps the rotation.
	h.open()
	if ks := h.agent.Config().PinnedKeys; len(ks) != 2 {
		t.Fatalf("after restart: %+v", ks)
	}
}

func TestCleanOutput(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain\nlines\ttab\r\n", 100, "plain\nlines\ttab\r\n"},
		{"esc\x1b[31mred\x00nul", 100, "esc?[31mred?nul"},
		{"bad \xff utf8", 100, "bad ? utf8"},
		{"\u0085next", 100, "?next"},
	}
	for _, tt := range tests {
		got := cleanOutput(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("cleanOutput(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err := protocol.CheckText(got, tt.max, true); err != nil {
			t.Errorf("cleaned output %q is refused by CheckText: %v", got, err)
		}
	}
	long := strings.Repeat("é", protocol.MaxResultOutput)
	got := cleanOutput(long, protocol.MaxResultOutput)
	if len(got) > protocol.MaxResultOutput || !utf8.ValidString(got) || !strings.HasSuffix(got, "[output truncated]") {
		t.Errorf("truncated output: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func TestToResultDetails(t *testing.T) {
	r := toResult(Outcome{Succeeded: true, Details: map[string]any{"a": 1}}, t0, t0.Add(time.Second))
	if r.Status != protocol.StateSucceeded || string(r.Details) != `{"a":1}` || r.StartedAt.Location() != time.UTC {
		t.Errorf("%+v", r)
	}
	// Details must be a JSON object; anything else is dropped.
	if r := toResult(Outcome{Details: []int{1}}, t0, t0); r.Details != nil || r.Status != protocol.StateFailed {
		t.Errorf("%+v", r)
	}
}
