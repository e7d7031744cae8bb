//go:build !linux

package scanner

// rebootFlagged: the reboot-required flag file is a Debian/Ubuntu
// convention, so elsewhere there is nothing to check (apt does not run
// there; the stub keeps the package building on every OS).
func rebootFlagged(string) (bool, error) { return false, nil }
