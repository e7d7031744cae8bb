//go:build windows

package agent

import (
	"os"
	"path/filepath"
)

// windowsBase is C:\ProgramData\RedFlag\agent, following %ProgramData% when
// Windows lives on another drive.
func windowsBase() string {
	pd := os.Getenv("ProgramData")
	if pd == "" || !filepath.IsAbs(pd) {
		pd = `C:\ProgramData`
	}
	return filepath.Join(pd, "RedFlag", "agent")
}

// DefaultConfigPath is the SPEC §8 config location on Windows.
func DefaultConfigPath() string { return filepath.Join(windowsBase(), "config.json") }

// DefaultStateDir is the SPEC §8 state directory on Windows.
func DefaultStateDir() string { return filepath.Join(windowsBase(), "state") }
