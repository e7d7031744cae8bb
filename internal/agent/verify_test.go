package agent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestVerify(t *testing.T) {
	k := mustKey(t)
	other := mustKey(t)
	retired := mustKey(t)
	keys := []PinnedKey{pinned(k), {KeyID: retired.ID, PublicKey: pinned(retired).PublicKey, Status: KeyRetiring, NotAfter: t0.Add(-time.Hour).Unix()}}
	executed := func(id string) bool { return id == "done-1" }
	good := func() protocol.SignedCommand {
		return signCmd(k, "cmd-1", testAgentID, protocol.CmdReboot, `{"delay_seconds":60}`, t0)
	}

	tests := []struct {
		name   string
		mod    func(c *protocol.SignedCommand)
		now    time.Time
		code   string
		reason string
	}{
		{name: "valid", mod: func(c *protocol.SignedCommand) {}},
		{name: "flipped params byte", code: RefuseBadSignature, reason: "does not verify",
			mod: func(c *protocol.SignedCommand) { c.Params = json.RawMessage(`{"delay_seconds":61}`) }},
		{name: "params re-encoded with a space", code: RefuseBadSignature,
			mod: func(c *protocol.SignedCommand) { c.Params = json.RawMessage(`{"delay_seconds": 60}`) }},
		{name: "type changed", code: RefuseBadSignature, mod: func(c *protocol.SignedCommand) { c.Type = protocol.CmdCollectSpecs }},
		{name: "expiry extended", code: RefuseBadSignature, mod: func(c *protocol.SignedCommand) { c.ExpiresAt += 3600 }},
		{name: "agent id swapped without re-signing", code: RefuseBadSignature, mod: func(c *protocol.SignedCommand) { c.AgentID = otherAgentID }},
		{name: "signed for another agent", code: RefuseWrongAgent, reason: "not this agent",
			mod: func(c *protocol.SignedCommand) { c.AgentID = otherAgentID; c.Signature = resign(k, *c) }},
		{name: "unknown key id", code: RefuseUnknownKey, reason: "has not pinned",
			mod: func(c *protocol.SignedCommand) { c.KeyID = other.ID; c.Signature = resign(other, *c) }},
		{name: "key not pinned but claims a pinned key id", code: RefuseBadSignature,
			mod: func(c *protocol.SignedCommand) { c.Signature = resign(other, *c) }},
		{name: "retired key past its not_after", code: RefuseKeyRetired, reason: "stopped trusting",
			mod: func(c *protocol.SignedCommand) { c.KeyID = retired.ID; c.Signature = resign(retired, *c) }},
		{name: "malformed signature", code: RefuseBadSignature, reason: "malformed",
			mod: func(c *protocol.SignedCommand) { c.Signature = "!!not base64" }},
		{name: "missing signature", code: RefuseMalformed, mod: func(c *protocol.SignedCommand) { c.Signature = "" }},
		{name: "missing id", code: RefuseMalformed, mod: func(c *protocol.SignedCommand) { c.ID = "" }},
		{name: "expired beyond skew", code: RefuseExpired, reason: "expired at", now: t0.Add(time.Hour + ClockSkew),
			mod: func(c *protocol.SignedCommand) {}},
		{name: "expired but within skew", now: t0.Add(time.Hour + ClockSkew - time.Second), mod: func(c *protocol.SignedCommand) {}},
		{name: "replayed id", code: RefuseReplayed, reason: "already executed",
			mod: func(c *protocol.SignedCommand) { c.ID = "done-1"; c.Signature = resign(k, *c) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mod(&c)
			now := tt.now
			if now.IsZero() {
				now = t0.Add(time.Minute)
			}
			err := Verify(c, testAgentID, keys, executed, now)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Verify refused a valid command: %v", err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("Verify = %v, want a refusal %s", err, tt.code)
			}
			if re.Code != tt.code || !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("refusal %s %q, want %s containing %q", re.Code, re.Reason, tt.code, tt.reason)
			}
		})
	}
}

// TestTamperedCommandsNeverRun drives each tampering case through the loop:
// each is reported failed with its reason, and no handler runs.
func TestTamperedCommandsNeverRun(t *testing.T) {
	ran := &countingHandler{}
	h := newHarness(t, func(o *Options, c *Config) {
		o.Handlers = map[string]Handler{protocol.CmdReboot: ran, protocol.CmdCollectSpecs: ran}
	})
	other := mustKey(t)
	now := h.clock.Now()

	flipped := h.sign("c-flip", protocol.CmdReboot, `{"delay_seconds":60}`)
	flipped.Params = json.RawMessage(`{"delay_seconds":6}`)
	wrongAgent := signCmd(h.key, "c-agent", otherAgentID, protocol.CmdReboot, `{}`, now)
	unknownKey := signCmd(other, "c-key", testAgentID, protocol.CmdReboot, `{}`, now)
	expired := signCmd(h.key, "c-exp", testAgentID, protocol.CmdReboot, `{}`, now.Add(-2*time.Hour))
	first := h.sign("c-once", protocol.CmdCollectSpecs, `{}`)

	h.srv.enqueue(flipped, wrongAgent, unknownKey, expired, first)
	want := map[string]string{"c-flip": RefuseBadSignature, "c-agent": RefuseWrongAgent, "c-key": RefuseUnknownKey, "c-exp": RefuseExpired}
	replayQueued := false
	if err := h.run(func() bool {
		if _, ok := h.srv.result1("c-once"); ok && !replayQueued {
			replayQueued = true
			h.srv.enqueue(first) // the server (or a man in the middle) sends it again
			return false
		}
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return replayQueued && len(h.srv.results) == 5 && h.srv.resultCalls >= 6
	}); err != nil {
		t.Fatal(err)
	}
	if got := ran.Ran(); len(got) != 1 || got[0] != "c-once" {
		t.Fatalf("handlers ran for %v; only c-once may run, once", got)
	}
	for id, code := range want {
		res, ok := h.srv.result1(id)
		if !ok {
			t.Errorf("%s: no result reported", id)
			continue
		}
		var d map[string]string
		_ = json.Unmarshal(res.Details, &d)
		if res.Status != protocol.StateFailed || d["refused"] != code || !strings.HasPrefix(res.Output, "refused: ") {
			t.Errorf("%s: result %s %q %s, want failed with refusal %s", id, res.Status, res.Output, res.Details, code)
		}
	}
	// The replay's refusal reached the server too (it answers 200 here; the
	// real server keeps the first result), and the command did not run again.
	if !strings.Contains(h.logs.String(), "already executed") {
		t.Errorf("the replay was not refused as replayed; logs:\n%s", h.logs.String())
	}
	h.assertNoSecretsLogged()
}
