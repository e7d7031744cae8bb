package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// setupToken waits for the setup URL the server logs when no admin exists
// and returns the token in it.
func setupToken(t *testing.T, ts *testserver.TS) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range logLines(t, ts.Logs.String()) {
			if s, ok := line["setup_url"].(string); ok {
				u, err := url.Parse(s)
				if err != nil || u.Query().Get("token") == "" {
					t.Fatalf("setup_url %q has no token", s)
				}
				return u.Query().Get("token")
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no setup_url in the log:\n%s", ts.Logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthInfoOpenAPI checks the public operational routes.
func TestHealthInfoOpenAPI(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			var health map[string]any
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/health"}).JSON(t, &health)
			if len(health) != 1 || health["status"] != "ok" {
				t.Errorf(`/health = %v, want {"status":"ok"}`, health)
			}

			var info map[string]any
			r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/info"})
			r.JSON(t, &info)
			for _, k := range []string{"version", "commit", "build_date", "min_agent_version"} {
				if s, ok := info[k].(string); !ok || s == "" {
					t.Errorf("/api/v1/info %q = %v, want a non-empty string", k, info[k])
				}
			}
			if v, ok := info["schema_version"].(float64); !ok || v < 1 || v != float64(ts.Server.Store().SchemaVersion()) {
				t.Errorf("/api/v1/info schema_version = %v, want the store's %d", info["schema_version"], ts.Server.Store().SchemaVersion())
			}
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("/api/v1/info Content-Type %q", r.Header.Get("Content-Type"))
			}

			var doc struct {
				OpenAPI string                               `json:"openapi"`
				Paths   map[string]map[string]map[string]any `json:"paths"`
			}
			r = ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/openapi.json"})
			if !json.Valid(r.Body) {
				t.Fatalf("openapi.json is not valid JSON")
			}
			r.JSON(t, &doc)
			if !strings.HasPrefix(doc.OpenAPI, "3.") {
				t.Errorf(`openapi = %q, want "3.x"`, doc.OpenAPI)
			}
			routes := ts.Server.API().Routes()
			for _, rt := range routes {
				op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
				if !ok {
					t.Errorf("openapi.json has no operation for %s %s", rt.Method, rt.Path)
					continue
				}
				if _, ok := op["responses"]; !ok {
					t.Errorf("openapi.json %s %s has no responses", rt.Method, rt.Path)
				}
				if rt.Request != nil {
					if _, ok := op["requestBody"]; !ok {
						t.Errorf("openapi.json %s %s takes a body but documents none", rt.Method, rt.Path)
					}
				}
			}
			n := 0
			for _, ops := range doc.Paths {
				n += len(ops)
			}
			if n != len(routes) {
				t.Errorf("openapi.json documents %d operations, the router has %d routes", n, len(routes))
			}
		})
	}
}

// TestMetrics checks the Prometheus output: request counts by route
// pattern, latency, agents by status and the database pools.
func TestMetrics(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 5)
			a := ts.RegisterAgent(t, reg, "metrics-a")
			ts.RegisterAgent(t, reg, "metrics-b")
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + a.ID + "/commands", Token: a.Token, MachineID: a.MachineID})
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/health"})
			ts.Expect(t, http.StatusNotFound, testserver.Req{Method: "GET", Path: "/api/v1/no-such-path-4711"})

			r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/metrics"})
			text := string(r.Body)
			for _, re := range []string{
				`(?m)^redflag_http_requests_total\{[^}]*route="GET /health"[^}]*\} [1-9]`,
				`(?m)^redflag_http_requests_total\{[^}]*route="GET /api/v1/agents/\{id\}/commands"[^}]*\} [1-9]`,
				`(?m)^redflag_http_requests_total\{[^}]*route="unmatched"[^}]*\} [1-9]`,
				`(?m)^redflag_http_request_duration_seconds_bucket\{[^}]*route="GET /health"`,
				`(?m)^redflag_http_request_duration_seconds_count\{[^}]*route="POST /api/v1/agents/register"[^}]*\} 2$`,
				`(?m)^redflag_agents\{status="online"\} 2$`,
				`(?m)^redflag_agents\{status="offline"\} 0$`,
				`(?m)^go_sql_open_connections\{db_name="[a-z]+"\} \d+`,
				`(?m)^go_sql_max_open_connections\{db_name="[a-z]+"\} [1-9]`,
				`(?m)^go_goroutines \d+`,
			} {
				if !regexp.MustCompile(re).MatchString(text) {
					t.Errorf("/metrics does not match %s", re)
				}
			}
			// Label values are route patterns, never raw paths (ids would
			// explode the series count).
			if strings.Contains(text, "no-such-path-4711") || strings.Contains(text, a.ID) {
				t.Errorf("/metrics has a raw path or id as a label value")
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("/metrics Content-Type %q, want the Prometheus text format", ct)
			}
		})
	}
}

