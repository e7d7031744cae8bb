//go:build !windows

package agent

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redflaghq/redflag/internal/scanner"
)

// SystemReboot schedules a reboot with `shutdown -r +MINUTES`, run directly
// (no shell). shutdown counts in whole minutes, so the delay is rounded up
// and is at least one minute: the agent must get the command's result out
// before the machine goes down. An agent that is not root (the Linux
// service account) runs it as `sudo -n -- /usr/sbin/shutdown -r …`, which
// the sudoers drop-in allows (scanner.SudoPrograms).
func SystemReboot(ctx context.Context, delay time.Duration) error {
	return systemReboot(ctx, delay, scanner.Exec{Sudo: true})
}

func systemReboot(ctx context.Context, delay time.Duration, r scanner.Exec) error {
	path, err := findProgram("shutdown", scanner.SudoPrograms["shutdown"]...)
	if err != nil {
		return err
	}
	minutes := max(1, int((delay+time.Minute-1)/time.Minute))
	res, err := r.Run(ctx, path, "-r", "+"+strconv.Itoa(minutes), "RedFlag: reboot requested by an administrator")
	if err != nil {
		return fmt.Errorf("%s -r +%d: %v", path, minutes, err)
	}
	if res.ExitCode != 0 {
		out := strings.TrimSpace(string(res.Stderr) + "\n" + string(res.Stdout))
		return fmt.Errorf("%s -r +%d: exit status %d: %s", path, minutes, res.ExitCode, clip(out, 500))
	}
	return nil
}

// findProgram looks name up at the given absolute paths first (those the
// sudoers drop-in names), then in PATH.
func findProgram(name string, paths ...string) (string, error) {
	for _, p := range paths {
		if fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %v or PATH", name, paths)
}
