package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestJitter(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		r    float64
		want time.Duration
	}{
		{300 * time.Second, 0, 300 * time.Second},
		{300 * time.Second, 0.5, 225 * time.Second},
		{300 * time.Second, 0.999999, 150*time.Second + 150*time.Microsecond},
		{10 * time.Second, 0.2, 9 * time.Second},
	} {
		if got := jitter(tt.d, tt.r); got != tt.want {
			t.Errorf("jitter(%s, %v) = %s, want %s", tt.d, tt.r, got, tt.want)
		}
	}
}

func TestLoopCollectSpecs(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.enqueue(h.sign("cmd-specs", protocol.CmdCollectSpecs, `{}`))
	if err := h.run(func() bool { _, ok := h.srv.result1("cmd-specs"); return ok }); err != nil {
		t.Fatal(err)
	}
	res, _ := h.srv.result1("cmd-specs")
	if res.Status != protocol.StateSucceeded || !strings.Contains(res.Output, "system inventory sent") {
		t.Fatalf("result %+v", res)
	}
	h.srv.with(func(fs *fakeServer) {
		if len(fs.reports) != 1 || fs.reports[0].Hostname != "test-host" {
			t.Errorf("reports %+v", fs.reports)
		}
		if len(fs.checkIns) < 2 || fs.checkIns[0] != "wait=30" {
			t.Errorf("check-ins %q: the agent long-polls with wait=30 by default", fs.checkIns)
		}
	})
	if h.state.PendingCount() != 0 || !h.state.IsExecuted("cmd-specs") {
		t.Errorf("after delivery: pending %d, executed %v", h.state.PendingCount(), h.state.IsExecuted("cmd-specs"))
	}
	// The server answered at once with nothing (it did not hold the
	// long-poll), so the agent waited its interval with jitter: 300 s at
	// rand 0.5 is 225 s.
	if s := h.clock.Sleeps(); len(s) == 0 || s[0] != 225*time.Second {
		t.Errorf("sleeps %v, want the first to be 225s", s)
	}
	h.assertNoSecretsLogged()
}

func TestLoopIntervalSources(t *testing.T) {
	tests := []struct {
		name           string
		serverInterval int
		override       int
		rand           float64
		want           time.Duration
	}{
		{"server interval", 60, 0, 0, 60 * time.Second},
		{"server interval jittered", 60, 0, 0.5, 45 * time.Second},
		{"config override wins", 60, 120, 0, 120 * time.Second},
		{"tiny server interval is floored", 1, 0, 0, minCheckInInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options, c *Config) {
				c.PollIntervalSeconds = tt.override
				r := tt.rand
				o.Rand = func() float64 { return r }
			})
			h.srv.with(func(fs *fakeServer) { fs.interval = tt.serverInterval })
			if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 2 }); err != nil {
				t.Fatal(err)
			}
			for _, s := range h.clock.Sleeps() {
				if s != tt.want {
					t.Fatalf("sleeps %v, want each %s", h.clock.Sleeps(), tt.want)
				}
			}
		})
	}
}

func TestLoopBackoffOnFailures(t *testing.T) {
	h := newHarness(t, func(o *Options, c *Config) {
		c.BackoffMinSeconds, c.BackoffMaxSeconds = 2, 10
		o.Rand = func() float64 { return 0.999 }
	})
	h.srv.with(func(fs *fakeServer) { fs.checkInFail = []int{500, 502, 503, 500, 500, 500}; fs.interval = 60 })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 8 }); err != nil {
		t.Fatal(err)
	}
	s := h.clock.Sleeps()
	ceilings := []time.Duration{2, 4, 8, 10, 10, 10}
	for i, c := range ceilings {
		c *= time.Second
		if s[i] > c || s[i] < c*99/100 {
			t.Errorf("failure %d: slept %s, want just under the ceiling %s (full jitter at rand 0.999)", i+1, s[i], c)
		}
	}
	// Success resets the backoff: back to the interval (60 s at rand 0.999).
	if want := jitter(60*time.Second, 0.999); s[6] != want {
		t.Errorf("after recovery slept %s, want %s", s[6], want)
	}
	if !strings.Contains(h.logs.String(), "check-in works again") {
		t.Error("recovery not logged")
	}
}