// TestMetricsToken: with a metrics token configured, /metrics needs it.
func TestMetricsToken(t *testing.T) {
	const tok = "metrics-token-0123456789"
	ts := testserver.Start(t, storetest.Engine("sqlite"), func(c *config.Server) { c.MetricsToken = tok })
	expectError(t, "/metrics without the token", ts.Do(t, testserver.Req{Method: "GET", Path: "/metrics"}), http.StatusUnauthorized, "unauthorized")
	expectError(t, "/metrics with a wrong token", ts.Do(t, testserver.Req{Method: "GET", Path: "/metrics", Token: tok + "x"}), http.StatusUnauthorized, "unauthorized")
	admin := ts.Login(t)
	expectError(t, "/metrics with a user session", ts.Do(t, testserver.Req{Method: "GET", Path: "/metrics", Token: admin}), http.StatusUnauthorized, "unauthorized")
	r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/metrics", Token: tok})
	if !strings.Contains(string(r.Body), "redflag_http_requests_total") {
		t.Errorf("/metrics with the token has no request metrics")
	}
}

// retryAfter checks a 429 answer: SPEC error shape and a Retry-After of
// whole seconds within max.
func retryAfter(t *testing.T, what string, r testserver.Resp, max int) {
	t.Helper()
	expectError(t, what, r, http.StatusTooManyRequests, "rate_limited")
	n, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || n < 1 || n > max {
		t.Errorf("%s: Retry-After %q, want whole seconds from 1 to %d", what, r.Header.Get("Retry-After"), max)
	}
}

// TestLoginRateLimit: 10 attempts per user name and 20 per client IP in 15
// minutes; past them, 429 with Retry-After, even with the right password.
func TestLoginRateLimit(t *testing.T) {
	loginReq := func(user, pw string) testserver.Req {
		return testserver.Req{Method: "POST", Path: "/api/v1/auth/login", Body: map[string]string{"username": user, "password": pw}}
	}
	t.Run("per user", func(t *testing.T) {
		ts := testserver.Start(t, storetest.Engine("sqlite"))
		for i := 0; i < 10; i++ {
			expectError(t, "wrong password", ts.Do(t, loginReq(testserver.AdminUser, "wrong password number "+strconv.Itoa(i))),
				http.StatusUnauthorized, "bad_credentials")
		}
		retryAfter(t, "11th wrong password", ts.Do(t, loginReq(testserver.AdminUser, "wrong password again")), 15*60)
		retryAfter(t, "right password past the limit", ts.Do(t, loginReq(testserver.AdminUser, testserver.AdminPassword)), 15*60)
		retryAfter(t, "the same user name in capitals", ts.Do(t, loginReq(strings.ToUpper(testserver.AdminUser), testserver.AdminPassword)), 15*60)
		// Another user name from the same address is not limited yet.
		expectError(t, "another user", ts.Do(t, loginReq("someone-else", "some password here")), http.StatusUnauthorized, "bad_credentials")
	})
	t.Run("per IP", func(t *testing.T) {
		ts := testserver.Start(t, storetest.Engine("sqlite"))
		for i := 0; i < 20; i++ {
			expectError(t, "unknown user", ts.Do(t, loginReq("user-"+strconv.Itoa(i), "some password here")), http.StatusUnauthorized, "bad_credentials")
		}
		retryAfter(t, "21st attempt from one address", ts.Do(t, loginReq(testserver.AdminUser, testserver.AdminPassword)), 15*60)
	})
}

