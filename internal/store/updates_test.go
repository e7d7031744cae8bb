package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
)

// upd is a reported update of package type apt.
func upd(name, version, severity string) store.UpdateInput {
	return store.UpdateInput{PackageType: "apt", PackageName: name, CurrentVersion: "1.0", AvailableVersion: version, Severity: severity,
		Source: "bookworm-security", CVEIDs: []string{"CVE-2031-0001"}, SizeBytes: 1234, Metadata: map[string]string{"arch": "amd64"}}
}

func fullReport(agentID, scanner string, now time.Time, ups ...store.UpdateInput) store.UpdateReport {
	if ups == nil {
		ups = []store.UpdateInput{}
	}
	return store.UpdateReport{AgentID: agentID, Scanner: scanner, ScannedAt: now.Add(-time.Second), Full: true, Updates: ups,
		Hash: hashOf(fmt.Sprint(now.UnixNano(), len(ups), ups)), Sign: testSigner, Now: now}
}

// testSigner builds commands that expire far after the suite's clock.
var testSigner = signerUntil(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))

// signerUntil builds commands the way the API does, without a real key,
// expiring at exp.
func signerUntil(exp time.Time) store.CommandSigner {
	return func(agentID, typ string, items []store.InstallItem, dryRun bool) (store.CommandRecord, error) {
		return signed(agentID, typ, items, dryRun, exp)
	}
}

func signed(agentID, typ string, items []store.InstallItem, dryRun bool, exp time.Time) (store.CommandRecord, error) {
	type item struct {
		UpdateID    string `json:"update_id"`
		PackageType string `json:"package_type"`
		PackageName string `json:"package_name"`
		Version     string `json:"version"`
	}
	p := struct {
		Updates []item `json:"updates"`
		DryRun  bool   `json:"dry_run"`
	}{DryRun: dryRun}
	for _, it := range items {
		p.Updates = append(p.Updates, item{it.UpdateID, it.PackageType, it.PackageName, it.Version})
	}
	b, err := json.Marshal(p)
	if err != nil {
		return store.CommandRecord{}, err
	}
	now := time.Now()
	return store.CommandRecord{Command: store.Command{ID: uid("cmd"), AgentID: agentID, Type: typ, Params: string(b), KeyID: "k1",
		Signature: "c2ln", IssuedAt: now.Unix(), ExpiresAt: exp.Unix(), CreatedAt: now}, CreatedBy: "tester"}, nil
}

func ingest(t *testing.T, st *store.Store, r store.UpdateReport) store.ReportOutcome {
	t.Helper()
	out, err := st.IngestUpdateReport(ctx, r)
	must(t, err)
	return out
}

// byName lists the agent's updates of a package type, by package name.
func byName(t *testing.T, st *store.Store, agentID string) map[string]store.UpdateRecord {
	t.Helper()
	list, total, err := st.ListUpdates(ctx, store.UpdateFilter{AgentID: agentID, Page: store.Page{Limit: 500}})
	must(t, err)
	if total != len(list) {
		t.Fatalf("total %d, listed %d", total, len(list))
	}
	out := map[string]store.UpdateRecord{}
	for _, u := range list {
		out[u.PackageName] = u
	}
	return out
}

func history(t *testing.T, st *store.Store, id string) []string {
	t.Helper()
	d, err := st.GetUpdate(ctx, id)
	must(t, err)
	var out []string
	for _, h := range d.History {
		out = append(out, h.FromStatus+">"+h.ToStatus)
	}
	return out
}

