//go:build darwin

package agent

const darwinBase = "/Library/Application Support/RedFlag/agent"

// DefaultConfigPath is the SPEC §8 config location on macOS.
func DefaultConfigPath() string { return darwinBase + "/config.json" }

// DefaultStateDir is the SPEC §8 state directory on macOS.
func DefaultStateDir() string { return darwinBase + "/state" }
