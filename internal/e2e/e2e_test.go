package e2e_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/storetest"
)

// commandLimit bounds every wait for a command to finish.
const commandLimit = 30 * time.Second

// TestCollectSpecsEndToEnd: a real server, a real agent registered with a
// registration token, a collect_specs command queued through the API; the
// command succeeds and the inventory arrives.
func TestCollectSpecsEndToEnd(t *testing.T) {
	eachEngine(t, func(t *testing.T, e storetest.Engine) {
		s := startServer(t, e)
		a := registerAgent(t, s.url, s.registrationToken(t, 1))

		fi, err := os.Stat(a.config)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("the agent config has mode %04o, want 0600", perm)
		}
		if before := s.agent(t, a.id); before.SystemInfoAt != nil {
			t.Fatalf("the agent has a system report before any command ran: %v", before.SystemInfoAt)
		}

		ap := a.run(t)
		cmd := s.queue(t, a.id, protocol.CmdCollectSpecs)
		c := s.waitFinished(t, cmd.ID, commandLimit, s.p, ap)
		if c.Status != protocol.StateSucceeded {
			t.Fatalf("collect_specs ended %s, want succeeded; result %+v", c.Status, c.Result)
		}
		if c.Result == nil || c.Result.ExitCode != 0 || !strings.Contains(c.Result.Output, "system inventory sent") {
			t.Errorf("unexpected result of collect_specs: %+v", c.Result)
		}

		ag := s.agent(t, a.id)
		si := ag.SystemInfo
		if si == nil || ag.SystemInfoAt == nil {
			t.Fatalf("the agent's system_info did not arrive: %+v", ag)
		}
		host, _ := os.Hostname()
		if si.Hostname == "" || (host != "" && si.Hostname != host) {
			t.Errorf("system_info.hostname = %q, want %q", si.Hostname, host)
		}
		if si.OSType != protocol.OSLinux {
			t.Errorf("system_info.os_type = %q, want linux", si.OSType)
		}
		if si.Kernel == "" {
			t.Error("system_info.kernel is empty")
		}
		if len(si.Disks) == 0 {
			t.Error("system_info lists no disks")
		}
		for _, d := range si.Disks {
			if d.Mount == "" || d.TotalBytes <= 0 || d.UsedBytes < 0 || d.UsedBytes > d.TotalBytes {
				t.Errorf("implausible disk in system_info: %+v", d)
			}
		}
		if !ran(ap, cmd.ID) {
			t.Error("the agent's log does not show the command running")
		}
	})
}