func wantStatuses(t *testing.T, got map[string]store.UpdateRecord, want map[string]string) {
	t.Helper()
	for name, st := range want {
		if got[name].Status != st {
			t.Errorf("%s: status %q, want %q", name, got[name].Status, st)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d updates, want %d: %v", len(got), len(want), got)
	}
}

func TestIngestReplacesPendingSet(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "ingest", t0)
		other := enrol(t, st, "bystander", t0)
		r1 := fullReport(a.ID, "apt", t0, upd("openssl", "3.0.2", "critical"), upd("zlib", "1.3", "low"), upd("curl", "8.1", "important"))
		out := ingest(t, st, r1)
		if out.New != 3 || out.Changed != 0 || out.Resolved != 0 || out.Hash != r1.Hash {
			t.Fatalf("first report: %+v", out)
		}
		ingest(t, st, fullReport(other.ID, "apt", t0, upd("openssl", "3.0.2", "critical")))
		ingest(t, st, store.UpdateReport{AgentID: a.ID, Scanner: "snap", ScannedAt: t0, Full: true,
			Updates: []store.UpdateInput{{PackageType: "snap", PackageName: "firefox", AvailableVersion: "120", Severity: "unknown"}}, Hash: hashOf("snap"), Now: t0})
		ups := byName(t, st, a.ID)
		wantStatuses(t, ups, map[string]string{"openssl": "pending", "zlib": "pending", "curl": "pending", "firefox": "pending"})
		o := ups["openssl"]
		if o.Hostname != "ingest" || o.Severity != "critical" || o.CurrentVersion != "1.0" || o.AvailableVersion != "3.0.2" ||
			o.Source != "bookworm-security" || !slices.Equal(o.CVEIDs, []string{"CVE-2031-0001"}) || o.SizeBytes != 1234 ||
			o.Metadata["arch"] != "amd64" || o.CommandID != nil || o.Extras != nil {
			t.Errorf("stored update %+v", o)
		}
		sameTime(t, "first_seen_at", o.FirstSeenAt, t0)
		if h := history(t, st, o.ID); !slices.Equal(h, []string{">pending"}) {
			t.Errorf("history %v", h)
		}
		g, err := st.GetAgent(ctx, a.ID, t0)
		must(t, err)
		c := g.PendingUpdates
		if g.UpdateStatus != store.AgentUpdatesAvailable || c.Total != 4 || c.BySeverity["critical"] != 1 || c.BySeverity["unknown"] != 1 ||
			c.BySeverity["moderate"] != 0 || c.ByPackageType["apt"] != 3 || c.ByPackageType["snap"] != 1 || c.ByStatus["pending"] != 4 {
			t.Errorf("agent update state %q %+v", g.UpdateStatus, c)
		}
		if len(g.Scans) != 2 || g.Scans[0].Scanner != "apt" || g.Scans[0].Status != "ok" || g.Scans[0].Stale || g.Scans[0].LastSuccessAt == nil {
			t.Errorf("scans %+v", g.Scans)
		}

		// The next report: zlib has a new version, curl is gone, libc is new.
		later := t0.Add(time.Hour)
		r2 := fullReport(a.ID, "apt", later, upd("openssl", "3.0.2", "critical"), upd("zlib", "1.4", "low"), upd("libc6", "2.37", "moderate"))
		out = ingest(t, st, r2)
		if out.New != 1 || out.Changed != 1 || out.Resolved != 1 || out.Hash != r2.Hash {
			t.Fatalf("second report: %+v", out)
		}
		ups = byName(t, st, a.ID)
		wantStatuses(t, ups, map[string]string{"openssl": "pending", "zlib": "pending", "curl": "resolved", "libc6": "pending", "firefox": "pending"})
		if ups["zlib"].AvailableVersion != "1.4" {
			t.Errorf("zlib version %q", ups["zlib"].AvailableVersion)
		}
		sameTime(t, "last_seen_at of an unchanged update", ups["openssl"].LastSeenAt, later)
		sameTime(t, "last_seen_at of a resolved update", ups["curl"].LastSeenAt, t0)
		d, err := st.GetUpdate(ctx, ups["curl"].ID)
		must(t, err)
		if len(d.History) != 2 || d.History[1].ToStatus != "resolved" || !strings.Contains(d.History[1].Note, "resolved elsewhere") {
			t.Errorf("resolved history %+v", d.History)
		}
		g, err = st.GetAgent(ctx, a.ID, later)
		must(t, err)
		if g.PendingUpdates.Total != 4 || g.PendingUpdates.ByPackageType["apt"] != 3 || g.PendingUpdates.BySeverity["important"] != 0 {
			t.Errorf("counts after the second report %+v", g.PendingUpdates)
		}
		// The bystander's updates are its own.
		if ob := byName(t, st, other.ID); len(ob) != 1 || ob["openssl"].Status != "pending" {
			t.Errorf("bystander's updates %+v", ob)
		}
		// An empty report resolves the rest of that scanner only.
		ingest(t, st, fullReport(a.ID, "apt", later.Add(time.Minute)))
		ups = byName(t, st, a.ID)
		wantStatuses(t, ups, map[string]string{"openssl": "resolved", "zlib": "resolved", "curl": "resolved", "libc6": "resolved", "firefox": "pending"})
		// A resolved update reported again is pending again; the rows are never deleted.
		ingest(t, st, fullReport(a.ID, "apt", later.Add(2*time.Minute), upd("curl", "8.1", "important")))
		ups = byName(t, st, a.ID)
		if ups["curl"].Status != "pending" || ups["curl"].ID != d.ID {
			t.Errorf("curl reported again: %+v", ups["curl"])
		}
		// Filters and sorting.
		list, total, err := st.ListUpdates(ctx, store.UpdateFilter{Status: store.UpdateStatusOpen, Sort: "-package_name"})
		must(t, err)
		if total != 3 || len(list) != 3 || list[0].PackageName != "openssl" || list[2].PackageName != "curl" {
			t.Errorf("open updates by name desc: %d %+v", total, list)
		}
		list, total, err = st.ListUpdates(ctx, store.UpdateFilter{Query: "SSL", Severity: "critical"})
		must(t, err)
		if total != 2 || len(list) != 2 {
			t.Errorf("q=SSL severity=critical: %d", total)
		}
		_, _, err = st.ListUpdates(ctx, store.UpdateFilter{Sort: "nope"})
		wantErr(t, err, store.ErrInvalid)
	})
}

