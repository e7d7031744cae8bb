package agent

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// HostInfo is what registration sends about the machine.
type HostInfo struct {
	Hostname  string
	OSType    string
	OSVersion string
	OSArch    string
}

// CollectHostInfo returns this machine's hostname, OS and architecture.
func CollectHostInfo() HostInfo {
	h, _ := os.Hostname()
	return HostInfo{Hostname: clip(h, 255), OSType: runtime.GOOS, OSVersion: clip(osVersion(), 255), OSArch: runtime.GOARCH}
}

// CollectInventory gathers the system inventory of this machine (the
// collect_specs command). Pieces that cannot be read are left empty rather
// than failing the whole report.
func CollectInventory(ctx context.Context) (protocol.SystemReport, error) {
	rep := platformInventory(ctx)
	h := CollectHostInfo()
	rep.Hostname, rep.OSType, rep.OSArch = h.Hostname, h.OSType, h.OSArch
	if rep.OSVersion == "" {
		rep.OSVersion = h.OSVersion
	}
	if rep.CPUCores == 0 {
		rep.CPUCores = runtime.NumCPU()
	}
	rep.PackageManagers = detectPackageManagers(exec.LookPath, fileExists)
	return sanitizeReport(rep), nil
}

// packageManager names a package manager by the SPEC §7 package_type where
// there is one, and the programs that reveal it.
type packageManager struct {
	name     string
	programs []string
	paths    []string // absolute fallbacks for programs outside a service's PATH
}

var packageManagers = []packageManager{
	{name: "apt", programs: []string{"apt-get"}},
	{name: "dnf", programs: []string{"dnf", "dnf5"}},
	{name: "yum", programs: []string{"yum"}},
	{name: "zypper", programs: []string{"zypper"}},
	{name: "pacman", programs: []string{"pacman"}},
	{name: "aur", programs: []string{"yay", "paru"}},
	{name: "apk", programs: []string{"apk"}},
	{name: "snap", programs: []string{"snap"}},
	{name: "flatpak", programs: []string{"flatpak"}},
	{name: "homebrew", programs: []string{"brew"}, paths: []string{"/opt/homebrew/bin/brew", "/usr/local/bin/brew", "/home/linuxbrew/.linuxbrew/bin/brew"}},
	{name: "winget", programs: []string{"winget"}},
	{name: "chocolatey", programs: []string{"choco"}},
	{name: "docker", programs: []string{"docker"}},
}

// detectPackageManagers lists the package managers present, in a fixed
// order; Windows Update is always present on Windows.
func detectPackageManagers(lookPath func(string) (string, error), exists func(string) bool) []string {
	var out []string
	for _, pm := range packageManagers {
		found := false
		for _, p := range pm.programs {
			if _, err := lookPath(p); err == nil {
				found = true
				break
			}
		}
		for _, p := range pm.paths {
			if !found && exists(p) {
				found = true
			}
		}
		if found {
			out = append(out, pm.name)
		}
	}
	if runtime.GOOS == "windows" {
		out = append(out, "windows_update")
	}
	return out
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Server limits of a system report (they mirror the API's checks).
const (
	maxReportDisks = 256
	maxReportPMs   = 64
)

// sanitizeReport cuts every text to the server's limits and makes it
// acceptable to protocol.CheckText, so a strange mount name or CPU string
// cannot get the whole report refused.
func sanitizeReport(r protocol.SystemReport) protocol.SystemReport {
	r.OSVersion = clip(r.OSVersion, 255)
	r.OSArch = clip(r.OSArch, 32)
	r.Kernel = clip(r.Kernel, 255)
	r.Hostname = clip(r.Hostname, 255)
	r.CPUModel = clip(r.CPUModel, 255)
	r.CPUCores = max(r.CPUCores, 0)
	r.MemoryBytes = max(r.MemoryBytes, 0)
	r.UptimeSeconds = max(r.UptimeSeconds, 0)
	disks := r.Disks[:0:0]
	for _, d := range r.Disks {
		d.Mount = clip(d.Mount, 1024)
		d.Filesystem = clip(d.Filesystem, 64)
		if d.Mount == "" || d.TotalBytes <= 0 || d.UsedBytes < 0 {
			continue
		}
		disks = append(disks, d)
		if len(disks) == maxReportDisks {
			break
		}
	}
	r.Disks = disks
	if r.Disks == nil {
		r.Disks = []protocol.Disk{}
	}
	if len(r.PackageManagers) > maxReportPMs {
		r.PackageManagers = r.PackageManagers[:maxReportPMs]
	}
	if r.PackageManagers == nil {
		r.PackageManagers = []string{}
	}
	return r
}

// clip returns s as one line of clean text of at most max bytes.
func clip(s string, max int) string {
	s = strings.TrimSpace(cleanOutput(s, max+len("\n[output truncated]")))
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		cut := max
		for cut > 0 && (s[cut]&0xC0) == 0x80 {
			cut--
		}
		s = s[:cut]
	}
	return s
}
