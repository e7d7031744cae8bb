package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

func aptUpdate(name, version, severity string) protocol.Update {
	return protocol.Update{PackageType: "apt", PackageName: name, CurrentVersion: "1.0", AvailableVersion: version, Severity: severity,
		Source: "bookworm-security", CVEIDs: []string{}, Metadata: map[string]string{}}
}

// reportBody is a full report as an agent sends it, and the hash of its
// "updates" bytes.
func reportBody(t testing.TB, scanner string, ups ...protocol.Update) (string, string) {
	t.Helper()
	if ups == nil {
		ups = []protocol.Update{}
	}
	raw, err := json.Marshal(ups)
	if err != nil {
		t.Fatal(err)
	}
	return `{"scanner":"` + scanner + `","scanned_at":"2026-11-25T10:00:00Z","interval_seconds":3600,"updates":` + string(raw) + `}`,
		protocol.UpdatesHash(raw)
}

func reportReq(ag testserver.Agent, body any) testserver.Req {
	return testserver.Req{Method: "POST", Path: "/api/v1/agents/" + ag.ID + "/reports/updates", Token: ag.Token, MachineID: ag.MachineID, Body: body}
}

// reportUpdates posts a full report for ag and returns the ids of its
// updates, in the order given.
func reportUpdates(t testing.TB, ts *testserver.TS, ag testserver.Agent, scanner string, ups ...protocol.Update) []string {
	t.Helper()
	body, hash := reportBody(t, scanner, ups...)
	var out protocol.UpdateReportResponse
	ts.Expect(t, http.StatusOK, reportReq(ag, body)).JSON(t, &out)
	if out.Hash != hash {
		t.Fatalf("report answered hash %s, want %s", out.Hash, hash)
	}
	list, _, err := ts.Server.Store().ListUpdates(context.Background(), store.UpdateFilter{AgentID: ag.ID, PackageType: scanner,
		Page: store.Page{Limit: 500}})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ups))
	for i, u := range ups {
		for _, l := range list {
			if l.PackageName == u.PackageName {
				ids[i] = l.ID
			}
		}
		if ids[i] == "" {
			t.Fatalf("update %s not stored", u.PackageName)
		}
	}
	return ids
}

type updateList struct {
	Items      []store.UpdateRecord `json:"items"`
	Total      int                  `json:"total"`
	NextCursor *string              `json:"next_cursor"`
}

func listUpdates(t *testing.T, ts *testserver.TS, admin, query string) updateList {
	t.Helper()
	var l updateList
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/updates?" + query, Token: admin}).JSON(t, &l)
	return l
}

func getUpdate(t *testing.T, ts *testserver.TS, admin, id string) store.UpdateDetail {
	t.Helper()
	var d store.UpdateDetail
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/updates/" + id, Token: admin}).JSON(t, &d)
	return d
}

func getAgent(t *testing.T, ts *testserver.TS, admin, id string) store.Agent {
	t.Helper()
	var a store.Agent
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + id, Token: admin}).JSON(t, &a)
	return a
}

func updateAction(t *testing.T, ts *testserver.TS, admin, action string, body any) store.UpdateActionResult {
	t.Helper()
	var res store.UpdateActionResult
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/updates/" + action, Token: admin, Body: body}).JSON(t, &res)
	return res
}

// checkIn claims the agent's commands and verifies each signature with the
// server's published key.
func checkIn(t *testing.T, ts *testserver.TS, ag testserver.Agent) []protocol.SignedCommand {
	t.Helper()
	var keys protocol.PublicKeys
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &keys)
	var ci protocol.CheckInResponse
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: ag.Token,
		MachineID: ag.MachineID}).JSON(t, &ci)
	for _, c := range ci.Commands {
		var pub []byte
		for _, k := range keys.Keys {
			if k.KeyID == c.KeyID {
				p, err := signing.ParsePublicKey(k.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				pub = p
			}
		}
		if err := signing.VerifyCommand(pub, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: c.Params,
			IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}, c.Signature); err != nil || c.AgentID != ag.ID {
			t.Fatalf("command %s does not verify for its agent: %v", c.ID, err)
		}
	}
	return ci.Commands
}

