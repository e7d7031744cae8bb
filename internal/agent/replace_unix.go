//go:build !windows

package agent

import "os"

// replaceFile renames tmp over dst: atomic on one file system, and a
// running binary may be replaced this way (the process keeps its open
// inode).
func replaceFile(tmp, dst string) error { return os.Rename(tmp, dst) }

// cleanReplaced removes what replaceFile leaves behind; nothing on Unix.
func cleanReplaced(exe string) {}
