//go:build linux

package scanner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// rebootFlagged reports whether the reboot flag file at path exists.
// Debian and Ubuntu packages (kernels, libc, systemd…) create
// /var/run/reboot-required in their postinst scripts when the new version
// only takes effect after a reboot; nothing else creates it, and a reboot
// removes it (/var/run is a tmpfs), so its presence is the OS's own answer.
func rebootFlagged(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("checking reboot flag %s: %w", path, err)
	}
}
