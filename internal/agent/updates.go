package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/scanner"
)

// reportSender is the part of the API client that delivers scan reports.
type reportSender interface {
	SendUpdateReport(ctx context.Context, scannerName string, scannedAt time.Time, updates json.RawMessage,
		errs []protocol.ScanError, interval time.Duration) error
	SendUnchangedReport(ctx context.Context, scannerName string, scannedAt time.Time, hash string, interval time.Duration) error
}

// Updates runs the package managers for the agent: scheduled scans on
// per-scanner intervals, scan_updates, install_updates and
// confirm_dependencies. One package-manager operation runs at a time
// (they share locks such as dpkg's, and an install must not race a scan).
type Updates struct {
	set   *scanner.Set
	cfg   *ScanConfig
	state *State
	log   *slog.Logger
	now   func() time.Time
	api   reportSender

	mu sync.Mutex // serialises package-manager work
}

// NewUpdates builds the update manager over a scanner set; cfg may be nil
// (defaults). The agent attaches its API client when it starts.
func NewUpdates(set *scanner.Set, cfg *ScanConfig, state *State, log *slog.Logger) *Updates {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Updates{set: set, cfg: cfg, state: state, log: log, now: time.Now}
}

// Timing of scheduled scans.
const (
	// firstScanDelay lets the first check-in go out before a fresh
	// agent's first scan (which may take minutes).
	firstScanDelay = 30 * time.Second
	// reportRetry is when a scan whose report could not be delivered is
	// tried again (instead of waiting a whole interval).
	reportRetry = 10 * time.Minute
	// maxScheduleSleep bounds one wait, so config-independent clock jumps
	// (suspend, NTP) are noticed.
	maxScheduleSleep = 5 * time.Minute
)

// ScanStatus is one scanner's part of a scan_updates result.
type ScanStatus struct {
	Scanner string `json:"scanner"`
	// Status is "reported", "unchanged", "skipped" (tool absent),
	// "failed" (scan failed; the failure was reported) or "undelivered".
	Status  string `json:"status"`
	Updates int    `json:"updates"`
	Error   string `json:"error,omitempty"`
}

// ScanUpdates implements Scanner: it runs the requested scanners (all
// enabled ones when none is named) and reports each to the server.
func (u *Updates) ScanUpdates(ctx context.Context, p protocol.ScanUpdatesParams) (Outcome, error) {
	names := u.names()
	if len(p.Scanners) > 0 {
		for _, n := range p.Scanners {
			if !slices.Contains(protocol.PackageTypes, n) {
				return Failed("unknown scanner %q", n), nil
			}
		}
		names = p.Scanners
	}
	st := u.scanAndReport(ctx, names)
	var out strings.Builder
	failed, ran := 0, 0
	for _, s := range st {
		fmt.Fprintf(&out, "%s: %s", s.Scanner, s.Status)
		if s.Status == "reported" || s.Status == "unchanged" {
			fmt.Fprintf(&out, " (%d updates)", s.Updates)
		}
		if s.Error != "" {
			fmt.Fprintf(&out, ": %s", s.Error)
		}
		out.WriteByte('\n')
		if s.Status != "skipped" {
			ran++
		}
		if s.Status == "failed" || s.Status == "undelivered" {
			failed++
		}
	}
	if ctx.Err() != nil {
		return Outcome{}, ctx.Err()
	}
	details := map[string]any{"scanners": st}
	// One broken package manager must not make every scan command fail;
	// the command fails when nothing useful came of it.
	if ran > 0 && failed == ran {
		return Outcome{ExitCode: 1, Output: out.String(), Details: details}, nil
	}
	if ran == 0 {
		out.WriteString("no supported package manager found on this machine\n")
	}
	return Succeeded(out.String(), details), nil
}

// scanAndReport scans and reports each named scanner, one at a time.
func (u *Updates) scanAndReport(ctx context.Context, names []string) []ScanStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]ScanStatus, 0, len(names))
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		out = append(out, u.scanOneLocked(ctx, n))
	}
	return out
}

// names are the enabled scanners this build has.
func (u *Updates) names() []string {
	var out []string
	for _, n := range u.cfg.Names() {
		if u.set.Has(n) {
			out = append(out, n)
		}
	}
	return out
}

