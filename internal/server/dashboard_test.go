package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
	"github.com/redflaghq/redflag/internal/webui"
)

// TestDashboardMount checks how the server splits the API and the embedded
// dashboard: client routes get the dashboard (or, in a binary built without
// it, the plain "not built" page), /api/ and unsafe methods never do.
func TestDashboardMount(t *testing.T) {
	ts := testserver.Start(t, storetest.Engine("sqlite"))
	h, err := webui.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	want := http.StatusServiceUnavailable
	if h.Built() {
		want = http.StatusOK
	}
	for _, p := range []string{"/", "/agents", "/setup?token=x", "/no/such/page"} {
		r := ts.Do(t, testserver.Req{Method: "GET", Path: p})
		if r.Status != want {
			t.Errorf("GET %s: status %d, want %d", p, r.Status, want)
		}
		if csp := r.Header.Get("Content-Security-Policy"); csp != webui.ContentSecurityPolicy {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Request-ID") == "" {
			t.Errorf("GET %s: headers %v", p, r.Header)
		}
		if ct := r.Header.Get("Content-Type"); h.Built() && !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q, want HTML", p, ct)
		}
	}
	for _, q := range []testserver.Req{{Method: "GET", Path: "/api/v1/no-such-route"}, {Method: "GET", Path: "/api"},
		{Method: "POST", Path: "/agents"}, {Method: "DELETE", Path: "/"}} {
		r := ts.Do(t, q)
		if r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, want the API's 404 or 405", q.Method, q.Path, r.Status)
		}
		if !strings.Contains(string(r.Body), `"error"`) || r.Header.Get("Content-Security-Policy") != "" {
			t.Errorf("%s %s answered by the dashboard: %s", q.Method, q.Path, r.Body)
		}
	}
	// Real routes stay the API's.
	if r := ts.Do(t, testserver.Req{Method: "GET", Path: "/health"}); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"ok"`) {
		t.Errorf("GET /health: %d %s", r.Status, r.Body)
	}
}
