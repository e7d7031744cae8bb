package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

// Command is a verified command as a handler sees it.
type Command struct {
	ID        string
	Type      string
	Params    json.RawMessage
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Outcome is what a handler reports. Output is trimmed to
// protocol.MaxResultOutput and cleaned of control characters before it is
// sent.
type Outcome struct {
	Succeeded bool
	ExitCode  int
	Output    string
	// Details is marshalled into the result's details object; nil for none.
	Details any
}

// Succeeded and Failed build outcomes.
func Succeeded(output string, details any) Outcome {
	return Outcome{Succeeded: true, Output: output, Details: details}
}

// Failed returns a failed outcome with exit code 1 and the message as output.
func Failed(format string, args ...any) Outcome {
	return Outcome{ExitCode: 1, Output: fmt.Sprintf(format, args...)}
}

// Handler runs one command type. Handle must honour ctx: it is cancelled
// when the command's time is up or the agent stops after its grace period.
type Handler interface {
	Handle(ctx context.Context, cmd Command) Outcome
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, cmd Command) Outcome

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, cmd Command) Outcome { return f(ctx, cmd) }

// Scanner runs scan_updates: it finds the pending updates of this machine
// and delivers its report(s) to the server itself. The agent only turns
// the outcome into the command's result.
type Scanner interface {
	ScanUpdates(ctx context.Context, p protocol.ScanUpdatesParams) (Outcome, error)
}

// Installer runs install_updates with the command's params as sent.
type Installer interface {
	InstallUpdates(ctx context.Context, params json.RawMessage) (Outcome, error)
}

// RebootFunc schedules a reboot of the machine after delay. Tests inject a
// recorder; the real one is SystemReboot.
type RebootFunc func(ctx context.Context, delay time.Duration) error

// InventoryFunc collects the system inventory; the real one is
// CollectInventory.
type InventoryFunc func(ctx context.Context) (protocol.SystemReport, error)

// Bounds of command params.
const (
	maxRebootDelay       = 7 * 24 * time.Hour
	minHeartbeatInterval = 1 * time.Second
	maxHeartbeatInterval = 10 * time.Minute
	defHeartbeatInterval = 10 * time.Second
	maxHeartbeatDuration = 24 * time.Hour
	defHeartbeatDuration = 10 * time.Minute
)

// decodeParams decodes a command's params strictly; empty or null params
// leave v untouched.
func decodeParams(raw json.RawMessage, v any) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid params: %v", err)
	}
	return nil
}

// defaultHandlers returns the built-in handlers bound to a.
func (a *Agent) defaultHandlers() map[string]Handler {
	notYet := func(ctx context.Context, cmd Command) Outcome {
		return Failed("command type %q is not supported by this agent version (%s)", cmd.Type, a.version)
	}
	return map[string]Handler{
		protocol.CmdCollectSpecs:        HandlerFunc(a.handleCollectSpecs),
		protocol.CmdEnableHeartbeat:     HandlerFunc(a.handleEnableHeartbeat),
		protocol.CmdDisableHeartbeat:    HandlerFunc(a.handleDisableHeartbeat),
		protocol.CmdReboot:              HandlerFunc(a.handleReboot),
		protocol.CmdRotateKey:           HandlerFunc(a.handleRotateKey),
		protocol.CmdScanUpdates:         HandlerFunc(a.handleScanUpdates),
		protocol.CmdInstallUpdates:      HandlerFunc(a.handleInstallUpdates),
		protocol.CmdConfirmDependencies: HandlerFunc(a.handleConfirmDependencies),
		protocol.CmdRollbackUpdate:      HandlerFunc(notYet),
		protocol.CmdUpdateAgent:         HandlerFunc(a.handleUpdateAgent),
	}
}

