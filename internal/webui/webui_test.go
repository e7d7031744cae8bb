package webui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

const indexHTML = `<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>`

func testBuild() fstest.MapFS {
	return fstest.MapFS{
		".keep":                   {Data: nil},
		"index.html":              {Data: []byte(indexHTML)},
		"assets/index-abc123.js":  {Data: []byte("console.log('app')")},
		"assets/index-def456.css": {Data: []byte("body{}")},
		"favicon.svg":             {Data: []byte("<svg xmlns='http://www.w3.org/2000/svg'/>")},
	}
}

func newHandler(t *testing.T, fsys fstest.MapFS) *Handler {
	t.Helper()
	h, err := New(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://example.test/", nil)
	r.URL.Path = target // as the server's mux hands it over, uncleaned
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func checkSecurityHeaders(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP %q allows inline code", what, csp)
	}
	if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", what, got)
	}
	if got := w.Header().Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("%s: Referrer-Policy %q", what, got)
	}
}

func TestIndexAndAssetsCaching(t *testing.T) {
	h := newHandler(t, testBuild())
	if !h.Built() {
		t.Fatal("a build with index.html reports not built")
	}
	for _, tc := range []struct {
		path, cache, ctype, body string
	}{
		{"/", CacheNoCache, "text/html; charset=utf-8", indexHTML},
		{"/index.html", CacheNoCache, "text/html; charset=utf-8", indexHTML},
		{"/assets/index-abc123.js", CacheImmutable, "text/javascript; charset=utf-8", "console.log('app')"},
		{"/assets/index-def456.css", CacheImmutable, "text/css; charset=utf-8", "body{}"},
		{"/favicon.svg", CacheNoCache, "image/svg+xml", "<svg xmlns='http://www.w3.org/2000/svg'/>"},
	} {
		w := get(h, "GET", tc.path)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: status %d", tc.path, w.Code)
			continue
		}
		if got := w.Header().Get("Cache-Control"); got != tc.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		if got := w.Header().Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if w.Body.String() != tc.body {
			t.Errorf("GET %s: body %q", tc.path, w.Body.String())
		}
		checkSecurityHeaders(t, "GET "+tc.path, w)
	}
}

func TestRevalidation(t *testing.T) {
	h := newHandler(t, testBuild())
	w := get(h, "GET", "/")
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("index.html has no ETag")
	}
	if w := get(h, "GET", "/", "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Errorf("revalidating index.html: status %d, want 304", w.Code)
	}
	if w := get(h, "HEAD", "/assets/index-abc123.js"); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD asset: status %d, body %d bytes", w.Code, w.Body.Len())
	}
}

func TestClientRoutesFallBackToIndex(t *testing.T) {
	h := newHandler(t, testBuild())
	for _, p := range []string{"/agents", "/agents/0b6f6c1e-3f0e-4c55-9a53-4b1f3c1e2d3f", "/settings/", "/setup",
		"/login", "/a/b/c/d", "/install/linux"} {
		w := get(h, "GET", p)
		if w.Code != http.StatusOK || w.Body.String() != indexHTML {
			t.Errorf("GET %s: status %d body %.40q, want index.html", p, w.Code, w.Body.String())
		}
		if got := w.Header().Get("Cache-Control"); got != CacheNoCache {
			t.Errorf("GET %s: Cache-Control %q, want %q", p, got, CacheNoCache)
		}
		checkSecurityHeaders(t, "GET "+p, w)
	}
}

func TestAPINeverFallsBack(t *testing.T) {
	h := newHandler(t, testBuild())
	for _, p := range []string{"/api", "/api/", "/api/v1/nope", "/api/v1/agents/x/y"} {
		w := get(h, "GET", p)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s: Content-Type %q, want JSON", p, ct)
		}
		if strings.Contains(w.Body.String(), "<html") {
			t.Errorf("GET %s served the dashboard", p)
		}
		if !strings.Contains(w.Body.String(), `"code":"not_found"`) {
			t.Errorf("GET %s: body %q, want the SPEC error shape", p, w.Body.String())
		}
	}
}

func TestMissingAssetIs404(t *testing.T) {
	h := newHandler(t, testBuild())
	w := get(h, "GET", "/assets/index-gone999.js")
	if w.Code != http.StatusNotFound {
		t.Fatalf("missing asset: status %d, want 404", w.Code)
	}
	if strings.Contains(w.Body.String(), "<html") {
		t.Error("missing asset answered with index.html")
	}
	checkSecurityHeaders(t, "missing asset", w)
}

func TestTraversalRefused(t *testing.T) {
	h := newHandler(t, testBuild())
	for _, p := range []string{"/../secret", "/assets/../../secret", "/assets/..%2f..%2fsecret", "/..", "/assets/./index-abc123.js",
		"/assets\\..\\index.html", "/a\x00b", "relative"} {
		w := get(h, "GET", p)
		if w.Code == http.StatusOK && w.Body.String() != indexHTML {
			t.Errorf("GET %q: served %q", p, w.Body.String())
		}
		if strings.Contains(w.Body.String(), "secret") {
			t.Errorf("GET %q leaked a file outside the build", p)
		}
		if strings.Contains(p, "..") && p != "/assets/..%2f..%2fsecret" && w.Code != http.StatusBadRequest {
			t.Errorf("GET %q: status %d, want 400", p, w.Code)
		}
		checkSecurityHeaders(t, "GET "+p, w)
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	h := newHandler(t, testBuild())
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		w := get(h, m, "/agents")
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /agents: status %d Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

func TestNotBuilt(t *testing.T) {
	h := newHandler(t, fstest.MapFS{".keep": {Data: nil}})
	if h.Built() {
		t.Fatal("a build with only .keep reports built")
	}
	for _, p := range []string{"/", "/agents", "/assets/index-abc123.js"} {
		w := get(h, "GET", p)
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "make build") {
			t.Errorf("GET %s without a build: status %d body %q", p, w.Code, w.Body.String())
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("GET %s without a build: Content-Type %q", p, ct)
		}
		checkSecurityHeaders(t, "not built "+p, w)
	}
	if w := get(h, "GET", "/api/v1/nope"); w.Code != http.StatusNotFound {
		t.Errorf("API path without a build: status %d", w.Code)
	}
}

func TestEmbeddedLoads(t *testing.T) {
	// Whatever this binary was built with (a real build or only .keep),
	// the embedded dashboard must load and answer.
	h, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	w := get(h, "GET", "/")
	if h.Built() && w.Code != http.StatusOK {
		t.Errorf("embedded build: GET / status %d", w.Code)
	}
	if !h.Built() && w.Code != http.StatusServiceUnavailable {
		t.Errorf("embedded without a build: GET / status %d", w.Code)
	}
	if h.Built() {
		body := w.Body.String()
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style") {
			t.Error("the built index.html has an inline script or style, which the CSP forbids")
		}
	}
}
