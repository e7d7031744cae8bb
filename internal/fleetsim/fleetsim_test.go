package fleetsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/fleetsim"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// quiet keeps the server's log small under load.
func quiet(c *config.Server) { c.LogLevel = "warn" }

// queue creates commands of type typ for agents through ts and returns their ids.
func queue(t testing.TB, ts *testserver.TS, admin, typ string, agents []string) []string {
	t.Helper()
	var out struct {
		Commands []struct {
			ID string `json:"id"`
		} `json:"commands"`
	}
	ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin,
		Body: map[string]any{"agent_ids": agents, "type": typ}}).JSON(t, &out)
	ids := make([]string, len(out.Commands))
	for i, c := range out.Commands {
		ids[i] = c.ID
	}
	return ids
}

// allCommands reads every command in the database.
func allCommands(t testing.TB, st *store.Store) []store.CommandRecord {
	t.Helper()
	var out []store.CommandRecord
	for off := 0; ; off += 500 {
		page, total, err := st.ListCommands(context.Background(), store.CommandFilter{Page: store.Page{Limit: 500, Offset: off}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) == 0 || len(out) >= total {
			return out
		}
	}
}

// TestRunAgainstServer: the simulator registers its agents, receives the
// commands queued for them, verifies and answers them, and the server ends
// with every command succeeded; nothing is duplicated or refused.
func TestRunAgainstServer(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			ts := testserver.Start(t, e, quiet)
			admin := ts.Login(t)
			reg, _ := ts.RegistrationToken(t, admin, 30)
			sim, err := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: 30,
				Duration: 1500 * time.Millisecond, Concurrency: 6, Answer: true})
			if err != nil {
				t.Fatal(err)
			}
			rr, err := sim.Register(context.Background())
			if err != nil || rr.Registered != 30 || len(rr.Errors) != 0 {
				t.Fatalf("register: %+v, %v", rr, err)
			}
			ids := queue(t, ts, admin, protocol.CmdCollectSpecs, sim.AgentIDs())
			rep, err := sim.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			settle(t, sim, ts.Server.Store(), rep, time.Minute)
			var buf bytes.Buffer
			rep.Print(&buf)
			t.Logf("report:\n%s", buf.String())
			if rep.Delivered != 30 || rep.Completed != 30 || rep.Duplicates != 0 || rep.Refused != 0 ||
				rep.ResultsUnsent != 0 || len(rep.Errors) != 0 || rep.CheckIns < 30 || rep.P99 <= 0 {
				t.Fatalf("unexpected report: %+v", rep)
			}
			for _, id := range ids {
				c, err := ts.Server.Store().GetCommand(context.Background(), id)
				if err != nil || c.Status != protocol.StateSucceeded {
					t.Errorf("command %s: status %q, err %v; want succeeded", id, c.Status, err)
				}
			}
			for id, at := range sim.LastCheckIns() {
				if at.IsZero() {
					t.Errorf("agent %s never checked in", id)
				}
			}
		})
	}
}

// TestRateIsHonoured: with --rate the simulator checks in at about that
// rate, not as fast as it can.
func TestRateIsHonoured(t *testing.T) {
	ts := testserver.Start(t, "sqlite", quiet)
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 10)
	sim, err := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: 10, Rate: 40,
		Duration: 1500 * time.Millisecond, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sim.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 60 expected; the pacer never runs ahead of the clock. The lower
	// bound only proves the run did work: a loaded machine (CI runs the
	// packages side by side on 2 cores) may fall well short of the rate.
	if rep.CheckIns < 15 || rep.CheckIns > 62 || rep.Failed != 0 {
		t.Fatalf("at 40/s for 1.5 s: %d check-ins (%d failed), want about 60", rep.CheckIns, rep.Failed)
	}
}