func TestLoopBackoffFullJitterLowEnd(t *testing.T) {
	h := newHarness(t, func(o *Options, c *Config) { o.Rand = func() float64 { return 0 } })
	h.srv.with(func(fs *fakeServer) { fs.checkInFail = []int{500, 500, 500} })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 3 }); err != nil {
		t.Fatal(err)
	}
	for _, d := range h.clock.Sleeps()[:3] {
		if d != minBackoffSleep {
			t.Errorf("slept %s; full jitter at 0 must still wait %s", d, minBackoffSleep)
		}
	}
}

func TestLoopHonoursRetryAfter(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.with(func(fs *fakeServer) { fs.checkInFail = []int{429}; fs.retryAfter = "120" })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 1 }); err != nil {
		t.Fatal(err)
	}
	if s := h.clock.Sleeps(); s[0] != 120*time.Second {
		t.Errorf("slept %s after a 429 with Retry-After 120", s[0])
	}
}

func TestLoopLongPollFallback(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.with(func(fs *fakeServer) { fs.rejectWait = true })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 3 }); err != nil {
		t.Fatal(err)
	}
	h.srv.with(func(fs *fakeServer) {
		if len(fs.checkIns) < 4 || fs.checkIns[0] != "wait=30" || fs.checkIns[1] != "" || fs.checkIns[2] != "" || fs.checkIns[3] != "" {
			t.Errorf("check-ins %q: after a 400 to wait, plain polling only", fs.checkIns)
		}
	})
	for _, s := range h.clock.Sleeps() {
		if s != 225*time.Second {
			t.Errorf("sleeps %v; plain polling must wait the interval", h.clock.Sleeps())
			break
		}
	}
	if !strings.Contains(h.logs.String(), "falling back to plain polling") {
		t.Error("fallback not logged")
	}
}

func TestLoopLongPollHeldRepollsAtOnce(t *testing.T) {
	h := newHarness(t, func(o *Options, c *Config) {
		one := 1
		c.LongPollSeconds = &one
	})
	h.srv.with(func(fs *fakeServer) { fs.holdLongPoll = 700 * time.Millisecond })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 2 }); err != nil {
		t.Fatal(err)
	}
	for _, s := range h.clock.Sleeps() {
		if s > rePollJitter {
			t.Errorf("sleeps %v; after a held long-poll the agent re-polls within %s", h.clock.Sleeps(), rePollJitter)
		}
	}
}

func TestLoopRenewsOn401AndPersists(t *testing.T) {
	h := newHarness(t, nil)
	// The server no longer accepts the agent's JWT (say, its secret rotated).
	h.srv.with(func(fs *fakeServer) { fs.token = fakeJWT("server-side", t0.Add(time.Hour)) })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 2 }); err != nil {
		t.Fatal(err)
	}
	var tok, ref string
	h.srv.with(func(fs *fakeServer) {
		tok, ref = fs.token, fs.refresh
		if fs.renewCalls != 1 || fs.registerCalls != 0 {
			t.Errorf("renew calls %d, register calls %d", fs.renewCalls, fs.registerCalls)
		}
	})
	c, err := LoadConfig(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != tok || c.RefreshToken != ref || !c.TokenExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("config on disk not updated: token %v refresh %v exp %s", c.Token == tok, c.RefreshToken == ref, c.TokenExpiresAt)
	}
	h.assertNoSecretsLogged()
}

func TestLoopRenewsBeforeExpiry(t *testing.T) {
	h := newHarness(t, func(o *Options, c *Config) { c.TokenExpiresAt = t0.Add(30 * time.Minute) })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 1 }); err != nil {
		t.Fatal(err)
	}
	h.srv.with(func(fs *fakeServer) {
		if fs.renewCalls != 1 {
			t.Errorf("renew calls %d, want 1 (the token had 30 min left)", fs.renewCalls)
		}
	})
	if c := h.agent.Config(); !c.TokenExpiresAt.After(t0.Add(23 * time.Hour)) {
		t.Errorf("new expiry %s", c.TokenExpiresAt)
	}
}

