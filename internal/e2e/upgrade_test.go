package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/storetest"
)

// The self-upgrade end to end: real server, real agent binaries of several
// versions, the agent run by a small supervisor that restarts it when it
// exits (like systemd's Restart=, the Windows recovery actions or launchd's
// KeepAlive).

const versionPkg = "github.com/redflaghq/redflag/internal/version.Version"

// upgradeBins are the agent builds of the upgrade test.
type upgradeBins struct {
	v100, v110, v090, crash110 string
}

var (
	upgradeBinsOnce sync.Once
	upgradeBinsVal  upgradeBins
	upgradeBinsErr  error
)

// buildUpgradeBins builds the agent as 1.0.0, 1.1.0, 0.9.0 and a 1.1.0 that
// fails right after the watchdog hook of `run` (main.crashAfterUpgradeCheckpoint).
func buildUpgradeBins(t *testing.T) upgradeBins {
	t.Helper()
	upgradeBinsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redflag-e2e-upgrade-bin-")
		if err != nil {
			upgradeBinsErr = err
			return
		}
		// Removed with the process's temp files; the test binaries are small enough.
		b := upgradeBins{v100: filepath.Join(dir, "agent-1.0.0"), v110: filepath.Join(dir, "agent-1.1.0"),
			v090: filepath.Join(dir, "agent-0.9.0"), crash110: filepath.Join(dir, "agent-1.1.0-crash")}
		builds := []struct{ out, ldflags string }{
			{b.v100, "-X " + versionPkg + "=1.0.0"},
			{b.v110, "-X " + versionPkg + "=1.1.0"},
			{b.v090, "-X " + versionPkg + "=0.9.0"},
			{b.crash110, "-X " + versionPkg + "=1.1.0 -X main.crashAfterUpgradeCheckpoint=1"},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, len(builds))
		for i, bd := range builds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.CommandContext(ctx, "go", "build", "-o", bd.out, "-ldflags", bd.ldflags, "github.com/redflaghq/redflag/cmd/redflag-agent")
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				upgradeBinsErr = err
				return
			}
		}
		upgradeBinsVal = b
	})
	if upgradeBinsErr != nil {
		t.Fatalf("building the agent versions: %v", upgradeBinsErr)
	}
	return upgradeBinsVal
}

// supervisor runs a binary and starts it again whenever it exits, until
// stopped: a test stand-in for the service manager.
type supervisor struct {
	t    *testing.T
	bin  string
	args []string
	out  *logBuf

	mu      sync.Mutex
	cur     *exec.Cmd
	exits   []int
	starts  int
	stopped bool
	done    chan struct{}
}

func supervise(t *testing.T, bin string, args ...string) *supervisor {
	t.Helper()
	s := &supervisor{t: t, bin: bin, args: args, out: &logBuf{}, done: make(chan struct{})}
	go s.loop()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("----- output of the supervised agent (%d starts, exits %v) -----\n%s----- end -----", s.startCount(), s.exitCodes(), tail(s.out.String(), 256<<10))
		}
	})
	t.Cleanup(s.stop)
	return s
}

func (s *supervisor) loop() {
	defer close(s.done)
	for {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return
		}
		cmd := exec.Command(s.bin, s.args...)
		cmd.Env = childEnv()
		cmd.Stdout, cmd.Stderr = s.out, s.out
		if err := cmd.Start(); err != nil {
			s.mu.Unlock()
			fmt.Fprintf(s.out, "supervisor: start failed: %v\n", err)
			time.Sleep(250 * time.Millisecond)
			continue
		}
		s.cur = cmd
		s.starts++
		s.mu.Unlock()
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		s.mu.Lock()
		s.exits = append(s.exits, code)
		s.cur = nil
		stopped := s.stopped
		s.mu.Unlock()
		fmt.Fprintf(s.out, "supervisor: the agent exited with %d\n", code)
		if stopped {
			return
		}
		time.Sleep(250 * time.Millisecond) // RestartSec
	}
}

