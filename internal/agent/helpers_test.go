package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
)

const (
	testAgentID   = "0190a3b4-1111-7000-8000-000000000001"
	otherAgentID  = "0190a3b4-2222-7000-8000-000000000002"
	testMachineID = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func mustKey(t testing.TB) *signing.Key {
	t.Helper()
	k, err := signing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pinned(k *signing.Key) PinnedKey {
	return PinnedKey{KeyID: k.ID, PublicKey: signing.EncodePublicKey(k.Public), Status: KeyActive}
}

// signCmd builds a command signed by k, valid from now for an hour.
func signCmd(k *signing.Key, id, agentID, typ, params string, now time.Time) protocol.SignedCommand {
	c := protocol.SignedCommand{ID: id, AgentID: agentID, Type: typ, Params: json.RawMessage(params),
		IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(), KeyID: k.ID}
	c.Signature = resign(k, c)
	return c
}

func resign(k *signing.Key, c protocol.SignedCommand) string {
	return signing.SignCommand(k, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: c.Params,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt})
}

// fakeJWT returns a token with the given exp claim, shaped like a JWT.
func fakeJWT(name string, exp time.Time) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, name, exp.Unix()))) + "." + enc.EncodeToString([]byte("sig-"+name))
}

func testConfig(serverURL string, keys ...*signing.Key) *Config {
	c := &Config{ServerURL: serverURL, AgentID: testAgentID, Token: fakeJWT("tok-0", t0.Add(24*time.Hour)),
		RefreshToken: "refresh-0", TokenExpiresAt: t0.Add(24 * time.Hour), MachineID: testMachineID, CheckInIntervalSeconds: 300}
	for _, k := range keys {
		c.PinnedKeys = append(c.PinnedKeys, pinned(k))
	}
	return c
}

// fakeClock is the injected clock: Sleep returns at once, moving the time
// on, and calls hook (which may cancel the run) after each sleep.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
	hook   func(n int, d time.Duration)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	n, hook := len(c.sleeps), c.hook
	c.mu.Unlock()
	if hook != nil {
		hook(n, d)
	}
	if n > 10000 {
		return fmt.Errorf("runaway loop")
	}
	// Yield so a test's assertions are not starved by a busy loop.
	time.Sleep(time.Millisecond)
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeServer implements the agent routes minimally, for the loop's unit
// tests only; the end-to-end test runs against the real server.
type fakeServer struct {
	t     *testing.T
	srv   *httptest.Server
	clock *fakeClock

	mu             sync.Mutex
	token, refresh string
	tokenN         int
	queue          []protocol.SignedCommand
	results        map[string]protocol.CommandResult
	resultOrder    []string
	resultCalls    int
	reports        []protocol.SystemReport
	checkIns       []string // raw queries
	checkInFail    []int    // statuses to answer the next check-ins with
	retryAfter     string
	rejectWait     bool
	resultStatus   func(id string) int
	renewStatus    int
	renewCalls     int
	registerCalls  int
	interval       int
	holdLongPoll   time.Duration
	onResult       func(id string)
	sticky         []protocol.SignedCommand // answered on every check-in
}

func newFakeServer(t *testing.T, clock *fakeClock) *fakeServer {
	fs := &fakeServer{t: t, clock: clock, results: map[string]protocol.CommandResult{}, interval: 300,
		token: fakeJWT("tok-0", t0.Add(24*time.Hour)), refresh: "refresh-0"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/agents/register", func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.registerCalls++
		fs.mu.Unlock()
		writeError(w, 500, "unexpected", "the agent must never re-register by itself")
	})
	mux.HandleFunc("POST /api/v1/agents/renew", fs.renew)
	mux.HandleFunc("GET /api/v1/agents/{id}/commands", fs.auth(fs.checkIn))
	mux.HandleFunc("POST /api/v1/agents/{id}/commands/{cid}/result", fs.auth(fs.result))
	mux.HandleFunc("POST /api/v1/agents/{id}/reports/system", fs.auth(fs.report))
	fs.srv = httptest.NewServer(mux)
	t.Cleanup(fs.srv.Close)
	return fs
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(protocol.ErrorBody{Error: protocol.ErrorDetail{Code: code, Message: msg}})
}

