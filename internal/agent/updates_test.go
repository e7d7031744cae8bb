package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/scanner"
)

// pm is a package manager double: what it reports, how its installs go.
type pm struct {
	name      string
	present   bool
	mu        sync.Mutex
	updates   []protocol.Update
	scanErr   error
	scans     int
	installed [][]protocol.InstallItem
	result    scanner.InstallResult
	instErr   error
	onInstall func() // e.g. clears updates, as a real install would
}

func (p *pm) Name() string                       { return p.name }
func (p *pm) Available(ctx context.Context) bool { return p.present }
func (p *pm) Scan(ctx context.Context) ([]protocol.Update, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scans++
	return append([]protocol.Update(nil), p.updates...), p.scanErr
}
func (p *pm) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (scanner.InstallResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.installed = append(p.installed, items)
	if p.onInstall != nil && !dryRun {
		p.onInstall()
	}
	return p.result, p.instErr
}

// sentReport is one report the recorder received.
type sentReport struct {
	Scanner  string
	Updates  json.RawMessage
	Errors   []protocol.ScanError
	Hash     string // hash-only report
	Interval time.Duration
}

// recorder plays the server's part of reports: it keeps the last full
// report's hash per scanner and answers hash-only reports like the server.
type recorder struct {
	mu      sync.Mutex
	sent    []sentReport
	known   map[string]string
	failAll error
}

func (r *recorder) SendUpdateReport(ctx context.Context, name string, at time.Time, updates json.RawMessage, errs []protocol.ScanError, iv time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAll != nil {
		return r.failAll
	}
	r.sent = append(r.sent, sentReport{Scanner: name, Updates: updates, Errors: errs, Interval: iv})
	if updates != nil {
		if r.known == nil {
			r.known = map[string]string{}
		}
		r.known[name] = protocol.UpdatesHash(updates)
	}
	return nil
}

func (r *recorder) SendUnchangedReport(ctx context.Context, name string, at time.Time, hash string, iv time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAll != nil {
		return r.failAll
	}
	r.sent = append(r.sent, sentReport{Scanner: name, Hash: hash, Interval: iv})
	if r.known[name] != hash {
		return fmt.Errorf("%w: 409", client.ErrReportHashUnknown)
	}
	return nil
}

func (r *recorder) reports() []sentReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sentReport(nil), r.sent...)
}

func newTestUpdates(t *testing.T, cfg *ScanConfig, pms ...*pm) (*Updates, *recorder) {
	t.Helper()
	st, err := OpenState(t.TempDir(), t0, DefaultExecutedRetention)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var scs []scanner.Scanner
	var ins []scanner.Installer
	for _, p := range pms {
		scs, ins = append(scs, p), append(ins, p)
	}
	u := NewUpdates(scanner.NewSet(scs, ins, time.Minute, scanner.BreakerConfig{}, nil), cfg, st, nil)
	rec := &recorder{}
	u.api = rec
	return u, rec
}

func upd(name, from, to string) protocol.Update {
	return protocol.Update{PackageType: "apt", PackageName: name, CurrentVersion: from, AvailableVersion: to, Severity: "unknown"}
}

