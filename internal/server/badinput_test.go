package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/api"
	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/logging"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/server"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// Text that must be accepted and come back byte for byte: SQL
// metacharacters, LIKE wildcards, HTML, quotes and non-ASCII. sqlText fits
// fields of 64 bytes and more, sqlShort fields of 32.
const (
	sqlText  = `Robert'); DROP TABLE agents;-- 🚀 日本`
	sqlLong  = `Robert'); DROP TABLE agents;-- "q" <b>&amp; 100%_\ 🚀 日本 Ωé`
	sqlShort = `'); DROP TABLE x;--%_\🚀日本`
)

// sqlValue picks the richest test text that fits max bytes.
func sqlValue(max int) string {
	for _, s := range []string{sqlLong, sqlText, sqlShort} {
		if len(s) <= max {
			return s
		}
	}
	return strings.Repeat("日", max/3)
}

// textField is a free-text field of a body: its path into the body ("name",
// "disks.0.mount") and its limit in bytes.
type textField struct {
	path string
	max  int
}

// bodySpec describes a route that takes a JSON body.
type bodySpec struct {
	// req is the method, path and credentials of a request that reaches the
	// body decoder (the body is added by each case).
	req func(f *badFixture) testserver.Req
	// valid returns a fresh body the route's validation accepts.
	valid func(f *badFixture) map[string]any
	// text lists the free-text fields: NUL, control characters and invalid
	// UTF-8 are refused there; SQL metacharacters and unicode are accepted.
	text []textField
	// largeBody: the route takes bodies up to api.MaxReportBodyBytes.
	largeBody bool
	// roundTrip, when set, sends SQL metacharacters and unicode in every text
	// field and checks they come back exactly. Without it the test only
	// checks that such a body is not refused as bad input.
	roundTrip func(t *testing.T, f *badFixture)
}

// badFixture is the state the bad-input cases run against.
type badFixture struct {
	ts       *testserver.TS
	admin    string
	regToken string
	// a sends reports, spare's refresh token backs the renew cases, and
	// rebound is the target of the rebind cases (so a rebind that wrongly
	// succeeds cannot break the other routes' cases).
	a, spare, rebound testserver.Agent
	// sentCommand is a command a has checked in and not yet answered.
	sentCommand string
	// update is one of a's updates.
	update string
}