func (fs *fakeServer) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		tok := fs.token
		fs.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+tok || r.Header.Get(protocol.HeaderMachineID) != testMachineID {
			writeError(w, 401, "unauthorized", "bad token")
			return
		}
		if r.PathValue("id") != testAgentID {
			writeError(w, 403, "forbidden", "other agent")
			return
		}
		h(w, r)
	}
}

func (fs *fakeServer) renew(w http.ResponseWriter, r *http.Request) {
	var req protocol.RenewRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, "invalid_json", err.Error())
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.renewCalls++
	if fs.renewStatus != 0 {
		writeError(w, fs.renewStatus, "unauthorized", "refresh token revoked")
		return
	}
	if req.AgentID != testAgentID || req.RefreshToken != fs.refresh || r.Header.Get(protocol.HeaderMachineID) != testMachineID {
		writeError(w, 401, "unauthorized", "bad refresh token")
		return
	}
	fs.tokenN++
	fs.token = fakeJWT(fmt.Sprintf("tok-%d", fs.tokenN), fs.clock.Now().Add(24*time.Hour))
	fs.refresh = fmt.Sprintf("refresh-%d", fs.tokenN)
	_ = json.NewEncoder(w).Encode(protocol.RenewResponse{Token: fs.token, RefreshToken: fs.refresh})
}

func (fs *fakeServer) checkIn(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	fs.checkIns = append(fs.checkIns, r.URL.RawQuery)
	if len(fs.checkInFail) > 0 {
		st := fs.checkInFail[0]
		fs.checkInFail = fs.checkInFail[1:]
		ra := fs.retryAfter
		fs.mu.Unlock()
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		writeError(w, st, "failing", "scripted failure")
		return
	}
	if fs.rejectWait && r.URL.Query().Has("wait") {
		fs.mu.Unlock()
		writeError(w, 400, "invalid_query", "unknown parameter wait")
		return
	}
	cmds := append(fs.queue, fs.sticky...)
	fs.queue = nil
	hold := fs.holdLongPoll
	interval := fs.interval
	fs.mu.Unlock()
	if len(cmds) == 0 && hold > 0 && r.URL.Query().Has("wait") {
		time.Sleep(hold)
	}
	if len(cmds) == 0 {
		cmds = []protocol.SignedCommand{}
	}
	_ = json.NewEncoder(w).Encode(protocol.CheckInResponse{Commands: cmds, CheckInIntervalSeconds: interval})
}

func (fs *fakeServer) result(w http.ResponseWriter, r *http.Request) {
	var res protocol.CommandResult
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		writeError(w, 400, "invalid_json", err.Error())
		return
	}
	id := r.PathValue("cid")
	fs.mu.Lock()
	fs.resultCalls++
	st := http.StatusOK
	if fs.resultStatus != nil {
		st = fs.resultStatus(id)
	}
	if st == http.StatusOK {
		// Like the real server, the first result stands.
		if _, dup := fs.results[id]; !dup {
			fs.resultOrder = append(fs.resultOrder, id)
			fs.results[id] = res
		}
	}
	cb := fs.onResult
	fs.mu.Unlock()
	if st != http.StatusOK {
		writeError(w, st, "scripted", "scripted result status")
		return
	}
	_, _ = io.WriteString(w, `{}`)
	if cb != nil {
		cb(id)
	}
}

func (fs *fakeServer) report(w http.ResponseWriter, r *http.Request) {
	var rep protocol.SystemReport
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		writeError(w, 400, "invalid_json", err.Error())
		return
	}
	fs.mu.Lock()
	fs.reports = append(fs.reports, rep)
	fs.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (fs *fakeServer) enqueue(cmds ...protocol.SignedCommand) {
	fs.mu.Lock()
	fs.queue = append(fs.queue, cmds...)
	fs.mu.Unlock()
}