func TestIngestHashOnly(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "hash", t0)
		r := fullReport(a.ID, "apt", t0, upd("openssl", "3.0.2", "critical"))
		r.IntervalSeconds = 3600
		ingest(t, st, r)
		before := counts(t, st)
		for _, bad := range []store.UpdateReport{
			{AgentID: a.ID, Scanner: "apt", ScannedAt: t0, UnchangedHash: hashOf("other"), Now: t0},
			{AgentID: a.ID, Scanner: "dnf", ScannedAt: t0, UnchangedHash: r.Hash, Now: t0},
			{AgentID: uid("agent"), Scanner: "apt", ScannedAt: t0, UnchangedHash: r.Hash, Now: t0},
		} {
			_, err := st.IngestUpdateReport(ctx, bad)
			wantErr(t, err, store.ErrReportHashUnknown)
		}
		if after := counts(t, st); after != before {
			t.Errorf("refused hash-only reports changed %+v → %+v", before, after)
		}
		// Two intervals later the scan is stale; the unchanged report makes it fresh.
		stale := t0.Add(2*time.Hour + time.Second)
		g, err := st.GetAgent(ctx, a.ID, stale)
		must(t, err)
		if g.UpdateStatus != store.AgentScanStale || !g.Scans[0].Stale || g.Scans[0].IntervalSeconds != 3600 {
			t.Errorf("after two intervals: %q %+v", g.UpdateStatus, g.Scans)
		}
		out, err := st.IngestUpdateReport(ctx, store.UpdateReport{AgentID: a.ID, Scanner: "apt", ScannedAt: stale, UnchangedHash: r.Hash, Now: stale})
		must(t, err)
		if out.Hash != r.Hash {
			t.Errorf("hash-only answer %+v", out)
		}
		g, err = st.GetAgent(ctx, a.ID, stale)
		must(t, err)
		if g.UpdateStatus != store.AgentUpdatesAvailable || g.Scans[0].Stale || g.Scans[0].IntervalSeconds != 3600 {
			t.Errorf("after the unchanged report: %q %+v", g.UpdateStatus, g.Scans)
		}
		sameTimePtr(t, "last_success_at", g.Scans[0].LastSuccessAt, &stale)
		if c := counts(t, st); c.Updates != before.Updates || c.UpdateHistory != before.UpdateHistory {
			t.Errorf("a hash-only report touched updates: %+v → %+v", before, c)
		}
	})
}

func TestIngestIsOneTransaction(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "atomic", t0)
		first := fullReport(a.ID, "apt", t0, upd("keep-me", "2", "low"), upd("gone-later", "2", "low"))
		ingest(t, st, first)
		before := counts(t, st)
		beforeList := byName(t, st, a.ID)
		// 1,200 updates, the last one bad: earlier statements of the
		// transaction have written rows by the time it fails.
		var ups []store.UpdateInput
		for i := 0; i < 1199; i++ {
			ups = append(ups, upd(fmt.Sprintf("pkg-%04d", i), "1", "moderate"))
		}
		bad := upd("zz-bad", "1", "catastrophic")
		ups = append(ups, bad)
		_, err := st.IngestUpdateReport(ctx, fullReport(a.ID, "apt", t0.Add(time.Minute), ups...))
		wantErr(t, err, store.ErrInvalid)
		// So are a package listed twice and a package type that is not the scanner.
		_, err = st.IngestUpdateReport(ctx, fullReport(a.ID, "apt", t0.Add(time.Minute), upd("x", "1", "low"), upd("x", "2", "low")))
		wantErr(t, err, store.ErrInvalid)
		wrong := upd("y", "1", "low")
		wrong.PackageType = "dnf"
		_, err = st.IngestUpdateReport(ctx, fullReport(a.ID, "apt", t0.Add(time.Minute), wrong))
		wantErr(t, err, store.ErrInvalid)
		if after := counts(t, st); after != before {
			t.Errorf("failed reports changed %+v → %+v", before, after)
		}
		afterList := byName(t, st, a.ID)
		for name, u := range beforeList {
			if afterList[name].Status != u.Status || !afterList[name].LastSeenAt.Equal(u.LastSeenAt) {
				t.Errorf("%s changed: %+v → %+v", name, u, afterList[name])
			}
		}
		// The stored hash is still the first report's.
		_, err = st.IngestUpdateReport(ctx, store.UpdateReport{AgentID: a.ID, Scanner: "apt", ScannedAt: t0, UnchangedHash: first.Hash, Now: t0.Add(time.Minute)})
		must(t, err)
	})
}

