//go:build !windows && !darwin

package agent

// DefaultConfigPath is the SPEC §8 config location on Linux (and other Unix).
func DefaultConfigPath() string { return "/etc/redflag/agent/config.json" }

// DefaultStateDir is the SPEC §8 state directory on Linux (and other Unix).
func DefaultStateDir() string { return "/var/lib/redflag/agent" }