func installParams(t *testing.T, c protocol.SignedCommand) protocol.InstallUpdatesParams {
	t.Helper()
	var p protocol.InstallUpdatesParams
	dec := json.NewDecoder(strings.NewReader(string(c.Params)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("params %s: %v", c.Params, err)
	}
	return p
}

func postResult(t *testing.T, ts *testserver.TS, ag testserver.Agent, cmdID, status string, details any) {
	t.Helper()
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + ag.ID + "/commands/" + cmdID + "/result",
		Token: ag.Token, MachineID: ag.MachineID, Body: map[string]any{"status": status, "exit_code": 0, "output": "apt says hello",
			"started_at": "2026-11-25T10:00:00Z", "finished_at": "2026-11-25T10:01:00Z", "details": details}})
}

func statuses(d store.UpdateDetail) []string {
	var out []string
	for _, h := range d.History {
		out = append(out, h.FromStatus+">"+h.ToStatus)
	}
	return out
}

// TestUpdatesFlow walks updates end to end over HTTP on every engine: an
// agent reports, the admin lists, filters and approves, the agent receives a
// signed install_updates naming the update and reports the result; a dry run
// with extras asks for confirmation and confirm queues confirm_dependencies.
func TestUpdatesFlow(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 5)
			ag := ts.RegisterAgent(t, reg, "web-01")
			other := ts.RegisterAgent(t, reg, "db-01")

			if a := getAgent(t, ts, admin, ag.ID); a.UpdateStatus != "never_scanned" || a.PendingUpdates == nil || a.PendingUpdates.Total != 0 {
				t.Fatalf("new agent: %q %+v", a.UpdateStatus, a.PendingUpdates)
			}
			body, hash := reportBody(t, "apt", aptUpdate("openssl", "3.0.3", "critical"), aptUpdate("libcurl4", "8.1", "important"),
				aptUpdate("zlib1g", "1.3", "low"))
			var rr protocol.UpdateReportResponse
			ts.Expect(t, http.StatusOK, reportReq(ag, body)).JSON(t, &rr)
			if rr.Hash != hash {
				t.Fatalf("report hash %s, want %s", rr.Hash, hash)
			}
			reportUpdates(t, ts, other, "apt", aptUpdate("openssl", "3.0.3", "critical"))

			// Hash-only: the stored hash is 200, another is 409 report_hash_unknown.
			before := counts(t, ts)
			ts.Expect(t, http.StatusOK, reportReq(ag, map[string]any{"scanner": "apt", "scanned_at": "2026-11-25T11:00:00Z", "unchanged_hash": hash}))
			r := ts.Do(t, reportReq(ag, map[string]any{"scanner": "apt", "scanned_at": "2026-11-25T11:00:00Z", "unchanged_hash": strings.Repeat("0", 64)}))
			expectError(t, "unknown hash", r, http.StatusConflict, "report_hash_unknown")
			if after := counts(t, ts); after.Updates != before.Updates || after.UpdateHistory != before.UpdateHistory {
				t.Errorf("hash-only reports changed updates: %+v → %+v", before, after)
			}

			a := getAgent(t, ts, admin, ag.ID)
			c := a.PendingUpdates
			if a.UpdateStatus != "updates_available" || c.Total != 3 || c.BySeverity["critical"] != 1 || c.ByPackageType["apt"] != 3 ||
				len(a.Scans) != 1 || a.Scans[0].Scanner != "apt" || a.Scans[0].Status != "ok" || a.Scans[0].IntervalSeconds != 3600 || a.Scans[0].Stale {
				t.Fatalf("agent after the report: %q %+v %+v", a.UpdateStatus, c, a.Scans)
			}
			var agents struct {
				Items []store.Agent `json:"items"`
				Total int           `json:"total"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents?update_status=updates_available&has_critical=true&hostname=web",
				Token: admin}).JSON(t, &agents)
			if agents.Total != 1 || agents.Items[0].ID != ag.ID || agents.Items[0].PendingUpdates.BySeverity["critical"] != 1 {
				t.Errorf("agent filters: %+v", agents)
			}

			// Lists: filters, search, paging, sort.
			all := listUpdates(t, ts, admin, "")
			if all.Total != 4 || all.Items[0].Severity != "critical" {
				t.Errorf("all updates: %+v", all)
			}
			l := listUpdates(t, ts, admin, "agent_id="+ag.ID+"&severity=critical")
			if l.Total != 1 || l.Items[0].PackageName != "openssl" || l.Items[0].Hostname != "web-01" || l.Items[0].Status != "pending" {
				t.Fatalf("filtered: %+v", l)
			}
			openssl := l.Items[0].ID
			if l = listUpdates(t, ts, admin, "q=CURL&package_type=apt&status=pending"); l.Total != 1 || l.Items[0].PackageName != "libcurl4" {
				t.Errorf("q=CURL: %+v", l)
			}
			curl := l.Items[0].ID
			l = listUpdates(t, ts, admin, "agent_id="+ag.ID+"&sort=package_name&limit=2")
			if l.Total != 3 || len(l.Items) != 2 || l.NextCursor == nil || l.Items[0].PackageName != "libcurl4" {
				t.Fatalf("page 1: %+v", l)
			}
			l = listUpdates(t, ts, admin, "agent_id="+ag.ID+"&sort=package_name&limit=2&cursor="+url.QueryEscape(*l.NextCursor))
			if len(l.Items) != 1 || l.Items[0].PackageName != "zlib1g" || l.NextCursor != nil {
				t.Fatalf("page 2: %+v", l)
			}
			zlib := l.Items[0].ID
			for _, q := range []string{"severity=urgent", "status=done", "package_type=rpm", "agent_id=nope", "sort=size", "limit=0", "q=%00"} {
				expectError(t, "list ?"+q, ts.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/updates?" + q, Token: admin}), http.StatusBadRequest, "invalid_query")
			}

			// Approve: one signed install_updates naming the update.
			res := updateAction(t, ts, admin, "approve", map[string]any{"update_ids": []string{openssl}})
			if res.Changed != 1 || len(res.Commands) != 1 || res.Commands[0].Type != "install_updates" {
				t.Fatalf("approve: %+v", res)
			}
			// A second approval before the agent checks in replaces the command.
			res = updateAction(t, ts, admin, "approve", map[string]any{"update_ids": []string{curl}})
			if len(res.Commands) != 1 {
				t.Fatalf("second approve: %+v", res)
			}
			cmds := checkIn(t, ts, ag)
			if len(cmds) != 1 || cmds[0].ID != res.Commands[0].ID || cmds[0].Type != "install_updates" {
				t.Fatalf("check-in delivered %+v", cmds)
			}
			p := installParams(t, cmds[0])
			if p.DryRun || len(p.Updates) != 2 || p.Updates[0].UpdateID != curl || p.Updates[0].PackageName != "libcurl4" ||
				p.Updates[0].Version != "8.1" || p.Updates[1].UpdateID != openssl || p.Updates[1].Version != "3.0.3" || p.Updates[0].PackageType != "apt" {
				t.Fatalf("params %s", cmds[0].Params)
			}
			if d := getUpdate(t, ts, admin, openssl); d.Status != "approved" || *d.CommandID != cmds[0].ID || *d.CommandStatus != "sent" {
				t.Errorf("approved update while in flight: %+v", d.UpdateRecord)
			}
			postResult(t, ts, ag, cmds[0].ID, "succeeded", protocol.InstallDetails{RebootRequired: true, Results: []protocol.InstallItemResult{
				{UpdateID: openssl, Status: "installed", InstalledVersion: "3.0.3"},
				{UpdateID: curl, Status: "failed", Message: "E: Unable to locate package libcurl4\u0000"}}})
			d := getUpdate(t, ts, admin, openssl)
			if d.Status != "installed" || d.InstalledVersion != "3.0.3" ||
				!slices.Equal(statuses(d), []string{">pending", "pending>approved", "approved>installing", "installing>installed"}) {
				t.Errorf("installed update: %+v %v", d.UpdateRecord, statuses(d))
			}
			if d = getUpdate(t, ts, admin, curl); d.Status != "failed" || d.StatusMessage != "E: Unable to locate package libcurl4" {
				t.Errorf("failed update: %+v", d.UpdateRecord)
			}
			if a = getAgent(t, ts, admin, ag.ID); !a.RebootRequired || a.PendingUpdates.Total != 2 || a.PendingUpdates.ByStatus["failed"] != 1 {
				t.Errorf("agent after the install: reboot %v %+v", a.RebootRequired, a.PendingUpdates)
			}
			// The install invalidated the agent's hash: its next report must be full.
			r = ts.Do(t, reportReq(ag, map[string]any{"scanner": "apt", "scanned_at": "2026-11-25T12:00:00Z", "unchanged_hash": hash}))
			expectError(t, "hash after an install", r, http.StatusConflict, "report_hash_unknown")

			// Approving an installed update is refused and changes nothing.
			before = counts(t, ts)
			r = ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/updates/approve", Token: admin,
				Body: map[string]any{"update_ids": []string{openssl, zlib}}})
			expectError(t, "approve an installed update", r, http.StatusConflict, "invalid_update_state")
			if !strings.Contains(string(r.Body), openssl) {
				t.Errorf("the refusal does not name the update: %s", r.Body)
			}
			unknown := "0191d9b2-7c1e-7c3a-9f59-0d8a1c0e5b11"
			r = ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/updates/reject", Token: admin, Body: map[string]any{"update_ids": []string{zlib, unknown}}})
			expectError(t, "reject an unknown update", r, http.StatusNotFound, "unknown_updates")
			if !strings.Contains(string(r.Body), unknown) {
				t.Errorf("the refusal does not name the unknown id: %s", r.Body)
			}
			if after := counts(t, ts); after != before {
				t.Errorf("refused actions changed %+v → %+v", before, after)
			}

			// Dry run with extras → needs_confirmation → confirm → confirm_dependencies.
			res = updateAction(t, ts, admin, "approve", map[string]any{"update_ids": []string{zlib}, "dry_run": true})
			cmds = checkIn(t, ts, ag)
			if len(cmds) != 1 || !installParams(t, cmds[0]).DryRun || res.Commands[0].ID != cmds[0].ID {
				t.Fatalf("dry run delivered %+v", cmds)
			}
			extras := []protocol.PackageChange{{PackageType: "apt", PackageName: "libzstd1", Action: "install", ToVersion: "1.5"}}
			postResult(t, ts, ag, cmds[0].ID, "succeeded", protocol.InstallDetails{DryRun: true, Extras: extras,
				Changes: []protocol.PackageChange{{PackageType: "apt", PackageName: "zlib1g", Action: "upgrade"}}})
			d = getUpdate(t, ts, admin, zlib)
			var gotExtras []protocol.PackageChange
			if err := json.Unmarshal(d.Extras, &gotExtras); err != nil || d.Status != "needs_confirmation" || len(gotExtras) != 1 || gotExtras[0] != extras[0] {
				t.Fatalf("after the dry run: %s extras %s (%v)", d.Status, d.Extras, err)
			}
			if l = listUpdates(t, ts, admin, "status=needs_confirmation"); l.Total != 1 || l.Items[0].ID != zlib {
				t.Errorf("needs_confirmation filter: %+v", l)
			}
			res = updateAction(t, ts, admin, "confirm", map[string]any{"update_ids": []string{zlib}})
			cmds = checkIn(t, ts, ag)
			if len(res.Commands) != 1 || len(cmds) != 1 || cmds[0].Type != "confirm_dependencies" || cmds[0].ID != res.Commands[0].ID {
				t.Fatalf("confirm delivered %+v", cmds)
			}
			if p = installParams(t, cmds[0]); p.DryRun || len(p.Updates) != 1 || p.Updates[0].UpdateID != zlib || p.Updates[0].Version != "1.3" {
				t.Fatalf("confirm params %s", cmds[0].Params)
			}
			postResult(t, ts, ag, cmds[0].ID, "succeeded", protocol.InstallDetails{Results: []protocol.InstallItemResult{{UpdateID: zlib, Status: "installed"}}})
			if d = getUpdate(t, ts, admin, zlib); d.Status != "installed" {
				t.Errorf("after confirm_dependencies: %+v", d.UpdateRecord)
			}

			// A clean dry run queues the real install by itself.
			curlAgain := updateAction(t, ts, admin, "approve", map[string]any{"update_ids": []string{curl}, "dry_run": true})
			cmds = checkIn(t, ts, ag)
			if len(cmds) != 1 || cmds[0].ID != curlAgain.Commands[0].ID {
				t.Fatalf("second dry run %+v", cmds)
			}
			postResult(t, ts, ag, cmds[0].ID, "succeeded", protocol.InstallDetails{DryRun: true})
			cmds = checkIn(t, ts, ag)
			if len(cmds) != 1 || cmds[0].Type != "install_updates" || installParams(t, cmds[0]).DryRun {
				t.Fatalf("after a clean dry run %+v", cmds)
			}
			// The command fails without details: its updates fail.
			postResult(t, ts, ag, cmds[0].ID, "failed", nil)
			if d = getUpdate(t, ts, admin, curl); d.Status != "failed" || d.StatusMessage != "apt says hello" {
				t.Errorf("after a failed install: %+v", d.UpdateRecord)
			}

			// Reject and ignore; the next report resolves what is gone.
			updateAction(t, ts, admin, "ignore", map[string]any{"update_ids": []string{curl}})
			ids := reportUpdates(t, ts, ag, "apt", aptUpdate("bash", "5.2", "moderate"))
			updateAction(t, ts, admin, "reject", map[string]any{"update_ids": ids})
			if d = getUpdate(t, ts, admin, curl); d.Status != "resolved" || !strings.Contains(d.History[len(d.History)-1].Note, "resolved elsewhere") {
				t.Errorf("curl after the next report: %+v %+v", d.UpdateRecord, d.History)
			}
			if a = getAgent(t, ts, admin, ag.ID); a.UpdateStatus != "up_to_date" || a.PendingUpdates.Total != 0 {
				t.Errorf("agent at the end: %q %+v", a.UpdateStatus, a.PendingUpdates)
			}

			// A failed scan shows on the agent.
			ts.Expect(t, http.StatusOK, reportReq(other, map[string]any{"scanner": "snap", "scanned_at": "2026-11-25T12:00:00Z",
				"errors": []map[string]string{{"scanner": "snap", "message": "snapd is not running\nretry later"}}}))
			if a = getAgent(t, ts, admin, other.ID); a.UpdateStatus != "scan_failed" || len(a.Scans) != 2 || a.Scans[1].Error != "snapd is not running\nretry later" {
				t.Errorf("after a failed scan: %q %+v", a.UpdateStatus, a.Scans)
			}

			// The audit log has the actions; /metrics the pending updates.
			var audit struct {
				Items []store.Audit `json:"items"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/audit?action=update.approve", Token: admin}).JSON(t, &audit)
			if len(audit.Items) != 4 || audit.Items[0].ActorName != testserver.AdminUser {
				t.Errorf("audit: %+v", audit.Items)
			}
			m := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/metrics"})
			for _, want := range []string{`(?m)^redflag_updates_pending\{severity="critical"\} 1$`, `(?m)^redflag_updates_pending\{severity="low"\} 0$`,
				`(?m)^redflag_updates_open\{status="pending"\} 1$`} {
				if !regexp.MustCompile(want).Match(m.Body) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			// The OpenAPI document describes the new routes.
			var doc struct {
				Paths map[string]map[string]any `json:"paths"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/openapi.json"}).JSON(t, &doc)
			for _, path := range []string{"/api/v1/updates", "/api/v1/updates/{id}", "/api/v1/updates/approve", "/api/v1/updates/confirm",
				"/api/v1/agents/{id}/reports/updates"} {
				if doc.Paths[path] == nil {
					t.Errorf("openapi.json lacks %s", path)
				}
			}
		})
	}
}

// TestUpdateReportRefusals: bad reports are 400 in the SPEC error shape and
// change nothing.
func TestUpdateReportRefusals(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 2)
			ag := ts.RegisterAgent(t, reg, "refusals")
			reportUpdates(t, ts, ag, "apt", aptUpdate("keep", "1", "low"))
			many := make([]protocol.Update, api20001)
			for i := range many {
				many[i] = aptUpdate(fmt.Sprintf("p%05d", i), "1", "low")
			}
			tooMany, _ := reportBody(t, "apt", many...)
			wrongType := aptUpdate("x", "1", "low")
			wrongType.PackageType = "dnf"
			badSev := aptUpdate("x", "1", "urgent")
			mismatch, _ := reportBody(t, "apt", aptUpdate("ok", "1", "low"), wrongType)
			dup, _ := reportBody(t, "apt", aptUpdate("x", "1", "low"), aptUpdate("x", "2", "low"))
			sev, _ := reportBody(t, "apt", aptUpdate("ok", "1", "low"), badSev)
			cases := map[string]struct {
				body any
				code string
			}{
				"too many updates":         {tooMany, "too_many_updates"},
				"package type mismatch":    {mismatch, "invalid_field"},
				"duplicate package":        {dup, "duplicate_package"},
				"unknown severity":         {sev, "invalid_field"},
				"unknown scanner":          {`{"scanner":"rpm","scanned_at":"2026-11-25T10:00:00Z","updates":[]}`, "invalid_field"},
				"no scanned_at":            {`{"scanner":"apt","updates":[]}`, "missing_field"},
				"nothing reported":         {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z"}`, "missing_field"},
				"null updates only":        {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":null}`, "missing_field"},
				"updates and hash":         {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[],"unchanged_hash":"` + strings.Repeat("a", 64) + `"}`, "invalid_field"},
				"uppercase hash":           {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","unchanged_hash":"` + strings.Repeat("A", 64) + `"}`, "invalid_field"},
				"updates not an array":     {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":{"a":1}}`, "invalid_type"},
				"unknown update field":     {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[{"package_type":"apt","package_name":"a","severity":"low","x":1}]}`, "unknown_field"},
				"negative size":            {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","updates":[{"package_type":"apt","package_name":"a","severity":"low","size_bytes":-1}]}`, "invalid_field"},
				"error of another scanner": {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","errors":[{"scanner":"dnf","message":"x"}]}`, "invalid_field"},
				"error with NUL":           {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","errors":[{"scanner":"apt","message":"a\u0000b"}]}`, "invalid_field"},
				"negative interval":        {`{"scanner":"apt","scanned_at":"2026-11-25T10:00:00Z","interval_seconds":-5,"updates":[]}`, "invalid_field"},
			}
			for name, c := range cases {
				refused(t, ts, name, reportReq(ag, c.body), http.StatusBadRequest, c.code)
			}
			// The set is untouched.
			if l, _, _ := ts.Server.Store().ListUpdates(context.Background(), store.UpdateFilter{AgentID: ag.ID}); len(l) != 1 || l[0].Status != "pending" {
				t.Errorf("updates after the refusals: %+v", l)
			}
		})
	}
}

