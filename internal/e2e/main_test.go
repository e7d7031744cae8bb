package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
)

// The binaries under test, built once by TestMain.
var serverBin, agentBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "redflag-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// go test puts its own GOROOT/bin first on PATH, so this is the
	// toolchain that runs the tests.
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go command is not on PATH; the end-to-end tests build the real binaries with it:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(os.PathSeparator),
		"github.com/redflaghq/redflag/cmd/redflag-server", "github.com/redflaghq/redflag/cmd/redflag-agent")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s failed: %v\n%s", strings.Join(build.Args, " "), err, out)
		return 1
	}
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	serverBin = filepath.Join(dir, "redflag-server"+exe)
	agentBin = filepath.Join(dir, "redflag-agent"+exe)
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built the binaries with %s in %s\n", goBin, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

// eachEngine runs fn as a subtest per database engine.
func eachEngine(t *testing.T, fn func(t *testing.T, e storetest.Engine)) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) { fn(t, e) })
	}
}

// --- processes --------------------------------------------------------------

// logBuf collects a process's output; it is safe for concurrent use.
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

// records returns the JSON log lines written so far (other lines are skipped).
func (l *logBuf) records() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// find returns the first JSON log record for which match is true.
func (l *logBuf) find(match func(r map[string]any) bool) map[string]any {
	for _, r := range l.records() {
		if match(r) {
			return r
		}
	}
	return nil
}

func str(r map[string]any, key string) string {
	s, _ := r[key].(string)
	return s
}

// proc is a running binary.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *logBuf
	done chan struct{} // closed when the process has exited
	err  error         // the Wait error, valid after done

	mu       sync.Mutex
	stopping bool // the test ended the process on purpose
}

// childEnv is the test's environment without REDFLAG_* variables, so the
// binaries take their settings from the flags only.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDFLAG_") {
			env = append(env, kv)
		}
	}
	return env
}

// startProc starts bin and arranges for it to be stopped when the test ends
// and for its output to go to the test log if the test failed.
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &logBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = childEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	// Cleanups run last-in first-out: the process is stopped first, then
	// its complete output is logged.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("----- output of %s (%s) -----\n%s----- end of %s -----", name, strings.Join(p.cmd.Args, " "), tail(p.out.String(), 256<<10), name)
		}
	})
	t.Cleanup(p.stop)
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "[…]" + s[len(s)-n:]
	}
	return s
}

// stop ends the process: SIGTERM, then SIGKILL after a grace period.
func (p *proc) stop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill9 ends the process with SIGKILL and waits for it.
func (p *proc) kill9() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exitedUnexpectedly reports an exit the test did not ask for.
func (p *proc) exitedUnexpectedly() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return nil
	}
	return fmt.Errorf("%s exited on its own: %v", p.name, p.err)
}

// waitFor polls cond until it returns true, failing the test after limit or
// as soon as one of procs exits unexpectedly. cond may describe the state
// it saw last in *why, for the failure message.
func waitFor(t *testing.T, limit time.Duration, what string, procs []*proc, cond func(why *string) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var why string
	for {
		if cond(&why) {
			return
		}
		for _, p := range procs {
			if err := p.exitedUnexpectedly(); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s (last seen: %s)", limit, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --- the server -------------------------------------------------------------

const adminPassword = "e2e-admin-password-123"

type server struct {
	p       *proc
	url     string
	dataDir string
	token   string // the admin's bearer token
	hc      *http.Client
}

// startServer starts redflag-server on a fresh database of engine e, on a
// free loopback port, and signs in as the admin. extra flags are added.
func startServer(t *testing.T, e storetest.Engine, extra ...string) *server {
	t.Helper()
	s := &server{dataDir: filepath.Join(t.TempDir(), "data"), hc: &http.Client{Timeout: 20 * time.Second}}
	dbURL := storetest.URL(t, e)
	s.p = startProc(t, "redflag-server", serverBin, append([]string{
		"--listen", "127.0.0.1:0", "--data-dir", s.dataDir, "--database-url", dbURL,
		"--admin-user", "admin", "--admin-password", adminPassword,
		"--log-format", "json", "--job-interval", "1", "--agent-rate-limit", "0"}, extra...)...)
	waitFor(t, 30*time.Second, "the server to listen", []*proc{s.p}, func(why *string) bool {
		r := s.p.out.find(func(r map[string]any) bool { return str(r, "msg") == "RedFlag server listening" })
		s.url = str(r, "url")
		return s.url != ""
	})
	var login struct {
		Token string `json:"token"`
	}
	s.do(t, "", "POST", "/api/v1/auth/login", map[string]string{"username": "admin", "password": adminPassword}, http.StatusOK, &login)
	if login.Token == "" {
		t.Fatal("the login answer has no token")
	}
	s.token = login.Token
	return s
}

// call makes an admin API request and decodes the answer into out (when not
// nil), failing the test unless the status is want.
func (s *server) call(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	s.do(t, s.token, method, path, body, want, out)
}

// do is call with the given bearer token ("" for a public route).
func (s *server) do(t *testing.T, bearer, method, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %.500s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %.500s: %v", method, path, b, err)
		}
	}
}

// registrationToken creates a registration token with the given seats.
func (s *server) registrationToken(t *testing.T, seats int) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	s.call(t, "POST", "/api/v1/registration-tokens", map[string]any{"seats": seats}, http.StatusCreated, &out)
	if out.Token == "" {
		t.Fatal("the registration token answer has no token")
	}
	return out.Token
}

