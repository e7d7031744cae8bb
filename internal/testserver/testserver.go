// Package testserver starts the real RedFlag server on a random loopback
// port for tests and benchmarks, and speaks HTTP to it.
package testserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/logging"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/server"
	"github.com/redflaghq/redflag/internal/storetest"
)

// Admin credentials of every test server.
const (
	AdminUser     = "admin"
	AdminPassword = "correct horse battery staple"
)

// Logs is a goroutine-safe buffer holding everything the server logged.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns the log so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TS is a running server.
type TS struct {
	URL    string
	Server *server.Server
	Logs   *Logs
	Config config.Server
	Client *http.Client
	t      testing.TB
	stop   context.CancelFunc
	done   chan error
	ln     *killableListener // see Kill
}

// Start runs a server on engine e with a fresh database. mod may change the
// configuration before start.
func Start(t testing.TB, e storetest.Engine, mod ...func(*config.Server)) *TS {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Server{
		Listen: "127.0.0.1:0", DataDir: dir, DatabaseURL: storetest.URL(t, e),
		AdminUser: AdminUser, AdminPassword: AdminPassword, AgentRateLimit: 0, CheckInInterval: 300, JobInterval: 15,
		LogFormat: "json", LogLevel: "debug",
	}
	for _, m := range mod {
		m(&cfg)
	}
	return StartConfig(t, cfg)
}

// StartConfig runs a server on exactly cfg: a given data directory and
// database (a restart, several replicas on one database), or a fixed listen
// address. Listen "127.0.0.1:0" picks a free port.
func StartConfig(t testing.TB, cfg config.Server) *TS {
	t.Helper()
	logs := &Logs{}
	log, err := logging.New(logs, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("starting server: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	kl := newKillableListener(ln)
	ts := &TS{URL: "http://" + ln.Addr().String(), Server: srv, Logs: logs, Config: cfg, t: t, stop: cancel, done: make(chan error, 1),
		Client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}, ln: kl}
	go func() { ts.done <- srv.Serve(ctx, kl) }()
	t.Cleanup(ts.Stop)
	return ts
}

// Stop shuts the server down gracefully (idempotent).
func (ts *TS) Stop() {
	if ts.stop == nil {
		return
	}
	ts.stop()
	ts.stop = nil
	if err := <-ts.done; err != nil {
		ts.t.Errorf("server stopped with error: %v", err)
	}
}

// Resp is a decoded response.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it cannot.
func (r Resp) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// ErrorCode returns the SPEC error code of the body, or "".
func (r Resp) ErrorCode() string {
	var e protocol.ErrorBody
	if json.Unmarshal(r.Body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// Req describes a request. Body may be a string/[]byte (sent as is) or any
// value (JSON-encoded).
type Req struct {
	Method, Path string
	Body         any
	Token        string // bearer
	MachineID    string
	Header       map[string]string
	Cookies      []*http.Cookie
}

// Do sends a request and reads the whole answer.
func (ts *TS) Do(t testing.TB, q Req) Resp {
	t.Helper()
	r, err := ts.Try(q)
	if err != nil {
		t.Fatalf("%s %s: %v", q.Method, q.Path, err)
	}
	return r
}

// Try is Do without a testing.TB, for load loops.
func (ts *TS) Try(q Req) (Resp, error) {
	var body io.Reader
	switch b := q.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return Resp{}, err
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequest(q.Method, ts.URL+q.Path, body)
	if err != nil {
		return Resp{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if q.Token != "" {
		req.Header.Set("Authorization", "Bearer "+q.Token)
	}
	if q.MachineID != "" {
		req.Header.Set(protocol.HeaderMachineID, q.MachineID)
	}
	for k, v := range q.Header {
		req.Header.Set(k, v)
	}
	for _, c := range q.Cookies {
		req.AddCookie(c)
	}
	res, err := ts.Client.Do(req)
	if err != nil {
		return Resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Resp{}, err
	}
	return Resp{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// Expect is Do that fails the test unless the status is want.
func (ts *TS) Expect(t testing.TB, want int, q Req) Resp {
	t.Helper()
	r := ts.Do(t, q)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", q.Method, q.Path, r.Status, want, r.Body)
	}
	return r
}

// Login signs the admin in and returns the session token.
func (ts *TS) Login(t testing.TB) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	ts.Expect(t, http.StatusOK, Req{Method: "POST", Path: "/api/v1/auth/login",
		Body: map[string]string{"username": AdminUser, "password": AdminPassword}}).JSON(t, &out)
	return out.Token
}

// RegistrationToken creates a registration token with seats and returns its text and id.
func (ts *TS) RegistrationToken(t testing.TB, admin string, seats int) (token, id string) {
	t.Helper()
	var out struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	ts.Expect(t, http.StatusCreated, Req{Method: "POST", Path: "/api/v1/registration-tokens", Token: admin,
		Body: map[string]any{"seats": seats, "note": "test"}}).JSON(t, &out)
	return out.Token, out.ID
}

// Agent is a registered agent's credentials.
type Agent struct {
	ID, Token, RefreshToken, MachineID string
}

// MachineID derives a valid machine id from a label.
func MachineID(label string) string {
	s := sha256.Sum256([]byte(label))
	return hex.EncodeToString(s[:])
}

// RegisterBody builds a registration request.
func RegisterBody(regToken, hostname, machineID string) protocol.RegisterRequest {
	return protocol.RegisterRequest{RegistrationToken: regToken, Hostname: hostname, OSType: "linux",
		OSVersion: "Debian 12", OSArch: "amd64", AgentVersion: "0.1.0", MachineID: machineID}
}

// RegisterAgent enrols an agent and returns its credentials.
func (ts *TS) RegisterAgent(t testing.TB, regToken, hostname string) Agent {
	t.Helper()
	mid := MachineID(hostname + fmt.Sprint(time.Now().UnixNano()))
	var out protocol.RegisterResponse
	ts.Expect(t, http.StatusCreated, Req{Method: "POST", Path: "/api/v1/agents/register",
		Body: RegisterBody(regToken, hostname, mid)}).JSON(t, &out)
	return Agent{ID: out.AgentID, Token: out.Token, RefreshToken: out.RefreshToken, MachineID: mid}
}