const api20001 = 20001

// updateReportRoundTrip sends SQL metacharacters and unicode in every text
// field of a report and reads them back from the user API; the q filter
// takes them literally.
func updateReportRoundTrip(t *testing.T, f *badFixture) {
	u := protocol.Update{PackageType: "apt", PackageName: sqlLong, CurrentVersion: sqlText, AvailableVersion: sqlLong, Severity: "moderate",
		Source: sqlText, CVEIDs: []string{sqlText}, SizeBytes: 7, Metadata: map[string]string{"arch": sqlLong, sqlShort: sqlText}}
	other := u
	other.PackageName = "plain-package"
	reportUpdates(t, f.ts, f.a, "apt", u, other)
	for _, q := range []string{`100%_\`, `'); DROP`, "ROBERT'); drop", "🚀 日本", "Ωé"} {
		l := listUpdates(t, f.ts, f.admin, "agent_id="+f.a.ID+"&q="+url.QueryEscape(q))
		if l.Total != 1 || len(l.Items) != 1 {
			t.Errorf("q=%q: %d updates, want the one named %q", q, l.Total, sqlLong)
			continue
		}
		got := l.Items[0]
		if got.PackageName != u.PackageName || got.CurrentVersion != u.CurrentVersion || got.AvailableVersion != u.AvailableVersion ||
			got.Source != u.Source || !slices.Equal(got.CVEIDs, u.CVEIDs) || got.Metadata["arch"] != sqlLong || got.Metadata[sqlShort] != sqlText {
			t.Errorf("report text did not round-trip: %+v", got)
		}
	}
}