// commandRecord is a command as the user API shows it.
type commandRecord struct {
	ID        string `json:"id"`
	AgentID   string `json:"agent_id"`
	Type      string `json:"type"`
	Params    string `json:"params"`
	Status    string `json:"status"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
	IssuedAt  int64  `json:"issued_at"`
	ExpiresAt int64  `json:"expires_at"`
	Result    *struct {
		ExitCode int            `json:"exit_code"`
		Output   string         `json:"output"`
		Details  map[string]any `json:"details"`
	} `json:"result"`
}

// signed returns the command as the server delivers it to its agent.
func (c commandRecord) signed() protocol.SignedCommand {
	return protocol.SignedCommand{ID: c.ID, AgentID: c.AgentID, Type: c.Type, Params: json.RawMessage(c.Params),
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, KeyID: c.KeyID, Signature: c.Signature}
}

// queue creates one command of type typ for agentID through the user API.
func (s *server) queue(t *testing.T, agentID, typ string) commandRecord {
	t.Helper()
	var out struct {
		Commands []commandRecord `json:"commands"`
	}
	s.call(t, "POST", "/api/v1/commands", map[string]any{"agent_ids": []string{agentID}, "type": typ}, http.StatusCreated, &out)
	if len(out.Commands) != 1 || out.Commands[0].ID == "" {
		t.Fatalf("queuing %s: want one command, got %+v", typ, out.Commands)
	}
	return out.Commands[0]
}

func (s *server) command(t *testing.T, id string) commandRecord {
	t.Helper()
	var c commandRecord
	s.call(t, "GET", "/api/v1/commands/"+id, nil, http.StatusOK, &c)
	return c
}

// waitFinished waits until the command has left pending/sent and returns it.
func (s *server) waitFinished(t *testing.T, id string, limit time.Duration, procs ...*proc) commandRecord {
	t.Helper()
	var c commandRecord
	waitFor(t, limit, "command "+id+" to finish", procs, func(why *string) bool {
		c = s.command(t, id)
		*why = "status " + c.Status
		return c.Status != protocol.StatePending && c.Status != protocol.StateSent
	})
	return c
}

type agentRecord struct {
	ID           string                 `json:"id"`
	Hostname     string                 `json:"hostname"`
	SystemInfo   *protocol.SystemReport `json:"system_info"`
	SystemInfoAt *time.Time             `json:"system_info_at"`
}

func (s *server) agent(t *testing.T, id string) agentRecord {
	t.Helper()
	var a agentRecord
	s.call(t, "GET", "/api/v1/agents/"+id, nil, http.StatusOK, &a)
	return a
}

// registerOther enrols a second, virtual agent straight over the API (no
// process behind it) and returns its id.
func (s *server) registerOther(t *testing.T, regToken string) string {
	t.Helper()
	mid := make([]byte, 32)
	_, _ = rand.Read(mid)
	var out protocol.RegisterResponse
	s.do(t, "", "POST", "/api/v1/agents/register", protocol.RegisterRequest{RegistrationToken: regToken, Hostname: "other-machine",
		OSType: protocol.OSLinux, OSVersion: "test", OSArch: "amd64", AgentVersion: "0.0.0", MachineID: hex.EncodeToString(mid)},
		http.StatusCreated, &out)
	if out.AgentID == "" {
		t.Fatal("the registration answer has no agent_id")
	}
	return out.AgentID
}

// --- the agent --------------------------------------------------------------

// agentDirs is a registered agent's config file and state directory.
type agentDirs struct {
	id       string
	config   string
	stateDir string
}

// registerAgent runs `redflag-agent register` against serverURL.
func registerAgent(t *testing.T, serverURL, regToken string) *agentDirs {
	t.Helper()
	dir := t.TempDir()
	a := &agentDirs{config: filepath.Join(dir, "etc", "config.json"), stateDir: filepath.Join(dir, "state")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, "register", "--server", serverURL, "--token", regToken,
		"--config", a.config, "--state-dir", a.stateDir)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redflag-agent register: %v\n%s", err, out)
	}
	b, err := os.ReadFile(a.config)
	if err != nil {
		t.Fatalf("reading the agent config after register: %v\n%s", err, out)
	}
	var cfg struct {
		AgentID string `json:"agent_id"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.AgentID == "" {
		t.Fatalf("the agent config has no agent_id (%v): %.300s", err, b)
	}
	a.id = cfg.AgentID
	return a
}

// run starts `redflag-agent run` with JSON debug logs.
func (a *agentDirs) run(t *testing.T) *proc {
	t.Helper()
	return startProc(t, "redflag-agent", agentBin, "run", "--config", a.config, "--state-dir", a.stateDir,
		"--log-format", "json", "--log-level", "debug")
}

// pendingResult reads the agent's on-disk result of a command, if any.
func (a *agentDirs) pendingResult(id string) (protocol.CommandResult, bool, bool) {
	b, err := os.ReadFile(filepath.Join(a.stateDir, "results", id+".json"))
	if err != nil {
		return protocol.CommandResult{}, false, false
	}
	var p struct {
		Running bool                   `json:"running"`
		Result  protocol.CommandResult `json:"result"`
	}
	if json.Unmarshal(b, &p) != nil {
		return protocol.CommandResult{}, false, false
	}
	return p.Result, p.Running, true
}

// ran reports whether the agent's log says it started command id.
func ran(p *proc, id string) bool {
	return p.out.find(func(r map[string]any) bool {
		return str(r, "msg") == "running command" && str(r, "command_id") == id
	}) != nil
}
