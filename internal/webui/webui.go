// Package webui serves the dashboard, a single-page app built by Vite from
// web/ and embedded in the server binary (web.Dist).
//
// index.html is served uncached (revalidated on every load, so a new
// release is picked up at once); the content-hashed files under /assets/
// are cached for a year; any other path that is not a file falls back to
// index.html so client-side routes survive a reload. Paths under /api/
// never fall back: they stay the API's JSON 404. Every answer carries a
// Content-Security-Policy without inline scripts or styles, nosniff and
// frame-ancestors 'none', because the dashboard shows text that agents
// send (hostnames, package names, command output) and must never run it.
package webui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/redflaghq/redflag/web"
)

// ContentSecurityPolicy is sent with every dashboard response. Vite's build
// has no inline script or style, and React sets style properties through
// the CSSOM, which style-src does not govern.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Cache-Control values.
const (
	CacheImmutable = "public, max-age=31536000, immutable"
	CacheNoCache   = "no-cache"
)

// NotBuilt is the body served when the binary was built without the
// dashboard (web/dist held only .keep).
const NotBuilt = `The RedFlag dashboard is not built into this binary.

Build it with "make build" (needs Node.js 20.19 or later and npm), which runs
"npm ci && npm run build" in web/ before compiling the server, then start the
new bin/redflag-server. The HTTP API under /api/v1 works without it.
`

type file struct {
	data []byte
	etag string
}

// Handler serves one build of the dashboard.
type Handler struct {
	files map[string]file // slash path without the leading "/", e.g. "assets/index-abc.js"
	index *file
}

// New reads the build rooted at fsys (index.html, assets/…). A build
// without index.html gives a handler that answers NotBuilt.
func New(fsys fs.FS) (*Handler, error) {
	h := &Handler{files: map[string]file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".keep" {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.files[p] = file{data: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if f, ok := h.files["index.html"]; ok {
		h.index = &f
	}
	return h, nil
}

// Embedded is the handler of the dashboard compiled into this binary (read
// once per process).
func Embedded() (*Handler, error) { return embedded() }

var embedded = sync.OnceValues(func() (*Handler, error) {
	sub, err := fs.Sub(web.Dist, "dist")
	if err != nil {
		return nil, err
	}
	return New(sub)
})

// Built tells whether the build held an index.html.
func (h *Handler) Built() bool { return h.index != nil }

// SetSecurityHeaders sets the headers every dashboard response carries.
func SetSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// IsAPIPath tells whether p belongs to the API, which never falls back to
// the dashboard.
func IsAPIPath(p string) bool { return p == "/api" || strings.HasPrefix(p, "/api/") }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SetSecurityHeaders(w.Header())
	p := r.URL.Path
	if IsAPIPath(p) {
		// Only reached when the handler is used on its own; mounted behind
		// the API, /api/ never gets here.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"There is no such API route."}}` + "\n"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "The dashboard only answers GET and HEAD.\n")
		return
	}
	if h.index == nil {
		w.Header().Set("Cache-Control", "no-store")
		plain(w, http.StatusServiceUnavailable, NotBuilt)
		return
	}
	name, ok := cleanName(p)
	if !ok {
		plain(w, http.StatusBadRequest, "Bad path.\n")
		return
	}
	if f, found := h.files[name]; found && name != "index.html" {
		if strings.HasPrefix(name, "assets/") {
			w.Header().Set("Cache-Control", CacheImmutable)
		} else {
			w.Header().Set("Cache-Control", CacheNoCache)
		}
		h.serve(w, r, name, f)
		return
	}
	if strings.HasPrefix(name, "assets/") {
		// A missing hashed file is an old page asking for a replaced build:
		// HTML in its place would only confuse the browser.
		w.Header().Set("Cache-Control", "no-store")
		plain(w, http.StatusNotFound, "No such asset.\n")
		return
	}
	w.Header().Set("Cache-Control", CacheNoCache)
	h.serve(w, r, "index.html", *h.index)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, name string, f file) {
	w.Header().Set("ETag", f.etag)
	if ct := contentType(name); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	// A zero modification time leaves Last-Modified out: the ETag decides.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
}

// cleanName turns a URL path into a file name of the build, refusing
// anything that could leave it: "..", backslashes, NUL, empty segments.
func cleanName(p string) (string, bool) {
	if p == "" || p == "/" {
		return "index.html", true
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == ".." || seg == "." {
			return "", false
		}
	}
	name := strings.TrimSuffix(path.Clean(p)[1:], "/")
	if name == "" {
		return "index.html", true
	}
	if !fs.ValidPath(name) {
		return "", false
	}
	return name, true
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".json", ".map":
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".woff2":
		return "font/woff2"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
