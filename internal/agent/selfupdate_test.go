package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

func stepOf(err error) string {
	var ue *upgradeError
	if errors.As(err, &ue) {
		return ue.step
	}
	return ""
}

func TestCheckUpgradeParams(t *testing.T) {
	good := protocol.UpdateAgentParams{Version: "1.1.0", URL: "/x", SHA256: strings.Repeat("ab", 32), Signature: "sig", KeyID: "k"}
	if err := checkUpgradeParams(good); err != nil {
		t.Fatalf("good params refused: %v", err)
	}
	for name, mod := range map[string]func(p *protocol.UpdateAgentParams){
		"no version":      func(p *protocol.UpdateAgentParams) { p.Version = "" },
		"bad version":     func(p *protocol.UpdateAgentParams) { p.Version = "1.1" },
		"colon version":   func(p *protocol.UpdateAgentParams) { p.Version = "1.1.0:linux" },
		"no url":          func(p *protocol.UpdateAgentParams) { p.URL = "" },
		"short sha":       func(p *protocol.UpdateAgentParams) { p.SHA256 = "abcd" },
		"upper sha":       func(p *protocol.UpdateAgentParams) { p.SHA256 = strings.Repeat("AB", 32) },
		"non-hex sha":     func(p *protocol.UpdateAgentParams) { p.SHA256 = strings.Repeat("zz", 32) },
		"no signature":    func(p *protocol.UpdateAgentParams) { p.Signature = "" },
		"no key id":       func(p *protocol.UpdateAgentParams) { p.KeyID = "" },
		"all zero values": func(p *protocol.UpdateAgentParams) { *p = protocol.UpdateAgentParams{} },
	} {
		p := good
		mod(&p)
		if err := checkUpgradeParams(p); err == nil || stepOf(err) != StepParams {
			t.Errorf("%s: checkUpgradeParams = %v, want a params refusal", name, err)
		}
	}
}

func TestCheckUpgradeVersion(t *testing.T) {
	tests := []struct {
		current, target string
		rollback        bool
		want            upgradeDecision
		refused         bool
	}{
		{"1.0.0", "1.1.0", false, upgradeInstall, false},
		{"1.0.0", "0.9.0", false, upgradeInstall, true},
		{"1.0.0", "0.9.0", true, upgradeInstall, false},
		{"1.0.0", "1.0.0-rc.1", false, upgradeInstall, true},
		{"1.1.0", "1.1.0", false, upgradeAlreadyCurrent, false},
		{"1.1.0", "1.1.0+g123", true, upgradeAlreadyCurrent, false},
		{"dev", "1.1.0", false, upgradeInstall, false},
		{"dev", "banana", false, upgradeInstall, true},
	}
	for _, tt := range tests {
		got, err := checkUpgradeVersion(tt.current, tt.target, tt.rollback)
		if got != tt.want || (err != nil) != tt.refused || (err != nil && stepOf(err) != StepVersion) {
			t.Errorf("checkUpgradeVersion(%q, %q, %v) = %v, %v; want %v, refused %v", tt.current, tt.target, tt.rollback, got, err, tt.want, tt.refused)
		}
	}
	if _, err := checkUpgradeVersion("1.0.0", "0.9.0", false); err == nil || !strings.Contains(err.Error(), "older") {
		t.Errorf("the refusal of an older version should say so: %v", err)
	}
}

// serve is a Downloader that writes b (or fails with err).
func serve(b []byte, err error) Downloader {
	return func(ctx context.Context, url string, w io.Writer, limit int64, timeout time.Duration) (int64, error) {
		if err != nil {
			return 3, err
		}
		if int64(len(b)) > limit {
			return 0, fmt.Errorf("too large")
		}
		n, werr := w.Write(b)
		return int64(n), werr
	}
}