func TestLoopRenewRefusedKeepsBackingOffNeverRegisters(t *testing.T) {
	h := newHarness(t, func(o *Options, c *Config) {
		c.BackoffMinSeconds, c.BackoffMaxSeconds = 2, 20
		o.Rand = func() float64 { return 0.999 }
	})
	h.srv.with(func(fs *fakeServer) {
		fs.token = fakeJWT("revoked", t0)
		fs.renewStatus = 401
	})
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 6 }); err != nil {
		t.Fatal(err)
	}
	s := h.clock.Sleeps()
	for i := 1; i < len(s); i++ {
		if s[i] < s[i-1] {
			t.Errorf("backoff shrank while renewal is refused: %v", s)
		}
	}
	if s[len(s)-1] < 19*time.Second {
		t.Errorf("backoff did not grow to its cap: %v", s)
	}
	h.srv.with(func(fs *fakeServer) {
		if fs.registerCalls != 0 {
			t.Error("the agent re-registered by itself")
		}
		if fs.renewCalls < 6 {
			t.Errorf("renew calls %d: the agent keeps trying", fs.renewCalls)
		}
	})
	if !strings.Contains(h.logs.String(), "REFUSED TO RENEW") || !strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("the refusal is not logged loudly:\n%s", h.logs.String())
	}
	h.assertNoSecretsLogged()
}

func TestLoopHeartbeat(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.enqueue(h.sign("hb-on", protocol.CmdEnableHeartbeat, `{"interval_seconds":5,"duration_seconds":60}`))
	if err := h.run(func() bool {
		s := h.clock.Sleeps()
		return len(s) > 0 && s[len(s)-1] == 225*time.Second
	}); err != nil {
		t.Fatal(err)
	}
	res, _ := h.srv.result1("hb-on")
	if res.Status != protocol.StateSucceeded {
		t.Fatalf("enable_heartbeat result %+v", res)
	}
	s := h.clock.Sleeps()
	fast := 0
	for _, d := range s[:len(s)-1] {
		if d != jitter(5*time.Second, 0.5) {
			t.Fatalf("sleeps %v: heartbeat polls every 5 s (jittered) until it ends", s)
		}
		fast++
	}
	// 60 s of heartbeat at 3.75 s per poll.
	if fast < 15 || fast > 17 {
		t.Errorf("%d fast polls, want about 16 in 60 s", fast)
	}
	h.srv.with(func(fs *fakeServer) {
		for _, q := range fs.checkIns[1 : len(fs.checkIns)-1] {
			if q != "" {
				t.Errorf("heartbeat check-ins must not long-poll: %q", fs.checkIns)
				break
			}
		}
	})
}

func TestLoopDisableHeartbeat(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.enqueue(h.sign("hb-on", protocol.CmdEnableHeartbeat, `{"interval_seconds":5,"duration_seconds":3600}`))
	queued := false
	if err := h.run(func() bool {
		s := h.clock.Sleeps()
		if len(s) == 3 && !queued {
			queued = true
			h.srv.enqueue(h.sign("hb-off", protocol.CmdDisableHeartbeat, `{}`))
		}
		return len(s) > 0 && s[len(s)-1] == 225*time.Second
	}); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.srv.result1("hb-off"); r.Status != protocol.StateSucceeded {
		t.Fatalf("disable_heartbeat result %+v", r)
	}
	if n := len(h.clock.Sleeps()); n != 4 {
		t.Errorf("sleeps %v: heartbeat should end right after disable_heartbeat", h.clock.Sleeps())
	}
}