// TestLongPollDelivery: with --wait the agents long-poll, and a command
// queued mid-run reaches its agent at once.
func TestLongPollDelivery(t *testing.T) {
	ts := testserver.Start(t, "sqlite", quiet)
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 3)
	sim, err := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: 3, Wait: 2,
		Duration: 1500 * time.Millisecond, Concurrency: 3, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	agents := sim.AgentIDs()
	go func() {
		time.Sleep(500 * time.Millisecond)
		queue(t, ts, admin, protocol.CmdCollectSpecs, agents[:1])
	}()
	start := time.Now()
	rep, err := sim.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Delivered != 1 || rep.Completed != 1 || rep.Duplicates != 0 || len(rep.Errors) != 0 {
		t.Fatalf("unexpected report: %+v", rep)
	}
	// Long-polls: few check-ins, and the run ends within duration + wait + margin.
	if rep.CheckIns > 12 {
		t.Errorf("%d check-ins in 1.5 s with wait=2 for 3 agents: not long-polling", rep.CheckIns)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("run took %s", d)
	}
}

// TestRegistrationOutOfSeats: agents beyond the token's seats are refused
// and counted; the others run.
func TestRegistrationOutOfSeats(t *testing.T) {
	ts := testserver.Start(t, "sqlite", quiet)
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 3)
	sim, err := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: 5, Duration: 200 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := sim.Register(context.Background())
	if err != nil || rr.Registered != 3 || rr.Errors["http_401_registration_refused"] != 2 {
		t.Fatalf("register: %+v, %v", rr, err)
	}
	if _, err := sim.Register(context.Background()); err == nil {
		t.Fatal("a second Register must be refused")
	}
	rep, err := sim.Run(context.Background())
	if err != nil || rep.Agents != 3 || rep.CheckIns == 0 {
		t.Fatalf("run: %+v, %v", rep, err)
	}
	// None at all: an error.
	sim2, _ := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: 2, Duration: time.Second})
	if _, err := sim2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no agent could register") {
		t.Fatalf("run without seats: %v", err)
	}
}

// fakeServer speaks just enough of the agent protocol to hand the
// simulator forged commands and record the results it gets back.
type fakeServer struct {
	key      *signing.Key
	agentID  string
	batches  [][]protocol.SignedCommand // one per check-in, then nothing
	mu       sync.Mutex
	checkIns int
	results  map[string]protocol.CommandResult
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/agents/register":
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(protocol.RegisterResponse{AgentID: f.agentID, Token: "jwt", RefreshToken: "refresh",
			CheckInIntervalSeconds: 300, PublicKeys: []protocol.PublicKey{{KeyID: f.key.ID, Algorithm: "ed25519",
				PublicKey: signing.EncodePublicKey(f.key.Public), Status: "active"}}})
	case r.Method == "GET" && r.URL.Path == "/api/v1/agents/"+f.agentID+"/commands":
		f.mu.Lock()
		var cmds []protocol.SignedCommand
		if f.checkIns < len(f.batches) {
			cmds = f.batches[f.checkIns]
		}
		f.checkIns++
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(protocol.CheckInResponse{Commands: cmds, CheckInIntervalSeconds: 300})
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/result"):
		parts := strings.Split(r.URL.Path, "/")
		var res protocol.CommandResult
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		f.results[parts[len(parts)-2]] = res
		f.mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	default:
		http.NotFound(w, r)
	}
}

func signed(k *signing.Key, agentID, id, params string, expires int64) protocol.SignedCommand {
	c := protocol.SignedCommand{ID: id, AgentID: agentID, Type: protocol.CmdCollectSpecs, Params: json.RawMessage(params),
		IssuedAt: time.Now().Unix(), ExpiresAt: expires, KeyID: k.ID}
	c.Signature = signing.SignCommand(k, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: c.Params,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt})
	return c
}