// TestAgentRateLimit: past REDFLAG_AGENT_RATE_LIMIT requests a minute an
// agent gets 429 with Retry-After; other agents are unaffected.
func TestAgentRateLimit(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"), func(c *config.Server) { c.AgentRateLimit = 5 })
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 2)
	a := ts.RegisterAgent(t, reg, "limited-a")
	b := ts.RegisterAgent(t, reg, "limited-b")
	checkIn := func(ag testserver.Agent) testserver.Req {
		return testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: ag.Token, MachineID: ag.MachineID}
	}
	for i := 0; i < 5; i++ {
		ts.Expect(t, http.StatusOK, checkIn(a))
	}
	retryAfter(t, "6th check-in in a minute", ts.Do(t, checkIn(a)), 60)
	ts.Expect(t, http.StatusOK, checkIn(b))
	// User routes do not count against the agent.
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + a.ID, Token: admin})
}

// TestSetupFlow: without REDFLAG_ADMIN_* the server logs a one-time setup
// URL; setup works once, with that token only.
func TestSetupFlow(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e, func(c *config.Server) { c.AdminUser, c.AdminPassword = "", "" })
			var st struct {
				SetupRequired *bool `json:"setup_required"`
			}
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/setup"}).JSON(t, &st)
			if st.SetupRequired == nil || !*st.SetupRequired {
				t.Fatalf("setup_required = %v, want true", st.SetupRequired)
			}
			token := setupToken(t, ts)
			if n := strings.Count(ts.Logs.String(), token); n != 1 {
				t.Errorf("the setup token appears %d times in the log, want once (the setup URL)", n)
			}
			expectError(t, "login before setup", ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/auth/login",
				Body: map[string]string{"username": "boss", "password": "boss password 123"}}), http.StatusUnauthorized, "bad_credentials")
			body := func(tok, pw string) testserver.Req {
				return testserver.Req{Method: "POST", Path: "/api/v1/setup", Body: map[string]string{"setup_token": tok, "username": "boss", "password": pw}}
			}
			before := counts(t, ts)
			wrong := "rfsetup_" + strings.Repeat("A", 43)
			refused(t, ts, "setup with a wrong token", body(wrong, "boss password 123"), http.StatusUnauthorized, "invalid_setup_token")
			refused(t, ts, "setup with a malformed token", body("let-me-in", "boss password 123"), http.StatusUnauthorized, "invalid_setup_token")
			refused(t, ts, "setup with a weak password", body(token, "short"), http.StatusBadRequest, "weak_password")
			if after := counts(t, ts); after.Users != before.Users {
				t.Fatalf("refused setups created users")
			}
			var u struct {
				Username string `json:"username"`
				Role     string `json:"role"`
			}
			ts.Expect(t, http.StatusCreated, body(token, "boss password 123")).JSON(t, &u)
			if u.Username != "boss" || u.Role != "admin" {
				t.Errorf("setup answered %+v", u)
			}
			refused(t, ts, "second setup with the same token", body(token, "other password 123"), http.StatusGone, "setup_complete")
			refused(t, ts, "second setup with another token", body(wrong, "other password 123"), http.StatusGone, "setup_complete")
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/setup"}).JSON(t, &st)
			if *st.SetupRequired {
				t.Errorf("setup_required still true after setup")
			}
			s := login(t, ts, "boss", "boss password 123")
			ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: s.Token}).JSON(t, &u)
			if u.Username != "boss" {
				t.Errorf("/me = %+v", u)
			}
		})
	}
}

