package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/api"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// authzEntry is one row of the authorization matrix.
type authzEntry struct {
	// auth is the kind the route must be registered with; a route that
	// silently changes kind (a user route turned public) fails the test.
	auth api.AuthKind
	// ids says what each {placeholder} of the path names: "agent",
	// "api_token", "registration_token" or "command". On agent routes,
	// "agent" is the calling agent (or, for the cross-agent check, the other).
	ids map[string]string
	// Public routes only: the request that shows the route answers without
	// credentials, and the status it must get (never 401 or 403).
	public func(f *authzFixture) testserver.Req
	want   int
	// endsSession: the route revokes the session that calls it (logout), so
	// its positive checks use throwaway sessions.
	endsSession bool
	// stream: the route answers a never-ending stream (SSE); its positive
	// checks are in events_test.go.
	stream bool
}

var (
	agentID = map[string]string{"id": "agent"}
	regID   = map[string]string{"id": "registration_token"}
)

func get(path string) func(*authzFixture) testserver.Req {
	return func(*authzFixture) testserver.Req { return testserver.Req{Method: "GET", Path: path} }
}

// authzTable has one entry per route, keyed "METHOD PATH". Every route of
// the router must have one and every entry must be a route: a new route
// cannot escape the matrix.
var authzTable = map[string]authzEntry{
	// Public.
	"GET /health":              {auth: api.AuthPublic, public: get("/health"), want: http.StatusOK},
	"GET /metrics":             {auth: api.AuthPublic, public: get("/metrics"), want: http.StatusOK},
	"GET /api/v1/info":         {auth: api.AuthPublic, public: get("/api/v1/info"), want: http.StatusOK},
	"GET /api/v1/openapi.json": {auth: api.AuthPublic, public: get("/api/v1/openapi.json"), want: http.StatusOK},
	"GET /api/v1/public-keys":  {auth: api.AuthPublic, public: get("/api/v1/public-keys"), want: http.StatusOK},
	"GET /api/v1/setup":        {auth: api.AuthPublic, public: get("/api/v1/setup"), want: http.StatusOK},
	"POST /api/v1/setup": {auth: api.AuthPublic, want: http.StatusGone, public: func(*authzFixture) testserver.Req {
		return testserver.Req{Method: "POST", Path: "/api/v1/setup",
			Body: map[string]string{"setup_token": "rfsetup_not-the-token", "username": "second", "password": "a long enough password"}}
	}},
	"POST /api/v1/auth/login": {auth: api.AuthPublic, want: http.StatusOK, public: func(*authzFixture) testserver.Req {
		return testserver.Req{Method: "POST", Path: "/api/v1/auth/login",
			Body: map[string]string{"username": testserver.AdminUser, "password": testserver.AdminPassword}}
	}},
	"POST /api/v1/agents/register": {auth: api.AuthPublic, want: http.StatusCreated, public: func(f *authzFixture) testserver.Req {
		return testserver.Req{Method: "POST", Path: "/api/v1/agents/register",
			Body: testserver.RegisterBody(f.regToken, "authz-public", testserver.MachineID("authz-public"))}
	}},
	"POST /api/v1/agents/renew": {auth: api.AuthPublic, want: http.StatusOK, public: func(f *authzFixture) testserver.Req {
		return testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: f.spare.MachineID,
			Body: map[string]string{"agent_id": f.spare.ID, "refresh_token": f.spare.RefreshToken}}
	}},
	"GET /install/{platform}": {auth: api.AuthPublic, public: get("/install/linux"), want: http.StatusOK},
	// The fixture's server has no binaries: 404 agent_binary_missing, not 401.
	"GET /api/v1/downloads/agent/{os}/{arch}": {auth: api.AuthPublic, public: get("/api/v1/downloads/agent/linux/amd64"), want: http.StatusNotFound},

	// Users.
	"POST /api/v1/auth/logout":                     {auth: api.AuthUser, endsSession: true},
	"GET /api/v1/me":                               {auth: api.AuthUser},
	"POST /api/v1/me/password":                     {auth: api.AuthUser},
	"GET /api/v1/api-tokens":                       {auth: api.AuthUser},
	"POST /api/v1/api-tokens":                      {auth: api.AuthUser},
	"DELETE /api/v1/api-tokens/{id}":               {auth: api.AuthUser, ids: map[string]string{"id": "api_token"}},
	"GET /api/v1/registration-tokens":              {auth: api.AuthUser},
	"POST /api/v1/registration-tokens":             {auth: api.AuthUser},
	"POST /api/v1/registration-tokens/{id}/revoke": {auth: api.AuthUser, ids: regID},
	"DELETE /api/v1/registration-tokens/{id}":      {auth: api.AuthUser, ids: regID},
	"GET /api/v1/agents":                           {auth: api.AuthUser},
	"GET /api/v1/agents/{id}":                      {auth: api.AuthUser, ids: agentID},
	"DELETE /api/v1/agents/{id}":                   {auth: api.AuthUser, ids: agentID},
	"POST /api/v1/agents/{id}/rebind":              {auth: api.AuthUser, ids: agentID},
	"POST /api/v1/agents/upgrade":                  {auth: api.AuthUser},
	"POST /api/v1/agents/{id}/upgrade/retry":       {auth: api.AuthUser, ids: agentID},
	"GET /api/v1/updates":                          {auth: api.AuthUser},
	"GET /api/v1/updates/{id}":                     {auth: api.AuthUser, ids: map[string]string{"id": "update"}},
	"POST /api/v1/updates/approve":                 {auth: api.AuthUser},
	"POST /api/v1/updates/reject":                  {auth: api.AuthUser},
	"POST /api/v1/updates/ignore":                  {auth: api.AuthUser},
	"POST /api/v1/updates/confirm":                 {auth: api.AuthUser},
	"GET /api/v1/commands":                         {auth: api.AuthUser},
	"POST /api/v1/commands":                        {auth: api.AuthUser},
	"GET /api/v1/commands/{id}":                    {auth: api.AuthUser, ids: map[string]string{"id": "command"}},
	"POST /api/v1/commands/{id}/cancel":            {auth: api.AuthUser, ids: map[string]string{"id": "command"}},
	"GET /api/v1/settings":                         {auth: api.AuthUser},
	"PUT /api/v1/settings":                         {auth: api.AuthUser},
	"GET /api/v1/security/keys":                    {auth: api.AuthUser},
	"GET /api/v1/audit":                            {auth: api.AuthUser},
	"POST /api/v1/security/keys/rotate":            {auth: api.AuthUser},
	"GET /api/v1/stats/overview":                   {auth: api.AuthUser},
	"GET /api/v1/stats/trends":                     {auth: api.AuthUser},
	"GET /api/v1/events":                           {auth: api.AuthUser, stream: true},

	// Agents.
	"GET /api/v1/agents/{id}/commands":         {auth: api.AuthAgent, ids: agentID},
	"POST /api/v1/agents/{id}/reports/system":  {auth: api.AuthAgent, ids: agentID},
	"POST /api/v1/agents/{id}/reports/updates": {auth: api.AuthAgent, ids: agentID},
	"POST /api/v1/agents/{id}/commands/{command_id}/result": {auth: api.AuthAgent,
		ids: map[string]string{"id": "agent", "command_id": "command"}},
}