func TestScanReportsFullThenHashOnly(t *testing.T) {
	apt := &pm{name: "apt", present: true, updates: []protocol.Update{upd("zlib1g", "1", "2"), upd("bash", "5.1", "5.2")}}
	snap := &pm{name: "snap", present: false}
	u, rec := newTestUpdates(t, &ScanConfig{Intervals: map[string]int{"apt": 3600}}, apt, snap)
	ctx := context.Background()

	o, err := u.ScanUpdates(ctx, protocol.ScanUpdatesParams{Scanners: []string{"apt", "snap"}})
	if err != nil || !o.Succeeded {
		t.Fatalf("first scan: %+v %v", o, err)
	}
	r := rec.reports()
	if len(r) != 1 || r[0].Scanner != "apt" || r[0].Hash != "" || r[0].Interval != time.Hour {
		t.Fatalf("first scan sent %+v, want one full apt report with a 1 h interval (snap is absent: nothing)", r)
	}
	var got []protocol.Update
	if err := json.Unmarshal(r[0].Updates, &got); err != nil || len(got) != 2 || got[0].PackageName != "bash" {
		t.Fatalf("report updates %s (%v): want both, sorted by name", r[0].Updates, err)
	}

	// The same scan again: only the hash travels.
	if o, _ := u.ScanUpdates(ctx, protocol.ScanUpdatesParams{Scanners: []string{"apt"}}); !o.Succeeded {
		t.Fatalf("second scan failed: %+v", o)
	}
	r = rec.reports()
	if len(r) != 2 || r[1].Hash != protocol.UpdatesHash(r[0].Updates) || r[1].Updates != nil {
		t.Fatalf("second scan sent %+v, want a hash-only report of the first", r[1:])
	}

	// A restart keeps the hash (it is in the state dir).
	u2 := NewUpdates(u.set, u.cfg, u.state, nil)
	u2.api, u2.now = rec, time.Now
	u2.ScanUpdates(ctx, protocol.ScanUpdatesParams{Scanners: []string{"apt"}})
	if r = rec.reports(); r[2].Hash == "" {
		t.Fatalf("after a restart the agent sent a full report again: %+v", r[2])
	}

	// The server forgot the hash (409): the full report follows at once.
	rec.mu.Lock()
	rec.known = nil
	rec.mu.Unlock()
	u.ScanUpdates(ctx, protocol.ScanUpdatesParams{Scanners: []string{"apt"}})
	r = rec.reports()
	if len(r) != 5 || r[3].Hash == "" || r[4].Updates == nil {
		t.Fatalf("after a 409 the agent sent %+v, want hash-only then full", r[3:])
	}

	// A change: full report.
	apt.mu.Lock()
	apt.updates = apt.updates[:1]
	apt.mu.Unlock()
	u.ScanUpdates(ctx, protocol.ScanUpdatesParams{Scanners: []string{"apt"}})
	if r = rec.reports(); len(r) != 6 || r[5].Updates == nil || r[5].Hash != "" {
		t.Fatalf("a changed scan sent %+v, want a full report", r[5:])
	}
}