// TestLogout: logout revokes the session it is called with, clears the
// cookies, and leaves other credentials alone.
func TestLogout(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	s := login(t, ts, testserver.AdminUser, testserver.AdminPassword)
	other := ts.Login(t)
	apiTok, _ := createAPIToken(t, ts, other, "survives logout")
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: s.Token})
	r := ts.Expect(t, http.StatusNoContent, s.cookieReq("POST", "/api/v1/auth/logout", s.CSRF))
	cleared := 0
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if (c.Name == "redflag_session" || c.Name == "redflag_csrf") && c.MaxAge < 0 {
			cleared++
		}
	}
	if cleared != 2 {
		t.Errorf("logout cleared %d of the 2 cookies: %v", cleared, r.Header.Values("Set-Cookie"))
	}
	expectError(t, "session after logout (bearer)", ts.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: s.Token}), http.StatusUnauthorized, "unauthorized")
	expectError(t, "session after logout (cookie)", ts.Do(t, s.cookieReq("GET", "/api/v1/me", "")), http.StatusUnauthorized, "unauthorized")
	expectError(t, "second logout", ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/auth/logout", Token: s.Token}), http.StatusUnauthorized, "unauthorized")
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: other})
	// Logout with an API token is harmless: it does not revoke the token.
	ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "POST", Path: "/api/v1/auth/logout", Token: apiTok})
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: apiTok})
}

// TestPasswordChange: the current password is required; a change ends the
// user's other sessions but not the one that made it.
func TestPasswordChange(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	current := ts.Login(t)
	otherSession := ts.Login(t)
	change := func(tok, cur, next string) testserver.Req {
		return testserver.Req{Method: "POST", Path: "/api/v1/me/password", Token: tok,
			Body: map[string]string{"current_password": cur, "new_password": next}}
	}
	const next = "the next password 2024"
	refused(t, ts, "wrong current password", change(current, "not the password at all", next), http.StatusUnauthorized, "")
	refused(t, ts, "empty current password", change(current, "", next), http.StatusUnauthorized, "")
	refused(t, ts, "weak new password", change(current, testserver.AdminPassword, "short"), http.StatusBadRequest, "weak_password")
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: otherSession})

	ts.Expect(t, http.StatusNoContent, change(current, testserver.AdminPassword, next))
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: current})
	expectError(t, "other session after the change", ts.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: otherSession}),
		http.StatusUnauthorized, "unauthorized")
	expectError(t, "old password", ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/auth/login",
		Body: map[string]string{"username": testserver.AdminUser, "password": testserver.AdminPassword}}), http.StatusUnauthorized, "bad_credentials")
	login(t, ts, testserver.AdminUser, next)
}

// TestAPITokens: the token text is shown once, lists never show it, and a
// revoked token stops working.
func TestAPITokens(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	admin := ts.Login(t)
	var created map[string]any
	ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/api-tokens", Token: admin,
		Body: map[string]any{"name": "ci", "expires_in_seconds": 3600}}).JSON(t, &created)
	tok, _ := created["token"].(string)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(tok, "rfu_") || id == "" || created["name"] != "ci" {
		t.Fatalf("created API token = %v", created)
	}
	if exp, err := time.Parse(time.RFC3339, created["expires_at"].(string)); err != nil || time.Until(exp) < 59*time.Minute || time.Until(exp) > 61*time.Minute {
		t.Errorf("expires_at = %v, want in an hour", created["expires_at"])
	}

	r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/api-tokens", Token: tok})
	if strings.Contains(string(r.Body), tok) || strings.Contains(string(r.Body), tok[4:]) {
		t.Errorf("the token list shows the token text: %s", r.Body)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	r.JSON(t, &list)
	if len(list.Items) != 1 || list.Items[0]["id"] != id {
		t.Fatalf("token list = %s", r.Body)
	}
	for _, k := range []string{"token", "token_hash"} {
		if _, ok := list.Items[0][k]; ok {
			t.Errorf("listed token has a %q field", k)
		}
	}
	// Sessions are not API tokens and are not listed.
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: tok})

	ts.Expect(t, http.StatusNoContent, testserver.Req{Method: "DELETE", Path: "/api/v1/api-tokens/" + id, Token: admin})
	expectError(t, "revoked API token", ts.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/me", Token: tok}), http.StatusUnauthorized, "unauthorized")
	expectError(t, "revoking twice", ts.Do(t, testserver.Req{Method: "DELETE", Path: "/api/v1/api-tokens/" + id, Token: admin}), http.StatusNotFound, "not_found")
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/api-tokens", Token: admin}).JSON(t, &list)
	if len(list.Items) != 0 {
		t.Errorf("revoked token still listed: %v", list.Items)
	}
}

