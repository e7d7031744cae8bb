package servercmd_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/servercmd"
	"github.com/redflaghq/redflag/internal/testserver"
)

func TestHealthcheck(t *testing.T) {
	ts := testserver.Start(t, "sqlite")
	addr := strings.TrimPrefix(ts.URL, "http://")
	_, port, _ := strings.Cut(addr, ":")

	// The address the server listens on, from REDFLAG_LISTEN, wildcard host included.
	for _, listen := range []string{addr, ":" + port, "0.0.0.0:" + port} {
		code, out, errOut := run(t, servercmd.Healthcheck, env(map[string]string{"REDFLAG_LISTEN": listen}))
		if code != 0 || !strings.Contains(out, `"status":"ok"`) {
			t.Errorf("REDFLAG_LISTEN=%s: exit %d, %q %q", listen, code, out, errOut)
		}
	}
	code, _, _ := run(t, servercmd.Healthcheck, env(nil), "--url", ts.URL+"/health")
	if code != 0 {
		t.Errorf("--url: exit %d", code)
	}
	code, _, errOut := run(t, servercmd.Healthcheck, env(nil), "--url", ts.URL+"/api/v1/nope")
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("a 404: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, servercmd.Healthcheck, env(nil), "--listen", "nonsense")
	if code != 2 || !strings.Contains(errOut, "cannot probe listen address") {
		t.Errorf("a bad listen address: exit %d, %q", code, errOut)
	}
	ts.Stop()
	code, _, errOut = run(t, servercmd.Healthcheck, env(map[string]string{"REDFLAG_LISTEN": addr}))
	if code != 1 || !strings.Contains(errOut, "did not answer") {
		t.Errorf("a stopped server: exit %d, %q", code, errOut)
	}
}

// TestHealthcheckTLS: with REDFLAG_TLS_CERT set the probe speaks HTTPS to
// the local address, whose name the certificate does not carry.
func TestHealthcheckTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain-HTTP probe below is refused on purpose
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	code, out, errOut := run(t, servercmd.Healthcheck, env(map[string]string{"REDFLAG_LISTEN": addr, "REDFLAG_TLS_CERT": "/etc/redflag/cert.pem"}))
	if code != 0 {
		t.Fatalf("TLS: exit %d, %q %q", code, out, errOut)
	}
	code, _, _ = run(t, servercmd.Healthcheck, env(map[string]string{"REDFLAG_LISTEN": addr}))
	if code != 1 {
		t.Errorf("plain HTTP to a TLS server: exit %d, want 1", code)
	}
}
