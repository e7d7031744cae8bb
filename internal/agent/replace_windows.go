//go:build windows

package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// replaceFile puts tmp in place of dst. Windows cannot overwrite or delete
// a running executable but can rename it, so dst is first moved to
// dst.old-<time> (removed at the next start by cleanReplaced) and tmp is
// renamed into its place; when that fails, dst is moved back.
func replaceFile(tmp, dst string) error {
	cleanReplaced(dst)
	old := fmt.Sprintf("%s.old-%d", dst, time.Now().UnixNano())
	if err := os.Rename(dst, old); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Rename(old, dst)
		return err
	}
	return nil
}

// cleanReplaced removes the earlier binaries replaceFile moved aside; one
// still running (the old process has not exited yet) stays until the next
// time.
func cleanReplaced(exe string) {
	matches, _ := filepath.Glob(exe + ".old-*")
	for _, m := range matches {
		if strings.HasPrefix(m, exe+".old-") {
			_ = os.Remove(m)
		}
	}
}