// TestTamperedCommandsAreRefused puts a man in the middle between the agent
// and the server. Commands queued for real through the API are rewritten
// in flight; the agent must run none of them and report each failed with
// the reason. A replayed command and one signed for another agent are
// refused too.
func TestTamperedCommandsAreRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, e storetest.Engine) {
		s := startServer(t, e)
		px := newProxy(t, s.url)
		regToken := s.registrationToken(t, 2)
		a := registerAgent(t, px.url(), regToken)
		otherID := s.registerOther(t, regToken)
		ap := a.run(t)
		procs := []*proc{s.p, ap}

		// A genuine command first: it runs, and is the one replayed later.
		genuine := s.queue(t, a.id, protocol.CmdCollectSpecs)
		if c := s.waitFinished(t, genuine.ID, commandLimit, procs...); c.Status != protocol.StateSucceeded {
			t.Fatalf("the untampered collect_specs ended %s, want succeeded; result %+v", c.Status, c.Result)
		}
		genuineResult := s.command(t, genuine.ID).Result
		baseline := s.agent(t, a.id).SystemInfoAt
		if baseline == nil || px.systemReportCount() != 1 {
			t.Fatalf("the untampered collect_specs sent %d system reports (system_info_at %v), want 1", px.systemReportCount(), baseline)
		}

		// nothingRan checks that no system report arrived since the genuine
		// command and that the agent did not start command id.
		wantReports := 1
		nothingRan := func(t *testing.T, id string) {
			t.Helper()
			if n := px.systemReportCount(); n != wantReports {
				t.Errorf("%d system reports reached the server, want %d: a refused command ran", n, wantReports)
			}
			if at := s.agent(t, a.id).SystemInfoAt; at == nil || !at.Equal(*baseline) {
				t.Errorf("system_info_at changed from %v to %v: a refused command ran", baseline, at)
			}
			if ran(ap, id) {
				t.Errorf("the agent's log shows command %s running", id)
			}
		}

		realKeyPath := filepath.Join(s.dataDir, "signing.key")
		if _, err := os.Stat(realKeyPath); err != nil {
			t.Fatalf("the server's signing key: %v", err)
		}
		realKey, _, err := signing.LoadOrCreateKeyFile(realKeyPath)
		if err != nil {
			t.Fatal(err)
		}
		if realKey.ID != genuine.KeyID {
			t.Fatalf("%s holds key %s, but commands are signed with %s", realKeyPath, realKey.ID, genuine.KeyID)
		}
		resign := func(sc *protocol.SignedCommand, k *signing.Key) {
			sc.KeyID = k.ID
			sc.Signature = signing.SignCommand(k, signing.CommandFields{AgentID: sc.AgentID, ID: sc.ID, Type: sc.Type,
				Params: sc.Params, IssuedAt: sc.IssuedAt, ExpiresAt: sc.ExpiresAt})
		}

		cases := []struct {
			name   string
			tamper tamperFunc
			code   string // the refusal code in the result's details
			reason string // in the result's output
		}{
			{
				name: "flipped byte in params",
				tamper: func(sc protocol.SignedCommand) (protocol.SignedCommand, error) {
					if string(sc.Params) != "{}" {
						return sc, errors.New("params are " + string(sc.Params) + ", want {}")
					}
					sc.Params = []byte(`{"a":0}`)
					return sc, nil
				},
				code: "bad_signature", reason: "signature does not verify",
			},
			{
				// The agent id is covered by the signature, so the agent
				// sees a signature that does not verify for this command.
				name: "another agent's id",
				tamper: func(sc protocol.SignedCommand) (protocol.SignedCommand, error) {
					sc.AgentID = otherID
					return sc, nil
				},
				code: "bad_signature", reason: "signature does not verify",
			},
			{
				name: "signed by an unknown key",
				tamper: func(sc protocol.SignedCommand) (protocol.SignedCommand, error) {
					k, err := signing.GenerateKey()
					if err != nil {
						return sc, err
					}
					resign(&sc, k)
					return sc, nil
				},
				code: "unknown_key", reason: "has not pinned",
			},
			{
				// Re-signed with the real server key: only the expiry is wrong.
				name: "expired",
				tamper: func(sc protocol.SignedCommand) (protocol.SignedCommand, error) {
					now := time.Now()
					sc.IssuedAt, sc.ExpiresAt = now.Add(-70*time.Minute).Unix(), now.Add(-10*time.Minute).Unix()
					resign(&sc, realKey)
					return sc, nil
				},
				code: "expired", reason: "expired",
			},
		}
		for _, tc := range cases {
			ok := t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				px.setTamperNext(tc.tamper)
				cmd := s.queue(t, a.id, protocol.CmdCollectSpecs)
				c := s.waitFinished(t, cmd.ID, commandLimit, procs...)
				ids, terr := px.tamperedIDs()
				if terr != nil {
					t.Fatalf("tampering failed: %v", terr)
				}
				if !slices.Contains(ids, cmd.ID) {
					t.Fatalf("the proxy did not rewrite command %s (it rewrote %v)", cmd.ID, ids)
				}
				if c.Status != protocol.StateFailed {
					t.Fatalf("the tampered command ended %s, want failed; result %+v", c.Status, c.Result)
				}
				if c.Result == nil {
					t.Fatal("the failed command has no result")
				}
				if got, _ := c.Result.Details["refused"].(string); got != tc.code {
					t.Errorf("details.refused = %q, want %q (output %q)", got, tc.code, c.Result.Output)
				}
				if !strings.Contains(c.Result.Output, tc.reason) {
					t.Errorf("the result output %q does not mention %q", c.Result.Output, tc.reason)
				}
				nothingRan(t, cmd.ID)
			})
			if !ok {
				t.FailNow() // later cases build on this one
			}
		}

		// A command genuinely signed for the other agent, delivered verbatim
		// to this one: the signature verifies, the agent id does not match.
		mustRun(t, "signed_for_another_agent", func(t *testing.T) {
			other := s.queue(t, otherID, protocol.CmdCollectSpecs)
			px.injectCommands(t, other.signed())
			waitFor(t, commandLimit, "the agent to refuse the other agent's command", procs, func(why *string) bool {
				return ap.out.find(func(r map[string]any) bool {
					return str(r, "msg") == "refused a command; nothing was run" && str(r, "command_id") == other.ID
				}) != nil
			})
			rec := ap.out.find(func(r map[string]any) bool { return str(r, "command_id") == other.ID && str(r, "code") != "" })
			if str(rec, "code") != "wrong_agent" || !strings.Contains(str(rec, "reason"), "not this agent") {
				t.Errorf("the agent refused the other agent's command with %q (%q), want wrong_agent", str(rec, "code"), str(rec, "reason"))
			}
			// Its refusal goes to the server, which takes no result for
			// another agent's command: 404, and the agent drops it.
			waitFor(t, commandLimit, "the refusal to reach the server", procs, func(why *string) bool {
				return slices.Contains(px.resultAnswers(other.ID), http.StatusNotFound)
			})
			if c := s.command(t, other.ID); c.Status != protocol.StatePending || c.Result != nil {
				t.Errorf("the other agent's command is %s with result %+v, want still pending and untouched", c.Status, c.Result)
			}
			nothingRan(t, other.ID)
		})

		// The agent is still healthy: an untampered command runs at once.
		mustRun(t, "still_works", func(t *testing.T) {
			cmd := s.queue(t, a.id, protocol.CmdCollectSpecs)
			if c := s.waitFinished(t, cmd.ID, commandLimit, procs...); c.Status != protocol.StateSucceeded {
				t.Fatalf("an untampered command after the attacks ended %s; result %+v", c.Status, c.Result)
			}
			wantReports++
			baseline = s.agent(t, a.id).SystemInfoAt
		})

		// The genuine command again, verbatim: a replay.
		t.Run("replayed", func(t *testing.T) {
			sc, ok := px.deliveredCommand(genuine.ID)
			if !ok {
				t.Fatal("the proxy did not see the genuine command")
			}
			px.injectCommands(t, sc)
			waitFor(t, commandLimit, "the agent to refuse the replay", procs, func(why *string) bool {
				return ap.out.find(func(r map[string]any) bool {
					return str(r, "command_id") == genuine.ID && str(r, "code") == "replayed" &&
						strings.Contains(str(r, "reason"), "replay")
				}) != nil
			})
			// The agent tells the server; the first result stands (409).
			waitFor(t, commandLimit, "the replay's refusal to reach the server", procs, func(why *string) bool {
				return slices.Contains(px.resultAnswers(genuine.ID), http.StatusConflict)
			})
			c := s.command(t, genuine.ID)
			if c.Status != protocol.StateSucceeded || c.Result == nil || c.Result.Output != genuineResult.Output {
				t.Errorf("after the replay the command is %s with result %+v, want the first result (succeeded, %q)",
					c.Status, c.Result, genuineResult.Output)
			}
			starts := 0
			for _, r := range ap.out.records() {
				if str(r, "msg") == "running command" && str(r, "command_id") == genuine.ID {
					starts++
				}
			}
			if starts != 1 {
				t.Errorf("the agent started the replayed command %d times, want once", starts)
			}
			if n := px.systemReportCount(); n != wantReports {
				t.Errorf("%d system reports reached the server, want %d: the replay ran", n, wantReports)
			}
			if at := s.agent(t, a.id).SystemInfoAt; at == nil || !at.Equal(*baseline) {
				t.Errorf("system_info_at changed from %v to %v: the replay ran", baseline, at)
			}
		})
	})
}

