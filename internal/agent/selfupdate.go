package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

// Self-upgrade (update_agent, SPEC §5 and §6) in seven steps, each its own
// function below:
//
//  1. download the binary into <state>/upgrade/, bounded in size and time
//     (downloadBinary);
//  2. check its SHA-256 against the command's (checkSHA256);
//  3. check the signature over "redflag-agent-v1:{version}:{os}:{arch}:{sha256}"
//     under a pinned key, for this agent's own os and arch, and refuse a
//     version older than the running one unless the command is an explicit
//     rollback (checkUpgradeVersion, checkBinarySignature); the new binary
//     must then report that very version when run (preflight);
//  4. copy the running binary to <state>/backup/redflag-agent.prev, the one
//     backup kept (backupBinary);
//  5. replace the running binary atomically (replaceBinary): a copy next to
//     it, fsynced, renamed over it (on Windows the running file is renamed
//     away first, since it cannot be overwritten);
//  6. restart through the service manager: the agent records an upgrade
//     marker (<state>/upgrade.json) and exits with ExitRestart, a failure
//     exit that systemd (Restart=on-failure), the Windows service recovery
//     actions and launchd (KeepAlive) all answer with a start of the new
//     binary;
//  7. watchdog: the marker carries a deadline and a start counter.
//     UpgradeCheckpoint, the first thing `redflag-agent run` does, counts
//     each start of the new version; the new version clears the marker and
//     reports the command succeeded at its first successful check-in. A
//     new version that starts more than UpgradeMaxStarts times, or has not
//     checked in by the deadline, gets the backup put back and exits, so
//     the service manager starts the old version, which reports the command
//     failed with the reason. The old binary never runs again before that,
//     so the hook lives in the new binary's first lines; a binary that
//     cannot even run `version` is refused by the preflight instead.
//
// A failure before step 5 leaves the running binary untouched and fails the
// command at once. Nothing is retried by the agent: the server decides.

// Bounds and files of the self-upgrade.
const (
	// DefaultUpgradeMaxBytes bounds the download.
	DefaultUpgradeMaxBytes = 200 << 20
	// DefaultUpgradeDownloadTimeout bounds the whole download.
	DefaultUpgradeDownloadTimeout = 10 * time.Minute
	// DefaultUpgradeWatchdog is how long a new version has to check in.
	DefaultUpgradeWatchdog = 5 * time.Minute
	// UpgradeMaxStarts is how many times a new version may start without
	// checking in before the backup is restored.
	UpgradeMaxStarts = 3
	// ExitRestart is the exit code with which the agent asks its service
	// manager to start it again (EX_TEMPFAIL): after installing a new
	// version, or after the watchdog restored the old one.
	ExitRestart = 75

	preflightTimeout = 30 * time.Second
	upgradeDirName   = "upgrade"
	backupDirName    = "backup"
	backupFileName   = "redflag-agent.prev"
	markerFileName   = "upgrade.json"
)

// ErrRestartRequested is returned by Run when the agent stopped so that its
// service manager starts it again (see ExitRestart).
var ErrRestartRequested = errors.New("the agent stopped to be restarted by its service manager")

// Upgrade failure steps, reported in the failed result's details ("step").
const (
	StepParams    = "params"
	StepVersion   = "version"
	StepDownload  = "download"
	StepChecksum  = "checksum"
	StepSignature = "signature"
	StepPreflight = "preflight"
	StepBackup    = "backup"
	StepReplace   = "replace"
	StepWatchdog  = "watchdog"
)

// upgradeError is a refused or failed step.
type upgradeError struct {
	step string
	err  error
}

func (e *upgradeError) Error() string { return e.err.Error() }
func (e *upgradeError) Unwrap() error { return e.err }

func stepErr(step string, format string, args ...any) error {
	return &upgradeError{step: step, err: fmt.Errorf(format, args...)}
}

// upgradeDecision is what checkUpgradeVersion allows.
type upgradeDecision int

const (
	upgradeInstall upgradeDecision = iota
	upgradeAlreadyCurrent
)