func TestDownloadBinary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "upgrade")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "stale-download")
	if err := os.WriteFile(stale, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := []byte("the new agent binary")
	path, sum, err := downloadBinary(context.Background(), serve(body, nil), "/u", dir, 1000, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, body) || sum != signing.SHA256Hex(body) {
		t.Errorf("downloaded %q with sum %s", got, sum)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Error("the download space was not emptied first")
	}
	if filepath.Dir(path) != dir {
		t.Errorf("downloaded to %s, outside %s", path, dir)
	}
	// Failures: nothing is left behind.
	for name, dl := range map[string]Downloader{
		"network": serve(nil, errors.New("connection reset")),
		"limit":   serve(bytes.Repeat([]byte("x"), 2000), nil),
		"empty":   serve(nil, nil),
	} {
		if _, _, err := downloadBinary(context.Background(), dl, "/u", dir, 1000, time.Second); err == nil || stepOf(err) != StepDownload {
			t.Errorf("%s: downloadBinary = %v, want a download failure", name, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: the failed download left %d files", name, len(ents))
		}
	}
}

func TestCheckSHA256(t *testing.T) {
	a, b := signing.SHA256Hex([]byte("a")), signing.SHA256Hex([]byte("b"))
	if err := checkSHA256(a, a); err != nil {
		t.Error(err)
	}
	if err := checkSHA256(a, b); err == nil || stepOf(err) != StepChecksum {
		t.Errorf("a different digest passed: %v", err)
	}
}

func TestCheckBinarySignature(t *testing.T) {
	k, other := mustKey(t), mustKey(t)
	now := t0
	sum := signing.SHA256Hex([]byte("binary"))
	sig := signing.SignBinary(k, signing.BinaryFields{Version: "1.1.0", OS: "linux", Arch: "amd64", SHA256Hex: sum})
	keys := []PinnedKey{pinned(k)}
	if err := checkBinarySignature(keys, k.ID, sig, "1.1.0", "linux", "amd64", sum, now); err != nil {
		t.Fatalf("a good signature failed: %v", err)
	}
	retired := pinned(k)
	retired.NotAfter = now.Add(-time.Hour).Unix()
	for name, c := range map[string]struct {
		keys                           []PinnedKey
		keyID, sig, ver, goos, arch, s string
	}{
		"other os":       {keys, k.ID, sig, "1.1.0", "windows", "amd64", sum},
		"other arch":     {keys, k.ID, sig, "1.1.0", "linux", "arm64", sum},
		"other version":  {keys, k.ID, sig, "1.2.0", "linux", "amd64", sum},
		"other bytes":    {keys, k.ID, sig, "1.1.0", "linux", "amd64", signing.SHA256Hex([]byte("tampered"))},
		"unpinned key":   {[]PinnedKey{pinned(other)}, k.ID, sig, "1.1.0", "linux", "amd64", sum},
		"wrong key":      {[]PinnedKey{{KeyID: k.ID, PublicKey: signing.EncodePublicKey(other.Public), Status: KeyActive}}, k.ID, sig, "1.1.0", "linux", "amd64", sum},
		"retired key":    {[]PinnedKey{retired}, k.ID, sig, "1.1.0", "linux", "amd64", sum},
		"malformed sig":  {keys, k.ID, "not base64!", "1.1.0", "linux", "amd64", sum},
		"command as sig": {keys, k.ID, signing.SignCommand(k, signing.CommandFields{ID: "x"}), "1.1.0", "linux", "amd64", sum},
	} {
		if err := checkBinarySignature(c.keys, c.keyID, c.sig, c.ver, c.goos, c.arch, c.s, now); err == nil || stepOf(err) != StepSignature {
			t.Errorf("%s: checkBinarySignature = %v, want a signature refusal", name, err)
		}
	}
}

func fakeVersion(out string, err error) Preflight {
	return func(ctx context.Context, path string) (string, error) { return out, err }
}

func TestPreflight(t *testing.T) {
	ctx := context.Background()
	if err := preflight(ctx, fakeVersion("redflag-agent 1.1.0 (commit abc, built now)\n", nil), "x", "1.1.0"); err != nil {
		t.Errorf("a binary reporting its version failed: %v", err)
	}
	for name, run := range map[string]Preflight{
		"other version": fakeVersion("redflag-agent 1.2.0 (commit abc, built now)\n", nil),
		"other program": fakeVersion("busybox 1.1.0\n", nil),
		"no output":     fakeVersion("", nil),
		"exec fails":    fakeVersion("", errors.New("exec format error")),
	} {
		if err := preflight(ctx, run, "x", "1.1.0"); err == nil || stepOf(err) != StepPreflight {
			t.Errorf("%s: preflight = %v, want a refusal", name, err)
		}
	}
	if runtime.GOOS == "windows" {
		return
	}
	// The real runner executes the file with the version argument.
	script := filepath.Join(t.TempDir(), "agent.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = version ] && echo 'redflag-agent 1.1.0 (commit x, built y)'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := preflight(ctx, runVersion, script, "1.1.0"); err != nil {
		t.Errorf("the real preflight of a script: %v", err)
	}
	notExec := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notExec, []byte("\x00\x01garbage"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := preflight(ctx, runVersion, notExec, "1.1.0"); err == nil {
		t.Error("a file that is no program passed the preflight")
	}
}

func TestBackupKeepsExactlyOne(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "redflag-agent")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "state", backupDirName, backupFileName)
	for _, content := range []string{"version one", "version two"} {
		if err := os.WriteFile(exe, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := backupBinary(exe, backup); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(backup); string(got) != content {
			t.Errorf("backup holds %q, want %q", got, content)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(backup))
	if len(ents) != 1 {
		t.Errorf("the backup directory holds %d files, want exactly one", len(ents))
	}
	if err := backupBinary(filepath.Join(dir, "missing"), backup); err == nil || stepOf(err) != StepBackup {
		t.Errorf("backing up a missing binary: %v", err)
	}
}

func TestReplaceBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "redflag-agent")
	if err := os.WriteFile(exe, []byte("old"), 0o751); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "new")
	if err := os.WriteFile(src, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A process holding the old file open keeps reading the old bytes (the
	// running agent), while the path now names the new ones.
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := replaceBinary(src, exe); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(exe); string(got) != "new" {
		t.Errorf("the binary holds %q", got)
	}
	if runtime.GOOS != "windows" {
		if old, _ := io.ReadAll(f); string(old) != "old" {
			t.Errorf("the open old binary reads %q", old)
		}
		if fi, _ := os.Stat(exe); fi.Mode().Perm() != 0o751 {
			t.Errorf("the new binary has mode %04o, want the old one's 0751", fi.Mode().Perm())
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("the binary's directory holds %d entries after the replace, want 1", len(ents))
	}
	if err := replaceBinary(filepath.Join(dir, "missing"), exe); err == nil || stepOf(err) != StepReplace {
		t.Errorf("replacing from a missing file: %v", err)
	}
	if got, _ := os.ReadFile(exe); string(got) != "new" {
		t.Errorf("a failed replace changed the binary: %q", got)
	}
}

// marker writes an installing marker for a new version in stateDir.
func testMarker(t *testing.T, stateDir, exe, backup string, deadline time.Time) *upgradeMarker {
	t.Helper()
	m := &upgradeMarker{CommandID: "0190a3b4-aaaa-7000-8000-000000000001", FromVersion: "1.0.0", ToVersion: "1.1.0",
		Exe: exe, Backup: backup, StartedAt: deadline.Add(-5 * time.Minute), Deadline: deadline, State: markerInstalling}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeMarker(stateDir, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUpgradeCheckpoint(t *testing.T) {
	setup := func(t *testing.T) (stateDir, exe, backup string) {
		dir := t.TempDir()
		stateDir, exe, backup = filepath.Join(dir, "state"), filepath.Join(dir, "redflag-agent"), filepath.Join(dir, "state", "backup", backupFileName)
		if err := os.MkdirAll(filepath.Dir(backup), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, []byte("new version"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(backup, []byte("old version"), 0o700); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Run("no marker", func(t *testing.T) {
		if UpgradeCheckpoint(t.TempDir(), "1.1.0", t0, nil) {
			t.Error("restart requested without a marker")
		}
	})
	t.Run("counts starts, then restores", func(t *testing.T) {
		stateDir, exe, backup := setup(t)
		testMarker(t, stateDir, exe, backup, t0.Add(time.Hour))
		for i := 1; i <= UpgradeMaxStarts; i++ {
			if UpgradeCheckpoint(stateDir, "1.1.0", t0, nil) {
				t.Fatalf("start %d: restored too early", i)
			}
			m, _ := readMarker(stateDir)
			if m.Starts != i || m.State != markerInstalling {
				t.Fatalf("start %d: marker %+v", i, m)
			}
		}
		if !UpgradeCheckpoint(stateDir, "1.1.0", t0, nil) {
			t.Fatal("a new version started more than UpgradeMaxStarts times was not restored")
		}
		if got, _ := os.ReadFile(exe); string(got) != "old version" {
			t.Errorf("the binary holds %q after the restore", got)
		}
		m, _ := readMarker(stateDir)
		if m.State != markerRestored || !strings.Contains(m.Reason, "started 3 times without checking in") {
			t.Errorf("marker after the restore: %+v", m)
		}
		// The restored old version starts: the hook leaves it alone.
		if UpgradeCheckpoint(stateDir, "1.0.0", t0, nil) {
			t.Error("the restored version was asked to restart")
		}
	})
	t.Run("past the deadline", func(t *testing.T) {
		stateDir, exe, backup := setup(t)
		testMarker(t, stateDir, exe, backup, t0)
		if !UpgradeCheckpoint(stateDir, "1.1.0", t0.Add(time.Second), nil) {
			t.Fatal("a new version past its deadline was not restored")
		}
		m, _ := readMarker(stateDir)
		if m.State != markerRestored || !strings.Contains(m.Reason, "did not check in") {
			t.Errorf("marker: %+v", m)
		}
	})
	t.Run("other version running", func(t *testing.T) {
		stateDir, exe, backup := setup(t)
		testMarker(t, stateDir, exe, backup, t0.Add(time.Hour))
		if UpgradeCheckpoint(stateDir, "1.0.0", t0, nil) {
			t.Error("the old version was asked to restart")
		}
		if m, _ := readMarker(stateDir); m.Starts != 0 {
			t.Errorf("the old version's start was counted: %+v", m)
		}
	})
	t.Run("backup missing", func(t *testing.T) {
		stateDir, exe, backup := setup(t)
		os.Remove(backup)
		testMarker(t, stateDir, exe, backup, t0)
		if UpgradeCheckpoint(stateDir, "1.1.0", t0.Add(time.Second), nil) {
			t.Error("restart requested although nothing was restored")
		}
		if got, _ := os.ReadFile(exe); string(got) != "new version" {
			t.Errorf("the binary holds %q", got)
		}
		if m, _ := readMarker(stateDir); m.State != markerRestoreFailed {
			t.Errorf("marker: %+v", m)
		}
	})
	t.Run("damaged marker", func(t *testing.T) {
		stateDir := t.TempDir()
		if err := os.WriteFile(markerPath(stateDir), []byte("{nope"), 0o600); err != nil {
			t.Fatal(err)
		}
		if UpgradeCheckpoint(stateDir, "1.1.0", t0, nil) {
			t.Error("a damaged marker asked for a restart")
		}
		if _, err := os.Stat(markerPath(stateDir) + ".unreadable"); err != nil {
			t.Error("the damaged marker was not set aside")
		}
	})
}

// upgradeHarness is a harness whose agent upgrades a fake binary.
type upgradeHarness struct {
	*harness
	exe     string
	newBin  []byte
	oldBin  []byte
	version string
}

func newUpgradeHarness(t *testing.T, current string) *upgradeHarness {
	t.Helper()
	u := &upgradeHarness{oldBin: []byte("agent binary " + current), newBin: []byte("agent binary 1.1.0"), version: current}
	u.exe = filepath.Join(t.TempDir(), "redflag-agent")
	if err := os.WriteFile(u.exe, u.oldBin, 0o755); err != nil {
		t.Fatal(err)
	}
	u.harness = newHarness(t, func(o *Options, c *Config) {
		o.Version = current
		o.Executable = u.exe
		o.Download = func(ctx context.Context, url string, w io.Writer, limit int64, timeout time.Duration) (int64, error) {
			n, err := w.Write(u.newBin)
			return int64(n), err
		}
		o.Preflight = func(ctx context.Context, path string) (string, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", err
			}
			// The fake binaries name their version last.
			f := strings.Fields(string(b))
			return "redflag-agent " + f[len(f)-1] + " (commit test, built test)\n", nil
		}
		o.UpgradeWatchdog = 2 * time.Minute
		c.LongPollSeconds = new(int) // plain polling: every cycle sleeps
	})
	return u
}

// restartAs builds a new agent of version v on the same config and state,
// like the service manager starting the binary now in place.
func (u *upgradeHarness) restartAs(v string) {
	u.opts.Version = v
	u.open()
}

func (u *upgradeHarness) params(version string, body []byte, rollback bool) string {
	sum := signing.SHA256Hex(body)
	sig := signing.SignBinary(u.key, signing.BinaryFields{Version: version, OS: runtime.GOOS, Arch: runtime.GOARCH, SHA256Hex: sum})
	b, _ := json.Marshal(protocol.UpdateAgentParams{Version: version, URL: "/api/v1/downloads/agent/" + runtime.GOOS + "/" + runtime.GOARCH,
		SHA256: sum, Signature: sig, KeyID: u.key.ID, Rollback: rollback})
	return string(b)
}

const upgradeCmdID = "0190a3b4-bbbb-7000-8000-000000000001"

func TestSelfUpgradeSucceeds(t *testing.T) {
	u := newUpgradeHarness(t, "1.0.0")
	u.srv.enqueue(u.sign(upgradeCmdID, protocol.CmdUpdateAgent, u.params("1.1.0", u.newBin, false)))
	err := u.run(func() bool { return false })
	if !errors.Is(err, ErrRestartRequested) {
		t.Fatalf("Run = %v, want ErrRestartRequested; logs:\n%s", err, u.logs.String())
	}
	if ExitCode(err) != ExitRestart {
		t.Errorf("exit code %d, want %d", ExitCode(err), ExitRestart)
	}
	if got, _ := os.ReadFile(u.exe); !bytes.Equal(got, u.newBin) {
		t.Fatalf("the binary holds %q, want the new one", got)
	}
	backup := filepath.Join(u.state.Dir(), backupDirName, backupFileName)
	if got, _ := os.ReadFile(backup); !bytes.Equal(got, u.oldBin) {
		t.Errorf("the backup holds %q, want the old binary", got)
	}
	if _, err := os.Stat(filepath.Join(u.state.Dir(), upgradeDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the download space was left behind")
	}
	m, err := readMarker(u.state.Dir())
	if err != nil || m == nil || m.State != markerInstalling || m.CommandID != upgradeCmdID || m.FromVersion != "1.0.0" || m.ToVersion != "1.1.0" {
		t.Fatalf("marker %+v, %v", m, err)
	}
	if !m.Deadline.Equal(t0.Add(2*time.Minute)) && m.Deadline.Sub(m.StartedAt) != 2*time.Minute {
		t.Errorf("deadline %s, started %s: want the 2m watchdog", m.Deadline, m.StartedAt)
	}
	if u.state.HasPending(upgradeCmdID) {
		t.Error("a result of the upgrade was recorded before the new version checked in")
	}
	if !u.state.IsExecutedLogged(upgradeCmdID) {
		t.Error("the command is not recorded as executed")
	}
	if _, ok := u.srv.result1(upgradeCmdID); ok {
		t.Error("the old version reported the upgrade")
	}

	// The service manager starts the new binary.
	if UpgradeCheckpoint(u.state.Dir(), "1.1.0", u.clock.Now(), nil) {
		t.Fatal("the checkpoint restored a healthy new version")
	}
	u.restartAs("1.1.0")
	if err := u.run(func() bool { _, ok := u.srv.result1(upgradeCmdID); return ok }); err != nil {
		t.Fatal(err)
	}
	res, _ := u.srv.result1(upgradeCmdID)
	if res.Status != protocol.StateSucceeded || !strings.Contains(res.Output, "upgraded from 1.0.0 to 1.1.0") {
		t.Errorf("result %+v", res)
	}
	var d map[string]any
	_ = json.Unmarshal(res.Details, &d)
	if d["from_version"] != "1.0.0" || d["to_version"] != "1.1.0" || d["running_version"] != "1.1.0" {
		t.Errorf("details %s", res.Details)
	}
	if m, _ := readMarker(u.state.Dir()); m != nil {
		t.Errorf("the marker outlived the upgrade: %+v", m)
	}
	if got, _ := os.ReadFile(backup); !bytes.Equal(got, u.oldBin) {
		t.Error("the backup was not kept")
	}
}

// TestCleanUpgradeSpace: at start, without an upgrade under way, the agent
// removes the download space and half-written copies next to its binary,
// and keeps its backup.
func TestCleanUpgradeSpace(t *testing.T) {
	u := newUpgradeHarness(t, "1.0.0")
	leftovers := []string{filepath.Join(u.state.Dir(), upgradeDirName, "redflag-agent.new"),
		filepath.Join(filepath.Dir(u.exe), ".redflag-agent.new-123")}
	backup := filepath.Join(u.state.Dir(), backupDirName, backupFileName)
	for _, p := range append(leftovers, backup) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.run(func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	for _, p := range leftovers {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was left behind", p)
		}
	}
	if _, err := os.Stat(backup); err != nil {
		t.Errorf("the backup was removed: %v", err)
	}
	if got, _ := os.ReadFile(u.exe); !bytes.Equal(got, u.oldBin) {
		t.Error("the binary was touched")
	}
}

func TestSelfUpgradeRefusals(t *testing.T) {
	tampered := []byte("agent binary 1.1.0 with a flipped byte")
	tests := []struct {
		name    string
		current string
		params  func(u *upgradeHarness) string
		serve   []byte
		step    string
		output  string
	}{
		{"tampered in transit", "1.0.0", func(u *upgradeHarness) string { return u.params("1.1.0", u.newBin, false) }, tampered,
			StepChecksum, "SHA-256"},
		{"signed for another version", "1.0.0", func(u *upgradeHarness) string {
			var p protocol.UpdateAgentParams
			_ = json.Unmarshal([]byte(u.params("1.2.0", u.newBin, false)), &p)
			p.Version = "1.1.0"
			b, _ := json.Marshal(p)
			return string(b)
		}, nil, StepSignature, "does not verify"},
		{"signature by an unknown key", "1.0.0", func(u *upgradeHarness) string {
			other := mustKey(t)
			var p protocol.UpdateAgentParams
			_ = json.Unmarshal([]byte(u.params("1.1.0", u.newBin, false)), &p)
			p.Signature = signing.SignBinary(other, signing.BinaryFields{Version: "1.1.0", OS: runtime.GOOS, Arch: runtime.GOARCH, SHA256Hex: p.SHA256})
			b, _ := json.Marshal(p)
			return string(b)
		}, nil, StepSignature, "does not verify"},
		{"older version", "1.2.0", func(u *upgradeHarness) string { return u.params("1.1.0", u.newBin, false) }, nil,
			StepVersion, "older than the running version 1.2.0"},
		{"binary reports another version", "1.0.0", func(u *upgradeHarness) string {
			u.newBin = []byte("agent binary 1.3.0")
			return u.params("1.1.0", u.newBin, false)
		}, nil, StepPreflight, "not version 1.1.0"},
		{"unknown field", "1.0.0", func(u *upgradeHarness) string { return `{"version":"1.1.0","surprise":1}` }, nil, StepParams, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpgradeHarness(t, tt.current)
			params := tt.params(u)
			if tt.serve != nil {
				u.newBin = tt.serve
			}
			u.srv.enqueue(u.sign(upgradeCmdID, protocol.CmdUpdateAgent, params))
			if err := u.run(func() bool { _, ok := u.srv.result1(upgradeCmdID); return ok }); err != nil {
				t.Fatalf("Run = %v; logs:\n%s", err, u.logs.String())
			}
			res, _ := u.srv.result1(upgradeCmdID)
			var d map[string]any
			_ = json.Unmarshal(res.Details, &d)
			if res.Status != protocol.StateFailed || d["step"] != tt.step || !strings.Contains(res.Output, tt.output) {
				t.Errorf("result %s %q %s; want failed at %s with %q", res.Status, res.Output, res.Details, tt.step, tt.output)
			}
			if got, _ := os.ReadFile(u.exe); !bytes.Equal(got, u.oldBin) {
				t.Errorf("the running binary was changed to %q", got)
			}
			if m, _ := readMarker(u.state.Dir()); m != nil {
				t.Errorf("a refused upgrade left a marker: %+v", m)
			}
			if _, err := os.Stat(filepath.Join(u.state.Dir(), upgradeDirName)); !errors.Is(err, os.ErrNotExist) {
				t.Error("the download space was left behind")
			}
		})
	}
}

func TestSelfUpgradeRollbackAndCurrent(t *testing.T) {
	u := newUpgradeHarness(t, "1.2.0")
	u.srv.enqueue(u.sign(upgradeCmdID, protocol.CmdUpdateAgent, u.params("1.1.0", u.newBin, true)))
	if err := u.run(func() bool { return false }); !errors.Is(err, ErrRestartRequested) {
		t.Fatalf("an explicit rollback: Run = %v; logs:\n%s", err, u.logs.String())
	}
	u.restartAs("1.1.0")
	if err := u.run(func() bool { _, ok := u.srv.result1(upgradeCmdID); return ok }); err != nil {
		t.Fatal(err)
	}
	if res, _ := u.srv.result1(upgradeCmdID); res.Status != protocol.StateSucceeded || !strings.Contains(res.Output, "rolled back from 1.2.0 to 1.1.0") {
		t.Errorf("rollback result %+v", res)
	}

	// The version already running: nothing to do, nothing touched.
	u2 := newUpgradeHarness(t, "1.1.0")
	const id = "0190a3b4-bbbb-7000-8000-000000000002"
	u2.srv.enqueue(u2.sign(id, protocol.CmdUpdateAgent, u2.params("1.1.0", u2.newBin, false)))
	if err := u2.run(func() bool { _, ok := u2.srv.result1(id); return ok }); err != nil {
		t.Fatal(err)
	}
	if res, _ := u2.srv.result1(id); res.Status != protocol.StateSucceeded || !strings.Contains(res.Output, "already running") {
		t.Errorf("same-version result %+v", res)
	}
	if got, _ := os.ReadFile(u2.exe); !bytes.Equal(got, u2.oldBin) {
		t.Error("the same version was installed again")
	}
}

// TestWatchdogRestoresAfterDeadline: the new version starts but cannot
// check in; at the deadline it puts the old binary back and stops; the old
// version then reports the upgrade failed.
func TestWatchdogRestoresAfterDeadline(t *testing.T) {
	u := newUpgradeHarness(t, "1.0.0")
	u.srv.enqueue(u.sign(upgradeCmdID, protocol.CmdUpdateAgent, u.params("1.1.0", u.newBin, false)))
	if err := u.run(func() bool { return false }); !errors.Is(err, ErrRestartRequested) {
		t.Fatalf("Run = %v", err)
	}
	u.restartAs("1.1.0")
	u.srv.with(func(fs *fakeServer) {
		for range 1000 {
			fs.checkInFail = append(fs.checkInFail, 503)
		}
	})
	err := u.run(func() bool { return false })
	if !errors.Is(err, ErrRestartRequested) {
		t.Fatalf("the new version past its deadline: Run = %v; logs:\n%s", err, u.logs.String())
	}
	if got, _ := os.ReadFile(u.exe); !bytes.Equal(got, u.oldBin) {
		t.Fatalf("the binary holds %q after the watchdog, want the old one", got)
	}
	if _, ok := u.srv.result1(upgradeCmdID); ok {
		t.Error("the new version reported its own failure; the restored version should")
	}
	u.srv.with(func(fs *fakeServer) { fs.checkInFail = nil })
	if UpgradeCheckpoint(u.state.Dir(), "1.0.0", u.clock.Now(), nil) {
		t.Fatal("the restored version was asked to restart")
	}
	u.restartAs("1.0.0")
	if err := u.run(func() bool { _, ok := u.srv.result1(upgradeCmdID); return ok }); err != nil {
		t.Fatal(err)
	}
	res, _ := u.srv.result1(upgradeCmdID)
	var d map[string]any
	_ = json.Unmarshal(res.Details, &d)
	if res.Status != protocol.StateFailed || !strings.Contains(res.Output, "did not check in with the server within 2m0s") ||
		d["step"] != StepWatchdog || d["running_version"] != "1.0.0" {
		t.Errorf("result %+v %s", res, res.Details)
	}
	if m, _ := readMarker(u.state.Dir()); m != nil {
		t.Errorf("the marker outlived the failed upgrade: %+v", m)
	}
}

// TestWatchdogAfterCrashLoop: the new version never gets past its first
// lines; the checkpoint restores the old version, which reports it.
func TestWatchdogAfterCrashLoop(t *testing.T) {
	u := newUpgradeHarness(t, "1.0.0")
	u.srv.enqueue(u.sign(upgradeCmdID, protocol.CmdUpdateAgent, u.params("1.1.0", u.newBin, false)))
	if err := u.run(func() bool { return false }); !errors.Is(err, ErrRestartRequested) {
		t.Fatalf("Run = %v", err)
	}
	restarted := false
	for range UpgradeMaxStarts + 1 {
		if UpgradeCheckpoint(u.state.Dir(), "1.1.0", u.clock.Now(), nil) {
			restarted = true
			break
		}
		// ... and the new version crashes here, before checking in.
	}
	if !restarted {
		t.Fatal("the checkpoint never restored the crashing version")
	}
	u.restartAs("1.0.0")
	if err := u.run(func() bool { _, ok := u.srv.result1(upgradeCmdID); return ok }); err != nil {
		t.Fatal(err)
	}
	res, _ := u.srv.result1(upgradeCmdID)
	if res.Status != protocol.StateFailed || !strings.Contains(res.Output, "was started 3 times without checking in") {
		t.Errorf("result %+v", res)
	}
}

// TestUpgradeInterruptedBeforeReplace: the agent died after writing the
// marker but before the new binary was in place; the old version reports
// the upgrade failed instead of "interrupted" and runs nothing again.
func TestUpgradeInterruptedBeforeReplace(t *testing.T) {
	u := newUpgradeHarness(t, "1.0.0")
	testMarker(t, u.state.Dir(), u.exe, filepath.Join(u.state.Dir(), backupDirName, backupFileName), u.clock.Now().Add(time.Hour))
	m, _ := readMarker(u.state.Dir())
	if err := u.state.SavePending(PendingResult{CommandID: m.CommandID, Type: protocol.CmdUpdateAgent, Running: true, CreatedAt: u.clock.Now(),
		Result: toResult(Outcome{ExitCode: 1, Output: interruptedOutput}, u.clock.Now(), u.clock.Now())}); err != nil {
		t.Fatal(err)
	}
	u.restartAs("1.0.0")
	if err := u.run(func() bool { _, ok := u.srv.result1(m.CommandID); return ok }); err != nil {
		t.Fatal(err)
	}
	res, _ := u.srv.result1(m.CommandID)
	if res.Status != protocol.StateFailed || !strings.Contains(res.Output, "interrupted before the new version started") {
		t.Errorf("result %+v", res)
	}
}
