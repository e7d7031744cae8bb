//go:build !windows

package scanner

import (
	"context"

	"github.com/redflaghq/redflag/internal/protocol"
)

// WindowsUpdate is never available off Windows.
type WindowsUpdate struct{}

// NewWindowsUpdate returns the windows_update scanner and installer.
func NewWindowsUpdate(_ Runner, _ Options) *WindowsUpdate { return &WindowsUpdate{} }

// Available implements Scanner: false, this is not Windows.
func (w *WindowsUpdate) Available(context.Context) bool { return false }

// Scan implements Scanner.
func (w *WindowsUpdate) Scan(context.Context) ([]protocol.Update, error) {
	return nil, ErrUnavailable
}

// Install implements Installer.
func (w *WindowsUpdate) Install(context.Context, []protocol.InstallItem, bool) (InstallResult, error) {
	return InstallResult{}, ErrUnavailable
}

// RebootPending reports whether Windows waits for a reboot; never off Windows.
func (w *WindowsUpdate) RebootPending(context.Context) (bool, error) { return false, nil }