// bodyTable has one entry per route with a JSON body (a route's Request is
// not nil), keyed "METHOD PATH"; a new body route without an entry fails.
var bodyTable = map[string]bodySpec{
	"POST /api/v1/setup": {
		req: func(*badFixture) testserver.Req { return testserver.Req{Method: "POST", Path: "/api/v1/setup"} },
		valid: func(*badFixture) map[string]any {
			return map[string]any{"setup_token": "rfsetup_not-the-token", "username": "second-admin", "password": "a long enough password"}
		},
		text: []textField{{"setup_token", 256}, {"username", 64}},
		// Round trip: TestSetupAcceptsAnyText (setup needs a server without an admin).
	},
	"POST /api/v1/auth/login": {
		req: func(*badFixture) testserver.Req { return testserver.Req{Method: "POST", Path: "/api/v1/auth/login"} },
		valid: func(*badFixture) map[string]any {
			return map[string]any{"username": testserver.AdminUser, "password": testserver.AdminPassword}
		},
		text: []textField{{"username", 64}, {"totp", 16}},
	},
	"POST /api/v1/agents/register": {
		req: func(*badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/agents/register"}
		},
		valid: func(f *badFixture) map[string]any {
			return map[string]any{"registration_token": f.regToken, "hostname": "bad-input", "os_type": "linux", "os_version": "Debian 12",
				"os_arch": "amd64", "agent_version": "0.1.0", "machine_id": testserver.MachineID("bad-input")}
		},
		text:      []textField{{"registration_token", 256}, {"hostname", 255}, {"os_version", 255}, {"os_arch", 32}, {"agent_version", 64}},
		roundTrip: registerRoundTrip,
	},
	"POST /api/v1/agents/renew": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: f.spare.MachineID}
		},
		valid: func(f *badFixture) map[string]any {
			return map[string]any{"agent_id": f.spare.ID, "refresh_token": f.spare.RefreshToken}
		},
		text: []textField{{"agent_id", 64}, {"refresh_token", 256}},
	},
	"POST /api/v1/me/password": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/me/password", Token: f.admin}
		},
		valid: func(*badFixture) map[string]any {
			return map[string]any{"current_password": testserver.AdminPassword, "new_password": "another long password"}
		},
		// Passwords are secrets, not text: only their hash is stored. The
		// round trip of an SQL/unicode password is in TestSetupAcceptsAnyText.
	},
	"POST /api/v1/api-tokens": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/api-tokens", Token: f.admin}
		},
		valid:     func(*badFixture) map[string]any { return map[string]any{"name": "ci", "expires_in_seconds": 3600} },
		text:      []textField{{"name", 100}},
		roundTrip: apiTokenRoundTrip,
	},
	"POST /api/v1/registration-tokens": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/registration-tokens", Token: f.admin}
		},
		valid: func(*badFixture) map[string]any {
			return map[string]any{"seats": 2, "expires_in_seconds": 3600, "note": "rack 4"}
		},
		text:      []textField{{"note", 500}},
		roundTrip: registrationTokenRoundTrip,
	},
	"POST /api/v1/agents/{id}/rebind": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/agents/" + f.rebound.ID + "/rebind", Token: f.admin}
		},
		valid: func(*badFixture) map[string]any { return map[string]any{"machine_id": testserver.MachineID("rebound")} },
	},
	"POST /api/v1/agents/upgrade": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/agents/upgrade", Token: f.admin}
		},
		valid: func(f *badFixture) map[string]any {
			return map[string]any{"agent_ids": []any{f.rebound.ID}, "version": "1.1.0", "rollback": false}
		},
		// version is a semantic version, not free text: no text fields.
		largeBody: true,
	},
	"POST /api/v1/commands": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: f.admin}
		},
		valid: func(f *badFixture) map[string]any {
			return map[string]any{"agent_ids": []any{f.rebound.ID}, "type": "scan_updates", "params": map[string]any{"scanners": []any{"apt"}}}
		},
		text:      []textField{{"params.scanners.0", 32}},
		largeBody: true,
	},
	"POST /api/v1/agents/{id}/reports/updates": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/agents/" + f.a.ID + "/reports/updates", Token: f.a.Token, MachineID: f.a.MachineID}
		},
		valid: func(*badFixture) map[string]any {
			return map[string]any{"scanner": "apt", "scanned_at": "2026-11-25T10:00:00Z", "interval_seconds": 21600, "errors": []any{},
				"updates": []any{map[string]any{"package_type": "apt", "package_name": "openssl", "current_version": "3.0.2",
					"available_version": "3.0.3", "severity": "critical", "source": "bookworm-security", "cve_ids": []any{"CVE-2031-0001"},
					"size_bytes": 1234, "requires_reboot": false, "metadata": map[string]any{"arch": "amd64"}}}}
		},
		text: []textField{{"updates.0.package_name", 512}, {"updates.0.current_version", 255}, {"updates.0.available_version", 255},
			{"updates.0.source", 255}, {"updates.0.cve_ids.0", 64}, {"updates.0.metadata.arch", 1024}},
		largeBody: true,
		roundTrip: updateReportRoundTrip,
	},
	"POST /api/v1/updates/approve": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/updates/approve", Token: f.admin}
		},
		valid: func(f *badFixture) map[string]any {
			return map[string]any{"update_ids": []any{f.update}, "dry_run": false}
		},
	},
	"POST /api/v1/updates/reject": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/updates/reject", Token: f.admin}
		},
		valid: func(f *badFixture) map[string]any { return map[string]any{"update_ids": []any{f.update}} },
	},
	"POST /api/v1/updates/ignore": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/updates/ignore", Token: f.admin}
		},
		valid: func(f *badFixture) map[string]any { return map[string]any{"update_ids": []any{f.update}} },
	},
	"POST /api/v1/updates/confirm": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/updates/confirm", Token: f.admin}
		},
		valid: func(f *badFixture) map[string]any { return map[string]any{"update_ids": []any{f.update}} },
	},
	"PUT /api/v1/settings": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "PUT", Path: "/api/v1/settings", Token: f.admin}
		},
		valid: func(*badFixture) map[string]any { return map[string]any{"command_timeout_seconds": 600} },
	},
	"POST /api/v1/agents/{id}/commands/{command_id}/result": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/agents/" + f.a.ID + "/commands/" + f.sentCommand + "/result",
				Token: f.a.Token, MachineID: f.a.MachineID}
		},
		valid: func(*badFixture) map[string]any {
			return map[string]any{"status": "succeeded", "exit_code": 0, "output": "done", "started_at": "2026-11-25T10:00:00Z",
				"finished_at": "2026-11-25T10:00:01Z", "details": map[string]any{}}
		},
	},
	"POST /api/v1/agents/{id}/reports/system": {
		req: func(f *badFixture) testserver.Req {
			return testserver.Req{Method: "POST", Path: "/api/v1/agents/" + f.a.ID + "/reports/system", Token: f.a.Token, MachineID: f.a.MachineID}
		},
		valid: func(*badFixture) map[string]any {
			return map[string]any{"os_type": "linux", "os_version": "Debian 12", "os_arch": "amd64", "kernel": "6.1.0-18-amd64",
				"hostname": "web-01", "cpu_model": "EPYC", "cpu_cores": 4, "memory_bytes": 1 << 30, "uptime_seconds": 60,
				"disks":           []any{map[string]any{"mount": "/", "filesystem": "ext4", "total_bytes": 100, "used_bytes": 50}},
				"reboot_required": false, "package_managers": []any{"apt"}}
		},
		text: []textField{{"os_version", 255}, {"os_arch", 32}, {"kernel", 255}, {"hostname", 255}, {"cpu_model", 255},
			{"disks.0.mount", 1024}, {"disks.0.filesystem", 64}, {"package_managers.0", 32}},
		roundTrip: systemReportRoundTrip,
	},
}

