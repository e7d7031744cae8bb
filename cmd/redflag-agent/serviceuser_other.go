//go:build !linux

package main

import (
	"errors"
	"io"

	"github.com/redflaghq/redflag/internal/agent"
)

// applyServiceUser: --user is for the Linux systemd unit only; launchd
// and Windows services run the agent as root / LocalSystem.
func applyServiceUser(_ *agent.ServiceOptions, name string, _ io.Writer) error {
	if name != "" {
		return errors.New("--user is supported on Linux only; the service runs as root (macOS) or LocalSystem (Windows)")
	}
	return nil
}
