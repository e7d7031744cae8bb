package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// upgradeMarker is <state>/upgrade.json: an upgrade whose outcome is not
// known yet. The old version writes it before it replaces itself; the new
// version reads it at start. Its fields are a contract between agent
// versions: add fields, never change one.
type upgradeMarker struct {
	V                int       `json:"v"`
	CommandID        string    `json:"command_id"`
	CommandExpiresAt int64     `json:"command_expires_at,omitempty"`
	FromVersion      string    `json:"from_version"`
	ToVersion        string    `json:"to_version"`
	ToSHA256         string    `json:"to_sha256"`
	Rollback         bool      `json:"rollback,omitempty"`
	Exe              string    `json:"exe"`
	Backup           string    `json:"backup"`
	StartedAt        time.Time `json:"started_at"`
	// Deadline: the new version must have checked in by then.
	Deadline time.Time `json:"deadline"`
	// Starts counts the starts of the new version (UpgradeCheckpoint).
	Starts int `json:"starts"`
	// State is markerInstalling until the watchdog acts.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Marker states.
const (
	// markerInstalling: the new binary is (being) put in place and must
	// check in before the deadline.
	markerInstalling = "installing"
	// markerRestored: the watchdog put the old binary back; the old
	// version reports the failure.
	markerRestored = "restored"
	// markerRestoreFailed: the watchdog could not put the old binary back.
	markerRestoreFailed = "restore_failed"
)

func markerPath(stateDir string) string { return filepath.Join(stateDir, markerFileName) }

// readMarker returns the marker, nil when there is none. A marker that
// cannot be decoded is set aside (it is written atomically, so it is
// damaged, not torn) and reported as none.
func readMarker(stateDir string) (*upgradeMarker, error) {
	b, err := os.ReadFile(markerPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the upgrade marker: %w", err)
	}
	var m upgradeMarker
	if err := json.Unmarshal(b, &m); err != nil || m.ToVersion == "" || m.Exe == "" {
		_ = os.Rename(markerPath(stateDir), markerPath(stateDir)+".unreadable")
		return nil, fmt.Errorf("the upgrade marker %s is damaged; set aside as %s.unreadable", markerPath(stateDir), markerFileName)
	}
	return &m, nil
}

func writeMarker(stateDir string, m *upgradeMarker) error {
	m.V = 1
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(markerPath(stateDir), b, 0o600); err != nil {
		return fmt.Errorf("writing the upgrade marker: %w", err)
	}
	return nil
}

func removeMarker(stateDir string) error {
	if err := os.Remove(markerPath(stateDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(stateDir)
}

// UpgradeCheckpoint is the watchdog hook of a self-upgrade. `redflag-agent
// run` calls it first, right after parsing its flags and before it loads
// the config, opens the state, talks to a service manager or the network:
// nothing before it can fail because of a broken new version. When an
// upgrade to this version awaits its first check-in, it counts this start;
// past UpgradeMaxStarts starts or past the deadline it puts the backed-up
// binary back and returns true: the caller must then exit with ExitRestart
// so that the service manager starts the old version. Otherwise it returns
// false and the caller goes on.
func UpgradeCheckpoint(stateDir, version string, now time.Time, log *slog.Logger) bool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := readMarker(stateDir)
	if err != nil {
		log.Error("upgrade watchdog: cannot read the upgrade marker", "error", err)
		return false
	}
	if m == nil || m.State != markerInstalling || version != m.ToVersion {
		return false
	}
	m.Starts++
	var reason string
	switch {
	case m.Starts > UpgradeMaxStarts:
		reason = fmt.Sprintf("the new version %s was started %d times without checking in with the server (it fails at start); version %s was restored",
			m.ToVersion, m.Starts-1, m.FromVersion)
	case !now.Before(m.Deadline):
		reason = fmt.Sprintf("the new version %s did not check in with the server within %s of its installation; version %s was restored",
			m.ToVersion, m.Deadline.Sub(m.StartedAt).Round(time.Second), m.FromVersion)
	}
	if reason == "" {
		if err := writeMarker(stateDir, m); err != nil {
			log.Error("upgrade watchdog: cannot count this start", "error", err)
		}
		log.Info("upgrade watchdog: this new version must check in before the deadline", "from_version", m.FromVersion,
			"to_version", m.ToVersion, "start", m.Starts, "max_starts", UpgradeMaxStarts, "deadline", m.Deadline.UTC().Format(time.RFC3339))
		return false
	}
	return restoreFromMarker(stateDir, m, reason, log)
}

// restoreFromMarker puts the backup back in place of the new binary and
// records why. It reports whether the old binary is in place (the caller
// must then have the service manager restart the agent).
func restoreFromMarker(stateDir string, m *upgradeMarker, reason string, log *slog.Logger) bool {
	log.Error("upgrade watchdog: restoring the previous version", "reason", reason, "backup", m.Backup, "binary", m.Exe)
	if err := replaceBinary(m.Backup, m.Exe); err != nil {
		m.State, m.Reason = markerRestoreFailed, reason+"; but restoring it failed: "+err.Error()
		log.Error("UPGRADE WATCHDOG: THE PREVIOUS VERSION COULD NOT BE RESTORED; the new version keeps running. Restore it by hand from the backup.",
			"backup", m.Backup, "binary", m.Exe, "error", err)
		if werr := writeMarker(stateDir, m); werr != nil {
			log.Error("upgrade watchdog: cannot record the failed restore", "error", werr)
		}
		return false
	}
	m.State, m.Reason = markerRestored, reason
	if err := writeMarker(stateDir, m); err != nil {
		// The old version then finds a marker naming another version and
		// reports the upgrade failed anyway, with a vaguer reason.
		log.Error("upgrade watchdog: cannot record the restore", "error", err)
	}
	return true
}

// upgradeWatchdog is the deadline a new version gets to check in.
func (a *Agent) upgradeWatchdog() time.Duration {
	if a.upWatchdog > 0 {
		return a.upWatchdog
	}
	if s := a.Config().UpgradeWatchdogSeconds; s > 0 {
		return time.Duration(s) * time.Second
	}
	return DefaultUpgradeWatchdog
}

// resumeUpgrade runs at the start of Run: it arms the watchdog when this is
// the new version of an upgrade, or reports the upgrade failed when the
// marker says it did not take (restored by the watchdog, interrupted before
// the replacement, or another version running), and cleans the download
// space.
func (a *Agent) resumeUpgrade() {
	dir := a.state.Dir()
	m, err := readMarker(dir)
	if err != nil {
		a.log.Error("self-upgrade: the upgrade marker cannot be read", "error", err)
	}
	if m == nil {
		a.cleanUpgradeSpace()
		return
	}
	if m.State == markerInstalling && m.ToVersion == a.version {
		if a.state.HasPending(m.CommandID) {
			if ps, err := a.state.Pending(); err == nil {
				for _, p := range ps {
					if p.CommandID == m.CommandID && p.Running {
						// The old version's placeholder: the outcome is this
						// version's first check-in, not "interrupted".
						_ = a.state.DeletePending(p.CommandID)
					}
				}
			}
		}
		a.upMu.Lock()
		a.upMarker = m
		a.upMu.Unlock()
		a.log.Info("self-upgrade: running the new version; the upgrade succeeds at the first check-in", "from_version", m.FromVersion,
			"to_version", m.ToVersion, "command_id", m.CommandID, "deadline", m.Deadline.UTC().Format(time.RFC3339))
		return
	}
	var reason string
	switch {
	case m.Reason != "":
		reason = m.Reason
	case m.State == markerInstalling && a.version == m.FromVersion:
		reason = fmt.Sprintf("the upgrade to %s was interrupted before the new version started; version %s is still running", m.ToVersion, a.version)
	default:
		reason = fmt.Sprintf("the agent now runs version %s, not the new version %s", a.version, m.ToVersion)
	}
	a.finishUpgrade(m, false, reason)
}

// finishUpgrade records the update_agent command's result, then removes
// the marker and the download space.
func (a *Agent) finishUpgrade(m *upgradeMarker, ok bool, msg string) {
	now := a.now()
	details := map[string]any{"from_version": m.FromVersion, "to_version": m.ToVersion, "running_version": a.version, "rollback": m.Rollback}
	o := Succeeded(msg, details)
	if !ok {
		details["step"] = StepWatchdog
		o = Outcome{ExitCode: 1, Output: "update_agent failed: " + msg, Details: details}
		a.log.Error("self-upgrade failed", "command_id", m.CommandID, "reason", msg)
	} else {
		a.log.Info("self-upgrade succeeded", "command_id", m.CommandID, "from_version", m.FromVersion, "to_version", m.ToVersion)
	}
	if m.CommandID != "" {
		started := m.StartedAt
		if started.IsZero() {
			started = now
		}
		p := PendingResult{CommandID: m.CommandID, Type: protocol.CmdUpdateAgent, CreatedAt: started, ExpiresAt: m.CommandExpiresAt,
			Result: toResult(o, started, now)}
		if err := a.state.SavePending(p); err != nil {
			a.log.Error("self-upgrade: the outcome cannot be recorded; it is recorded at the next start", "error", err)
			return
		}
	}
	if err := removeMarker(a.state.Dir()); err != nil {
		a.log.Error("self-upgrade: the upgrade marker cannot be removed", "error", err)
	}
	a.cleanUpgradeSpace()
}

// cleanUpgradeSpace removes the download space and, on Windows, the
// binaries an earlier upgrade moved aside. The backup stays.
func (a *Agent) cleanUpgradeSpace() {
	_ = os.RemoveAll(filepath.Join(a.state.Dir(), upgradeDirName))
	if exe, err := a.executable(); err == nil {
		cleanReplaced(exe)
		// Copies a crash left half-written next to the binary.
		leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(exe), "."+filepath.Base(exe)+".new-*"))
		for _, l := range leftovers {
			_ = os.Remove(l)
		}
	}
}

