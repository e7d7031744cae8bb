package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// logLines decodes the server's JSON log, failing on a line that is not JSON.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %.200s", line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// TestLogsHoldNoSecrets runs every credential flow end to end and then
// searches the server's whole log for every secret handed out or sent.
func TestLogsHoldNoSecrets(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			secrets := map[string]string{}
			keep := func(label, v string) {
				if v == "" {
					t.Fatalf("%s is empty", label)
				}
				secrets[label] = v
			}
			keep("admin password", testserver.AdminPassword)

			// Failed logins, with passwords that must not be logged.
			for i, pw := range []string{"wrong-password-Zq9xK", "Tr0ub4dor&3 wrong again"} {
				keep("wrong password "+string(rune('1'+i)), pw)
				expectError(t, "wrong password", ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/auth/login",
					Body: map[string]string{"username": testserver.AdminUser, "password": pw}}), http.StatusUnauthorized, "bad_credentials")
			}
			s1 := login(t, ts, testserver.AdminUser, testserver.AdminPassword)
			keep("first session", s1.Token)
			keep("first CSRF token", s1.CSRF)

			// Password change: a wrong current password, then the real one.
			keep("wrong current password", "not-my-current-password-Q7")
			expectError(t, "password change with a wrong current password", ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/me/password",
				Token: s1.Token, Body: map[string]string{"current_password": "not-my-current-password-Q7", "new_password": "whatever long enough"}}),
				http.StatusUnauthorized, "")
			newPW := "a brand new passphrase 42!"
			keep("new password", newPW)
			ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "POST", Path: "/api/v1/me/password", Token: s1.Token,
				Body: map[string]string{"current_password": testserver.AdminPassword, "new_password": newPW}})
			s2 := login(t, ts, testserver.AdminUser, newPW)
			keep("second session", s2.Token)

			apiTok, _ := createAPIToken(t, ts, s2.Token, "logs")
			keep("API token", apiTok)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: apiTok})

			regTok, _ := ts.RegistrationToken(t, apiTok, 3)
			keep("registration token", regTok)
			ag := ts.RegisterAgent(t, regTok, "logs-agent")
			keep("agent JWT", ag.Token)
			keep("refresh token", ag.RefreshToken)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: ag.Token, MachineID: ag.MachineID})
			var rn protocol.RenewResponse
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: ag.MachineID,
				Body: protocol.RenewRequest{AgentID: ag.ID, RefreshToken: ag.RefreshToken}}).JSON(t, &rn)
			keep("renewed agent JWT", rn.Token)
			keep("renewed refresh token", rn.RefreshToken)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: rn.Token, MachineID: ag.MachineID})
			// The spent refresh token, sent again, is not logged either.
			ts.Expect(t, http.StatusUnauthorized, testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: ag.MachineID,
				Body: protocol.RenewRequest{AgentID: ag.ID, RefreshToken: ag.RefreshToken}})

			// Secrets in query strings and in refused credentials.
			query := "secret-in-query-8d1f"
			keep("token in a query string", query)
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me?token=" + query, Token: s2.Token})
			ts.Do(t, testserver.Req{Method: "GET", Path: "/install/linux?token=" + query + "&arch=amd64"})
			ts.Do(t, testserver.Req{Method: "GET", Path: "/no/such/route?token=" + query})
			bogus := "rfs_" + strings.Repeat("Q", 43)
			keep("refused bearer token", bogus)
			ts.Expect(t, http.StatusUnauthorized, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: bogus})
			// A registration with a malformed body that carries the token.
			ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/agents/register",
				Body: `{"registration_token":"` + regTok + `","hostname":1}`})

			ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "POST", Path: "/api/v1/auth/logout", Token: s2.Token})
			ts.Stop() // the log is complete once the server has stopped

			logs := ts.Logs.String()
			if !strings.Contains(logs, `"msg":"request"`) {
				t.Fatalf("the log holds no request lines; is the server logging at all?\n%s", logs)
			}
			for label, v := range secrets {
				for _, form := range secretForms(v) {
					if strings.Contains(logs, form) {
						t.Errorf("the log contains the %s (%q)", label, form)
					}
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s", logs)
			}
		})
	}
}

// secretForms is a secret as it could appear in a log: whole, without its
// token prefix, URL-escaped, JSON-escaped, and a JWT's signature alone.
func secretForms(v string) []string {
	forms := []string{v, url.QueryEscape(v)}
	if b, err := json.Marshal(v); err == nil {
		forms = append(forms, strings.Trim(string(b), `"`))
	}
	if i := strings.IndexByte(v, '_'); i > 0 && i < 10 && strings.HasPrefix(v, "rf") {
		forms = append(forms, v[i+1:])
	}
	if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) > 20 {
		forms = append(forms, parts[2])
	}
	return forms
}

// TestRequestIDs: every response and every request log line carries a
// request id; a well-formed X-Request-ID from the client is kept and echoed,
// a malformed one replaced.
func TestRequestIDs(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/health", Header: map[string]string{"X-Request-ID": "abc-123"}})
	if got := r.Header.Get("X-Request-ID"); got != "abc-123" {
		t.Errorf("X-Request-ID echoed as %q, want abc-123", got)
	}
	for _, bad := range []string{"has spaces in it", strings.Repeat("x", 65), "quote\"and{json}", "日本"} {
		r := ts.Do(t, testserver.Req{Method: "GET", Path: "/health", Header: map[string]string{"X-Request-ID": bad}})
		if got := r.Header.Get("X-Request-ID"); got == "" || got == bad {
			t.Errorf("malformed X-Request-ID %q answered with %q, want a fresh id", bad, got)
		}
	}
	// Errors and unknown routes carry an id too.
	ids := map[string]bool{}
	for _, q := range []testserver.Req{{Method: "GET", Path: "/api/v1/me"}, {Method: "GET", Path: "/nope"},
		{Method: "POST", Path: "/api/v1/auth/login", Body: "{"}, {Method: "DELETE", Path: "/health"}} {
		r := ts.Do(t, q)
		id := r.Header.Get("X-Request-ID")
		if id == "" || ids[id] {
			t.Errorf("%s %s: X-Request-ID %q, want a fresh one", q.Method, q.Path, id)
		}
		ids[id] = true
	}
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 1)
	ts.RegisterAgent(t, reg, "rid")
	ts.Stop()

	found := false
	requests := 0
	for _, line := range logLines(t, ts.Logs.String()) {
		msg, _ := line["msg"].(string)
		id, _ := line["request_id"].(string)
		switch msg {
		case "request", "agent registered":
			if msg == "request" {
				requests++
			}
			if id == "" {
				t.Errorf("%s log line without request_id: %v", msg, line)
			}
		}
		if id == "abc-123" && msg == "request" && line["path"] == "/health" {
			found = true
		}
	}
	if requests < 10 {
		t.Errorf("only %d request log lines", requests)
	}
	if !found {
		t.Errorf("no request log line with request_id abc-123 for /health:\n%s", ts.Logs.String())
	}
}
