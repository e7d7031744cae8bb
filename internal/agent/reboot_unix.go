//go:build !windows

package agent

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// SystemReboot schedules a reboot with `shutdown -r +MINUTES`, run directly
// (no shell). shutdown counts in whole minutes, so the delay is rounded up
// and is at least one minute: the agent must get the command's result out
// before the machine goes down.
func SystemReboot(ctx context.Context, delay time.Duration) error {
	path, err := findProgram("shutdown", "/sbin/shutdown", "/usr/sbin/shutdown", "/usr/bin/shutdown")
	if err != nil {
		return err
	}
	minutes := max(1, int((delay+time.Minute-1)/time.Minute))
	out, err := exec.CommandContext(ctx, path, "-r", "+"+strconv.Itoa(minutes), "RedFlag: reboot requested by an administrator").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -r +%d: %v: %s", path, minutes, err, clip(string(out), 500))
	}
	return nil
}

// findProgram looks name up in PATH, then at the given absolute paths (a
// service's PATH can be minimal).
func findProgram(name string, paths ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range paths {
		if fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %v", name, paths)
}
