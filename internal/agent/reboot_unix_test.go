//go:build linux

package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/scanner"
)

// TestSystemRebootThroughSudo: not root, the agent asks sudo (a shim here
// that only records; nothing reboots) to run shutdown -r.
func TestSystemRebootThroughSudo(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "calls")
	shim := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shim("sudo", `for a in "$@"; do printf '%s\n' "$a" >>"$RF_LOG"; done; [ -z "${RF_REFUSE:-}" ] || { echo "sudo: a password is required" >&2; exit 1; }`+"\n")
	shim("shutdown", "echo 'shutdown ran without sudo' >&2; exit 3\n")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if p, err := exec.LookPath("sudo"); err != nil || p != filepath.Join(dir, "sudo") {
		t.Fatalf("the sudo shim is not first on PATH (%s, %v): not risking a real reboot", p, err)
	}
	nonRoot := func() int { return 1000 }
	r := scanner.Exec{Sudo: true, Geteuid: nonRoot, Env: []string{"RF_LOG=" + log}}
	if err := systemReboot(context.Background(), 90*time.Second, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(got) != 6 || !slices.Equal(got[:2], []string{"-n", "--"}) || filepath.Base(got[2]) != "shutdown" ||
		!slices.Equal(got[3:], []string{"-r", "+2", "RedFlag: reboot requested by an administrator"}) {
		t.Fatalf("sudo got %q, want -n -- /…/shutdown -r +2 <message>", got)
	}
	r.Env = append(r.Env, "RF_REFUSE=1")
	err = systemReboot(context.Background(), time.Minute, r)
	if err == nil || !strings.Contains(err.Error(), "sudo refused shutdown: the sudoers drop-in /etc/sudoers.d/redflag-agent is missing or does not allow it") {
		t.Fatalf("a refused reboot: %v", err)
	}
}