// confirmUpgrade is called after each successful check-in: the first one of
// a new version settles its upgrade.
func (a *Agent) confirmUpgrade() {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	m := a.upMarker
	if m == nil {
		return
	}
	a.upMarker = nil
	verb := "upgraded"
	if m.Rollback {
		verb = "rolled back"
	}
	a.finishUpgrade(m, true, fmt.Sprintf("%s from %s to %s; the new version checked in with the server", verb, m.FromVersion, m.ToVersion))
}

// checkUpgradeDeadline restores the old version when this new version has
// not checked in by the marker's deadline, and stops the agent so that the
// service manager starts the old one.
func (a *Agent) checkUpgradeDeadline() {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	m := a.upMarker
	if m == nil || a.now().Before(m.Deadline) {
		return
	}
	a.upMarker = nil
	reason := fmt.Sprintf("the new version %s did not check in with the server within %s of its installation; version %s was restored",
		m.ToVersion, m.Deadline.Sub(m.StartedAt).Round(time.Second), m.FromVersion)
	if restoreFromMarker(a.state.Dir(), m, reason, a.log) {
		a.requestRestart("")
		return
	}
	a.finishUpgrade(m, false, m.Reason)
}

// upgradeDeadline returns the deadline of the armed watchdog.
func (a *Agent) upgradeDeadline() (time.Time, bool) {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if a.upMarker == nil {
		return time.Time{}, false
	}
	return a.upMarker.Deadline, true
}