func (fs *fakeServer) result1(id string) (protocol.CommandResult, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	r, ok := fs.results[id]
	return r, ok
}

func (fs *fakeServer) with(f func(fs *fakeServer)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f(fs)
}

// harness is an agent wired to a fake server and a fake clock.
type harness struct {
	t       *testing.T
	srv     *fakeServer
	clock   *fakeClock
	key     *signing.Key
	cfgPath string
	dir     string
	state   *State
	agent   *Agent
	logs    *logBuf
	opts    Options
}

func newHarness(t *testing.T, mod func(o *Options, c *Config)) *harness {
	t.Helper()
	clock := &fakeClock{t: t0}
	h := &harness{t: t, clock: clock, srv: newFakeServer(t, clock), key: mustKey(t), dir: t.TempDir(), logs: &logBuf{}}
	h.cfgPath = filepath.Join(h.dir, "etc", "config.json")
	cfg := testConfig(h.srv.srv.URL, h.key)
	if err := SaveConfig(h.cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	h.opts = Options{ConfigPath: h.cfgPath, Config: cfg, Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: clock.Now, Sleep: clock.Sleep, Rand: func() float64 { return 0.5 }, MachineID: testMachineID,
		Inventory: func(ctx context.Context) (protocol.SystemReport, error) {
			return protocol.SystemReport{OSType: "linux", Hostname: "test-host", CPUCores: 2, Disks: []protocol.Disk{}, PackageManagers: []string{"apt"}}, nil
		},
		ShutdownGrace: time.Second}
	if mod != nil {
		mod(&h.opts, cfg)
		if err := SaveConfig(h.cfgPath, cfg); err != nil {
			t.Fatal(err)
		}
	}
	h.open()
	return h
}

// open (re)opens the state and builds a fresh agent, like a restart.
func (h *harness) open() {
	h.t.Helper()
	if h.state != nil {
		h.state.Close()
	}
	st, err := OpenState(filepath.Join(h.dir, "state"), h.clock.Now(), DefaultExecutedRetention)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { st.Close() })
	h.state = st
	cfg, err := LoadConfig(h.cfgPath)
	if err != nil {
		h.t.Fatal(err)
	}
	o := h.opts
	o.Config, o.State = cfg, st
	a, err := New(o)
	if err != nil {
		h.t.Fatal(err)
	}
	h.agent = a
}

// run runs the agent until stop returns true (checked after every sleep)
// or the deadline passes, and returns Run's error.
func (h *harness) run(stop func() bool) error {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.clock.mu.Lock()
	h.clock.hook = func(n int, d time.Duration) {
		if stop() {
			cancel()
		}
	}
	h.clock.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- h.agent.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		h.t.Fatalf("the agent loop did not reach the expected state in time; logs:\n%s", h.logs.String())
		return nil
	}
}

func (h *harness) sign(id, typ, params string) protocol.SignedCommand {
	return signCmd(h.key, id, testAgentID, typ, params, h.clock.Now())
}

func (h *harness) assertNoSecretsLogged() {
	h.t.Helper()
	logs := h.logs.String()
	h.srv.mu.Lock()
	secrets := []string{h.srv.token, h.srv.refresh, "refresh-0", fakeJWT("tok-0", t0.Add(24*time.Hour))}
	h.srv.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			h.t.Errorf("a token or refresh token (%s…) appears in the logs", s[:8])
		}
	}
}

// countingHandler records that a command ran.
type countingHandler struct {
	mu  sync.Mutex
	ran []string
}

func (c *countingHandler) Handle(ctx context.Context, cmd Command) Outcome {
	c.mu.Lock()
	c.ran = append(c.ran, cmd.ID)
	c.mu.Unlock()
	return Succeeded("ran "+cmd.ID, nil)
}

func (c *countingHandler) Ran() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ran...)
}
