package scanner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Outcome is one scanner's part of a scan.
type Outcome struct {
	Scanner string
	// Skipped is set when the tool is not on this machine; Updates and Err
	// are then empty.
	Skipped bool
	Updates []protocol.Update
	Err     error
	Took    time.Duration
}

// Set runs a group of scanners and installers, each behind its own
// circuit breaker and timeout.
type Set struct {
	scanners   []Scanner
	installers map[string]Installer
	breakers   map[string]*Breaker
	timeout    time.Duration
}

// NewSet builds a Set; bc configures every scanner's breaker.
func NewSet(scanners []Scanner, installers []Installer, timeout time.Duration, bc BreakerConfig, now func() time.Time) *Set {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s := &Set{scanners: scanners, installers: map[string]Installer{}, breakers: map[string]*Breaker{}, timeout: timeout}
	for _, sc := range scanners {
		s.breakers[sc.Name()] = NewBreaker(bc, now)
	}
	for _, in := range installers {
		s.installers[in.Name()] = in
	}
	return s
}

// Names lists the scanners of the set in order.
func (s *Set) Names() []string {
	out := make([]string, len(s.scanners))
	for i, sc := range s.scanners {
		out[i] = sc.Name()
	}
	return out
}

// Has reports whether the set has the named scanner.
func (s *Set) Has(name string) bool {
	return slices.ContainsFunc(s.scanners, func(sc Scanner) bool { return sc.Name() == name })
}

// Breaker returns the named scanner's breaker (nil if unknown).
func (s *Set) Breaker(name string) *Breaker { return s.breakers[name] }

// Installer returns the installer for a package type.
func (s *Set) Installer(name string) (Installer, bool) {
	in, ok := s.installers[name]
	return in, ok
}

// ErrUnknownScanner is returned for a scanner name the set does not have.
var ErrUnknownScanner = errors.New("unknown scanner")

// ScanOne runs one scanner under its breaker and timeout.
func (s *Set) ScanOne(ctx context.Context, name string) Outcome {
	i := slices.IndexFunc(s.scanners, func(sc Scanner) bool { return sc.Name() == name })
	if i < 0 {
		return Outcome{Scanner: name, Err: fmt.Errorf("%w %q (known: %s)", ErrUnknownScanner, name, strings.Join(s.Names(), ", "))}
	}
	sc := s.scanners[i]
	if !sc.Available(ctx) {
		return Outcome{Scanner: name, Skipped: true}
	}
	b := s.breakers[name]
	if err := b.Allow(); err != nil {
		return Outcome{Scanner: name, Err: err}
	}
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	ups, err := sc.Scan(sctx)
	timedOut := errors.Is(sctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil && errors.Is(err, ErrUnavailable) {
		b.Done(nil)
		return Outcome{Scanner: name, Skipped: true, Took: time.Since(start)}
	}
	if err != nil && ctx.Err() == nil && timedOut {
		err = fmt.Errorf("%s scan timed out after %s: %w", name, s.timeout, err)
	}
	// A cancelled parent (agent stopping) says nothing about the tool.
	if ctx.Err() == nil {
		b.Done(err)
	}
	return Outcome{Scanner: name, Updates: Clean(name, ups), Err: err, Took: time.Since(start)}
}

// Scan runs the named scanners (all when names is empty), one after the
// other: package managers share locks and a machine's CPU.
func (s *Set) Scan(ctx context.Context, names []string) []Outcome {
	if len(names) == 0 {
		names = s.Names()
	}
	out := make([]Outcome, 0, len(names))
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		out = append(out, s.ScanOne(ctx, n))
	}
	return out
}

// Limits on what a scanner may report, so one hostile or broken package
// database cannot flood the server.
const (
	MaxUpdates       = 20000
	MaxNameLen       = 512
	MaxVersionLen    = 256
	MaxSourceLen     = 512
	MaxCVEs          = 200
	MaxMetadataKeys  = 32
	MaxMetadataValue = 1024
)

// Clean makes a scanner's output safe to send: it forces PackageType to
// name, drops updates without a usable package name, replaces severities
// outside the SPEC list with unknown, strips control characters, bounds
// every string and sorts by package name so equal scans hash equally.
func Clean(name string, ups []protocol.Update) []protocol.Update {
	out := make([]protocol.Update, 0, len(ups))
	seen := map[string]bool{}
	for _, u := range ups {
		u.PackageType = name
		u.PackageName = cleanText(u.PackageName, MaxNameLen)
		if u.PackageName == "" || seen[u.PackageName] {
			continue
		}
		seen[u.PackageName] = true
		u.CurrentVersion = cleanText(u.CurrentVersion, MaxVersionLen)
		u.AvailableVersion = cleanText(u.AvailableVersion, MaxVersionLen)
		u.Source = cleanText(u.Source, MaxSourceLen)
		if !slices.Contains(protocol.Severities, u.Severity) {
			u.Severity = protocol.SevUnknown
		}
		cves := make([]string, 0, len(u.CVEIDs))
		for _, c := range u.CVEIDs {
			if c = cleanText(c, 64); c != "" && !slices.Contains(cves, c) && len(cves) < MaxCVEs {
				cves = append(cves, c)
			}
		}
		sort.Strings(cves)
		u.CVEIDs = cves
		if u.SizeBytes < 0 {
			u.SizeBytes = 0
		}
		md := map[string]string{}
		keys := make([]string, 0, len(u.Metadata))
		for k := range u.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ck := cleanText(k, 64)
			if ck == "" || len(md) >= MaxMetadataKeys {
				continue
			}
			md[ck] = cleanText(u.Metadata[k], MaxMetadataValue)
		}
		u.Metadata = md
		out = append(out, u)
		if len(out) >= MaxUpdates {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PackageName < out[j].PackageName })
	return out
}

// cleanText keeps valid, printable UTF-8 (control characters become
// spaces), trims it and cuts it to max bytes on a rune boundary.
func cleanText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		if r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
