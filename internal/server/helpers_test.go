package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/redflaghq/redflag/internal/api"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/testserver"
)

// Helpers shared by the authorization, bad-input, log and operations tests.

var snakeCaseRe = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkError fails unless r is a 4xx answer in the SPEC §3 error shape
// {"error":{"code","message"}} with a snake_case code. It returns the code.
func checkError(t testing.TB, what string, r testserver.Resp) string {
	t.Helper()
	if r.Status < 400 || r.Status > 499 {
		t.Errorf("%s: status %d, want a 4xx; body %.300s", what, r.Status, r.Body)
		return ""
	}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Error == nil {
		t.Errorf("%s: status %d, body is not the SPEC error shape: %.300s", what, r.Status, r.Body)
		return ""
	}
	if !snakeCaseRe.MatchString(body.Error.Code) {
		t.Errorf("%s: error code %q is not snake_case", what, body.Error.Code)
	}
	if body.Error.Message == "" {
		t.Errorf("%s: error %q has no message", what, body.Error.Code)
	}
	return body.Error.Code
}

// expectError is checkError that also wants a given status and, when code is
// not empty, a given error code.
func expectError(t testing.TB, what string, r testserver.Resp, status int, code string) {
	t.Helper()
	got := checkError(t, what, r)
	if r.Status != status {
		t.Errorf("%s: status %d, want %d; body %.300s", what, r.Status, status, r.Body)
	}
	if code != "" && got != code {
		t.Errorf("%s: error code %q, want %q", what, got, code)
	}
}

// counts reads the row counts used to prove that a refused request wrote nothing.
func counts(t testing.TB, ts *testserver.TS) store.Counts {
	t.Helper()
	c, err := ts.Server.Store().CountAll(context.Background())
	if err != nil {
		t.Fatalf("counting rows: %v", err)
	}
	return c
}

// session is a dashboard sign-in: the bearer token, the cookies the login set
// and the CSRF value from the redflag_csrf cookie.
type session struct {
	Token   string
	Cookies []*http.Cookie
	CSRF    string
}

// cookieReq is a request authenticated by the session cookie only (as a
// browser sends it), with the X-CSRF-Token header when csrf is not empty.
func (s session) cookieReq(method, path, csrf string) testserver.Req {
	q := testserver.Req{Method: method, Path: path, Header: map[string]string{}}
	for _, c := range s.Cookies {
		if c.Name == api.SessionCookie {
			q.Cookies = append(q.Cookies, c)
		}
	}
	if csrf != "" {
		q.Header[api.CSRFHeader] = csrf
	}
	return q
}

// login signs in over HTTP and returns the session with its cookies.
func login(t testing.TB, ts *testserver.TS, user, password string) session {
	t.Helper()
	r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/auth/login",
		Body: map[string]string{"username": user, "password": password}})
	var out struct {
		Token string `json:"token"`
	}
	r.JSON(t, &out)
	s := session{Token: out.Token, Cookies: (&http.Response{Header: r.Header}).Cookies()}
	var haveSession bool
	for _, c := range s.Cookies {
		switch c.Name {
		case api.CSRFCookie:
			s.CSRF = c.Value
		case api.SessionCookie:
			haveSession = c.Value == out.Token
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie must be HttpOnly and SameSite=Strict: %+v", c)
			}
		}
	}
	if out.Token == "" || s.CSRF == "" || !haveSession {
		t.Fatalf("login did not set the session and CSRF cookies: token %q, cookies %v", out.Token, s.Cookies)
	}
	return s
}

// createAPIToken makes a user API token and returns its text and id.
func createAPIToken(t testing.TB, ts *testserver.TS, admin, name string) (token, id string) {
	t.Helper()
	var out struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/api-tokens", Token: admin,
		Body: map[string]any{"name": name}}).JSON(t, &out)
	if out.Token == "" || out.ID == "" {
		t.Fatalf("API token answer without token or id: %+v", out)
	}
	return out.Token, out.ID
}

// queueAndClaim queues collect_specs for ag and checks ag in, so the
// command is sent and awaits its result; it returns the command id.
func queueAndClaim(t *testing.T, ts *testserver.TS, admin string, ag testserver.Agent) string {
	t.Helper()
	var out struct {
		Commands []struct {
			ID string `json:"id"`
		} `json:"commands"`
	}
	ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin,
		Body: map[string]any{"agent_ids": []string{ag.ID}, "type": "collect_specs"}}).JSON(t, &out)
	var ci protocol.CheckInResponse
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands",
		Token: ag.Token, MachineID: ag.MachineID}).JSON(t, &ci)
	if len(out.Commands) != 1 || len(ci.Commands) != 1 || ci.Commands[0].ID != out.Commands[0].ID {
		t.Fatalf("queue and claim: queued %+v, delivered %+v", out, ci)
	}
	return ci.Commands[0].ID
}