func (a *Agent) handleCollectSpecs(ctx context.Context, cmd Command) Outcome {
	if a.inventory == nil {
		return Failed("no inventory collector available")
	}
	rep, err := a.inventory(ctx)
	if err != nil {
		return Failed("collecting the system inventory failed: %v", err)
	}
	if err := a.withAuth(ctx, func() error { return a.api.SendSystemReport(ctx, rep) }); err != nil {
		return Failed("sending the system inventory failed: %v", err)
	}
	return Succeeded(fmt.Sprintf("system inventory sent: %s %s (%s), %d CPU cores, %d disks, %d package managers, reboot required: %v",
		rep.OSType, rep.OSVersion, rep.Kernel, rep.CPUCores, len(rep.Disks), len(rep.PackageManagers), rep.RebootRequired),
		map[string]any{"disks": len(rep.Disks), "package_managers": rep.PackageManagers, "reboot_required": rep.RebootRequired})
}

func (a *Agent) handleEnableHeartbeat(ctx context.Context, cmd Command) Outcome {
	var p protocol.HeartbeatParams
	if err := decodeParams(cmd.Params, &p); err != nil {
		return Failed("%v", err)
	}
	interval, duration := time.Duration(p.IntervalSeconds)*time.Second, time.Duration(p.DurationSeconds)*time.Second
	if p.IntervalSeconds == 0 {
		interval = defHeartbeatInterval
	}
	if p.DurationSeconds == 0 {
		duration = defHeartbeatDuration
	}
	if interval < minHeartbeatInterval || interval > maxHeartbeatInterval {
		return Failed("interval_seconds must be between %d and %d", int(minHeartbeatInterval/time.Second), int(maxHeartbeatInterval/time.Second))
	}
	if duration < time.Second || duration > maxHeartbeatDuration {
		return Failed("duration_seconds must be between 1 and %d", int(maxHeartbeatDuration/time.Second))
	}
	until := a.now().Add(duration)
	a.mu.Lock()
	a.heartbeat = heartbeat{interval: interval, until: until}
	a.mu.Unlock()
	return Succeeded(fmt.Sprintf("heartbeat on: checking in every %s until %s", interval, until.UTC().Format(time.RFC3339)),
		map[string]any{"interval_seconds": int(interval / time.Second), "until": until.UTC()})
}

func (a *Agent) handleDisableHeartbeat(ctx context.Context, cmd Command) Outcome {
	a.mu.Lock()
	was := a.heartbeat.active(a.now())
	a.heartbeat = heartbeat{}
	a.mu.Unlock()
	if !was {
		return Succeeded("heartbeat was already off", nil)
	}
	return Succeeded("heartbeat off: back to the normal check-in interval", nil)
}

func (a *Agent) handleReboot(ctx context.Context, cmd Command) Outcome {
	var p protocol.RebootParams
	if err := decodeParams(cmd.Params, &p); err != nil {
		return Failed("%v", err)
	}
	delay := time.Duration(p.DelaySeconds) * time.Second
	if p.DelaySeconds < 0 || delay > maxRebootDelay {
		return Failed("delay_seconds must be between 0 and %d", int(maxRebootDelay/time.Second))
	}
	if a.reboot == nil {
		return Failed("no reboot action is configured")
	}
	if err := a.reboot(ctx, delay); err != nil {
		return Failed("scheduling the reboot failed: %v", err)
	}
	return Succeeded(fmt.Sprintf("reboot scheduled (requested delay %s; the system may round it up so that this result is sent first)", delay),
		map[string]any{"delay_seconds": p.DelaySeconds})
}