// checkUpgradeParams checks the command's fields; the signature itself is
// checked on the downloaded bytes.
func checkUpgradeParams(p protocol.UpdateAgentParams) error {
	if !protocol.ValidVersion(p.Version) || strings.Contains(p.Version, ":") {
		return stepErr(StepParams, "version %q is not a semantic version such as 1.4.2", p.Version)
	}
	if p.URL == "" {
		return stepErr(StepParams, "url is empty")
	}
	if len(p.SHA256) != 64 || strings.ToLower(p.SHA256) != p.SHA256 || !isHex(p.SHA256) {
		return stepErr(StepParams, "sha256 must be 64 lowercase hexadecimal characters")
	}
	if p.Signature == "" || p.KeyID == "" {
		return stepErr(StepParams, "signature and key_id are required")
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkUpgradeVersion applies SPEC §5: a version older than the running one
// is refused unless the command is an explicit rollback; the running version
// itself needs nothing done. A running version that is not a semantic
// version (a developer build, "dev") may be replaced by any release.
func checkUpgradeVersion(current, target string, rollback bool) (upgradeDecision, error) {
	c, ok := protocol.CompareVersions(target, current)
	if !ok {
		if protocol.ValidVersion(target) {
			return upgradeInstall, nil // current is a developer build
		}
		return upgradeInstall, stepErr(StepVersion, "version %q is not a semantic version", target)
	}
	switch {
	case c == 0:
		return upgradeAlreadyCurrent, nil
	case c < 0 && !rollback:
		return upgradeInstall, stepErr(StepVersion, "refused: version %s is older than the running version %s; downgrading needs an explicit rollback command", target, current)
	}
	return upgradeInstall, nil
}

// Downloader fetches url into w, at most limit bytes within timeout
// (client.Client.Download).
type Downloader func(ctx context.Context, url string, w io.Writer, limit int64, timeout time.Duration) (int64, error)

// downloadBinary empties dir, downloads url into dir/<name> (0700) while
// hashing it, fsyncs it and returns its path and lowercase hex SHA-256.
func downloadBinary(ctx context.Context, dl Downloader, url, dir string, limit int64, timeout time.Duration) (path, sum string, err error) {
	if err := resetDir(dir); err != nil {
		return "", "", stepErr(StepDownload, "preparing the download directory: %v", err)
	}
	file := filepath.Join(dir, "redflag-agent.new"+exeSuffix())
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return "", "", stepErr(StepDownload, "creating the download file: %v", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(file)
		}
	}()
	h := sha256.New()
	n, err := dl(ctx, url, io.MultiWriter(f, h), limit, timeout)
	if err != nil {
		return "", "", stepErr(StepDownload, "downloading %s failed after %d bytes: %v", url, n, err)
	}
	if n == 0 {
		return "", "", stepErr(StepDownload, "the download of %s is empty", url)
	}
	if err = f.Sync(); err != nil {
		return "", "", stepErr(StepDownload, "writing the download: %v", err)
	}
	if err = f.Close(); err != nil {
		return "", "", stepErr(StepDownload, "writing the download: %v", err)
	}
	return file, hex.EncodeToString(h.Sum(nil)), nil
}

// checkSHA256 compares the downloaded file's digest with the command's.
func checkSHA256(got, want string) error {
	if got != want {
		return stepErr(StepChecksum, "refused: the downloaded binary has SHA-256 %s, but the command names %s (modified in transit or on the server)", got, want)
	}
	return nil
}

// checkBinarySignature verifies the SPEC §5 binary signature under the
// pinned key keyID, binding version, this agent's os and arch, and the
// digest of the downloaded bytes.
func checkBinarySignature(keys []PinnedKey, keyID, sig, version, goos, goarch, sum string, now time.Time) error {
	var key *PinnedKey
	for i := range keys {
		if keys[i].KeyID == keyID {
			key = &keys[i]
		}
	}
	if key == nil {
		return stepErr(StepSignature, "refused: the binary is signed with key %q, which this agent has not pinned", keyID)
	}
	if key.NotAfter > 0 && now.Unix() > key.NotAfter {
		return stepErr(StepSignature, "refused: the binary is signed with key %s, which this agent stopped trusting", keyID)
	}
	pub, err := signing.ParsePublicKey(key.PublicKey)
	if err != nil {
		return stepErr(StepSignature, "the pinned key %s cannot be used: %v", keyID, err)
	}
	if err := signing.VerifyBinary(pub, signing.BinaryFields{Version: version, OS: goos, Arch: goarch, SHA256Hex: sum}, sig); err != nil {
		return stepErr(StepSignature, "refused: the binary's signature does not verify for version %s on %s/%s under key %s: %v", version, goos, goarch, keyID, err)
	}
	return nil
}

// Preflight runs a downloaded binary's `version` subcommand and returns
// what it printed.
type Preflight func(ctx context.Context, path string) (string, error)

// runVersion is the real Preflight.
func runVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Env = []string{}
	out, err := cmd.Output()
	return string(out), err
}