// setPath sets a dotted path ("disks.0.mount") inside a decoded JSON body.
func setPath(t *testing.T, body map[string]any, path string, v any) {
	t.Helper()
	parts := strings.Split(path, ".")
	var cur any = body
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[p] = v
				return
			}
			cur = c[p]
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n >= len(c) {
				t.Fatalf("bad body path %q", path)
			}
			if last {
				c[n] = v
				return
			}
			cur = c[n]
		default:
			t.Fatalf("bad body path %q", path)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refused sends q and fails unless the answer is a 4xx in the SPEC error shape
// (with the given status and code when they are not zero) that wrote nothing.
func refused(t *testing.T, ts *testserver.TS, what string, q testserver.Req, status int, code string) testserver.Resp {
	t.Helper()
	before := counts(t, ts)
	r := ts.Do(t, q)
	if status != 0 {
		expectError(t, what, r, status, code)
	} else if got := checkError(t, what, r); code != "" && got != code {
		t.Errorf("%s: error code %q, want %q", what, got, code)
	}
	if after := counts(t, ts); after != before {
		t.Errorf("%s: a refused request changed the database: %+v → %+v", what, before, after)
	}
	return r
}

// TestBadInput sends every route that takes a JSON body malformed, mistyped,
// oversize and hostile bodies, on every engine: each is a 4xx in the SPEC
// error shape, never a 500, and writes nothing.
func TestBadInput(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			f := &badFixture{ts: ts, admin: ts.Login(t)}
			f.regToken, _ = ts.RegistrationToken(t, f.admin, 50)
			f.a = ts.RegisterAgent(t, f.regToken, "bad-a")
			f.spare = ts.RegisterAgent(t, f.regToken, "bad-spare")
			f.rebound = ts.RegisterAgent(t, f.regToken, "bad-rebound")
			f.sentCommand = queueAndClaim(t, ts, f.admin, f.a)
			f.update = reportUpdates(t, ts, f.a, "apt", aptUpdate("bad-input-package", "1.0", "low"))[0]

			seen := map[string]bool{}
			for _, rt := range ts.Server.API().Routes() {
				if rt.Request == nil {
					continue
				}
				key := rt.Method + " " + rt.Path
				seen[key] = true
				spec, ok := bodyTable[key]
				if !ok {
					t.Errorf("route %s takes a JSON body but has no entry in bodyTable: add one so its input checks are tested", key)
					continue
				}
				t.Run(key, func(t *testing.T) { checkBodyRoute(t, f, spec) })
			}
			for key := range bodyTable {
				if !seen[key] {
					t.Errorf("bodyTable has an entry for %s but the router has no such route with a JSON body", key)
				}
			}
		})
	}
}