// TestLoopResultSurvivesCrash is the kill -9 scenario: the command ran but
// its result could not be delivered before the agent died; after restart
// the result is delivered and the command is not run again, even when the
// server hands it out a second time.
func TestLoopResultSurvivesCrash(t *testing.T) {
	ran := &countingHandler{}
	h := newHarness(t, func(o *Options, c *Config) { o.Handlers = map[string]Handler{protocol.CmdCollectSpecs: ran} })
	h.srv.with(func(fs *fakeServer) { fs.resultStatus = func(string) int { return 503 } })
	cmd := h.sign("cmd-1", protocol.CmdCollectSpecs, `{}`)
	h.srv.enqueue(cmd)
	if err := h.run(func() bool { return len(ran.Ran()) == 1 && len(h.clock.Sleeps()) >= 2 }); err != nil {
		t.Fatal(err)
	}
	if h.state.PendingCount() != 1 {
		t.Fatalf("the undelivered result is not on disk")
	}

	// Restart: the server works again and (wrongly) delivers cmd-1 again.
	h.srv.with(func(fs *fakeServer) { fs.resultStatus = nil })
	h.srv.enqueue(cmd)
	h.open()
	if err := h.run(func() bool {
		var n int
		h.srv.with(func(fs *fakeServer) { n = fs.resultCalls })
		return n >= 2 && h.state.PendingCount() == 0
	}); err != nil {
		t.Fatal(err)
	}
	if got := ran.Ran(); len(got) != 1 {
		t.Fatalf("the command ran %d times", len(got))
	}
	res, _ := h.srv.result1("cmd-1")
	if res.Status != protocol.StateSucceeded || res.Output != "ran cmd-1" {
		t.Errorf("delivered result %+v, want the original success", res)
	}
}

