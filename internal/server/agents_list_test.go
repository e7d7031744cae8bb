package server_test

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

func typedUpdate(typ, name, severity string) protocol.Update {
	u := aptUpdate(name, "2.0", severity)
	u.PackageType = typ
	return u
}

type agentPage struct {
	Items []store.Agent `json:"items"`
	Total int           `json:"total"`
}

func listAgents(t *testing.T, ts *testserver.TS, admin, query string) agentPage {
	t.Helper()
	var l agentPage
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents?" + query, Token: admin}).JSON(t, &l)
	return l
}

func hostnames(l agentPage) string {
	var out []string
	for _, a := range l.Items {
		out = append(out, a.Hostname)
	}
	return strings.Join(out, ",")
}

// TestAgentListSortAndPackageFilter sorts the agent list by every key,
// both ways, ties broken by id, and filters it by package type, on every
// engine; bad values are 400 invalid_query in the SPEC error shape.
func TestAgentListSortAndPackageFilter(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 10)
			// One row per agent: its state and the value each computed key sorts on.
			type row struct {
				host, version     string
				status            int // 0 online, 1 offline, 2 stale
				seen              time.Time
				offlineAfter      *time.Time
				updateStatus      int // index in store.AgentUpdateStatuses
				pending, critical int
				reports           map[string][]protocol.Update
				id                string
			}
			now := time.Now().UTC().Truncate(time.Second)
			soon := now.Add(time.Hour)
			past := now.Add(-time.Hour)
			usIdx := func(s string) int { return slices.Index(store.AgentUpdateStatuses, s) }
			rows := []*row{
				{host: "alpha", version: "1.0.0", status: 0, seen: now.Add(-time.Minute), offlineAfter: &soon, updateStatus: usIdx(store.AgentUpdatesAvailable),
					pending: 3, critical: 2, reports: map[string][]protocol.Update{"apt": {typedUpdate("apt", "openssl", "critical"),
						typedUpdate("apt", "bash", "critical"), typedUpdate("apt", "zlib1g", "low")}}},
				{host: "bravo", version: "1.2.0", status: 1, seen: now.Add(-48 * time.Hour), offlineAfter: &past, updateStatus: usIdx(store.AgentUpdatesAvailable),
					pending: 1, critical: 0, reports: map[string][]protocol.Update{"dnf": {typedUpdate("dnf", "kernel", "important")}}},
				{host: "charlie", version: "0.9.0", status: 0, seen: now.Add(-2 * time.Minute), offlineAfter: &soon, updateStatus: usIdx(store.AgentUpdatesAvailable),
					pending: 2, critical: 1, reports: map[string][]protocol.Update{"apt": {typedUpdate("apt", "openssl", "critical")},
						"snap": {typedUpdate("snap", "firefox", "low")}}},
				{host: "delta", version: "1.1.0", status: 2, seen: now.Add(-30 * 24 * time.Hour), updateStatus: usIdx(store.AgentNeverScanned)},
				{host: "echo", version: "1.0.0", status: 0, seen: now.Add(-time.Minute), offlineAfter: &soon, updateStatus: usIdx(store.AgentUpToDate),
					reports: map[string][]protocol.Update{"apt": nil}},
			}
			dbs := ts.Server.Store().DBs()
			db := dbs["writer"]
			if db == nil {
				db = dbs["main"]
			}
			for _, r := range rows {
				ag := ts.RegisterAgent(t, reg, r.host)
				r.id = ag.ID
				for _, scanner := range []string{"apt", "dnf", "snap"} {
					if ups, ok := r.reports[scanner]; ok {
						body, _ := reportBody(t, scanner, ups...)
						ts.Expect(t, http.StatusOK, reportReq(ag, body))
					}
				}
				var off any
				if r.offlineAfter != nil {
					off = store.T(*r.offlineAfter)
				}
				if _, err := db.ExecContext(context.Background(), "UPDATE agents SET agent_version = $1, last_seen_at = $2, offline_after = $3 WHERE id = $4",
					r.version, store.T(r.seen), off, r.id); err != nil {
					t.Fatal(err)
				}
			}
			// The report time (2026-11-25T10:00Z) may be long past: keep the
			// scans fresh so update_status does not turn scan_stale.
			if _, err := db.ExecContext(context.Background(), "UPDATE agent_scans SET last_success_unix = $1", now.Unix()); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				a := getAgent(t, ts, admin, r.id)
				if a.UpdateStatus != store.AgentUpdateStatuses[r.updateStatus] || a.PendingUpdates.Total != r.pending ||
					a.PendingUpdates.BySeverity["critical"] != r.critical || a.Status != []string{"online", "offline", "stale"}[r.status] {
					t.Fatalf("%s: status %s, update status %s, counts %+v", r.host, a.Status, a.UpdateStatus, a.PendingUpdates)
				}
				for typ, ups := range r.reports {
					for _, u := range ups {
						if a.PendingUpdates.ByPackageTypeSeverity[typ][u.Severity] == 0 {
							t.Errorf("%s: by_package_type_severity %+v lacks %s/%s", r.host, a.PendingUpdates.ByPackageTypeSeverity, typ, u.Severity)
						}
					}
				}
				if r.host == "alpha" && a.PendingUpdates.ByPackageTypeSeverity["apt"]["critical"] != 2 {
					t.Errorf("alpha: by_package_type_severity %+v", a.PendingUpdates.ByPackageTypeSeverity)
				}
			}

			keys := map[string]func(a, b *row) int{
				"status": func(a, b *row) int {
					return cmp.Or(cmp.Compare(a.status, b.status), a.seen.Compare(b.seen))
				},
				"update_status":    func(a, b *row) int { return cmp.Compare(a.updateStatus, b.updateStatus) },
				"pending_updates":  func(a, b *row) int { return cmp.Compare(a.pending, b.pending) },
				"critical_updates": func(a, b *row) int { return cmp.Compare(a.critical, b.critical) },
				"agent_version":    func(a, b *row) int { return cmp.Compare(a.version, b.version) },
				"last_seen_at":     func(a, b *row) int { return a.seen.Compare(b.seen) },
				"hostname":         func(a, b *row) int { return cmp.Compare(a.host, b.host) },
			}
			for key, less := range keys {
				want := slices.Clone(rows)
				slices.SortFunc(want, func(a, b *row) int { return cmp.Or(less(a, b), cmp.Compare(a.id, b.id)) })
				var hosts []string
				for _, r := range want {
					hosts = append(hosts, r.host)
				}
				if got := hostnames(listAgents(t, ts, admin, "sort="+key)); got != strings.Join(hosts, ",") {
					t.Errorf("sort=%s: %s, want %s", key, got, strings.Join(hosts, ","))
				}
				slices.Reverse(hosts)
				if got := hostnames(listAgents(t, ts, admin, "sort=-"+key)); got != strings.Join(hosts, ",") {
					t.Errorf("sort=-%s: %s, want %s", key, got, strings.Join(hosts, ","))
				}
				// Paging walks the same order.
				var paged []string
				for off := 0; off < len(rows); off += 2 {
					l := listAgents(t, ts, admin, "sort=-"+key+"&limit=2&offset="+strconv.Itoa(off))
					if l.Total != len(rows) {
						t.Fatalf("sort=-%s page at %d: total %d", key, off, l.Total)
					}
					for _, a := range l.Items {
						paged = append(paged, a.Hostname)
					}
				}
				if strings.Join(paged, ",") != strings.Join(hosts, ",") {
					t.Errorf("sort=-%s paged: %v, want %v", key, paged, hosts)
				}
			}

			for q, want := range map[string]string{
				"package_type=apt":                                          "alpha,charlie",
				"package_type=dnf":                                          "bravo",
				"package_type=snap":                                         "charlie",
				"package_type=flatpak":                                      "",
				"package_type=apt&sort=-critical_updates":                   "alpha,charlie",
				"package_type=apt&sort=critical_updates":                    "charlie,alpha",
				"package_type=apt&has_critical=true&status=online&os=linux": "alpha,charlie",
				"package_type=snap&hostname=CHAR":                           "charlie",
				"package_type=dnf&status=online":                            "",
			} {
				l := listAgents(t, ts, admin, q+func() string {
					if strings.Contains(q, "sort=") {
						return ""
					}
					return "&sort=hostname"
				}())
				if got := hostnames(l); got != want || l.Total != len(l.Items) {
					t.Errorf("?%s: %s (total %d), want %s", q, got, l.Total, want)
				}
			}

			for _, q := range []string{"package_type=rpm", "package_type=APT", "package_type=%00", "sort=pending", "sort=--status",
				"sort=update_status%3BDROP", "sort=-"} {
				expectError(t, "agents ?"+q, ts.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/agents?" + q, Token: admin}),
					http.StatusBadRequest, "invalid_query")
			}
		})
	}
}