func (s *supervisor) stop() {
	s.mu.Lock()
	s.stopped = true
	cur := s.cur
	s.mu.Unlock()
	if cur != nil {
		_ = cur.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		if cur != nil {
			_ = cur.Process.Kill()
		}
		<-s.done
	}
}

func (s *supervisor) exitCodes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.exits...)
}

func (s *supervisor) startCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// upgradeRecord is the agent detail's upgrade object.
type upgradeRecord struct {
	Status             string  `json:"status"`
	FailureReason      string  `json:"failure_reason"`
	AutoUpgradeBlocked bool    `json:"auto_upgrade_blocked"`
	TargetVersion      string  `json:"target_version"`
	CommandID          *string `json:"command_id"`
	Attempts           int     `json:"attempts"`
}

type agentVersionRecord struct {
	AgentVersion string         `json:"agent_version"`
	Upgrade      *upgradeRecord `json:"upgrade"`
}

func (s *server) agentVersion(t *testing.T, id string) agentVersionRecord {
	t.Helper()
	var a agentVersionRecord
	s.call(t, "GET", "/api/v1/agents/"+id, nil, http.StatusOK, &a)
	return a
}

// publishAgent puts bin in the server's binaries directory as version v.
func publishAgent(t *testing.T, binDir, bin, v string) {
	t.Helper()
	dir := filepath.Join(binDir, runtime.GOOS+"-"+runtime.GOARCH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "redflag-agent")
	// Written beside and renamed, like a release would be published.
	if err := os.WriteFile(name+".tmp", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// servedParams reads the download headers of the published binary: the
// update_agent params the server would send for it.
func servedParams(t *testing.T, s *server) protocol.UpdateAgentParams {
	t.Helper()
	path := "/api/v1/downloads/agent/" + runtime.GOOS + "/" + runtime.GOARCH
	resp, err := s.hc.Head(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s: %d", path, resp.StatusCode)
	}
	return protocol.UpdateAgentParams{Version: resp.Header.Get(protocol.HeaderAgentVersion), URL: path,
		SHA256: resp.Header.Get("X-Content-SHA256"), Signature: resp.Header.Get("X-Signature"), KeyID: resp.Header.Get("X-Key-ID")}
}

// queueUpdateAgent queues update_agent with hand-made params through the
// generic command route (signed by the server like any command).
func (s *server) queueUpdateAgent(t *testing.T, agentID string, p protocol.UpdateAgentParams) commandRecord {
	t.Helper()
	var out struct {
		Commands []commandRecord `json:"commands"`
	}
	s.call(t, "POST", "/api/v1/commands", map[string]any{"agent_ids": []string{agentID}, "type": protocol.CmdUpdateAgent, "params": p},
		http.StatusCreated, &out)
	return out.Commands[0]
}

type upgradeAnswer struct {
	Queued []struct {
		AgentID   string `json:"agent_id"`
		CommandID string `json:"command_id"`
	} `json:"queued"`
	Skipped []struct {
		AgentID string `json:"agent_id"`
		Code    string `json:"code"`
		Reason  string `json:"reason"`
	} `json:"skipped"`
}

func detailsStep(c commandRecord) string {
	if c.Result == nil {
		return ""
	}
	s, _ := c.Result.Details["step"].(string)
	return s
}

// TestAgentSelfUpgradeEndToEnd runs agent 1.0.0 under a supervisor against
// a real server and, in turn: refuses a tampered 1.1.0 and one with a wrong
// signature, refuses an older 0.9.0, survives a 1.1.0 that crashes at start
// (the watchdog restores 1.0.0 and the server shows the upgrade failed and
// the agent blocked), then, after an admin's retry, upgrades to a good
// 1.1.0 that checks in.
func TestAgentSelfUpgradeEndToEnd(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the supervisor signals with SIGTERM")
	}
	bins := buildUpgradeBins(t)
	engines := storetest.Engines(t)
	if testing.Short() {
		engines = engines[:1]
	}
	for _, e := range engines {
		t.Run(string(e), func(t *testing.T) {
			binDir := filepath.Join(t.TempDir(), "agents")
			s := startServer(t, e, "--agent-binaries-dir", binDir)
			a := registerAgent(t, s.url, s.registrationToken(t, 1))
			// A short watchdog, and quick retries after the restarts.
			var cfg map[string]any
			raw, _ := os.ReadFile(a.config)
			if err := json.Unmarshal(raw, &cfg); err != nil {
				t.Fatal(err)
			}
			cfg["upgrade_watchdog_seconds"], cfg["backoff_min_seconds"], cfg["backoff_max_seconds"] = 60, 1, 2
			raw, _ = json.MarshalIndent(cfg, "", "  ")
			if err := os.WriteFile(a.config, raw, 0o600); err != nil {
				t.Fatal(err)
			}

			// The installed agent: a copy of 1.0.0 the upgrades replace.
			exe := filepath.Join(t.TempDir(), "bin", "redflag-agent")
			if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
				t.Fatal(err)
			}
			v100, _ := os.ReadFile(bins.v100)
			if err := os.WriteFile(exe, v100, 0o755); err != nil {
				t.Fatal(err)
			}
			sup := supervise(t, exe, "run", "--config", a.config, "--state-dir", a.stateDir, "--log-format", "json", "--log-level", "debug")
			waitFor(t, 30*time.Second, "agent 1.0.0 to check in", []*proc{s.p}, func(why *string) bool {
				v := s.agentVersion(t, a.id).AgentVersion
				*why = "agent_version " + v
				return v == "1.0.0"
			})
			const limit = 60 * time.Second
			t0 := time.Now()
			step := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }

			// 1. Tampered: the published file changed after it was signed.
			publishAgent(t, binDir, bins.v110, "1.1.0")
			signed := servedParams(t, s)
			if signed.Version != "1.1.0" {
				t.Fatalf("the server serves version %q", signed.Version)
			}
			pub := filepath.Join(binDir, runtime.GOOS+"-"+runtime.GOARCH, "redflag-agent")
			b, _ := os.ReadFile(pub)
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(pub, b, 0o755); err != nil {
				t.Fatal(err)
			}
			c := s.waitFinished(t, s.queueUpdateAgent(t, a.id, signed).ID, limit, s.p)
			if c.Status != protocol.StateFailed || detailsStep(c) != "checksum" || !strings.Contains(c.Result.Output, "SHA-256") {
				t.Fatalf("tampered 1.1.0: %s %+v", c.Status, c.Result)
			}

			step("1b.")
			// 1b. The tampered bytes with their own digest but the original
			// signature: the signature check refuses them.
			forged := signed
			forged.SHA256 = signing.SHA256Hex(b)
			c = s.waitFinished(t, s.queueUpdateAgent(t, a.id, forged).ID, limit, s.p)
			if c.Status != protocol.StateFailed || detailsStep(c) != "signature" {
				t.Fatalf("forged digest: %s %+v", c.Status, c.Result)
			}
			if got, _ := os.ReadFile(exe); !bytes.Equal(got, v100) {
				t.Fatal("a refused binary replaced the agent")
			}

			step("2. Older")
			// 2. Older: the server does not offer it, and the agent refuses
			// a properly signed 0.9.0 sent anyway.
			publishAgent(t, binDir, bins.v090, "0.9.0")
			var ans upgradeAnswer
			s.call(t, "POST", "/api/v1/agents/upgrade", map[string]any{"agent_ids": []string{a.id}}, http.StatusOK, &ans)
			if len(ans.Queued) != 0 || len(ans.Skipped) != 1 || ans.Skipped[0].Code != "older_than_agent" {
				t.Fatalf("upgrading to an older version: %+v", ans)
			}
			c = s.waitFinished(t, s.queueUpdateAgent(t, a.id, servedParams(t, s)).ID, limit, s.p)
			if c.Status != protocol.StateFailed || detailsStep(c) != "version" || !strings.Contains(c.Result.Output, "older") {
				t.Fatalf("older 0.9.0: %s %+v", c.Status, c.Result)
			}
			if n := len(sup.exitCodes()); n != 0 {
				t.Fatalf("the agent exited %d times while refusing upgrades: %v", n, sup.exitCodes())
			}
			if v := s.agentVersion(t, a.id).AgentVersion; v != "1.0.0" {
				t.Fatalf("agent_version %q after the refusals", v)
			}

			step("3. A 1.1.0")
			// 3. A 1.1.0 that crashes at start: the watchdog puts 1.0.0 back.
			publishAgent(t, binDir, bins.crash110, "1.1.0")
			ans = upgradeAnswer{}
			s.call(t, "POST", "/api/v1/agents/upgrade", map[string]any{"agent_ids": []string{a.id}}, http.StatusOK, &ans)
			if len(ans.Queued) != 1 {
				t.Fatalf("upgrade to the crashing 1.1.0: %+v", ans)
			}
			c = s.waitFinished(t, ans.Queued[0].CommandID, limit, s.p)
			if c.Status != protocol.StateFailed || detailsStep(c) != "watchdog" || !strings.Contains(c.Result.Output, "was started 3 times without checking in") {
				t.Fatalf("crashing 1.1.0: %s %+v", c.Status, c.Result)
			}
			if got, _ := os.ReadFile(exe); !bytes.Equal(got, v100) {
				t.Fatal("the watchdog did not put 1.0.0 back")
			}
			var rec agentVersionRecord
			waitFor(t, 20*time.Second, "the server to show the failed upgrade", []*proc{s.p}, func(why *string) bool {
				rec = s.agentVersion(t, a.id)
				*why = fmt.Sprintf("%+v", rec.Upgrade)
				return rec.Upgrade != nil && rec.Upgrade.Status == "failed"
			})
			if !rec.Upgrade.AutoUpgradeBlocked || !strings.Contains(rec.Upgrade.FailureReason, "without checking in") || rec.AgentVersion != "1.0.0" {
				t.Fatalf("after the crash: %+v version %s", rec.Upgrade, rec.AgentVersion)
			}
			// 75 (upgrade installed), 1 three times (the crashes), 75 (restored).
			if got := fmt.Sprint(sup.exitCodes()); got != "[75 1 1 1 75]" {
				t.Errorf("exit codes %s, want [75 1 1 1 75]", got)
			}

			step("4. The admin")
			// 4. The admin retries with a good 1.1.0: it checks in.
			publishAgent(t, binDir, bins.v110, "1.1.0")
			var retry struct {
				Queued []struct {
					CommandID string `json:"command_id"`
				} `json:"queued"`
			}
			s.call(t, "POST", "/api/v1/agents/"+a.id+"/upgrade/retry", nil, http.StatusOK, &retry)
			if len(retry.Queued) != 1 {
				t.Fatalf("retry: %+v", retry)
			}
			c = s.waitFinished(t, retry.Queued[0].CommandID, limit, s.p)
			if c.Status != protocol.StateSucceeded || !strings.Contains(c.Result.Output, "upgraded from 1.0.0 to 1.1.0") {
				t.Fatalf("good 1.1.0: %s %+v", c.Status, c.Result)
			}
			rec = s.agentVersion(t, a.id)
			if rec.AgentVersion != "1.1.0" || rec.Upgrade == nil || rec.Upgrade.Status != "succeeded" || rec.Upgrade.AutoUpgradeBlocked || rec.Upgrade.Attempts != 2 {
				t.Fatalf("after the upgrade: version %s, %+v", rec.AgentVersion, rec.Upgrade)
			}
			v110, _ := os.ReadFile(bins.v110)
			if got, _ := os.ReadFile(exe); !bytes.Equal(got, v110) {
				t.Error("the installed binary is not 1.1.0")
			}
			if got, _ := os.ReadFile(filepath.Join(a.stateDir, "backup", "redflag-agent.prev")); !bytes.Equal(got, v100) {
				t.Error("the one backup is not the previous 1.0.0")
			}
			if _, err := os.Stat(filepath.Join(a.stateDir, "upgrade")); !os.IsNotExist(err) {
				t.Error("the download space was not cleaned")
			}
			if _, err := os.Stat(filepath.Join(a.stateDir, "upgrade.json")); !os.IsNotExist(err) {
				t.Error("the upgrade marker outlived the upgrade")
			}
		})
	}
}