// TestVerificationAndDuplicates: commands that fail SPEC §5 verification
// are counted as refused and reported failed; a command id delivered again
// is counted as a duplicate and not answered twice.
func TestVerificationAndDuplicates(t *testing.T) {
	key, _ := signing.GenerateKey()
	other, _ := signing.GenerateKey()
	const me = "0190aaaa-0000-7000-8000-000000000001"
	exp := time.Now().Add(time.Hour).Unix()
	good := signed(key, me, "c-good", `{}`, exp)
	flipped := signed(key, me, "c-flipped", `{"a":1}`, exp)
	flipped.Params = json.RawMessage(`{"a":2}`)
	wrongAgent := signed(key, "0190aaaa-0000-7000-8000-000000000002", "c-wrong-agent", `{}`, exp)
	unknownKey := signed(other, me, "c-unknown-key", `{}`, exp)
	expired := signed(key, me, "c-expired", `{}`, time.Now().Add(-time.Hour).Unix())
	f := &fakeServer{key: key, agentID: me, results: map[string]protocol.CommandResult{},
		batches: [][]protocol.SignedCommand{{good, flipped, wrongAgent, unknownKey, expired}, {good}}}
	srv := httptest.NewServer(f)
	defer srv.Close()

	sim, err := fleetsim.New(fleetsim.Config{ServerURL: srv.URL, RegistrationToken: "rf_reg_x", Agents: 1, Rate: 20,
		Duration: 300 * time.Millisecond, Concurrency: 1, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sim.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Delivered != 5 || rep.Duplicates != 1 || rep.Refused != 4 || rep.Completed != 1 || rep.ReportedFailed != 4 {
		t.Fatalf("unexpected report: %+v", rep)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.results) != 5 || f.results["c-good"].Status != protocol.StateSucceeded {
		t.Fatalf("results: %+v", f.results)
	}
	for _, id := range []string{"c-flipped", "c-wrong-agent", "c-unknown-key", "c-expired"} {
		if f.results[id].Status != protocol.StateFailed || f.results[id].Output == "" {
			t.Errorf("%s: result %+v, want failed with the reason", id, f.results[id])
		}
	}
	if d := sim.Deliveries(); d["c-good"] != 2 {
		t.Errorf("deliveries of c-good: %d, want 2", d["c-good"])
	}
}

// TestResultsRetriedUntilAcknowledged: a result the server fails to accept
// is kept and sent again, like the agent's at-least-once reporting.
func TestResultsRetriedUntilAcknowledged(t *testing.T) {
	key, _ := signing.GenerateKey()
	const me = "0190aaaa-0000-7000-8000-000000000003"
	f := &fakeServer{key: key, agentID: me, results: map[string]protocol.CommandResult{},
		batches: [][]protocol.SignedCommand{{signed(key, me, "c-1", `{}`, time.Now().Add(time.Hour).Unix())}}}
	var mu sync.Mutex
	failures := 3
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := strings.HasSuffix(r.URL.Path, "/result") && failures > 0
		if fail {
			failures--
		}
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":"database_unavailable","message":"down"}}`)
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	sim, _ := fleetsim.New(fleetsim.Config{ServerURL: srv.URL, RegistrationToken: "rf_reg_x", Agents: 1,
		Duration: 400 * time.Millisecond, Concurrency: 1, Answer: true})
	rep, err := sim.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completed != 1 || rep.ResultsUnsent != 0 || rep.Errors["result: http_503_database_unavailable"] != 3 {
		t.Fatalf("unexpected report: %+v", rep)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{&client.APIError{StatusCode: 429, Code: "rate_limited"}, "http_429_rate_limited"},
		{&client.APIError{StatusCode: 502}, "http_502"},
		{&client.NetworkError{Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, "connection_refused"},
		{&client.NetworkError{Err: syscall.ECONNRESET}, "connection_reset"},
		{&client.NetworkError{Err: io.EOF}, "connection_closed"},
		{&client.NetworkError{Err: context.DeadlineExceeded}, "timeout"},
		{&client.NetworkError{Err: errors.New("the response is not the expected JSON: x")}, "bad_response"},
		{&client.NetworkError{Err: errors.New("no route")}, "network"},
		{errors.New("x"), "other"},
	}
	for _, c := range cases {
		if got := fleetsim.Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	env := func(k string) string {
		if k == fleetsim.EnvToken {
			return "rf_reg_fromenv"
		}
		return ""
	}
	cfg, asJSON, _, err := fleetsim.ParseArgs([]string{"--server", "http://127.0.0.1:8080", "--agents", "1000", "--rate", "5000",
		"--duration", "10s", "--concurrency", "48", "--wait", "30", "--answer=false", "--json"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerURL != "http://127.0.0.1:8080" || cfg.RegistrationToken != "rf_reg_fromenv" || cfg.Agents != 1000 || cfg.Rate != 5000 ||
		cfg.Duration != 10*time.Second || cfg.Concurrency != 48 || cfg.Wait != 30 || cfg.Answer || !asJSON {
		t.Fatalf("parsed %+v json=%v", cfg, asJSON)
	}
	cfg, _, _, err = fleetsim.ParseArgs([]string{"--server", "http://x", "--token", "t"}, env, io.Discard)
	if err != nil || !cfg.Answer || cfg.RegistrationToken != "t" || cfg.Agents != 100 || cfg.Concurrency != fleetsim.DefaultConcurrency {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{
		{"--token", "t"},                        // no server
		{"--server", "ftp://x", "--token", "t"}, // bad URL
		{"--server", "http://x"},                // no token (env empty below)
		{"--server", "http://x", "--token", "t", "--agents", "0"},
		{"--server", "http://x", "--token", "t", "--rate", "-1"},
		{"--server", "http://x", "--token", "t", "--duration", "0s"},
		{"--server", "http://x", "--token", "t", "--wait", "61"},
		{"--server", "http://x", "--token", "t", "--concurrency", "-2"},
		{"--server", "http://x", "--token", "t", "extra"},
	} {
		if _, _, _, err := fleetsim.ParseArgs(bad, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var out bytes.Buffer
	if code := fleetsim.Main(context.Background(), []string{"--version"}, env, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "redflag-fleetsim ") {
		t.Errorf("--version: %d %q", code, out.String())
	}
	if code := fleetsim.Main(context.Background(), []string{"--agents", "x"}, env, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}

// TestMainCommand runs the command end to end against a server: exit 0 and the
// report on stdout.
func TestMainCommand(t *testing.T) {
	ts := testserver.Start(t, "sqlite", quiet)
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, 5)
	var out, errOut bytes.Buffer
	code := fleetsim.Main(context.Background(), []string{"--server", ts.URL, "--token", reg, "--agents", "5", "--duration", "300ms",
		"--concurrency", "2"}, func(string) string { return "" }, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d; stdout %s; stderr %s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"registered:          5 of 5", "achieved:", "p99", "duplicates:          0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errOut.String(), reg) {
		t.Error("the registration token was printed")
	}
}

// settle runs the simulator again, a run at a time, until every command
// the server holds is finished or limit passes, and folds those runs into
// rep. A loaded machine may need more than one run of the configured
// duration for every agent to come round; what the tests assert is the
// outcome (nothing lost, nothing twice), not how fast it came.
func settle(t *testing.T, sim *fleetsim.Sim, st *store.Store, rep *fleetsim.Report, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		open := 0
		for _, c := range allCommands(t, st) {
			if c.Status == protocol.StatePending || c.Status == protocol.StateSent {
				open++
			}
		}
		if open == 0 && rep.ResultsUnsent == 0 {
			return
		}
		more, err := sim.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("settling: %d commands were still open; one more run delivered %d, completed %d", open, more.Delivered, more.Completed)
		rep.CheckIns += more.CheckIns
		rep.Delivered += more.Delivered
		rep.Duplicates += more.Duplicates
		rep.Refused += more.Refused
		rep.Completed += more.Completed
		rep.ReportedFailed += more.ReportedFailed
		rep.ResultsGone += more.ResultsGone
		rep.ResultsUnsent = more.ResultsUnsent
		for k, v := range more.Errors {
			rep.Errors[k] += v
		}
	}
}