func checkBodyRoute(t *testing.T, f *badFixture, spec bodySpec) {
	ts := f.ts
	with := func(body any) testserver.Req {
		q := spec.req(f)
		q.Body = body
		return q
	}
	valid := mustJSON(t, spec.valid(f))

	// Malformed JSON, empty bodies, trailing data.
	for _, b := range []string{"", " ", "{", `{"`, "{bad json}", `{"a":}`, "[1,2]", `"text"`, "42", "nul", "\x00", "{}}",
		string(valid[:len(valid)-1]), string(valid) + " x", string(valid) + "{}", string(valid) + string(valid), string(valid) + "\x00"} {
		refused(t, ts, fmt.Sprintf("body %.40q", b), with(b), http.StatusBadRequest, "")
	}
	// An unknown field.
	body := spec.valid(f)
	body["surprise_field"] = 1
	refused(t, ts, "unknown field", with(mustJSON(t, body)), http.StatusBadRequest, "unknown_field")
	// A wrong type in every top-level field, and in every text field.
	for k, v := range spec.valid(f) {
		body := spec.valid(f)
		body[k] = wrongType(v)
		refused(t, ts, "wrong type for "+k, with(mustJSON(t, body)), http.StatusBadRequest, "")
	}
	for _, tf := range spec.text {
		body := spec.valid(f)
		setPath(t, body, tf.path, 12345)
		refused(t, ts, "number in text field "+tf.path, with(mustJSON(t, body)), http.StatusBadRequest, "invalid_type")
	}

	// Oversize bodies: 413 body_too_large.
	limit := api.MaxBodyBytes
	if spec.largeBody {
		limit = api.MaxReportBodyBytes
	}
	refused(t, ts, "oversize body", with(paddedBody(limit+1024)), http.StatusRequestEntityTooLarge, "body_too_large")
	if !spec.largeBody {
		// A valid object just over the limit is refused too, whatever it holds.
		b := spec.valid(f)
		b["surprise_field"] = strings.Repeat("x", limit)
		refused(t, ts, "valid body padded past the limit", with(mustJSON(t, b)), http.StatusRequestEntityTooLarge, "body_too_large")
	}

	// Text fields refuse NUL, control characters, line breaks, invalid UTF-8
	// and overlong values with 400.
	for _, tf := range spec.text {
		for _, bad := range []string{"a\x00b", "\x00", "a\x07b", "a\x1bb", "a\x7fb", "a\u0085b", "line\nbreak", "tab\there", "cr\rhere",
			"a\ufffdb", strings.Repeat("a", tf.max+1)} {
			body := spec.valid(f)
			setPath(t, body, tf.path, bad)
			refused(t, ts, fmt.Sprintf("%s = %.20q", tf.path, bad), with(mustJSON(t, body)), http.StatusBadRequest, "")
		}
		// Raw invalid UTF-8 and a lone surrogate escape (both decode to U+FFFD).
		for _, raw := range []string{"a\xffb", "\xc3\x28", "\xed\xa0\x80", `a\ud800b`} {
			body := spec.valid(f)
			setPath(t, body, tf.path, "MARKER-7f3a")
			b := bytes.Replace(mustJSON(t, body), []byte("MARKER-7f3a"), []byte(raw), 1)
			refused(t, ts, fmt.Sprintf("%s with invalid UTF-8 %q", tf.path, raw), with(b), http.StatusBadRequest, "")
		}
	}

	// SQL metacharacters and unicode are text like any other.
	if spec.roundTrip != nil {
		spec.roundTrip(t, f)
	} else if len(spec.text) > 0 {
		body := spec.valid(f)
		for _, tf := range spec.text {
			setPath(t, body, tf.path, sqlValue(tf.max))
		}
		r := ts.Do(t, with(body))
		if r.Status == http.StatusBadRequest || r.Status >= 500 {
			t.Errorf("SQL metacharacters and unicode in every text field: status %d, want them accepted; body %s", r.Status, r.Body)
		}
		if r.Status >= 400 {
			checkError(t, "SQL metacharacters and unicode in every text field", r)
		}
	}
}

// wrongType returns a JSON value of another type than v.
func wrongType(v any) any {
	switch v.(type) {
	case string:
		return 12345
	case bool, int, int64, float64:
		return "12345"
	case []any:
		return map[string]any{"a": 1}
	case map[string]any:
		return []any{1}
	}
	return []any{"x"}
}