func TestIngestScanFailure(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "failing", t0)
		g, err := st.GetAgent(ctx, a.ID, t0)
		must(t, err)
		if g.UpdateStatus != store.AgentNeverScanned || g.PendingUpdates.Total != 0 || len(g.Scans) != 0 {
			t.Errorf("new agent: %q %+v %+v", g.UpdateStatus, g.PendingUpdates, g.Scans)
		}
		r := fullReport(a.ID, "apt", t0, upd("openssl", "3", "critical"), upd("zlib", "1", "low"))
		ingest(t, st, r)
		// Errors only: the scan failed, the pending set stays, the hash too.
		out := ingest(t, st, store.UpdateReport{AgentID: a.ID, Scanner: "apt", ScannedAt: t0, Errors: []string{"apt-get: lock held", "retry"},
			Now: t0.Add(time.Minute)})
		if out.Hash != r.Hash {
			t.Errorf("errors-only answer hash %q, want the stored %q", out.Hash, r.Hash)
		}
		g, err = st.GetAgent(ctx, a.ID, t0.Add(time.Minute))
		must(t, err)
		if g.UpdateStatus != store.AgentScanFailed || g.Scans[0].Status != "failed" || g.Scans[0].Error != "apt-get: lock held; retry" ||
			g.PendingUpdates.Total != 2 {
			t.Errorf("after a failed scan: %q %+v %+v", g.UpdateStatus, g.Scans, g.PendingUpdates)
		}
		list, total, err := st.ListAgents(ctx, store.AgentFilter{UpdateStatus: store.AgentScanFailed}, t0.Add(time.Minute))
		must(t, err)
		if total != 1 || list[0].ID != a.ID || list[0].UpdateStatus != store.AgentScanFailed || list[0].PendingUpdates.Total != 2 {
			t.Errorf("filter scan_failed: %d %+v", total, list)
		}
		// A later unchanged report succeeds again.
		ingest(t, st, store.UpdateReport{AgentID: a.ID, Scanner: "apt", ScannedAt: t0, UnchangedHash: r.Hash, Now: t0.Add(2 * time.Minute)})
		g, err = st.GetAgent(ctx, a.ID, t0.Add(2*time.Minute))
		must(t, err)
		if g.UpdateStatus != store.AgentUpdatesAvailable || g.Scans[0].Error != "" {
			t.Errorf("after recovery: %q %+v", g.UpdateStatus, g.Scans)
		}
		// A partial report (errors and updates) adds but resolves nothing
		// and keeps no hash.
		p := fullReport(a.ID, "apt", t0.Add(3*time.Minute), upd("curl", "8", "important"))
		p.Errors = []string{"one source failed"}
		out = ingest(t, st, p)
		if out.Hash != "" {
			t.Errorf("partial report answered hash %q", out.Hash)
		}
		wantStatuses(t, byName(t, st, a.ID), map[string]string{"openssl": "pending", "zlib": "pending", "curl": "pending"})
		_, err = st.IngestUpdateReport(ctx, store.UpdateReport{AgentID: a.ID, Scanner: "apt", ScannedAt: t0, UnchangedHash: r.Hash, Now: t0.Add(4 * time.Minute)})
		wantErr(t, err, store.ErrReportHashUnknown)
		// Nothing pending and every scan fresh: up to date.
		ingest(t, st, fullReport(a.ID, "apt", t0.Add(5*time.Minute)))
		g, err = st.GetAgent(ctx, a.ID, t0.Add(5*time.Minute))
		must(t, err)
		if g.UpdateStatus != store.AgentUpToDate || g.PendingUpdates.Total != 0 {
			t.Errorf("after an empty report: %q %+v", g.UpdateStatus, g.PendingUpdates)
		}
		// Stale by the default interval (the setting) when the agent did not say.
		if g, _ = st.GetAgent(ctx, a.ID, t0.Add(5*time.Minute+2*store.DefaultScanIntervalSeconds*time.Second)); g.UpdateStatus != store.AgentScanStale {
			t.Errorf("two default intervals later: %q", g.UpdateStatus)
		}
		must(t, st.SetSetting(ctx, "scan_interval_seconds", "86400", nil))
		if g, _ = st.GetAgent(ctx, a.ID, t0.Add(5*time.Minute+2*store.DefaultScanIntervalSeconds*time.Second)); g.UpdateStatus != store.AgentUpToDate {
			t.Errorf("with a longer interval setting: %q", g.UpdateStatus)
		}
	})
}

func TestAgentListUpdateFilters(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		never := enrol(t, st, "never", t0)
		crit := enrol(t, st, "crit", t0)
		low := enrol(t, st, "low", t0)
		clean := enrol(t, st, "clean", t0)
		ingest(t, st, fullReport(crit.ID, "apt", t0, upd("openssl", "3", "critical")))
		ingest(t, st, fullReport(low.ID, "apt", t0, upd("zlib", "1", "low")))
		ingest(t, st, fullReport(clean.ID, "apt", t0))
		ids := func(f store.AgentFilter) []string {
			list, total, err := st.ListAgents(ctx, f, t0)
			must(t, err)
			if total != len(list) {
				t.Errorf("total %d, listed %d", total, len(list))
			}
			var out []string
			for _, a := range list {
				out = append(out, a.Hostname)
			}
			slices.Sort(out)
			return out
		}
		for _, c := range []struct {
			f    store.AgentFilter
			want []string
		}{
			{store.AgentFilter{UpdateStatus: store.AgentNeverScanned}, []string{"never"}},
			{store.AgentFilter{UpdateStatus: store.AgentUpdatesAvailable}, []string{"crit", "low"}},
			{store.AgentFilter{UpdateStatus: store.AgentUpToDate}, []string{"clean"}},
			{store.AgentFilter{UpdateStatus: store.AgentScanStale}, nil},
			{store.AgentFilter{HasCritical: ptr(true)}, []string{"crit"}},
			{store.AgentFilter{HasCritical: ptr(false)}, []string{"clean", "low", "never"}},
			{store.AgentFilter{HasCritical: ptr(false), UpdateStatus: store.AgentUpdatesAvailable, Hostname: "LO"}, []string{"low"}},
		} {
			if got := ids(c.f); !slices.Equal(got, c.want) {
				t.Errorf("%+v: %v, want %v", c.f, got, c.want)
			}
		}
		_, _, err := st.ListAgents(ctx, store.AgentFilter{UpdateStatus: "bogus"}, t0)
		wantErr(t, err, store.ErrInvalid)
		_ = never
	})
}

