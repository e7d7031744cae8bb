package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/scanner"
)

// ScanConfig is the "scanners" section of the agent config: which package
// managers to scan, how often, and how hard to try. Every field is
// optional; zero values mean the defaults below.
type ScanConfig struct {
	// Enabled lists the scanners to run (package types); absent: all.
	Enabled []string `json:"enabled,omitempty"`
	// IntervalSeconds is the default scan interval (default 21600, 6 h).
	IntervalSeconds int `json:"interval_seconds,omitempty"`
	// Intervals overrides the interval per scanner, e.g. {"docker": 3600}.
	Intervals map[string]int `json:"intervals,omitempty"`
	// RefreshLists refreshes package lists (apt-get update, dnf makecache)
	// before a scan. Off by default: the OS's own timers usually do it,
	// and a refresh per scan multiplies mirror traffic across a fleet.
	RefreshLists bool `json:"refresh_lists,omitempty"`
	// TimeoutSeconds bounds one scanner's scan (default 600).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// BreakerFailures (default 3) failed scans in a row open a scanner's
	// circuit breaker for BreakerOpenSeconds (default 1800).
	BreakerFailures    int `json:"breaker_failures,omitempty"`
	BreakerOpenSeconds int `json:"breaker_open_seconds,omitempty"`
	// FlatpakUser also scans the user installation of the agent's user.
	FlatpakUser bool `json:"flatpak_user,omitempty"`
	// DockerSocket overrides the Docker Engine socket path.
	DockerSocket string `json:"docker_socket,omitempty"`
	// RecreateContainers lets a docker install recreate the containers on
	// the new image (off: the image is pulled, containers keep running).
	RecreateContainers bool `json:"recreate_containers,omitempty"`
}

// Scan defaults.
const (
	DefaultScanInterval = 6 * time.Hour
	minScanInterval     = 60
	maxScanInterval     = 7 * 24 * 60 * 60
)

// Validate checks the section and names the field at fault.
func (s *ScanConfig) Validate() error {
	if s == nil {
		return nil
	}
	for _, n := range s.Enabled {
		if !slices.Contains(protocol.PackageTypes, n) {
			return fmt.Errorf("scanners.enabled: unknown scanner %q (known: %v)", n, protocol.PackageTypes)
		}
	}
	check := func(field string, v int) error {
		if v != 0 && (v < minScanInterval || v > maxScanInterval) {
			return fmt.Errorf("%s must be between %d and %d seconds (or absent)", field, minScanInterval, maxScanInterval)
		}
		return nil
	}
	if err := check("scanners.interval_seconds", s.IntervalSeconds); err != nil {
		return err
	}
	for n, v := range s.Intervals {
		if !slices.Contains(protocol.PackageTypes, n) {
			return fmt.Errorf("scanners.intervals: unknown scanner %q", n)
		}
		if err := check("scanners.intervals."+n, v); err != nil {
			return err
		}
	}
	if s.TimeoutSeconds < 0 || s.TimeoutSeconds > 24*60*60 {
		return fmt.Errorf("scanners.timeout_seconds must be between 0 and %d", 24*60*60)
	}
	if s.BreakerFailures < 0 || s.BreakerFailures > 1000 {
		return fmt.Errorf("scanners.breaker_failures must be between 0 and 1000")
	}
	if s.BreakerOpenSeconds < 0 || s.BreakerOpenSeconds > maxScanInterval {
		return fmt.Errorf("scanners.breaker_open_seconds must be between 0 and %d", maxScanInterval)
	}
	if err := protocol.CheckText(s.DockerSocket, 1024, false); err != nil {
		return fmt.Errorf("scanners.docker_socket: %v", err)
	}
	return nil
}

// Interval returns how often the named scanner runs.
func (s *ScanConfig) Interval(name string) time.Duration {
	if s != nil {
		if v := s.Intervals[name]; v > 0 {
			return time.Duration(v) * time.Second
		}
		if s.IntervalSeconds > 0 {
			return time.Duration(s.IntervalSeconds) * time.Second
		}
	}
	return DefaultScanInterval
}

// Names returns the enabled scanners in the canonical order.
func (s *ScanConfig) Names() []string {
	if s == nil || len(s.Enabled) == 0 {
		return slices.Clone(protocol.PackageTypes)
	}
	var out []string
	for _, n := range protocol.PackageTypes {
		if slices.Contains(s.Enabled, n) {
			out = append(out, n)
		}
	}
	return out
}

// Options returns the scanner options of this section.
func (s *ScanConfig) Options() scanner.Options {
	if s == nil {
		return scanner.Options{Timeout: scanner.DefaultTimeout}
	}
	o := scanner.Options{RefreshLists: s.RefreshLists, FlatpakUser: s.FlatpakUser, DockerSocket: s.DockerSocket,
		RecreateContainers: s.RecreateContainers, Timeout: scanner.DefaultTimeout}
	if s.TimeoutSeconds > 0 {
		o.Timeout = time.Duration(s.TimeoutSeconds) * time.Second
	}
	return o
}

// Breaker returns the circuit breaker settings of this section.
func (s *ScanConfig) Breaker() scanner.BreakerConfig {
	if s == nil {
		return scanner.BreakerConfig{}
	}
	return scanner.BreakerConfig{Failures: s.BreakerFailures, OpenFor: time.Duration(s.BreakerOpenSeconds) * time.Second}
}

// LoadScanConfig reads only the "scanners" section of the config at path,
// for `redflag-agent scan`, which works on an unregistered machine: a
// missing file means the defaults (nil).
func LoadScanConfig(path string) (*ScanConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the agent config: %w", err)
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("the agent config %s is larger than %d bytes", path, maxConfigBytes)
	}
	var c struct {
		Scanners *ScanConfig `json:"scanners"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("the agent config %s is not valid JSON: %v", path, err)
	}
	if err := c.Scanners.Validate(); err != nil {
		return nil, fmt.Errorf("the agent config %s: %w", path, err)
	}
	return c.Scanners, nil
}