// authzFixture holds real credentials and resources, all obtained over HTTP.
type authzFixture struct {
	ts                   *testserver.TS
	admin                session
	apiToken, apiTokenID string
	regToken, regTokenID string
	// a and b are the agents of the cross-agent checks; spare is renewed by
	// the public renew probe.
	a, b, spare testserver.Agent
	commands    map[string]string // agent id → one of its commands
	updates     map[string]string // agent id → one of its updates
}

func newAuthzFixture(t *testing.T, ts *testserver.TS) *authzFixture {
	t.Helper()
	f := &authzFixture{ts: ts, commands: map[string]string{}, updates: map[string]string{}}
	f.admin = login(t, ts, testserver.AdminUser, testserver.AdminPassword)
	f.apiToken, f.apiTokenID = createAPIToken(t, ts, f.admin.Token, "authz")
	f.regToken, f.regTokenID = ts.RegistrationToken(t, f.admin.Token, 10)
	f.a = ts.RegisterAgent(t, f.regToken, "authz-a")
	f.b = ts.RegisterAgent(t, f.regToken, "authz-b")
	f.spare = ts.RegisterAgent(t, f.regToken, "authz-spare")
	return f
}

// resource returns a real id of the given kind; ag is the agent the
// resource belongs to where that matters.
func (f *authzFixture) resource(t *testing.T, kind string, ag testserver.Agent) string {
	t.Helper()
	switch kind {
	case "agent":
		return ag.ID
	case "api_token":
		return f.apiTokenID
	case "registration_token":
		return f.regTokenID
	case "command":
		if id, ok := f.commands[ag.ID]; ok {
			return id
		}
		var out struct {
			Commands []struct {
				ID string `json:"id"`
			} `json:"commands"`
		}
		f.ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: f.admin.Token,
			Body: map[string]any{"agent_ids": []string{ag.ID}, "type": "collect_specs"}}).JSON(t, &out)
		if len(out.Commands) != 1 {
			t.Fatalf("queueing a command for %s: %+v", ag.ID, out)
		}
		f.commands[ag.ID] = out.Commands[0].ID
		return out.Commands[0].ID
	case "update":
		if id, ok := f.updates[ag.ID]; ok {
			return id
		}
		id := reportUpdates(t, f.ts, ag, "apt", aptUpdate("authz-package", "1.0", "low"))[0]
		f.updates[ag.ID] = id
		return id
	}
	t.Fatalf("authzTable: unknown resource kind %q (teach authzFixture.resource to make one)", kind)
	return ""
}