// pendingCommand returns the agent's pending command of a type, or nil.
func pendingCommand(t *testing.T, st *store.Store, agentID, typ string) *store.CommandRecord {
	t.Helper()
	list, _, err := st.ListCommands(ctx, store.CommandFilter{AgentID: agentID, Status: "pending", Type: typ})
	must(t, err)
	if len(list) > 1 {
		t.Fatalf("%d pending %s commands", len(list), typ)
	}
	if len(list) == 0 {
		return nil
	}
	return &list[0]
}

func paramsOf(t *testing.T, c *store.CommandRecord) (ids []string, dry bool) {
	t.Helper()
	var p struct {
		Updates []struct {
			UpdateID    string `json:"update_id"`
			PackageName string `json:"package_name"`
			Version     string `json:"version"`
		} `json:"updates"`
		DryRun bool `json:"dry_run"`
	}
	must(t, json.Unmarshal([]byte(c.Params), &p))
	for _, u := range p.Updates {
		ids = append(ids, u.UpdateID)
	}
	slices.Sort(ids)
	return ids, p.DryRun
}

func act(t *testing.T, st *store.Store, action string, dry bool, ids ...string) store.UpdateActionResult {
	t.Helper()
	res, err := st.ActOnUpdates(ctx, store.UpdateActionParams{Action: action, IDs: ids, DryRun: dry, Actor: "root", Sign: testSigner,
		Audit: &store.Audit{ActorType: "user", ActorName: "root", Action: "update." + action}, Now: t0.Add(time.Hour)})
	must(t, err)
	return res
}

func sorted(ss ...string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}

func TestApproveQueuesOneInstallPerAgent(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "approve-a", t0)
		b := enrol(t, st, "approve-b", t0)
		ingest(t, st, fullReport(a.ID, "apt", t0, upd("openssl", "3", "critical"), upd("zlib", "1.3", "low"), upd("curl", "8", "important")))
		ingest(t, st, fullReport(b.ID, "apt", t0, upd("openssl", "3", "critical")))
		ua, ub := byName(t, st, a.ID), byName(t, st, b.ID)

		res := act(t, st, store.ActionApprove, false, ua["openssl"].ID, ub["openssl"].ID)
		if res.Changed != 2 || len(res.Commands) != 2 {
			t.Fatalf("approve: %+v", res)
		}
		ca := pendingCommand(t, st, a.ID, "install_updates")
		if ids, dry := paramsOf(t, ca); !slices.Equal(ids, []string{ua["openssl"].ID}) || dry {
			t.Errorf("a's command params %s", ca.Params)
		}
		if !strings.Contains(ca.Params, `"version":"3"`) || !strings.Contains(ca.Params, `"package_name":"openssl"`) {
			t.Errorf("params %s", ca.Params)
		}
		if u, _ := st.GetUpdate(ctx, ua["openssl"].ID); u.Status != "approved" || u.CommandID == nil || *u.CommandID != ca.ID ||
			u.CommandStatus == nil || *u.CommandStatus != "pending" {
			t.Errorf("approved update %+v", u.UpdateRecord)
		}
		if last := lastAudit(t, st); last.Action != "update.approve" || last.Details["changed"] != float64(2) {
			t.Errorf("audit %+v", last)
		}
		// A second approval replaces the pending command with one carrying both.
		res = act(t, st, store.ActionApprove, false, ua["zlib"].ID)
		if len(res.Commands) != 1 {
			t.Fatalf("second approve: %+v", res)
		}
		c2 := pendingCommand(t, st, a.ID, "install_updates")
		if ids, _ := paramsOf(t, c2); c2.ID == ca.ID || !slices.Equal(ids, sorted(ua["openssl"].ID, ua["zlib"].ID)) {
			t.Errorf("replacement %s", c2.Params)
		}
		if old, _ := st.GetCommand(ctx, ca.ID); old.Status != "cancelled" {
			t.Errorf("replaced command is %s", old.Status)
		}
		// Approving again what is approved changes nothing and queues nothing new.
		res = act(t, st, store.ActionApprove, false, ua["zlib"].ID)
		if res.Changed != 0 || res.Unchanged != 1 || len(res.Commands) != 0 || pendingCommand(t, st, a.ID, "install_updates").ID != c2.ID {
			t.Errorf("re-approve: %+v", res)
		}
		// A dry run merged into the pending install makes it a dry run.
		act(t, st, store.ActionApprove, true, ua["curl"].ID)
		c3 := pendingCommand(t, st, a.ID, "install_updates")
		if ids, dry := paramsOf(t, c3); !dry || len(ids) != 3 {
			t.Errorf("dry-run merge %s", c3.Params)
		}
		// Rejecting one takes it out of the pending command.
		act(t, st, store.ActionReject, false, ua["curl"].ID)
		c4 := pendingCommand(t, st, a.ID, "install_updates")
		if ids, dry := paramsOf(t, c4); !dry || !slices.Equal(ids, sorted(ua["openssl"].ID, ua["zlib"].ID)) {
			t.Errorf("after reject %s", c4.Params)
		}
		// Ignoring the rest leaves no pending command.
		act(t, st, store.ActionIgnore, false, ua["openssl"].ID, ua["zlib"].ID)
		if c := pendingCommand(t, st, a.ID, "install_updates"); c != nil {
			t.Errorf("pending command left: %s", c.Params)
		}
		g, err := st.GetAgent(ctx, a.ID, t0)
		must(t, err)
		if g.PendingUpdates.Total != 0 || g.UpdateStatus != store.AgentUpToDate {
			t.Errorf("agent a after ignoring everything: %q %+v", g.UpdateStatus, g.PendingUpdates)
		}
		if h := history(t, st, ua["openssl"].ID); !slices.Equal(h, []string{">pending", "pending>approved", "approved>ignored"}) {
			t.Errorf("history %v", h)
		}

		// Refusals change nothing: unknown ids, statuses that forbid the action.
		before := counts(t, st)
		_, err = st.ActOnUpdates(ctx, store.UpdateActionParams{Action: store.ActionApprove, IDs: []string{ub["openssl"].ID, "nope-1", "nope-2"},
			Sign: testSigner, Now: t0})
		var unknown *store.UnknownUpdatesError
		if !errors.As(err, &unknown) || !slices.Equal(unknown.IDs, []string{"nope-1", "nope-2"}) {
			t.Errorf("unknown ids: %v", err)
		}
		_, err = st.ActOnUpdates(ctx, store.UpdateActionParams{Action: store.ActionConfirm, IDs: []string{ub["openssl"].ID, ua["zlib"].ID},
			Sign: testSigner, Now: t0})
		var state *store.UpdateStateError
		if !errors.As(err, &state) || len(state.Items) != 2 {
			t.Errorf("confirm of updates that need no confirmation: %v", err)
		}
		if after := counts(t, st); after != before {
			t.Errorf("refused actions changed %+v → %+v", before, after)
		}
	})
}