// TestStopRefusesNewConnections: Stop returns without error and the server
// then refuses connections. (In-flight requests finishing during shutdown:
// TestGracefulShutdownFinishesInFlight.)
func TestStopRefusesNewConnections(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/health"})
	done := make(chan struct{})
	go func() { ts.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	ts.Client.CloseIdleConnections()
	if r, err := ts.Try(testserver.Req{Method: "GET", Path: "/health"}); err == nil {
		t.Fatalf("request after Stop answered %d, want a connection error", r.Status)
	}
	if !strings.Contains(ts.Logs.String(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" line in the log")
	}
}

// TestSetupTokenWorksOnce: concurrent setups with the right token create
// exactly one admin, on every engine (PostgreSQL runs them truly in parallel).
func TestSetupTokenWorksOnce(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e, func(c *config.Server) { c.AdminUser, c.AdminPassword = "", "" })
			token := setupToken(t, ts)
			const n = 6
			statuses := make(chan int, n)
			start := make(chan struct{})
			for i := 0; i < n; i++ {
				go func() {
					<-start
					r, err := ts.Try(testserver.Req{Method: "POST", Path: "/api/v1/setup",
						Body: map[string]string{"setup_token": token, "username": "admin-" + strconv.Itoa(i), "password": "racing password 123"}})
					if err != nil {
						statuses <- -1
						return
					}
					statuses <- r.Status
				}()
			}
			close(start)
			created := 0
			for i := 0; i < n; i++ {
				switch s := <-statuses; s {
				case http.StatusCreated:
					created++
				case http.StatusGone, http.StatusUnauthorized:
				default:
					t.Errorf("concurrent setup answered %d", s)
				}
			}
			if c := counts(t, ts); created != 1 || c.Users != 1 {
				t.Errorf("%d concurrent setups with one token: %d answered 201, %d users exist; want exactly 1", n, created, c.Users)
			}
		})
	}
}

// TestHealthWhenDatabaseIsDown: /health is 503 once the database stops answering.
func TestHealthWhenDatabaseIsDown(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/health"})
	if err := ts.Server.Store().Close(); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Status string `json:"status"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	ts.Expect(t, http.StatusServiceUnavailable, testserver.Req{Method: "GET", Path: "/health"}).JSON(t, &body)
	if body.Status == "ok" || body.Error.Code == "" {
		t.Errorf("/health with the database down = %+v", body)
	}
}

// TestRegistrationTokenShownOnce: the token text is in the create answer
// only; lists show its state but never the text.
func TestRegistrationTokenShownOnce(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	admin := ts.Login(t)
	var created map[string]any
	ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/registration-tokens", Token: admin,
		Body: map[string]any{"seats": 3, "expires_in_seconds": 600, "note": "lab"}}).JSON(t, &created)
	tok, _ := created["token"].(string)
	if !strings.HasPrefix(tok, "rfr_") || created["seats"] != float64(3) || created["id"] == "" || created["expires_at"] == nil {
		t.Fatalf("created registration token = %v", created)
	}
	r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/registration-tokens", Token: admin})
	if strings.Contains(string(r.Body), tok[4:]) {
		t.Errorf("the registration token list shows the token text: %s", r.Body)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	r.JSON(t, &list)
	if len(list.Items) != 1 || list.Items[0]["status"] != "active" || list.Items[0]["seats_used"] != float64(0) {
		t.Errorf("registration token list = %s", r.Body)
	}
	for _, k := range []string{"token", "token_hash"} {
		if _, ok := list.Items[0][k]; ok {
			t.Errorf("listed registration token has a %q field", k)
		}
	}
}