var placeholderRe = regexp.MustCompile(`\{([A-Za-z_]+)\}`)

// fill substitutes every {placeholder} of path with a real resource id.
func (f *authzFixture) fill(t *testing.T, path string, e authzEntry, ag testserver.Agent) string {
	t.Helper()
	return placeholderRe.ReplaceAllStringFunc(path, func(m string) string {
		name := m[1 : len(m)-1]
		kind, ok := e.ids[name]
		if !ok {
			t.Fatalf("authzTable entry for %s does not say what {%s} names", path, name)
		}
		return f.resource(t, kind, ag)
	})
}

// freshIDs substitutes every {placeholder} with a UUID that names nothing, so
// positive checks of unsafe routes cannot change anything.
func freshIDs(path string) string {
	return placeholderRe.ReplaceAllStringFunc(path, func(string) string { return uuid.NewString() })
}

func safeMethod(m string) bool { return m == "GET" || m == "HEAD" || m == "OPTIONS" }

// TestAuthorizationMatrix walks every route of the router with real
// credentials of every kind and checks who gets in.
func TestAuthorizationMatrix(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e)
			f := newAuthzFixture(t, ts)
			seen := map[string]bool{}
			for _, rt := range ts.Server.API().Routes() {
				key := rt.Method + " " + rt.Path
				if seen[key] {
					t.Errorf("route %s is registered twice", key)
				}
				seen[key] = true
				entry, ok := authzTable[key]
				if !ok {
					t.Errorf("route %s (auth %q) has no entry in authzTable: add one so its authorization is tested", key, rt.Auth)
					continue
				}
				t.Run(key, func(t *testing.T) {
					if rt.Auth != entry.auth {
						t.Fatalf("route is registered with auth %q, the matrix says %q", rt.Auth, entry.auth)
					}
					switch rt.Auth {
					case api.AuthPublic:
						checkPublicRoute(t, f, entry)
					case api.AuthUser:
						checkUserRoute(t, f, rt, entry)
					case api.AuthAgent:
						checkAgentRoute(t, f, rt, entry)
					default:
						t.Fatalf("unknown auth kind %q", rt.Auth)
					}
				})
			}
			for key := range authzTable {
				if !seen[key] {
					t.Errorf("authzTable has an entry for %s but the router has no such route", key)
				}
			}
		})
	}
}