// claim checks the agent in so its pending commands are sent, and returns them.
func claim(t *testing.T, st *store.Store, agentID string, now time.Time) []store.Command {
	t.Helper()
	cmds, err := st.CheckIn(ctx, agentID, "", 300, now)
	must(t, err)
	return cmds
}

func result(t *testing.T, st *store.Store, agentID, cmdID, status string, o *store.InstallOutcome) []store.CommandRecord {
	t.Helper()
	_, queued, err := st.SaveCommandResult(ctx, store.ResultParams{AgentID: agentID, CommandID: cmdID, Status: status,
		Result: []byte(`{"exit_code":0}`), Output: "apt output", Install: o, Sign: testSigner, Now: t0.Add(2 * time.Hour)})
	must(t, err)
	return queued
}

func TestInstallResults(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "installer", t0)
		r := fullReport(a.ID, "apt", t0, upd("openssl", "3", "critical"), upd("zlib", "1.3", "low"), upd("curl", "8", "important"))
		ingest(t, st, r)
		u := byName(t, st, a.ID)
		act(t, st, store.ActionApprove, false, u["openssl"].ID, u["zlib"].ID, u["curl"].ID)
		cmds := claim(t, st, a.ID, t0.Add(90*time.Minute))
		if len(cmds) != 1 || cmds[0].Type != "install_updates" {
			t.Fatalf("claimed %+v", cmds)
		}
		// Approved while in flight: a new command for the newcomer only.
		ingest(t, st, fullReport(a.ID, "apt", t0.Add(100*time.Minute), upd("openssl", "3", "critical"), upd("zlib", "1.3", "low"),
			upd("curl", "8", "important"), upd("bash", "5.2", "moderate")))
		bash := byName(t, st, a.ID)["bash"]
		act(t, st, store.ActionApprove, false, bash.ID)
		if ids, _ := paramsOf(t, pendingCommand(t, st, a.ID, "install_updates")); !slices.Equal(ids, []string{bash.ID}) {
			t.Errorf("the command after one in flight carries %v", ids)
		}

		queued := result(t, st, a.ID, cmds[0].ID, "failed", &store.InstallOutcome{RebootRequired: true, Results: []store.InstallItemOutcome{
			{UpdateID: u["openssl"].ID, Status: "installed", InstalledVersion: "3", Message: "ok"},
			{UpdateID: u["zlib"].ID, Status: "failed", Message: "dpkg: error processing zlib"},
		}})
		if len(queued) != 0 {
			t.Errorf("a real install queued %+v", queued)
		}
		got := byName(t, st, a.ID)
		wantStatuses(t, got, map[string]string{"openssl": "installed", "zlib": "failed", "curl": "failed", "bash": "approved"})
		if got["openssl"].InstalledVersion != "3" || got["zlib"].StatusMessage != "dpkg: error processing zlib" || got["curl"].StatusMessage != "apt output" {
			t.Errorf("outcomes %+v / %+v / %+v", got["openssl"], got["zlib"], got["curl"])
		}
		if h := history(t, st, u["openssl"].ID); !slices.Equal(h, []string{">pending", "pending>approved", "approved>installing", "installing>installed"}) {
			t.Errorf("history %v", h)
		}
		g, err := st.GetAgent(ctx, a.ID, t0.Add(2*time.Hour))
		must(t, err)
		if !g.RebootRequired || g.PendingUpdates.Total != 3 || g.PendingUpdates.ByStatus["failed"] != 2 {
			t.Errorf("agent after install: reboot %v %+v", g.RebootRequired, g.PendingUpdates)
		}
		// The install changed what the agent will report: its old hash is gone.
		_, err = st.IngestUpdateReport(ctx, store.UpdateReport{AgentID: a.ID, Scanner: "apt", ScannedAt: t0, UnchangedHash: r.Hash, Now: t0.Add(3 * time.Hour)})
		wantErr(t, err, store.ErrReportHashUnknown)
		// The same result again is not a second record.
		before := counts(t, st)
		result(t, st, a.ID, cmds[0].ID, "failed", nil)
		if after := counts(t, st); after != before {
			t.Errorf("a repeated result changed %+v → %+v", before, after)
		}
		// The next full report: installed updates stay installed, reappearing ones reopen.
		ingest(t, st, fullReport(a.ID, "apt", t0.Add(3*time.Hour), upd("zlib", "1.3", "low"), upd("curl", "8", "important"), upd("bash", "5.2", "moderate")))
		wantStatuses(t, byName(t, st, a.ID), map[string]string{"openssl": "installed", "zlib": "failed", "curl": "failed", "bash": "approved"})
		// A system report clears the reboot flag.
		must(t, st.SaveSystemInfo(ctx, a.ID, []byte(`{"reboot_required":false}`), t0.Add(3*time.Hour)))
		if g, _ = st.GetAgent(ctx, a.ID, t0.Add(3*time.Hour)); g.RebootRequired {
			t.Error("reboot flag survived a system report saying no reboot is required")
		}
	})
}

