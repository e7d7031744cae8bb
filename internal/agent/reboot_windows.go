//go:build windows

package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// SystemReboot schedules a reboot with `shutdown.exe /r /t SECONDS`, run
// directly (no shell). The delay is at least one minute so the agent gets
// the command's result out before the machine goes down.
func SystemReboot(ctx context.Context, delay time.Duration) error {
	root := os.Getenv("SystemRoot")
	if root == "" {
		root = `C:\Windows`
	}
	path := filepath.Join(root, "System32", "shutdown.exe")
	secs := max(60, int(delay/time.Second))
	out, err := exec.CommandContext(ctx, path, "/r", "/t", strconv.Itoa(secs), "/c", "RedFlag: reboot requested by an administrator").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s /r /t %d: %v: %s", path, secs, err, clip(string(out), 500))
	}
	return nil
}