func (u *Updates) scanOneLocked(ctx context.Context, name string) ScanStatus {
	if !u.set.Has(name) {
		return ScanStatus{Scanner: name, Status: "skipped", Error: "this agent build has no " + name + " scanner"}
	}
	o := u.set.ScanOne(ctx, name)
	st := ScanStatus{Scanner: name, Updates: len(o.Updates)}
	rec := u.state.ScanRecords()[name]
	now := u.now()
	rec.LastScanAt = now
	switch {
	case o.Skipped:
		st.Status = "skipped"
		u.saveRecord(name, rec)
		return st
	case ctx.Err() != nil:
		// The agent is stopping: a cut-off scan says nothing.
		st.Status, st.Error = "failed", "interrupted: the agent is stopping"
		return st
	}
	status, err := u.report(ctx, name, now, o, &rec)
	st.Status = status
	if o.Err != nil {
		st.Error = o.Err.Error()
	}
	if err != nil {
		st.Status, st.Error = "undelivered", err.Error()
		// Try again soon rather than after a whole interval.
		rec.LastScanAt = now.Add(-u.cfg.Interval(name)).Add(reportRetry)
		u.log.Warn("an update report could not be delivered; will retry", "scanner", name, "error", err)
	} else if o.Err != nil {
		u.log.Warn("a scanner failed; the failure was reported", "scanner", name, "error", o.Err)
	} else {
		u.log.Info("scan reported", "scanner", name, "updates", len(o.Updates), "status", status, "took", o.Took)
	}
	u.saveRecord(name, rec)
	return st
}

func (u *Updates) saveRecord(name string, rec ScanRecord) {
	if err := u.state.SaveScanRecord(name, rec); err != nil {
		u.log.Error("saving the scan record failed", "scanner", name, "error", err)
	}
}

// report delivers one outcome: the failure, the hash only when the server
// already has this exact report, else the full report.
func (u *Updates) report(ctx context.Context, name string, at time.Time, o scanner.Outcome, rec *ScanRecord) (string, error) {
	if u.api == nil {
		return "", errors.New("no server connection")
	}
	interval := u.cfg.Interval(name)
	if o.Err != nil {
		// A partial result (an optional step failed, some lines did not
		// parse) still tells the server what was found; the error marks
		// the scan failed. Its hash is not kept: the next scan sends in full.
		var partial json.RawMessage
		if len(o.Updates) > 0 {
			raw, _, err := client.EncodeUpdates(o.Updates)
			if err != nil {
				return "", err
			}
			partial = raw
		}
		rec.ReportedHash = ""
		err := u.api.SendUpdateReport(ctx, name, at, partial, []protocol.ScanError{{Scanner: name, Message: clip(o.Err.Error(), 2000)}}, interval)
		return "failed", err
	}
	raw, hash, err := client.EncodeUpdates(o.Updates)
	if err != nil {
		return "", err
	}
	if rec.ReportedHash == hash {
		err := u.api.SendUnchangedReport(ctx, name, at, hash, interval)
		if err == nil {
			return "unchanged", nil
		}
		if !errors.Is(err, client.ErrReportHashUnknown) {
			return "", err
		}
	}
	if err := u.api.SendUpdateReport(ctx, name, at, raw, nil, interval); err != nil {
		return "", err
	}
	rec.ReportedHash = hash
	return "reported", nil
}

// RunSchedule scans each enabled scanner on its interval until ctx ends.
// sleep waits like the agent's loop does (injectable for tests).
func (u *Updates) RunSchedule(ctx context.Context, sleep func(context.Context, time.Duration) error) {
	started := u.now()
	for ctx.Err() == nil {
		recs := u.state.ScanRecords()
		now := u.now()
		var due []string
		next := now.Add(maxScheduleSleep)
		for _, n := range u.names() {
			at := recs[n].LastScanAt.Add(u.cfg.Interval(n))
			if recs[n].LastScanAt.IsZero() {
				at = started.Add(firstScanDelay)
			}
			if !at.After(now) {
				due = append(due, n)
			} else if at.Before(next) {
				next = at
			}
		}
		if len(due) > 0 {
			u.scanAndReport(ctx, due)
			continue
		}
		if sleep(ctx, next.Sub(now)) != nil {
			return
		}
	}
}

// InstallUpdates implements Installer for install_updates.
func (u *Updates) InstallUpdates(ctx context.Context, params json.RawMessage) (Outcome, error) {
	var p protocol.InstallUpdatesParams
	if err := decodeParams(params, &p); err != nil {
		return Failed("%v", err), nil
	}
	return u.install(ctx, p)
}