func TestDryRunAndConfirm(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "dry", t0)
		ingest(t, st, fullReport(a.ID, "apt", t0, upd("openssl", "3", "critical"), upd("zlib", "1.3", "low")))
		u := byName(t, st, a.ID)
		act(t, st, store.ActionApprove, true, u["openssl"].ID)
		cmds := claim(t, st, a.ID, t0.Add(90*time.Minute))
		if len(cmds) != 1 {
			t.Fatalf("claimed %+v", cmds)
		}
		extras := json.RawMessage(`[{"package_type":"apt","package_name":"libssl3","action":"install","to_version":"3"}]`)
		queued := result(t, st, a.ID, cmds[0].ID, "succeeded", &store.InstallOutcome{DryRun: true, Extras: extras, HasExtras: true})
		if len(queued) != 0 {
			t.Errorf("a dry run with extras queued %+v", queued)
		}
		d, err := st.GetUpdate(ctx, u["openssl"].ID)
		must(t, err)
		if d.Status != "needs_confirmation" || !jsonEqual(t, d.Extras, extras) {
			t.Errorf("after the dry run: %s %s", d.Status, d.Extras)
		}
		g, err := st.GetAgent(ctx, a.ID, t0)
		must(t, err)
		if g.PendingUpdates.ByStatus["needs_confirmation"] != 1 {
			t.Errorf("counts %+v", g.PendingUpdates)
		}
		res := act(t, st, store.ActionConfirm, false, u["openssl"].ID)
		if len(res.Commands) != 1 || res.Commands[0].Type != "confirm_dependencies" {
			t.Fatalf("confirm: %+v", res)
		}
		if ids, dry := paramsOf(t, &res.Commands[0]); dry || !slices.Equal(ids, []string{u["openssl"].ID}) {
			t.Errorf("confirm params %s", res.Commands[0].Params)
		}
		// Cancelling the confirmation puts the update back.
		_, err = st.CancelCommand(ctx, res.Commands[0].ID, t0.Add(95*time.Minute), nil)
		must(t, err)
		if d, _ = st.GetUpdate(ctx, u["openssl"].ID); d.Status != "needs_confirmation" {
			t.Errorf("after cancelling the confirmation: %s", d.Status)
		}
		res = act(t, st, store.ActionConfirm, false, u["openssl"].ID)
		cmds = claim(t, st, a.ID, t0.Add(100*time.Minute))
		if len(cmds) != 1 || cmds[0].ID != res.Commands[0].ID {
			t.Fatalf("claimed %+v", cmds)
		}
		result(t, st, a.ID, cmds[0].ID, "succeeded", &store.InstallOutcome{Results: []store.InstallItemOutcome{
			{UpdateID: u["openssl"].ID, Status: "installed", InstalledVersion: "3"}}})
		if d, _ = st.GetUpdate(ctx, u["openssl"].ID); d.Status != "installed" {
			t.Errorf("after confirm_dependencies: %s", d.Status)
		}

		// A clean dry run queues the real install at once.
		act(t, st, store.ActionApprove, true, u["zlib"].ID)
		cmds = claim(t, st, a.ID, t0.Add(110*time.Minute))
		queued = result(t, st, a.ID, cmds[0].ID, "succeeded", &store.InstallOutcome{DryRun: true})
		if len(queued) != 1 || queued[0].Type != "install_updates" {
			t.Fatalf("a clean dry run queued %+v", queued)
		}
		if ids, dry := paramsOf(t, &queued[0]); dry || !slices.Equal(ids, []string{u["zlib"].ID}) {
			t.Errorf("real install params %s", queued[0].Params)
		}
		if d, _ = st.GetUpdate(ctx, u["zlib"].ID); d.Status != "approved" || *d.CommandID != queued[0].ID {
			t.Errorf("after the clean dry run %+v", d.UpdateRecord)
		}
		// Cancelled by an admin: back to pending.
		_, err = st.CancelCommand(ctx, queued[0].ID, t0.Add(2*time.Hour), &store.Audit{ActorType: "user", ActorName: "root", Action: "command.cancel"})
		must(t, err)
		if d, _ = st.GetUpdate(ctx, u["zlib"].ID); d.Status != "pending" || d.CommandID != nil {
			t.Errorf("after cancel %+v", d.UpdateRecord)
		}
	})
}

