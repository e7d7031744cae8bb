package server_test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
	"github.com/redflaghq/redflag/internal/version"
)

// binariesDir lays out a binaries directory: linux/amd64 without a VERSION
// file (it gets the server's version), windows/arm64 with one, and a
// secret file beside the directory that no request may reach.
type binariesDir struct {
	dir, secretPath string
	linux, windows  []byte
	secret          string
	windowsVersion  string
}

func newBinariesDir(t *testing.T) *binariesDir {
	t.Helper()
	parent := t.TempDir()
	b := &binariesDir{dir: filepath.Join(parent, "agents"), secretPath: filepath.Join(parent, "secret"),
		secret: "TOP-SECRET-" + rand.Text(), windowsVersion: "1.4.2-rc.1+build.7"}
	b.linux = randomBytes(t, 300<<10)
	b.windows = randomBytes(t, 10<<10)
	write := func(rel string, data []byte) {
		p := filepath.Join(b.dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("linux-amd64/redflag-agent", b.linux)
	write("windows-arm64/redflag-agent.exe", b.windows)
	write("windows-arm64/VERSION", []byte(b.windowsVersion+"\n"))
	if err := os.WriteFile(b.secretPath, []byte(b.secret), 0o644); err != nil {
		t.Fatal(err)
	}
	// darwin/arm64 is a link out of the directory; darwin/amd64 a directory
	// whose link points outside.
	if err := os.MkdirAll(filepath.Join(b.dir, "darwin-arm64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(b.secretPath, filepath.Join(b.dir, "darwin-arm64", "redflag-agent")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(parent, filepath.Join(b.dir, "darwin-amd64")); err != nil {
		t.Fatal(err)
	}
	// linux/arm64 is a relative link that climbs out.
	if err := os.MkdirAll(filepath.Join(b.dir, "linux-arm64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../secret", filepath.Join(b.dir, "linux-arm64", "redflag-agent")); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// serverKeys reads the public keys the way an agent or a script does.
func serverKeys(t *testing.T, ts *testserver.TS) map[string]protocol.PublicKey {
	t.Helper()
	var pk protocol.PublicKeys
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &pk)
	out := map[string]protocol.PublicKey{}
	for _, k := range pk.Keys {
		out[k.KeyID] = k
	}
	return out
}

// checkDownload checks a download's headers against body and verifies its
// signature with the key named by X-Key-ID from /api/v1/public-keys.
func checkDownload(t *testing.T, ts *testserver.TS, r testserver.Resp, body []byte, goos, arch, wantVersion string) {
	t.Helper()
	h := r.Header
	if got := h.Get("X-Content-SHA256"); got != sha256Hex(body) {
		t.Errorf("%s/%s X-Content-SHA256 = %q, want %q", goos, arch, got, sha256Hex(body))
	}
	if got := h.Get("X-Agent-Version"); got != wantVersion {
		t.Errorf("%s/%s X-Agent-Version = %q, want %q", goos, arch, got, wantVersion)
	}
	if got := h.Get("Content-Type"); got != "application/octet-stream" {
		t.Errorf("%s/%s Content-Type = %q", goos, arch, got)
	}
	if got := h.Get("Content-Length"); got != fmt.Sprint(len(body)) {
		t.Errorf("%s/%s Content-Length = %q, want %d", goos, arch, got, len(body))
	}
	key, ok := serverKeys(t, ts)[h.Get("X-Key-ID")]
	if !ok {
		t.Fatalf("%s/%s X-Key-ID %q is not among /api/v1/public-keys", goos, arch, h.Get("X-Key-ID"))
	}
	pub, err := signing.ParsePublicKey(key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	fields := signing.BinaryFields{Version: wantVersion, OS: goos, Arch: arch, SHA256Hex: sha256Hex(body)}
	if err := signing.VerifyBinary(pub, fields, h.Get("X-Signature")); err != nil {
		t.Errorf("%s/%s signature does not verify: %v", goos, arch, err)
	}
	// The signature binds version and platform: another one must fail.
	for _, other := range []signing.BinaryFields{
		{Version: wantVersion + ".1", OS: goos, Arch: arch, SHA256Hex: fields.SHA256Hex},
		{Version: wantVersion, OS: goos, Arch: "riscv64", SHA256Hex: fields.SHA256Hex},
		{Version: wantVersion, OS: goos, Arch: arch, SHA256Hex: sha256Hex(append([]byte{0}, body...))},
	} {
		if err := signing.VerifyBinary(pub, other, h.Get("X-Signature")); !errors.Is(err, signing.ErrBadSignature) {
			t.Errorf("%s/%s signature also verifies for %+v: %v", goos, arch, other, err)
		}
	}
}

func TestAgentDownload(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			b := newBinariesDir(t)
			ts := testserver.Start(t, e, func(c *config.Server) { c.AgentBinariesDir = b.dir })

			r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/linux/amd64"})
			if string(r.Body) != string(b.linux) {
				t.Fatalf("linux/amd64 body differs from the file (%d bytes, want %d)", len(r.Body), len(b.linux))
			}
			checkDownload(t, ts, r, b.linux, "linux", "amd64", version.Version)
			if r.Header.Get("X-Request-ID") == "" {
				t.Errorf("no X-Request-ID on a download")
			}

			r = ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/windows/arm64"})
			if string(r.Body) != string(b.windows) {
				t.Fatalf("windows/arm64 body differs from the file")
			}
			checkDownload(t, ts, r, b.windows, "windows", "arm64", b.windowsVersion)
			if cd := r.Header.Get("Content-Disposition"); !strings.Contains(cd, "redflag-agent.exe") {
				t.Errorf("windows Content-Disposition = %q", cd)
			}

			// HEAD: the same headers, no body.
			h := ts.Expect(t, http.StatusOK, testserver.Req{Method: "HEAD", Path: "/api/v1/downloads/agent/windows/arm64"})
			if len(h.Body) != 0 {
				t.Errorf("HEAD returned %d body bytes", len(h.Body))
			}
			checkDownload(t, ts, h, b.windows, "windows", "arm64", b.windowsVersion)

			// Conditional and partial requests work like any static file.
			etag := r.Header.Get("ETag")
			ts.Expect(t, http.StatusNotModified, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/windows/arm64",
				Header: map[string]string{"If-None-Match": etag}})
			p := ts.Expect(t, http.StatusPartialContent, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/windows/arm64",
				Header: map[string]string{"Range": "bytes=100-199"}})
			if string(p.Body) != string(b.windows[100:200]) || p.Header.Get("X-Content-SHA256") != sha256Hex(b.windows) {
				t.Errorf("range request: %d bytes, sha header %q", len(p.Body), p.Header.Get("X-Content-SHA256"))
			}

			// A replaced binary is hashed and signed anew (the cache is keyed
			// on size and modification time).
			newer := randomBytes(t, 1000)
			path := filepath.Join(b.dir, "linux-amd64", "redflag-agent")
			if err := os.WriteFile(path, newer, 0o644); err != nil {
				t.Fatal(err)
			}
			future := time.Now().Add(time.Minute)
			if err := os.Chtimes(path, future, future); err != nil {
				t.Fatal(err)
			}
			r = ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/linux/amd64"})
			if string(r.Body) != string(newer) {
				t.Fatalf("the replaced binary is not served")
			}
			checkDownload(t, ts, r, newer, "linux", "amd64", version.Version)
		})
	}
}