// mustRun runs a subtest and stops the test when it fails: the subtests of
// one agent run in sequence and build on each other.
func mustRun(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}

// TestResultSurvivesAgentKill: the agent runs a command but cannot report
// it (the proxy answers 503); it is killed with SIGKILL; after a restart it
// delivers the result it kept on disk and does not run the command again.
func TestResultSurvivesAgentKill(t *testing.T) {
	eachEngine(t, func(t *testing.T, e storetest.Engine) {
		s := startServer(t, e)
		px := newProxy(t, s.url)
		a := registerAgent(t, px.url(), s.registrationToken(t, 1))
		px.setBlockResults(true)
		ap := a.run(t)

		cmd := s.queue(t, a.id, protocol.CmdCollectSpecs)
		waitFor(t, commandLimit, "the command to run and its result to wait on disk", []*proc{s.p, ap}, func(why *string) bool {
			res, running, ok := a.pendingResult(cmd.ID)
			*why = "system reports " + strconv.Itoa(px.systemReportCount()) + ", result on disk " + res.Status + ", running " + strconv.FormatBool(running) +
				", blocked result POSTs " + strconv.Itoa(px.blockedResults(cmd.ID))
			return px.systemReportCount() == 1 && ok && !running && res.Status == protocol.StateSucceeded &&
				px.blockedResults(cmd.ID) > 0
		})
		at := s.agent(t, a.id).SystemInfoAt
		if at == nil {
			t.Fatal("the system report did not reach the server")
		}
		if c := s.command(t, cmd.ID); c.Status != protocol.StateSent {
			t.Fatalf("with results blocked the command is %s, want sent", c.Status)
		}

		ap.kill9()
		px.setBlockResults(false)
		ap2 := a.run(t)

		c := s.waitFinished(t, cmd.ID, commandLimit, s.p, ap2)
		if c.Status != protocol.StateSucceeded {
			t.Fatalf("after the restart the command ended %s, want succeeded; result %+v", c.Status, c.Result)
		}
		if c.Result == nil || !strings.Contains(c.Result.Output, "system inventory sent") {
			t.Errorf("the delivered result is not the one the killed agent kept: %+v", c.Result)
		}
		if n := px.systemReportCount(); n != 1 {
			t.Errorf("%d system reports reached the server, want 1: the command ran again after the restart", n)
		}
		if now := s.agent(t, a.id).SystemInfoAt; now == nil || !now.Equal(*at) {
			t.Errorf("system_info_at changed from %v to %v after the restart", at, now)
		}
		if ran(ap2, cmd.ID) {
			t.Error("the restarted agent ran the command again")
		}
		waitFor(t, 10*time.Second, "the delivered result to leave the state directory", []*proc{ap2}, func(why *string) bool {
			_, _, ok := a.pendingResult(cmd.ID)
			return !ok
		})
	})
}