// preflight checks that the new binary runs here and reports the version it
// was signed as: a binary for another platform, one that fails at start,
// or one whose signature names another version is refused before the
// running binary is touched.
func preflight(ctx context.Context, run Preflight, path, version string) error {
	out, err := run(ctx, path)
	if err != nil {
		return stepErr(StepPreflight, "refused: the new binary does not run on this machine (%v)", err)
	}
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "redflag-agent" || f[1] != version {
		return stepErr(StepPreflight, "refused: the new binary reports %q, not version %s", strings.TrimSpace(cleanOutput(firstLine(out), 200)), version)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// backupBinary copies the running binary to backup, replacing the one
// backup kept there.
func backupBinary(exe, backup string) error {
	if err := os.MkdirAll(filepath.Dir(backup), 0o700); err != nil {
		return stepErr(StepBackup, "creating the backup directory: %v", err)
	}
	if err := copyFileAtomic(exe, backup, 0o700); err != nil {
		return stepErr(StepBackup, "backing up %s: %v", exe, err)
	}
	return nil
}

// replaceBinary puts a copy of src in place of dst atomically: the copy is
// written next to dst (same file system), fsynced, given dst's mode and
// renamed over it (see replaceFile for Windows).
func replaceBinary(src, dst string) error {
	mode := os.FileMode(0o755)
	if fi, err := os.Stat(dst); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := copyToTemp(src, filepath.Dir(dst), "."+filepath.Base(dst)+".new-", mode)
	if err != nil {
		return stepErr(StepReplace, "copying the new binary next to %s: %v", dst, err)
	}
	if err := replaceFile(tmp, dst); err != nil {
		os.Remove(tmp)
		return stepErr(StepReplace, "replacing %s: %v", dst, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return stepErr(StepReplace, "replacing %s: %v", dst, err)
	}
	return nil
}

// copyFileAtomic copies src over dst so that dst is either the old or the
// complete new file.
func copyFileAtomic(src, dst string, mode os.FileMode) error {
	tmp, err := copyToTemp(src, filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-", mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// copyToTemp copies src into a new file in dir (fsynced, with mode) and
// returns its path.
func copyToTemp(src, dir, prefix string, mode os.FileMode) (_ string, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return "", err
	}
	path := out.Name()
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(path)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return "", err
	}
	if err = out.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		return "", err
	}
	if err = out.Sync(); err != nil {
		return "", err
	}
	return path, out.Close()
}

// resetDir empties dir (creating it, 0700).
func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.MkdirAll(dir, 0o700)
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

// executablePath is the running binary, symbolic links resolved: the file
// to back up and replace is the real one. The Linux install script puts it
// at /usr/local/lib/redflag/redflag-agent, in a directory the agent's
// unprivileged account owns, behind the link /usr/local/bin/redflag-agent
// (a directory such an account cannot write): the new binary is renamed
// over the real file, inside its own directory, and the link keeps working.
func executablePath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return realPath(exe), nil
}

// realPath is p with symbolic links resolved (p itself when that fails).
func realPath(p string) string {
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real
	}
	return p
}