// requestRestart stops Run, which then returns ErrRestartRequested. When
// handedOff names a command, its result belongs to the upgrade marker and
// process does not record one.
func (a *Agent) requestRestart(handedOff string) {
	if handedOff != "" {
		a.handedOff.Store(handedOff)
	}
	a.restart.Store(true)
	if a.stopRun != nil {
		a.stopRun(ErrRestartRequested)
	}
}

// isHandedOff reports whether the result of command id is the marker's.
func (a *Agent) isHandedOff(id string) bool {
	s, _ := a.handedOff.Load().(string)
	return s != "" && s == id
}

// executable is the running binary (Options.Executable in tests).
func (a *Agent) executable() (string, error) {
	if a.exe != "" {
		return a.exe, nil
	}
	return executablePath()
}

// handleUpdateAgent runs steps 1 to 6 of the self-upgrade (see
// selfupdate.go). On success the running binary is the new version, the
// marker owns the command's result and the agent stops to be restarted.
func (a *Agent) handleUpdateAgent(ctx context.Context, cmd Command) Outcome {
	var p protocol.UpdateAgentParams
	if err := decodeParams(cmd.Params, &p); err != nil {
		return upgradeFailed(stepErr(StepParams, "%v", err), p, a.version)
	}
	if err := checkUpgradeParams(p); err != nil {
		return upgradeFailed(err, p, a.version)
	}
	dec, err := checkUpgradeVersion(a.version, p.Version, p.Rollback)
	if err != nil {
		return upgradeFailed(err, p, a.version)
	}
	if dec == upgradeAlreadyCurrent {
		return Succeeded(fmt.Sprintf("version %s is already running; nothing to do", a.version),
			map[string]any{"from_version": a.version, "to_version": p.Version, "running_version": a.version, "already_current": true})
	}
	exe, err := a.executable()
	if err != nil {
		return upgradeFailed(stepErr(StepBackup, "the agent cannot find its own binary: %v", err), p, a.version)
	}
	dir := filepath.Join(a.state.Dir(), upgradeDirName)
	defer os.RemoveAll(dir) // the download space never outlives the command

	a.log.Info("self-upgrade: downloading", "command_id", cmd.ID, "from_version", a.version, "to_version", p.Version, "rollback", p.Rollback)
	path, sum, err := downloadBinary(ctx, a.download, p.URL, dir, a.upMaxBytes, a.upTimeout)
	if err != nil {
		return upgradeFailed(err, p, a.version)
	}
	if err := checkSHA256(sum, p.SHA256); err != nil {
		return upgradeFailed(err, p, a.version)
	}
	if err := checkBinarySignature(a.Config().PinnedKeys, p.KeyID, p.Signature, p.Version, runtime.GOOS, runtime.GOARCH, sum, a.now()); err != nil {
		return upgradeFailed(err, p, a.version)
	}
	if err := preflight(ctx, a.preflight, path, p.Version); err != nil {
		return upgradeFailed(err, p, a.version)
	}
	backup := filepath.Join(a.state.Dir(), backupDirName, backupFileName)
	if err := backupBinary(exe, backup); err != nil {
		return upgradeFailed(err, p, a.version)
	}
	now := a.now()
	m := &upgradeMarker{CommandID: cmd.ID, CommandExpiresAt: cmd.ExpiresAt.Unix(), FromVersion: a.version, ToVersion: p.Version,
		ToSHA256: sum, Rollback: p.Rollback, Exe: exe, Backup: backup, StartedAt: now, Deadline: now.Add(a.upgradeWatchdog()),
		State: markerInstalling}
	if err := writeMarker(a.state.Dir(), m); err != nil {
		return upgradeFailed(stepErr(StepReplace, "%v", err), p, a.version)
	}
	// From here the marker owns the result: the placeholder process wrote
	// must not turn into "interrupted" at the next start.
	if err := a.state.DeletePending(cmd.ID); err != nil {
		a.log.Warn("self-upgrade: removing the command's placeholder result failed; the next start removes it", "error", err)
	}
	if err := replaceBinary(path, exe); err != nil {
		if rerr := removeMarker(a.state.Dir()); rerr != nil {
			a.log.Error("self-upgrade: the upgrade marker cannot be removed", "error", rerr)
		}
		return upgradeFailed(err, p, a.version)
	}
	a.log.Info("self-upgrade: the new version is installed; stopping so that the service manager starts it",
		"command_id", cmd.ID, "binary", exe, "backup", backup, "to_version", p.Version, "watchdog_deadline", m.Deadline.UTC().Format(time.RFC3339))
	a.requestRestart(cmd.ID)
	return Succeeded("installed version "+p.Version+"; restarting", nil)
}

// upgradeFailed is the failed outcome of a step.
func upgradeFailed(err error, p protocol.UpdateAgentParams, current string) Outcome {
	step := ""
	var ue *upgradeError
	if errors.As(err, &ue) {
		step = ue.step
	}
	return Outcome{ExitCode: 1, Output: "update_agent failed (" + step + "): " + err.Error(),
		Details: map[string]any{"step": step, "from_version": current, "to_version": p.Version, "running_version": current, "rollback": p.Rollback}}
}