// paddedBody is a syntactically valid JSON object of n bytes.
func paddedBody(n int) []byte {
	b := make([]byte, 0, n)
	b = append(b, `{"pad":"`...)
	b = append(b, bytes.Repeat([]byte("x"), n-len(b)-2)...)
	return append(b, `"}`...)
}

func registerRoundTrip(t *testing.T, f *badFixture) {
	ts := f.ts
	body := testserver.RegisterBody(f.regToken, sqlLong, testserver.MachineID("sql-round-trip"))
	body.OSVersion, body.OSArch, body.AgentVersion = sqlText, sqlShort, sqlText
	var reg protocol.RegisterResponse
	ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/agents/register", Body: body}).JSON(t, &reg)
	var ag store.Agent
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + reg.AgentID, Token: f.admin}).JSON(t, &ag)
	if ag.Hostname != body.Hostname || ag.OSVersion != body.OSVersion || ag.OSArch != body.OSArch || ag.AgentVersion != body.AgentVersion {
		t.Errorf("registration text did not round-trip:\n sent %q %q %q %q\n got  %q %q %q %q", body.Hostname, body.OSVersion, body.OSArch,
			body.AgentVersion, ag.Hostname, ag.OSVersion, ag.OSArch, ag.AgentVersion)
	}
	// The hostname filter treats LIKE wildcards and quotes literally, and
	// ignores ASCII case. (Non-ASCII case folding differs by engine: SQLite's
	// lower() folds ASCII only.)
	for _, q := range []string{`100%_\`, `'); DROP`, "ROBERT'); drop", "🚀 日本", "Ωé"} {
		var list struct {
			Items []store.Agent `json:"items"`
			Total int           `json:"total"`
		}
		ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents?hostname=" + url.QueryEscape(q), Token: f.admin}).JSON(t, &list)
		if list.Total != 1 || len(list.Items) != 1 || list.Items[0].ID != reg.AgentID {
			t.Errorf("hostname filter %q: %d agents, want only the one named %q", q, list.Total, sqlLong)
		}
	}
	// The X-Agent-Version of a check-in is text too.
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + reg.AgentID + "/commands", Token: reg.Token,
		MachineID: testserver.MachineID("sql-round-trip"), Header: map[string]string{protocol.HeaderAgentVersion: sqlText}})
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + reg.AgentID, Token: f.admin}).JSON(t, &ag)
	if ag.AgentVersion != sqlText {
		t.Errorf("X-Agent-Version did not round-trip: %q", ag.AgentVersion)
	}
}

func apiTokenRoundTrip(t *testing.T, f *badFixture) {
	var created struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	f.ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/api-tokens", Token: f.admin,
		Body: map[string]any{"name": sqlLong}}).JSON(t, &created)
	var list struct {
		Items []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/api-tokens", Token: f.admin}).JSON(t, &list)
	found := false
	for _, it := range list.Items {
		if it.ID == created.ID {
			found = it.Name == sqlLong
		}
	}
	if created.Name != sqlLong || !found {
		t.Errorf("API token name did not round-trip: created %q, listed %+v", created.Name, list.Items)
	}
}

func registrationTokenRoundTrip(t *testing.T, f *badFixture) {
	var created struct {
		ID   string `json:"id"`
		Note string `json:"note"`
	}
	f.ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/registration-tokens", Token: f.admin,
		Body: map[string]any{"note": sqlLong}}).JSON(t, &created)
	var list struct {
		Items []struct {
			ID   string `json:"id"`
			Note string `json:"note"`
		} `json:"items"`
	}
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/registration-tokens?limit=500", Token: f.admin}).JSON(t, &list)
	found := false
	for _, it := range list.Items {
		if it.ID == created.ID {
			found = it.Note == sqlLong
		}
	}
	if created.Note != sqlLong || !found {
		t.Errorf("registration token note did not round-trip: created %q, listed %+v", created.Note, list.Items)
	}
}

