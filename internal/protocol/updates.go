package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Package types (SPEC §7).
const (
	PkgAPT           = "apt"
	PkgDNF           = "dnf"
	PkgPacman        = "pacman"
	PkgAUR           = "aur"
	PkgSnap          = "snap"
	PkgFlatpak       = "flatpak"
	PkgHomebrew      = "homebrew"
	PkgWinget        = "winget"
	PkgWindowsUpdate = "windows_update"
	PkgDocker        = "docker"
)

// PackageTypes lists every known package type, in the order scanners run.
var PackageTypes = []string{PkgAPT, PkgDNF, PkgPacman, PkgAUR, PkgSnap, PkgFlatpak, PkgHomebrew,
	PkgWinget, PkgWindowsUpdate, PkgDocker}

// Severities (SPEC §7), most urgent first. Unknown is what a scanner
// reports when the package manager says nothing: never invented.
const (
	SevCritical  = "critical"
	SevImportant = "important"
	SevModerate  = "moderate"
	SevLow       = "low"
	SevUnknown   = "unknown"
)

// Severities lists every severity, most urgent first.
var Severities = []string{SevCritical, SevImportant, SevModerate, SevLow, SevUnknown}

// Update is one pending update as an agent reports it (SPEC §7).
type Update struct {
	PackageType      string            `json:"package_type"`
	PackageName      string            `json:"package_name"`
	CurrentVersion   string            `json:"current_version"`
	AvailableVersion string            `json:"available_version"`
	Severity         string            `json:"severity"`
	Source           string            `json:"source"`
	CVEIDs           []string          `json:"cve_ids"`
	SizeBytes        int64             `json:"size_bytes"`
	RequiresReboot   bool              `json:"requires_reboot"`
	Metadata         map[string]string `json:"metadata"`
}

// ScanError is one scanner's failure inside a report or a local scan.
type ScanError struct {
	Scanner string `json:"scanner"`
	Message string `json:"message"`
}

// UpdateReport is the body of POST /api/v1/agents/{id}/reports/updates.
// A full report has an "updates" array (possibly empty, never null) and no
// unchanged_hash; a hash-only report has unchanged_hash and "updates" null
// or absent.
type UpdateReport struct {
	Scanner       string      `json:"scanner"`
	ScannedAt     time.Time   `json:"scanned_at"`
	Updates       []Update    `json:"updates"`
	Errors        []ScanError `json:"errors,omitempty"`
	UnchangedHash string      `json:"unchanged_hash,omitempty"`
	// IntervalSeconds is how often the agent runs this scanner, so the
	// server can tell a stale scan (older than twice the interval) from a
	// current one. An addition to SPEC §4; zero means "not said".
	IntervalSeconds int `json:"interval_seconds,omitempty"`
}

// UpdatesHash is the unchanged_hash of a full report: SHA-256 hex of the
// exact bytes of its "updates" value as sent.
func UpdatesHash(updatesJSON []byte) string {
	sum := sha256.Sum256(updatesJSON)
	return hex.EncodeToString(sum[:])
}

// UpdateReportResponse is the 200 body of an accepted report: Hash is the
// SHA-256 hex the server will accept as unchanged_hash next time.
type UpdateReportResponse struct {
	Hash string `json:"hash"`
}

// ScanResult is what `redflag-agent scan --format json` prints (SPEC §8).
type ScanResult struct {
	Updates []Update    `json:"updates"`
	Errors  []ScanError `json:"errors"`
}

// InstallItem names one update inside install_updates.
type InstallItem struct {
	UpdateID    string `json:"update_id"`
	PackageType string `json:"package_type"`
	PackageName string `json:"package_name"`
	Version     string `json:"version"`
}

// InstallUpdatesParams are the params of install_updates and
// confirm_dependencies (SPEC §6).
type InstallUpdatesParams struct {
	Updates []InstallItem `json:"updates"`
	DryRun  bool          `json:"dry_run"`
}

// PackageChange is one package a dry run or an install would touch.
type PackageChange struct {
	PackageType string `json:"package_type"`
	PackageName string `json:"package_name"`
	// Action is "upgrade", "install" (a new dependency) or "remove".
	Action      string `json:"action"`
	FromVersion string `json:"from_version,omitempty"`
	ToVersion   string `json:"to_version,omitempty"`
}

// InstallDetails is the details object of an install_updates result:
// per-update outcomes and, for a dry run, every package that would change.
// Extras are the changes beyond the requested updates (new dependencies,
// removals); when a dry run finds any, the server asks an admin to confirm.
type InstallDetails struct {
	DryRun         bool                `json:"dry_run"`
	Changes        []PackageChange     `json:"changes,omitempty"`
	Extras         []PackageChange     `json:"extras,omitempty"`
	Results        []InstallItemResult `json:"results,omitempty"`
	RebootRequired bool                `json:"reboot_required"`
}

// InstallItemResult is the outcome for one requested update.
type InstallItemResult struct {
	UpdateID         string `json:"update_id"`
	Status           string `json:"status"` // "installed" or "failed"
	InstalledVersion string `json:"installed_version,omitempty"`
	Message          string `json:"message,omitempty"`
}