func TestInstallCommandsClosedByTheClock(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "clock", t0)
		ingest(t, st, fullReport(a.ID, "apt", t0, upd("openssl", "3", "critical"), upd("zlib", "1.3", "low")))
		u := byName(t, st, a.ID)
		act(t, st, store.ActionApprove, false, u["openssl"].ID)
		claim(t, st, a.ID, time.Now())
		_, timedOut, err := st.ExpireCommands(ctx, time.Now().Add(2*time.Hour), time.Hour)
		must(t, err)
		if timedOut != 1 {
			t.Fatalf("timed out %d", timedOut)
		}
		d, err := st.GetUpdate(ctx, u["openssl"].ID)
		must(t, err)
		if d.Status != "failed" || !strings.Contains(d.StatusMessage, "timed out") {
			t.Errorf("after the timeout %+v", d.UpdateRecord)
		}
		// Failed updates may be approved again.
		_, err = st.ActOnUpdates(ctx, store.UpdateActionParams{Action: store.ActionApprove, IDs: []string{u["openssl"].ID, u["zlib"].ID},
			Sign: signerUntil(time.Now().Add(24 * time.Hour)), Now: time.Now()})
		must(t, err)
		expired, _, err := st.ExpireCommands(ctx, time.Now().Add(48*time.Hour), time.Hour)
		must(t, err)
		if expired != 1 {
			t.Fatalf("expired %d", expired)
		}
		wantStatuses(t, byName(t, st, a.ID), map[string]string{"openssl": "failed", "zlib": "failed"})
		g, err := st.GetAgent(ctx, a.ID, t0)
		must(t, err)
		if g.PendingUpdates.ByStatus["failed"] != 2 || g.PendingUpdates.ByStatus["approved"] != 0 {
			t.Errorf("counts %+v", g.PendingUpdates)
		}
	})
}

func TestUpdateHostileText(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "hostile", t0)
		var ups []store.UpdateInput
		for i, h := range hostile {
			u := store.UpdateInput{PackageType: "apt", PackageName: h.s, CurrentVersion: h.s, AvailableVersion: h.s, Severity: "low",
				Source: h.s, CVEIDs: []string{h.s}, Metadata: map[string]string{h.s: h.s}}
			if i%2 == 1 {
				u.PackageName = fmt.Sprint(i) + h.s
			}
			ups = append(ups, u)
		}
		ingest(t, st, fullReport(a.ID, "apt", t0, ups...))
		got := byName(t, st, a.ID)
		for _, u := range ups {
			g, ok := got[u.PackageName]
			if !ok || g.CurrentVersion != u.CurrentVersion || g.Source != u.Source || !slices.Equal(g.CVEIDs, u.CVEIDs) ||
				g.Metadata[u.Source] != u.Source {
				t.Errorf("%.40q did not round-trip: %+v", u.PackageName, g)
			}
			list, total, err := st.ListUpdates(ctx, store.UpdateFilter{Query: u.PackageName})
			must(t, err)
			if total < 1 || !slices.ContainsFunc(list, func(x store.UpdateRecord) bool { return x.PackageName == u.PackageName }) {
				t.Errorf("q=%.40q did not find it", u.PackageName)
			}
		}
	})
}

// TestIngestLargeReport ingests the largest report the API accepts twice
// (the second time half of it changed) and checks the counts; the times
// are logged.
func TestIngestLargeReport(t *testing.T) {
	if testing.Short() {
		t.Skip("large report")
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "large", t0)
		const n = 20000
		ups := make([]store.UpdateInput, n)
		for i := range ups {
			ups[i] = upd(fmt.Sprintf("package-%05d", i), "1.0", store.Severities[i%5])
		}
		start := time.Now()
		out := ingest(t, st, fullReport(a.ID, "apt", t0, ups...))
		first := time.Since(start)
		for i := 0; i < n; i += 2 {
			ups[i].AvailableVersion = "2.0"
		}
		start = time.Now()
		out2 := ingest(t, st, fullReport(a.ID, "apt", t0.Add(time.Hour), ups[:n-100]...))
		second := time.Since(start)
		t.Logf("%d new updates: %v; %d changed, %d resolved: %v", out.New, first, out2.Changed, out2.Resolved, second)
		if out.New != n || out2.Changed != n/2-50 || out2.Resolved != 100 {
			t.Errorf("outcomes %+v, %+v", out, out2)
		}
		g, err := st.GetAgent(ctx, a.ID, t0.Add(time.Hour))
		must(t, err)
		if g.PendingUpdates.Total != n-100 || g.PendingUpdates.BySeverity["critical"] != (n-100)/5 {
			t.Errorf("counts %+v", g.PendingUpdates)
		}
	})
}