func checkPublicRoute(t *testing.T, f *authzFixture, e authzEntry) {
	if e.public == nil || e.want == 0 || e.want == http.StatusUnauthorized || e.want == http.StatusForbidden {
		t.Fatalf("a public route needs a probe request and an expected status other than 401/403")
	}
	q := e.public(f)
	if q.Token != "" || len(q.Cookies) > 0 {
		t.Fatalf("the probe of a public route must carry no credentials")
	}
	r := f.ts.Do(t, q)
	if r.Status != e.want {
		t.Errorf("%s %s without credentials: status %d, want %d; body %.300s", q.Method, q.Path, r.Status, e.want, r.Body)
	}
}

// denied fails unless r refuses the caller: 401 or 403 in the error shape.
func denied(t *testing.T, what string, r testserver.Resp) {
	t.Helper()
	checkError(t, what, r)
	if r.Status != http.StatusUnauthorized && r.Status != http.StatusForbidden {
		t.Errorf("%s: status %d, want 401 or 403", what, r.Status)
	}
}

// admitted fails when r refuses the caller's credentials.
func admitted(t *testing.T, what string, r testserver.Resp) {
	t.Helper()
	if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden || r.Status >= 500 {
		t.Errorf("%s: status %d, want the route to let the caller in; body %.300s", what, r.Status, r.Body)
	}
}

func checkUserRoute(t *testing.T, f *authzFixture, rt api.Route, e authzEntry) {
	ts, m := f.ts, rt.Method
	path := f.fill(t, rt.Path, e, f.b)
	before := counts(t, ts)

	expectError(t, "no credentials", ts.Do(t, testserver.Req{Method: m, Path: path}), http.StatusUnauthorized, "unauthorized")
	expectError(t, "a made-up session token", ts.Do(t, testserver.Req{Method: m, Path: path,
		Token: "rfs_" + strings.Repeat("A", 43)}), http.StatusUnauthorized, "unauthorized")
	denied(t, "agent token with its machine id", ts.Do(t, testserver.Req{Method: m, Path: path, Token: f.a.Token, MachineID: f.a.MachineID}))
	denied(t, "agent token", ts.Do(t, testserver.Req{Method: m, Path: path, Token: f.a.Token}))
	denied(t, "agent refresh token", ts.Do(t, testserver.Req{Method: m, Path: path, Token: f.a.RefreshToken}))
	denied(t, "registration token", ts.Do(t, testserver.Req{Method: m, Path: path, Token: f.regToken}))
	if !safeMethod(m) {
		expectError(t, "session cookie without "+api.CSRFHeader, ts.Do(t, f.admin.cookieReq(m, path, "")), http.StatusForbidden, "csrf_failed")
		expectError(t, "session cookie with a wrong "+api.CSRFHeader, ts.Do(t, f.admin.cookieReq(m, path, strings.Repeat("0", 64))),
			http.StatusForbidden, "csrf_failed")
		// The CSRF cookie itself is not a credential.
		q := f.admin.cookieReq(m, path, f.admin.CSRF)
		q.Cookies = []*http.Cookie{{Name: api.CSRFCookie, Value: f.admin.CSRF}}
		expectError(t, "CSRF cookie and header without the session cookie", ts.Do(t, q), http.StatusUnauthorized, "unauthorized")
	}
	if after := counts(t, ts); after != before {
		t.Errorf("refused requests changed the database: %+v → %+v", before, after)
	}

	// Positive controls: the real credentials do open the route. Unsafe
	// requests name resources that do not exist, so they change nothing.
	if e.stream {
		return
	}
	probe := path
	if !safeMethod(m) {
		probe = freshIDs(rt.Path)
	}
	sess := f.admin
	if e.endsSession {
		sess = login(t, ts, testserver.AdminUser, testserver.AdminPassword)
	}
	admitted(t, "session token", ts.Do(t, testserver.Req{Method: m, Path: probe, Token: sess.Token}))
	admitted(t, "API token", ts.Do(t, testserver.Req{Method: m, Path: probe, Token: f.apiToken}))
	if e.endsSession {
		sess = login(t, ts, testserver.AdminUser, testserver.AdminPassword)
	}
	if safeMethod(m) {
		admitted(t, "session cookie", ts.Do(t, sess.cookieReq(m, probe, "")))
	} else {
		r := ts.Do(t, sess.cookieReq(m, probe, sess.CSRF))
		admitted(t, "session cookie with "+api.CSRFHeader, r)
		if r.ErrorCode() == "csrf_failed" {
			t.Errorf("session cookie with the CSRF token from the %s cookie was refused: %s", api.CSRFCookie, r.Body)
		}
	}
}

