//go:build !windows

package agent

// setRecoveryActions refines the restart policy after installing; only the
// Windows service needs it (systemd and launchd get theirs from the
// rendered unit and plist).
func setRecoveryActions(name string) error { return nil }