// rawGet sends path verbatim in the request line (no client-side cleaning
// or escaping) and reads the answer.
func rawGet(t *testing.T, ts *testserver.TS, method, path string) testserver.Resp {
	t.Helper()
	addr := strings.TrimPrefix(ts.URL, "http://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, path, addr); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, ts.URL, nil)
	res, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return testserver.Resp{Status: res.StatusCode, Header: res.Header, Body: body}
}

func TestAgentDownloadRefusesTraversal(t *testing.T) {
	b := newBinariesDir(t)
	ts := testserver.Start(t, "sqlite", func(c *config.Server) { c.AgentBinariesDir = b.dir })
	const base = "/api/v1/downloads/agent/"
	for _, p := range []string{
		base + "../../../../etc/passwd",
		base + "linux/../../etc",
		base + "linux/../../../secret",
		base + "linux/amd64/../../../../secret",
		base + "%2e%2e/%2e%2e",
		base + "linux/%2e%2e%2f%2e%2e%2fsecret",
		base + "linux%2f..%2f..%2f..%2fsecret/amd64",
		base + "linux/..%2f..%2f..%2fsecret",
		base + "linux/..%5c..%5csecret",
		base + "linux\\..\\..\\secret/amd64",
		base + "linux/amd64%00",
		base + "linux/amd64/",
		base + "linux/amd64/extra",
		base + "linux-amd64/redflag-agent",
		base + "LINUX/AMD64",
		base + "linux/386",
		base + "linux/arm64v8",
		base + "freebsd/amd64",
		base + "windows/arm",
		base + "darwin/arm64",      // a link to a file outside the directory
		base + "darwin/amd64",      // a platform directory linking outside
		base + "linux/arm64",       // a relative link climbing out
		base + "%2Fetc%2Fpasswd/x", // an absolute path as {os}
		"/api/v1/downloads/agent//etc/passwd",
	} {
		for _, m := range []string{"GET", "HEAD"} {
			r := rawGet(t, ts, m, p)
			if r.Status != http.StatusNotFound && r.Status != http.StatusForbidden {
				t.Errorf("%s %s: status %d, want 403 or 404; body %.200s", m, p, r.Status, r.Body)
			}
			if strings.Contains(string(r.Body), b.secret) || strings.Contains(string(r.Body), "root:") {
				t.Errorf("%s %s leaked a file outside the directory: %.200s", m, p, r.Body)
			}
			if r.Header.Get("X-Content-SHA256") != "" || r.Header.Get("X-Signature") != "" {
				t.Errorf("%s %s: signed headers on a refusal", m, p)
			}
			if m == "GET" {
				checkError(t, m+" "+p, r)
			}
		}
	}
	if strings.Contains(ts.Logs.String(), b.secret) {
		t.Errorf("the secret reached the log")
	}
}

func TestAgentDownloadMissing(t *testing.T) {
	ts := testserver.Start(t, "sqlite", func(c *config.Server) { c.AgentBinariesDir = filepath.Join(t.TempDir(), "does-not-exist") })
	r := ts.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/linux/arm"})
	expectError(t, "missing binary", r, http.StatusNotFound, "agent_binary_missing")
	if !strings.Contains(string(r.Body), "linux/arm") || !strings.Contains(string(r.Body), "make release") {
		t.Errorf("the message does not say which binary is missing and how to get it: %s", r.Body)
	}
	if strings.Contains(string(r.Body), "does-not-exist") {
		t.Errorf("a public answer reveals the server's directory: %s", r.Body)
	}
	r = ts.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/plan9/amd64"})
	expectError(t, "unknown platform", r, http.StatusNotFound, "unknown_platform")

	// A VERSION file that could not be signed into a message is an
	// operator error, answered without the binary.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "linux-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "linux-amd64", "redflag-agent"), []byte("x"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "linux-amd64", "VERSION"), []byte("1.0:evil\n"), 0o644)
	ts2 := testserver.Start(t, "sqlite", func(c *config.Server) { c.AgentBinariesDir = dir })
	r = ts2.Do(t, testserver.Req{Method: "GET", Path: "/api/v1/downloads/agent/linux/amd64"})
	if r.Status != http.StatusInternalServerError || r.ErrorCode() != "agent_binary_invalid" || r.Header.Get("X-Signature") != "" {
		t.Errorf("bad VERSION file: %d %s", r.Status, r.Body)
	}
}

func TestInstallScriptRoute(t *testing.T) {
	ts := testserver.Start(t, "sqlite")
	admin := ts.Login(t)
	token, _ := ts.RegistrationToken(t, admin, 1)
	keys := serverKeys(t, ts)

	for platform, want := range map[string][]string{
		"linux":   {"#!/bin/sh", "SERVER='" + ts.URL + "'", "TOKEN='" + token + "'", "ACTION='install'"},
		"darwin":  {"#!/bin/sh", "SERVER='" + ts.URL + "'", "TOKEN='" + token + "'", "com.redflag.agent"},
		"windows": {"$Server = '" + ts.URL + "'", "$Token = '" + token + "'", "$Action = 'install'"},
	} {
		r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/install/" + platform + "?token=" + token})
		body := string(r.Body)
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("/install/%s lacks %q", platform, w)
			}
		}
		if platform != "windows" {
			for id, k := range keys {
				if !strings.Contains(body, id+":"+k.PublicKey) {
					t.Errorf("/install/%s does not carry key %s", platform, id)
				}
			}
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("/install/%s Cache-Control = %q: a script with a token must not be cached", platform, cc)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/") {
			t.Errorf("/install/%s Content-Type = %q", platform, ct)
		}
		h := ts.Expect(t, http.StatusOK, testserver.Req{Method: "HEAD", Path: "/install/" + platform})
		if len(h.Body) != 0 {
			t.Errorf("HEAD /install/%s has a body", platform)
		}
	}
	if strings.Contains(ts.Logs.String(), token) {
		t.Errorf("the registration token reached the server log")
	}

	r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/install/linux?action=uninstall&arch=arm"})
	if !strings.Contains(string(r.Body), "ACTION='uninstall'") || !strings.Contains(string(r.Body), "ARCH='arm'") || !strings.Contains(string(r.Body), "TOKEN=''") {
		t.Errorf("action/arch not rendered")
	}

	for _, q := range []struct{ path, code string }{
		{"/install/freebsd", "unknown_platform"},
		{"/install/linux?token=" + "abc%27%3B%20rm%20-rf%20%2F", "invalid_field"},
		{"/install/linux?token=%24%28reboot%29", "invalid_field"},
		{"/install/windows?token=a%0Ab", "invalid_field"},
		{"/install/linux?token=" + strings.Repeat("a", 300), "invalid_field"},
		{"/install/linux?arch=386", "invalid_field"},
		{"/install/windows?arch=arm", "invalid_field"},
		{"/install/darwin?arch=arm", "invalid_field"},
		{"/install/linux?action=rm", "invalid_field"},
	} {
		expectError(t, q.path, ts.Do(t, testserver.Req{Method: "GET", Path: q.path}), map[string]int{
			"unknown_platform": http.StatusNotFound, "invalid_field": http.StatusBadRequest}[q.code], q.code)
	}

	// A Host header that is not a plain host[:port] is not written into a script.
	r = rawGetHost(t, ts, "/install/linux", "evil.example'$(reboot)")
	if r.Status != http.StatusBadRequest || strings.Contains(string(r.Body), "#!/bin/sh") {
		t.Errorf("a hostile Host header: %d %.200s", r.Status, r.Body)
	}
}

func rawGetHost(t *testing.T, ts *testserver.TS, path, host string) testserver.Resp {
	t.Helper()
	addr := strings.TrimPrefix(ts.URL, "http://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return testserver.Resp{Status: res.StatusCode, Header: res.Header, Body: body}
}

func TestInstallScriptPublicURL(t *testing.T) {
	ts := testserver.Start(t, "sqlite", func(c *config.Server) { c.PublicURL = "https://redflag.example.com/fleet" })
	r := ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/install/linux"})
	if !strings.Contains(string(r.Body), "SERVER='https://redflag.example.com/fleet'\n") {
		t.Errorf("REDFLAG_PUBLIC_URL is not the script's server URL")
	}
	r = ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/install/windows"})
	if !strings.Contains(string(r.Body), "$Server = 'https://redflag.example.com/fleet'\n") {
		t.Errorf("REDFLAG_PUBLIC_URL is not the PowerShell script's server URL")
	}
}