func TestScanFailureIsReported(t *testing.T) {
	apt := &pm{name: "apt", present: true, scanErr: errors.New("E: Could not get lock /var/lib/dpkg/lock-frontend")}
	dnf := &pm{name: "dnf", present: true}
	u, rec := newTestUpdates(t, nil, apt, dnf)
	o, err := u.ScanUpdates(context.Background(), protocol.ScanUpdatesParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Succeeded {
		t.Fatalf("one failed scanner of two failed the command: %+v", o)
	}
	if !strings.Contains(o.Output, "apt: failed") || !strings.Contains(o.Output, "lock-frontend") {
		t.Fatalf("output does not say which scanner failed and why: %q", o.Output)
	}
	r := rec.reports()
	if len(r) != 2 || r[0].Scanner != "apt" || len(r[0].Errors) != 1 || r[0].Updates != nil || !strings.Contains(r[0].Errors[0].Message, "lock") {
		t.Fatalf("the failure was not reported as an error-only report: %+v", r)
	}

	// Every scanner failing fails the command.
	dnf.scanErr = errors.New("dnf broke")
	o, _ = u.ScanUpdates(context.Background(), protocol.ScanUpdatesParams{})
	if o.Succeeded {
		t.Fatalf("all scanners failed but the command succeeded: %+v", o)
	}
	if o, _ := u.ScanUpdates(context.Background(), protocol.ScanUpdatesParams{Scanners: []string{"nope"}}); o.Succeeded {
		t.Fatal("an unknown scanner name was accepted")
	}
}

func TestUndeliveredReportIsRetriedSoon(t *testing.T) {
	apt := &pm{name: "apt", present: true, updates: []protocol.Update{upd("a", "1", "2")}}
	u, rec := newTestUpdates(t, nil, apt)
	rec.failAll = errors.New("connection refused")
	clock := t0
	u.now = func() time.Time { return clock }
	o, _ := u.ScanUpdates(context.Background(), protocol.ScanUpdatesParams{})
	if o.Succeeded || !strings.Contains(o.Output, "undelivered") {
		t.Fatalf("undelivered report not reported as such: %+v", o)
	}
	r := u.state.ScanRecords()["apt"]
	if r.ReportedHash != "" {
		t.Fatal("a hash was recorded for a report the server never got")
	}
	due := r.LastScanAt.Add(u.cfg.Interval("apt"))
	if want := clock.Add(reportRetry); !due.Equal(want) {
		t.Fatalf("next scan due %v, want %v (retry soon, not a whole interval later)", due, want)
	}
}

func TestRunScheduleScansOnIntervals(t *testing.T) {
	apt := &pm{name: "apt", present: true}
	dnf := &pm{name: "dnf", present: true}
	u, rec := newTestUpdates(t, &ScanConfig{Enabled: []string{"apt", "dnf"}, IntervalSeconds: 3600, Intervals: map[string]int{"dnf": 7200}}, apt, dnf)
	clock := t0
	u.now = func() time.Time { return clock }
	ctx, cancel := context.WithCancel(context.Background())
	var waits []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		clock = clock.Add(d)
		if clock.Sub(t0) > 5*time.Hour {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	u.RunSchedule(ctx, sleep)
	// Over 5 h: apt at 30 s, 1 h 30 s, 2 h…, 4 h 30 s → 5 scans; dnf at
	// 30 s, 2 h 30 s, 4 h 30 s → 3 scans.
	if apt.scans != 5 || dnf.scans != 3 {
		t.Fatalf("apt scanned %d times, dnf %d; want 5 and 3 (waits %v)", apt.scans, dnf.scans, waits)
	}
	if waits[0] != firstScanDelay {
		t.Fatalf("first wait %v, want %v", waits[0], firstScanDelay)
	}
	for _, w := range waits {
		if w <= 0 || w > maxScheduleSleep {
			t.Fatalf("wait %v outside (0, %v]", w, maxScheduleSleep)
		}
	}
	if len(rec.reports()) != 8 {
		t.Fatalf("%d reports, want 8", len(rec.reports()))
	}
}

func TestInstallGroupsRescansAndCompletesResults(t *testing.T) {
	apt := &pm{name: "apt", present: true, updates: []protocol.Update{upd("bash", "5.1", "5.2")},
		result: scanner.InstallResult{Output: "Setting up bash (5.2) ...", RebootRequired: true,
			Results: []protocol.InstallItemResult{{UpdateID: "u1", Status: "installed", InstalledVersion: "5.2"}}}}
	apt.onInstall = func() { apt.updates = nil }
	u, rec := newTestUpdates(t, nil, apt)
	params := `{"updates":[{"update_id":"u1","package_type":"apt","package_name":"bash","version":"5.2"},` +
		`{"update_id":"u2","package_type":"apt","package_name":"zsh","version":"6"},` +
		`{"update_id":"u3","package_type":"winget","package_name":"Git.Git","version":"2"},` +
		`{"update_id":"u4","package_type":"bogus","package_name":"x","version":"1"}],"dry_run":false}`
	o, err := u.InstallUpdates(context.Background(), json.RawMessage(params))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := o.Details.(protocol.InstallDetails)
	if !ok {
		t.Fatalf("details are %T", o.Details)
	}
	status := map[string]string{}
	for _, r := range d.Results {
		status[r.UpdateID] = r.Status
	}
	want := map[string]string{"u1": "installed", "u2": "failed", "u3": "failed", "u4": "failed"}
	for id, s := range want {
		if status[id] != s {
			t.Errorf("%s: %q, want %q (all: %+v)", id, status[id], s, d.Results)
		}
	}
	if len(d.Results) != 4 {
		t.Errorf("%d results for 4 updates", len(d.Results))
	}
	if o.Succeeded || o.ExitCode == 0 {
		t.Errorf("an install with failures succeeded: %+v", o)
	}
	if !d.RebootRequired {
		t.Error("the installer's reboot flag was lost")
	}
	if len(apt.installed) != 1 || len(apt.installed[0]) != 2 {
		t.Fatalf("apt installer got %+v, want one call with both apt items", apt.installed)
	}
	// The rescan after the install reported apt's new (empty) state.
	r := rec.reports()
	if len(r) != 1 || r[0].Scanner != "apt" || string(r[0].Updates) != "[]" {
		t.Fatalf("after the install the agent sent %+v, want a full empty apt report", r)
	}
	if !strings.Contains(o.Output, "Setting up bash") || !strings.Contains(o.Output, "rescan apt") {
		t.Fatalf("output lacks the installer's log or the rescan: %q", o.Output)
	}
}

func TestInstallDryRunAndConfirm(t *testing.T) {
	extra := protocol.PackageChange{PackageType: "apt", PackageName: "libnew1", Action: "install", ToVersion: "1.0"}
	apt := &pm{name: "apt", present: true, result: scanner.InstallResult{Extras: []protocol.PackageChange{extra}}}
	u, rec := newTestUpdates(t, nil, apt)
	params := `{"updates":[{"update_id":"u1","package_type":"apt","package_name":"bash","version":"5.2"}],"dry_run":true}`
	o, _ := u.InstallUpdates(context.Background(), json.RawMessage(params))
	d := o.Details.(protocol.InstallDetails)
	if !o.Succeeded || !d.DryRun || len(d.Extras) != 1 || len(d.Results) != 0 {
		t.Fatalf("dry run: %+v %+v", o, d)
	}
	if len(rec.reports()) != 0 {
		t.Fatal("a dry run rescanned")
	}
	// confirm_dependencies never dry-runs, whatever its params say.
	apt.result = scanner.InstallResult{Results: []protocol.InstallItemResult{{UpdateID: "u1", Status: "installed"}}}
	o, _ = u.ConfirmDependencies(context.Background(), json.RawMessage(params))
	if d := o.Details.(protocol.InstallDetails); d.DryRun || !o.Succeeded {
		t.Fatalf("confirm_dependencies: %+v", o)
	}
	for _, bad := range []string{`{"updates":[]}`, `{"updates":"x"}`, `not json`} {
		if o, _ := u.InstallUpdates(context.Background(), json.RawMessage(bad)); o.Succeeded {
			t.Errorf("params %s accepted", bad)
		}
	}
}

func TestScanConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  ScanConfig
		want string
	}{
		{"defaults", ScanConfig{}, ""},
		{"all set", ScanConfig{Enabled: []string{"apt", "docker"}, IntervalSeconds: 3600, Intervals: map[string]int{"docker": 600}, TimeoutSeconds: 60}, ""},
		{"unknown scanner", ScanConfig{Enabled: []string{"apt", "rpm"}}, `unknown scanner "rpm"`},
		{"interval too short", ScanConfig{IntervalSeconds: 5}, "interval_seconds"},
		{"per-scanner unknown", ScanConfig{Intervals: map[string]int{"nix": 600}}, "unknown scanner"},
		{"per-scanner too long", ScanConfig{Intervals: map[string]int{"apt": 99999999}}, "intervals.apt"},
		{"negative timeout", ScanConfig{TimeoutSeconds: -1}, "timeout_seconds"},
		{"control char socket", ScanConfig{DockerSocket: "/run/\x00docker.sock"}, "docker_socket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate() = %v, want %q", err, c.want)
			}
		})
	}
	var nilCfg *ScanConfig
	if nilCfg.Interval("apt") != DefaultScanInterval || len(nilCfg.Names()) != len(protocol.PackageTypes) {
		t.Fatal("a missing scanners section does not mean the defaults")
	}
}