func TestLoopReportsInterruptedAfterRestart(t *testing.T) {
	h := newHarness(t, nil)
	// What a kill -9 in the middle of a command leaves behind.
	p := PendingResult{CommandID: "mid-run", Type: protocol.CmdReboot, Running: true, CreatedAt: t0.Add(-time.Minute),
		ExpiresAt: t0.Add(time.Hour).Unix(), Result: toResult(Outcome{ExitCode: 1, Output: interruptedOutput}, t0.Add(-time.Minute), t0.Add(-time.Minute))}
	if err := h.state.SavePending(p); err != nil {
		t.Fatal(err)
	}
	if err := h.state.MarkExecuted("mid-run", t0.Add(-time.Minute), p.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	done := PendingResult{CommandID: "finished", Type: protocol.CmdCollectSpecs, CreatedAt: t0.Add(-2 * time.Minute),
		Result: protocol.CommandResult{Status: protocol.StateSucceeded, Output: "ok", StartedAt: t0, FinishedAt: t0}}
	if err := h.state.SavePending(done); err != nil {
		t.Fatal(err)
	}
	h.open()
	if err := h.run(func() bool { return h.state.PendingCount() == 0 }); err != nil {
		t.Fatal(err)
	}
	r, _ := h.srv.result1("mid-run")
	if r.Status != protocol.StateFailed || !strings.Contains(r.Output, "interrupted") {
		t.Errorf("mid-run reported %+v", r)
	}
	h.srv.with(func(fs *fakeServer) {
		if len(fs.resultOrder) != 2 || fs.resultOrder[0] != "finished" {
			t.Errorf("delivery order %v, want oldest first", fs.resultOrder)
		}
	})
}

func TestLoopResultDelivery(t *testing.T) {
	h := newHarness(t, func(o *Options, c *Config) { o.Rand = func() float64 { return 0.999 } })
	var mu sync.Mutex
	flaky := 0
	h.srv.with(func(fs *fakeServer) {
		fs.resultStatus = func(id string) int {
			switch id {
			case "gone":
				return 409
			case "bad":
				return 400
			case "flaky":
				mu.Lock()
				defer mu.Unlock()
				if flaky++; flaky <= 2 {
					return 503
				}
			}
			return 200
		}
	})
	for i, id := range []string{"gone", "bad", "flaky"} {
		if err := h.state.SavePending(PendingResult{CommandID: id, CreatedAt: t0.Add(time.Duration(i) * time.Second),
			Result: protocol.CommandResult{Status: protocol.StateSucceeded}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.run(func() bool { return h.state.PendingCount() == 0 }); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.srv.result1("flaky"); !ok {
		t.Error("the flaky result was never delivered")
	}
	if _, err := os.Stat(filepath.Join(h.dir, "state", rejectedDir, "bad.json")); err != nil {
		t.Errorf("the refused result was not set aside: %v", err)
	}
	// Result retries back off (2 s, then 4 s ceilings at rand 0.999) and do
	// not wait for the next check-in.
	s := h.clock.Sleeps()
	if len(s) < 2 || s[0] > 2*time.Second || s[1] > 4*time.Second || s[1] < 3*time.Second {
		t.Errorf("sleeps %v, want result retries at about 2 s then 4 s", s)
	}
}

// TestShutdownDuringCommand: when the agent is told to stop while a command
// runs, the command may finish within the grace period; otherwise its
// context is cancelled and it is reported interrupted.
func TestShutdownDuringCommand(t *testing.T) {
	for _, tt := range []struct {
		name       string
		finishesIn time.Duration // 0: never, unless cancelled
		wantStatus string
		wantOutput string
	}{
		{"finishes within grace", 50 * time.Millisecond, protocol.StateSucceeded, "finished"},
		{"overruns grace", 0, protocol.StateFailed, "interrupted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cancelled := make(chan struct{})
			slow := HandlerFunc(func(hctx context.Context, cmd Command) Outcome {
				cancel() // SIGTERM arrives while the command runs
				if tt.finishesIn > 0 {
					time.Sleep(tt.finishesIn)
					return Succeeded("finished", nil)
				}
				<-hctx.Done()
				close(cancelled)
				return Failed("cancelled")
			})
			h := newHarness(t, func(o *Options, c *Config) {
				o.Handlers = map[string]Handler{"slow": slow}
				o.ShutdownGrace = 200 * time.Millisecond
			})
			h.srv.enqueue(h.sign("slow-1", "slow", `{}`))
			if err := h.agent.Run(ctx); err != nil {
				t.Fatal(err)
			}
			res, ok := h.srv.result1("slow-1")
			if !ok {
				t.Fatalf("no result delivered on stop; logs:\n%s", h.logs.String())
			}
			if res.Status != tt.wantStatus || !strings.Contains(res.Output, tt.wantOutput) {
				t.Errorf("result %s %q, want %s %q", res.Status, res.Output, tt.wantStatus, tt.wantOutput)
			}
			if tt.finishesIn == 0 {
				select {
				case <-cancelled:
				case <-time.After(5 * time.Second):
					t.Error("the overrunning command's context was never cancelled")
				}
			}
			if !h.state.IsExecuted("slow-1") {
				t.Error("slow-1 is not recorded as executed")
			}
		})
	}
}

func TestLoopStopsCleanlyWhenServerDown(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.srv.Close()
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 3 }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.logs.String(), "check-in failed") {
		t.Error("failure not logged")
	}
}

func TestRunKeepsCommandDetailsJSON(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.enqueue(h.sign("r-1", protocol.CmdReboot, `{"delay_seconds":30}`))
	if err := h.run(func() bool { _, ok := h.srv.result1("r-1"); return ok }); err != nil {
		t.Fatal(err)
	}
	res, _ := h.srv.result1("r-1")
	// No reboot action is wired in tests: an honest failure, no reboot.
	if res.Status != protocol.StateFailed || !strings.Contains(res.Output, "no reboot action") {
		t.Errorf("result %+v", res)
	}
	if res.Details != nil && !json.Valid(res.Details) {
		t.Errorf("details %q", res.Details)
	}
}

// TestLoopNoTightLoopOnRedelivery: a server that hands out the same
// (refused) command on every check-in must not make the agent spin. The
// first delivery is a new command: the agent re-polls soon, as after a held
// long-poll, so it does not miss the next command for a whole interval;
// every redelivery waits the interval.
func TestLoopNoTightLoopOnRedelivery(t *testing.T) {
	h := newHarness(t, nil)
	expired := signCmd(h.key, "stale", testAgentID, protocol.CmdCollectSpecs, `{}`, t0.Add(-3*time.Hour))
	h.srv.with(func(fs *fakeServer) { fs.sticky = []protocol.SignedCommand{expired} })
	if err := h.run(func() bool { return len(h.clock.Sleeps()) >= 3 }); err != nil {
		t.Fatal(err)
	}
	for i, s := range h.clock.Sleeps() {
		if (i == 0 && s > rePollJitter) || (i > 0 && s != 225*time.Second) {
			t.Fatalf("sleeps %v: after a new refused command re-poll within %s; a redelivered one must not trigger an early re-check-in", h.clock.Sleeps(), rePollJitter)
		}
	}
	if r, ok := h.srv.result1("stale"); !ok || r.Status != protocol.StateFailed {
		t.Errorf("stale result %+v", r)
	}
}

// TestLoopAcknowledgesCommands: every command received is acknowledged on
// the next check-in, from disk (it survives a restart), and forgotten only
// once a check-in carrying it was answered 200. A redelivery of a command
// already run is acknowledged again and runs nothing.
func TestLoopAcknowledgesCommands(t *testing.T) {
	ran := &countingHandler{}
	h := newHarness(t, func(o *Options, c *Config) { o.Handlers = map[string]Handler{protocol.CmdCollectSpecs: ran} })
	const id = "0190a3b4-2222-7000-8000-000000000001"
	cmd := h.sign(id, protocol.CmdCollectSpecs, `{}`)
	h.srv.enqueue(cmd)
	// The check-in after the result fails: the ack it carried stays on disk.
	h.srv.with(func(fs *fakeServer) {
		fs.onResult = func(string) { h.srv.with(func(fs *fakeServer) { fs.checkInFail = []int{503} }) }
	})
	if err := h.run(func() bool {
		var n int
		h.srv.with(func(fs *fakeServer) { n = len(fs.checkIns) })
		return n >= 2
	}); err != nil {
		t.Fatal(err)
	}
	h.srv.with(func(fs *fakeServer) {
		if q := fs.checkIns[1]; !strings.Contains(q, "ack="+id) {
			t.Errorf("check-in %q does not acknowledge %s", q, id)
		}
	})
	if got := h.state.Acks(100); len(got) != 1 || got[0] != id {
		t.Fatalf("pending acks %v, want [%s]", got, id)
	}

	// Restart: the ack is still there, and the next check-in carries it.
	h.open()
	if h.state.AckCount() != 1 {
		t.Fatal("the pending ack did not survive the restart")
	}
	var before int
	h.srv.with(func(fs *fakeServer) { before = len(fs.checkIns); fs.onResult = nil })
	if err := h.run(func() bool {
		var n int
		h.srv.with(func(fs *fakeServer) { n = len(fs.checkIns) })
		return n >= before+1
	}); err != nil {
		t.Fatal(err)
	}
	h.srv.with(func(fs *fakeServer) {
		if q := fs.checkIns[before]; !strings.Contains(q, "ack="+id) {
			t.Errorf("check-in %q does not acknowledge %s", q, id)
		}
	})
	if h.state.AckCount() != 0 {
		t.Errorf("acks %v left after a check-in carrying them succeeded", h.state.Acks(100))
	}

	// A redelivery of the command it already ran: acknowledged again,
	// nothing run, the first result stands.
	h.srv.enqueue(cmd)
	h.srv.with(func(fs *fakeServer) { before = len(fs.checkIns) })
	if err := h.run(func() bool {
		var n int
		h.srv.with(func(fs *fakeServer) { n = len(fs.checkIns) })
		return n >= before+2
	}); err != nil {
		t.Fatal(err)
	}
	if got := ran.Ran(); len(got) != 1 {
		t.Fatalf("the command ran %d times", len(got))
	}
	h.srv.with(func(fs *fakeServer) {
		if q := fs.checkIns[before+1]; !strings.Contains(q, "ack="+id) {
			t.Errorf("the check-in after the redelivery (%q) does not acknowledge it", q)
		}
	})
	if res, _ := h.srv.result1(id); res.Status != protocol.StateSucceeded {
		t.Errorf("result %+v, want the first success", res)
	}
}