func systemReportRoundTrip(t *testing.T, f *badFixture) {
	rep := protocol.SystemReport{OSType: "linux", OSVersion: sqlLong, OSArch: sqlShort, Kernel: sqlLong, Hostname: sqlText, CPUModel: sqlLong,
		CPUCores: 2, MemoryBytes: 1 << 30, UptimeSeconds: 7,
		Disks:           []protocol.Disk{{Mount: sqlLong, Filesystem: sqlText, TotalBytes: 10, UsedBytes: 3}},
		PackageManagers: []string{sqlShort, "apt"}}
	f.ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + f.a.ID + "/reports/system",
		Token: f.a.Token, MachineID: f.a.MachineID, Body: rep})
	var ag store.Agent
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + f.a.ID, Token: f.admin}).JSON(t, &ag)
	var got protocol.SystemReport
	if err := json.Unmarshal(ag.SystemInfo, &got); err != nil {
		t.Fatalf("system_info %s: %v", ag.SystemInfo, err)
	}
	if !bytes.Equal(mustJSON(t, got), mustJSON(t, rep)) {
		t.Errorf("system report did not round-trip:\n sent %s\n got  %s", mustJSON(t, rep), mustJSON(t, got))
	}
}

// TestSetupAcceptsAnyText creates the first admin with SQL metacharacters
// and unicode in the user name and password, signs in with them, and
// changes the password to another such text.
func TestSetupAcceptsAnyText(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e, func(c *config.Server) { c.AdminUser, c.AdminPassword = "", "" })
			token := setupToken(t, ts)
			user, pw := `O'Brien"); DROP TABLE users;-- 🚀 日本`, `pässwörd'); DROP TABLE users;-- 🔑`
			var u struct {
				Username string `json:"username"`
			}
			ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/setup",
				Body: map[string]string{"setup_token": token, "username": user, "password": pw}}).JSON(t, &u)
			if u.Username != user {
				t.Errorf("setup answered username %q, want %q", u.Username, user)
			}
			s := login(t, ts, user, pw)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: s.Token}).JSON(t, &u)
			if u.Username != user {
				t.Errorf("/me username %q, want %q", u.Username, user)
			}
			next := `new'); DELETE FROM user_tokens;-- 日本語のパスワード`
			ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "POST", Path: "/api/v1/me/password", Token: s.Token,
				Body: map[string]string{"current_password": pw, "new_password": next}})
			login(t, ts, user, next)
		})
	}
}

// TestMissingAndMalformedIDs: every user route with an {id} answers 404 for
// a UUID that names nothing and for ids that are not UUIDs, and changes nothing.
func TestMissingAndMalformedIDs(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			f := &badFixture{ts: ts, admin: ts.Login(t)}
			f.regToken, _ = ts.RegistrationToken(t, f.admin, 5)
			f.a = ts.RegisterAgent(t, f.regToken, "ids-a")
			f.spare = ts.RegisterAgent(t, f.regToken, "ids-spare")
			f.rebound = ts.RegisterAgent(t, f.regToken, "ids-rebound")
			n := 0
			for _, rt := range ts.Server.API().Routes() {
				if rt.Auth != api.AuthUser || !placeholderRe.MatchString(rt.Path) {
					continue
				}
				n++
				key := rt.Method + " " + rt.Path
				var body any
				if spec, ok := bodyTable[key]; ok {
					body = spec.valid(f)
				}
				for _, id := range []string{uuid.NewString(), strings.ToUpper(uuid.NewString()), "not-a-uuid", "12345",
					"1' OR '1'='1", "00000000-0000-0000-0000-00000000000g", uuid.NewString() + "0", "%00", "日本"} {
					path := placeholderRe.ReplaceAllString(rt.Path, url.PathEscape(id))
					refused(t, ts, fmt.Sprintf("%s with id %q", key, id), testserver.Req{Method: rt.Method, Path: path, Token: f.admin, Body: body},
						http.StatusNotFound, "not_found")
				}
			}
			if n == 0 {
				t.Fatal("no user route with an {id}: the router changed shape")
			}
		})
	}
}