// ConfirmDependencies runs confirm_dependencies: the install an admin
// approved after a dry run showed extra packages. Its params are those of
// install_updates; it never dry-runs.
func (u *Updates) ConfirmDependencies(ctx context.Context, params json.RawMessage) (Outcome, error) {
	var p protocol.InstallUpdatesParams
	if err := decodeParams(params, &p); err != nil {
		return Failed("%v", err), nil
	}
	p.DryRun = false
	return u.install(ctx, p)
}

// maxInstallItems bounds one install command.
const maxInstallItems = 5000

func (u *Updates) install(ctx context.Context, p protocol.InstallUpdatesParams) (Outcome, error) {
	if len(p.Updates) == 0 {
		return Failed("install_updates names no updates"), nil
	}
	if len(p.Updates) > maxInstallItems {
		return Failed("install_updates names %d updates; at most %d are accepted", len(p.Updates), maxInstallItems), nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()

	d := protocol.InstallDetails{DryRun: p.DryRun}
	var out bytes.Buffer
	exit := 0
	// Group by package type, keeping the order of first appearance.
	var types []string
	groups := map[string][]protocol.InstallItem{}
	for _, it := range p.Updates {
		if !slices.Contains(protocol.PackageTypes, it.PackageType) {
			d.Results = append(d.Results, protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed",
				Message: fmt.Sprintf("unknown package type %q", clip(it.PackageType, 64))})
			continue
		}
		if _, ok := groups[it.PackageType]; !ok {
			types = append(types, it.PackageType)
		}
		groups[it.PackageType] = append(groups[it.PackageType], it)
	}
	for _, t := range types {
		items := groups[t]
		inst, ok := u.set.Installer(t)
		if !ok {
			for _, it := range items {
				d.Results = append(d.Results, protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed",
					Message: fmt.Sprintf("this agent has no installer for %s", t)})
			}
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, u.cfg.Options().Timeout*3)
		r, err := inst.Install(ictx, items, p.DryRun)
		cancel()
		fmt.Fprintf(&out, "== %s ==\n", t)
		if r.Output != "" {
			out.WriteString(r.Output)
			if !strings.HasSuffix(r.Output, "\n") {
				out.WriteByte('\n')
			}
		}
		if err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
			if exit == 0 {
				exit = 1
			}
		}
		if r.ExitCode != 0 && exit == 0 {
			exit = r.ExitCode
		}
		d.Changes = append(d.Changes, r.Changes...)
		d.Extras = append(d.Extras, r.Extras...)
		d.RebootRequired = d.RebootRequired || r.RebootRequired
		d.Results = append(d.Results, completeResults(items, r.Results, err, p.DryRun)...)
	}
	if ctx.Err() != nil {
		return Outcome{}, ctx.Err()
	}
	ok := exit == 0
	for _, r := range d.Results {
		if r.Status == "failed" {
			ok = false
		}
	}
	// After a real install the server's view must be the machine's: scan
	// the package managers that were touched and report them now.
	if !p.DryRun {
		for _, t := range types {
			if _, has := u.set.Installer(t); has {
				st := u.scanOneLocked(ctx, t)
				fmt.Fprintf(&out, "rescan %s: %s (%d updates pending)\n", t, st.Status, st.Updates)
			}
		}
	}
	o := Outcome{Succeeded: ok, ExitCode: exit, Output: scanner.Tail(out.String(), protocol.MaxResultOutput-256), Details: d}
	if !ok && o.ExitCode == 0 {
		o.ExitCode = 1
	}
	return o, nil
}

// completeResults gives every requested item exactly one result: what the
// installer said, else failed with the installer's error. A dry run
// without an error reports only the items the installer refused.
func completeResults(items []protocol.InstallItem, got []protocol.InstallItemResult, err error, dryRun bool) []protocol.InstallItemResult {
	byID := map[string]protocol.InstallItemResult{}
	for _, r := range got {
		byID[r.UpdateID] = r
	}
	out := make([]protocol.InstallItemResult, 0, len(items))
	for _, it := range items {
		if r, ok := byID[it.UpdateID]; ok && r.Status != "" {
			out = append(out, r)
			continue
		}
		r := protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed", Message: "the installer reported nothing for this update"}
		switch {
		case err != nil:
			r.Message = clip(err.Error(), 2000)
		case dryRun:
			// A dry run names only the items it could not plan; the rest
			// would be installed, with the changes and extras listed.
			continue
		}
		out = append(out, r)
	}
	return out
}