func checkAgentRoute(t *testing.T, f *authzFixture, rt api.Route, e authzEntry) {
	ts, m := f.ts, rt.Method
	own := f.fill(t, rt.Path, e, f.a)
	other := f.fill(t, rt.Path, e, f.b)
	before := counts(t, ts)

	expectError(t, "no credentials", ts.Do(t, testserver.Req{Method: m, Path: own}), http.StatusUnauthorized, "unauthorized")
	expectError(t, "agent token without "+"X-Machine-ID", ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.a.Token}),
		http.StatusUnauthorized, "")
	expectError(t, "machine id without a token", ts.Do(t, testserver.Req{Method: m, Path: own, MachineID: f.a.MachineID}),
		http.StatusUnauthorized, "")
	denied(t, "session token", ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.admin.Token, MachineID: f.a.MachineID}))
	denied(t, "API token", ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.apiToken, MachineID: f.a.MachineID}))
	denied(t, "session token without a machine id", ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.admin.Token}))
	q := f.admin.cookieReq(m, own, f.admin.CSRF)
	q.MachineID = f.a.MachineID
	denied(t, "session cookie", ts.Do(t, q))
	denied(t, "agent refresh token", ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.a.RefreshToken, MachineID: f.a.MachineID}))
	denied(t, "JWT with a forged signature", ts.Do(t, testserver.Req{Method: m, Path: own, Token: forgeSignature(f.a.Token), MachineID: f.a.MachineID}))

	expectError(t, "agent A's credentials on agent B's route", ts.Do(t, testserver.Req{Method: m, Path: other, Token: f.a.Token, MachineID: f.a.MachineID}),
		http.StatusForbidden, "")
	expectError(t, "agent A's token with B's machine id on B's route", ts.Do(t, testserver.Req{Method: m, Path: other, Token: f.a.Token, MachineID: f.b.MachineID}),
		http.StatusForbidden, "")
	expectError(t, "agent token with a wrong, well-formed machine id", ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.a.Token,
		MachineID: testserver.MachineID("some other machine")}), http.StatusForbidden, "machine_mismatch")
	for _, bad := range []string{"not-a-machine-id", strings.ToUpper(f.a.MachineID), f.a.MachineID[:63], f.a.MachineID + "0",
		strings.Repeat("g", 64), f.a.MachineID[:32] + " " + f.a.MachineID[33:]} {
		expectError(t, "malformed machine id "+bad, ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.a.Token, MachineID: bad}),
			http.StatusBadRequest, "invalid_machine_id")
	}
	if after := counts(t, ts); after != before {
		t.Errorf("refused requests changed the database: %+v → %+v", before, after)
	}

	admitted(t, "the agent's own credentials", ts.Do(t, testserver.Req{Method: m, Path: own, Token: f.a.Token, MachineID: f.a.MachineID}))
	admitted(t, "agent B's own credentials", ts.Do(t, testserver.Req{Method: m, Path: other, Token: f.b.Token, MachineID: f.b.MachineID}))
}

// forgeSignature flips the JWT's signature so it no longer verifies.
func forgeSignature(jwt string) string {
	i := strings.LastIndexByte(jwt, '.')
	sig := []byte(jwt[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return jwt[:i+1] + string(sig)
}