// TestRegistrationRefused: unknown, expired, revoked, deleted and exhausted
// registration tokens are all 401 registration_refused, and none of them
// consumes a seat or creates an agent.
func TestRegistrationRefused(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			reg := func(token, label string) testserver.Req {
				return testserver.Req{Method: "POST", Path: "/api/v1/agents/register",
					Body: testserver.RegisterBody(token, label, testserver.MachineID(label))}
			}

			expired, expiredID := ts.RegistrationToken(t, admin, 5)
			dbs := ts.Server.Store().DBs()
			db := dbs["writer"]
			if db == nil {
				db = dbs["main"]
			}
			res, err := db.ExecContext(context.Background(), "UPDATE registration_tokens SET expires_at = $1 WHERE id = $2",
				store.T(time.Now().Add(-time.Minute)), expiredID)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("expiring the token updated %d rows", n)
			}
			revoked, revokedID := ts.RegistrationToken(t, admin, 5)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/registration-tokens/" + revokedID + "/revoke", Token: admin})
			deleted, deletedID := ts.RegistrationToken(t, admin, 5)
			ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "DELETE", Path: "/api/v1/registration-tokens/" + deletedID, Token: admin})
			exhausted, _ := ts.RegistrationToken(t, admin, 1)
			ts.RegisterAgent(t, exhausted, "first-and-last")

			for name, tok := range map[string]string{"expired": expired, "revoked": revoked, "deleted": deleted, "exhausted": exhausted,
				"unknown": "rfr_" + strings.Repeat("A", 43), "not a token": "hello", "SQL": "rfr_' OR 1=1;--" + strings.Repeat("A", 28)} {
				before := counts(t, ts)
				refused(t, ts, name+" registration token", reg(tok, "refused-"+name), http.StatusUnauthorized, "registration_refused")
				if after := counts(t, ts); after.RegistrationSeatsUsed != before.RegistrationSeatsUsed || after.Agents != before.Agents {
					t.Errorf("%s token: seats used %d → %d, agents %d → %d", name, before.RegistrationSeatsUsed, after.RegistrationSeatsUsed,
						before.Agents, after.Agents)
				}
			}
			// The reinstall of a known machine with a refused token does not
			// touch the existing agent's tokens either.
			var list struct {
				Items []struct {
					Status string `json:"status"`
					Seats  int    `json:"seats_used"`
					ID     string `json:"id"`
				} `json:"items"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/registration-tokens", Token: admin}).JSON(t, &list)
			status := map[string]string{}
			for _, it := range list.Items {
				status[it.ID] = it.Status
			}
			if status[expiredID] != "expired" || status[revokedID] != "revoked" {
				t.Errorf("token statuses: %v", status)
			}
		})
	}
}

// TestRefreshAndMachineIDInput: a refresh token works once; renewal from the
// wrong machine is 403 and does not spend the token; machine ids of the
// wrong form are 400 invalid_machine_id wherever they appear.
func TestRefreshAndMachineIDInput(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			regTok, _ := ts.RegistrationToken(t, admin, 5)
			ag := ts.RegisterAgent(t, regTok, "renew-me")
			renew := func(mid, refresh string) testserver.Req {
				return testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: mid,
					Body: protocol.RenewRequest{AgentID: ag.ID, RefreshToken: refresh}}
			}

			refused(t, ts, "renewal from another machine", renew(testserver.MachineID("elsewhere"), ag.RefreshToken), http.StatusForbidden, "machine_mismatch")
			refused(t, ts, "renewal without a machine id", renew("", ag.RefreshToken), http.StatusUnauthorized, "")
			refused(t, ts, "renewal with another agent's id", testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: ag.MachineID,
				Body: protocol.RenewRequest{AgentID: uuid.NewString(), RefreshToken: ag.RefreshToken}}, http.StatusUnauthorized, "unauthorized")
			var rn protocol.RenewResponse
			ts.Expect(t, http.StatusOK, renew(ag.MachineID, ag.RefreshToken)).JSON(t, &rn)
			refused(t, ts, "refresh token used twice", renew(ag.MachineID, ag.RefreshToken), http.StatusUnauthorized, "unauthorized")
			// Used twice at the same time, it still works only once.
			const n = 8
			statuses := make(chan int, n)
			// Every goroutine presents the same token, read before any of
			// them starts: the winner replaces rn.RefreshToken, and a
			// late starter must not pick up the new one.
			shared := rn.RefreshToken
			var mu sync.Mutex
			for i := 0; i < n; i++ {
				go func() {
					r, err := ts.Try(renew(ag.MachineID, shared))
					if err != nil {
						statuses <- -1
						return
					}
					if r.Status == http.StatusOK {
						var out protocol.RenewResponse
						if json.Unmarshal(r.Body, &out) == nil {
							mu.Lock()
							rn.RefreshToken = out.RefreshToken // only one goroutine gets here
							mu.Unlock()
						}
					}
					statuses <- r.Status
				}()
			}
			ok := 0
			for i := 0; i < n; i++ {
				switch s := <-statuses; s {
				case http.StatusOK:
					ok++
				case http.StatusUnauthorized:
				default:
					t.Errorf("concurrent renewal answered %d", s)
				}
			}
			if ok != 1 {
				t.Fatalf("%d concurrent renewals with one refresh token: %d succeeded, want 1", n, ok)
			}
			if c := counts(t, ts); c.RefreshTokens != 1 {
				t.Errorf("after the renewals the agent has %d refresh tokens, want 1", c.RefreshTokens)
			}
			ts.Expect(t, http.StatusOK, renew(ag.MachineID, rn.RefreshToken)).JSON(t, &rn)

			bad := []string{"short", strings.ToUpper(ag.MachineID), ag.MachineID[:63], ag.MachineID + "a", strings.Repeat("z", 64),
				" " + ag.MachineID[1:], "../../etc/passwd", "'; DROP TABLE agents;--"}
			for _, mid := range bad {
				refused(t, ts, "renew X-Machine-ID "+mid, renew(mid, rn.RefreshToken), http.StatusBadRequest, "invalid_machine_id")
				refused(t, ts, "register machine_id "+mid, testserver.Req{Method: "POST", Path: "/api/v1/agents/register",
					Body: testserver.RegisterBody(regTok, "bad-mid", mid)}, http.StatusBadRequest, "invalid_machine_id")
				refused(t, ts, "rebind machine_id "+mid, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + ag.ID + "/rebind", Token: admin,
					Body: map[string]string{"machine_id": mid}}, http.StatusBadRequest, "invalid_machine_id")
				refused(t, ts, "check-in X-Machine-ID "+mid, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands",
					Token: ag.Token, MachineID: mid}, http.StatusBadRequest, "invalid_machine_id")
			}
			// Rebinding to a machine id another agent holds is a conflict.
			other := ts.RegisterAgent(t, regTok, "other")
			refused(t, ts, "rebind to another agent's machine id", testserver.Req{Method: "POST", Path: "/api/v1/agents/" + ag.ID + "/rebind",
				Token: admin, Body: map[string]string{"machine_id": other.MachineID}}, http.StatusConflict, "")
		})
	}
}

// TestWeakJWTSecretRefused: REDFLAG_JWT_SECRET under 32 bytes stops the
// server at start-up with a message that says what to do.
func TestWeakJWTSecretRefused(t *testing.T) {
	for _, secret := range []string{"short", strings.Repeat("x", 31)} {
		dir := t.TempDir()
		cfg := config.Server{Listen: "127.0.0.1:0", DataDir: dir, DatabaseURL: "sqlite://" + filepath.Join(dir, "redflag.db"),
			JWTSecret: secret, AdminUser: testserver.AdminUser, AdminPassword: testserver.AdminPassword, CheckInInterval: 300}
		log, err := logging.New(&testserver.Logs{}, "json", "info")
		if err != nil {
			t.Fatal(err)
		}
		if _, err = server.New(context.Background(), cfg, log); err == nil {
			t.Fatalf("server.New accepted a %d-byte JWT secret", len(secret))
		}
		msg := err.Error()
		if !strings.Contains(msg, "REDFLAG_JWT_SECRET") || !strings.Contains(msg, "32") || !strings.Contains(msg, strconv.Itoa(len(secret))) {
			t.Errorf("weak secret error %q should name REDFLAG_JWT_SECRET, its length and the 32-byte minimum", msg)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("the error repeats the secret: %q", msg)
		}
	}
	// A short secret file in the data directory is refused the same way.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwt.secret"), []byte("tiny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := logging.New(&testserver.Logs{}, "json", "info")
	_, err := server.New(context.Background(), config.Server{Listen: "127.0.0.1:0", DataDir: dir,
		DatabaseURL: "sqlite://" + filepath.Join(dir, "redflag.db"), CheckInInterval: 300}, log)
	if err == nil || !strings.Contains(err.Error(), "jwt.secret") {
		t.Errorf("a short jwt.secret file: err %v, want a refusal naming the file", err)
	}
}
