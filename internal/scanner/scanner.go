// Package scanner finds pending updates and installs them, one file per
// package manager behind the Scanner and Installer interfaces. Parsers are
// pure functions over the tool's output (tested against recorded output in
// testdata/); running the tool goes through a Runner, so tests substitute
// recorded output and never need the package manager itself.
//
// scanner knows nothing of HTTP or of the agent loop: the agent decides
// when to scan and where reports go.
package scanner

import (
	"context"
	"errors"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// ErrUnavailable means the scanner's tool is not on this machine: the
// scanner is skipped, which is not an error.
var ErrUnavailable = errors.New("package manager not present on this machine")

// Scanner finds the pending updates of one package manager.
type Scanner interface {
	// Name is the package_type this scanner reports (SPEC §7).
	Name() string
	// Available reports whether the tool exists here (a cheap lookup, no
	// process started where avoidable).
	Available(ctx context.Context) bool
	// Scan lists the pending updates. Every Update has PackageType ==
	// Name(), a non-empty PackageName and a severity from Severities.
	Scan(ctx context.Context) ([]protocol.Update, error)
}

// Installer applies updates of one package manager.
type Installer interface {
	// Name is the package_type this installer handles.
	Name() string
	// Install installs items (all of this installer's package type). With
	// dryRun it changes nothing and reports what would change, including
	// packages beyond the requested ones (Extras).
	Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error)
}

// InstallResult is what one installer did or would do.
type InstallResult struct {
	Changes []protocol.PackageChange
	Extras  []protocol.PackageChange
	Results []protocol.InstallItemResult
	// Output is the tool's combined output, bounded (see MaxOutput).
	Output   string
	ExitCode int
	// RebootRequired is this package manager's (or the OS's) view after
	// the install.
	RebootRequired bool
}

// Options tune scanners; the agent config fills them in.
type Options struct {
	// RefreshLists refreshes package lists before scanning where the tool
	// needs it (apt-get update, dnf makecache). Off: scan the lists as they are.
	RefreshLists bool
	// FlatpakUser also scans the user installation of the running user.
	FlatpakUser bool
	// Timeout bounds one scan or one install step per package manager.
	Timeout time.Duration
	// DockerSocket overrides the Docker Engine socket (default
	// /var/run/docker.sock, or the npipe on Windows).
	DockerSocket string
	// DockerConfig overrides the path of Docker's config.json (registry
	// credentials).
	DockerConfig string
	// RecreateContainers, for the docker installer, recreates containers
	// on the newly pulled image. Off by default: pulling is safe, replacing
	// a running container is a decision the admin opts into.
	RecreateContainers bool
}

// DefaultTimeout bounds a scan when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Minute