// handleRotateKey pins the key the command carries. It can only run after
// Verify accepted the command under an already pinned key, so a key never
// enters the pinned set unauthenticated (SPEC §5).
func (a *Agent) handleRotateKey(ctx context.Context, cmd Command) Outcome {
	var p protocol.RotateKeyParams
	if err := decodeParams(cmd.Params, &p); err != nil {
		return Failed("%v", err)
	}
	pub, err := signing.ParsePublicKey(p.PublicKey)
	if err != nil {
		return Failed("the new public key is unusable: %v", err)
	}
	if id := signing.KeyID(pub); id != p.KeyID {
		return Failed("key_id %q does not match the new public key (whose id is %s)", p.KeyID, id)
	}
	if p.RetireKeyID == p.KeyID {
		return Failed("retire_key_id names the new key itself")
	}
	if p.NotAfter < 0 {
		return Failed("not_after cannot be negative")
	}
	var msg []string
	err = a.updateConfig(false, func(c *Config) error {
		found := false
		for i := range c.PinnedKeys {
			if c.PinnedKeys[i].KeyID == p.KeyID {
				found = true
				c.PinnedKeys[i].Status, c.PinnedKeys[i].NotAfter = KeyActive, 0
			}
		}
		if !found {
			c.PinnedKeys = append(c.PinnedKeys, PinnedKey{KeyID: p.KeyID, PublicKey: signing.EncodePublicKey(pub), Status: KeyActive})
			msg = append(msg, "pinned key "+p.KeyID)
		} else {
			msg = append(msg, "key "+p.KeyID+" was already pinned")
		}
		if p.RetireKeyID != "" {
			for i := range c.PinnedKeys {
				if c.PinnedKeys[i].KeyID == p.RetireKeyID {
					c.PinnedKeys[i].Status, c.PinnedKeys[i].NotAfter = KeyRetiring, p.NotAfter
					if p.NotAfter > 0 {
						msg = append(msg, fmt.Sprintf("key %s trusted until %s", p.RetireKeyID, time.Unix(p.NotAfter, 0).UTC().Format(time.RFC3339)))
					} else {
						msg = append(msg, "key "+p.RetireKeyID+" marked retiring")
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return Failed("saving the new key failed: %v", err)
	}
	return Succeeded(strings.Join(msg, "; "), map[string]any{"key_id": p.KeyID})
}

func (a *Agent) handleScanUpdates(ctx context.Context, cmd Command) Outcome {
	var p protocol.ScanUpdatesParams
	if err := decodeParams(cmd.Params, &p); err != nil {
		return Failed("%v", err)
	}
	if a.scanner == nil {
		return Failed("no scanner available in this agent build")
	}
	o, err := a.scanner.ScanUpdates(ctx, p)
	if err != nil {
		return Failed("scanning for updates failed: %v", err)
	}
	return o
}

func (a *Agent) handleInstallUpdates(ctx context.Context, cmd Command) Outcome {
	if a.installer == nil {
		return Failed("no installer available in this agent build")
	}
	o, err := a.installer.InstallUpdates(ctx, cmd.Params)
	if err != nil {
		return Failed("installing updates failed: %v", err)
	}
	return o
}

func (a *Agent) handleConfirmDependencies(ctx context.Context, cmd Command) Outcome {
	if a.updates == nil {
		return Failed("no installer available in this agent build")
	}
	o, err := a.updates.ConfirmDependencies(ctx, cmd.Params)
	if err != nil {
		return Failed("installing updates failed: %v", err)
	}
	return o
}

// toResult turns an outcome into the wire result, bounding and cleaning the
// output so the server's text checks accept it.
func toResult(o Outcome, started, finished time.Time) protocol.CommandResult {
	r := protocol.CommandResult{Status: protocol.StateFailed, ExitCode: o.ExitCode, Output: cleanOutput(o.Output, protocol.MaxResultOutput),
		StartedAt: started.UTC(), FinishedAt: finished.UTC()}
	if o.Succeeded {
		r.Status = protocol.StateSucceeded
	}
	if o.Details != nil {
		if b, err := json.Marshal(o.Details); err == nil && len(b) > 0 && b[0] == '{' {
			r.Details = b
		}
	}
	return r
}

// cleanOutput makes s valid UTF-8 without control characters other than
// newline, tab and carriage return, cut to at most max bytes (on a rune
// boundary, keeping the tail's marker).
func cleanOutput(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return r
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	const marker = "\n[output truncated]"
	cut := max - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}
