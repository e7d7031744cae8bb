package server_test

import (
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/agentbin"
	"github.com/redflaghq/redflag/internal/agentupgrade"
	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/jobs"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// upgradeFixture is a server serving a linux/amd64 agent binary of version
// 1.1.0, and agents registered over HTTP.
type upgradeFixture struct {
	ts     *testserver.TS
	admin  string
	reg    string
	binary []byte
	pub    ed25519.PublicKey
}

func newUpgradeFixture(t *testing.T, e storetest.Engine) *upgradeFixture {
	t.Helper()
	dir := t.TempDir()
	f := &upgradeFixture{binary: randomBytes(t, 64<<10)}
	if err := os.MkdirAll(filepath.Join(dir, "linux-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "linux-amd64", "redflag-agent"), f.binary, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "linux-amd64", "VERSION"), []byte("1.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.ts = testserver.Start(t, e, func(c *config.Server) { c.AgentBinariesDir = dir; c.JobInterval = 3600 })
	f.admin = f.ts.Login(t)
	f.reg, _ = f.ts.RegistrationToken(t, f.admin, 50)
	var pk protocol.PublicKeys
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &pk)
	pub, err := signing.ParsePublicKey(pk.Keys[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f.pub = pub
	return f
}

// agent registers an agent and has it check in reporting version v.
func (f *upgradeFixture) agent(t *testing.T, name, v string) testserver.Agent {
	t.Helper()
	a := f.ts.RegisterAgent(t, f.reg, name)
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + a.ID + "/commands", Token: a.Token, MachineID: a.MachineID,
		Header: map[string]string{protocol.HeaderAgentVersion: v}})
	return a
}

func (f *upgradeFixture) upgrade(t *testing.T, body any, want int) (out struct {
	Queued  []agentupgrade.Queued  `json:"queued"`
	Skipped []agentupgrade.Skipped `json:"skipped"`
}) {
	t.Helper()
	r := f.ts.Expect(t, want, testserver.Req{Method: "POST", Path: "/api/v1/agents/upgrade", Token: f.admin, Body: body})
	if want == http.StatusOK {
		r.JSON(t, &out)
	}
	return out
}

type agentWithUpgrade struct {
	AgentVersion string              `json:"agent_version"`
	Upgrade      *store.AgentUpgrade `json:"upgrade"`
}

func (f *upgradeFixture) detail(t *testing.T, id string) agentWithUpgrade {
	t.Helper()
	var d agentWithUpgrade
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + id, Token: f.admin}).JSON(t, &d)
	return d
}

// checkIn claims the agent's commands.
func (f *upgradeFixture) checkIn(t *testing.T, a testserver.Agent) []protocol.SignedCommand {
	t.Helper()
	var out protocol.CheckInResponse
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/agents/" + a.ID + "/commands", Token: a.Token, MachineID: a.MachineID}).JSON(t, &out)
	return out.Commands
}

func (f *upgradeFixture) result(t *testing.T, a testserver.Agent, cmdID, status, output string) {
	t.Helper()
	f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + a.ID + "/commands/" + cmdID + "/result",
		Token: a.Token, MachineID: a.MachineID, Body: map[string]any{"status": status, "exit_code": 1, "output": output,
			"started_at": time.Now().UTC(), "finished_at": time.Now().UTC()}})
}

func skipCode(skipped []agentupgrade.Skipped, id string) string {
	for _, s := range skipped {
		if s.AgentID == id {
			return s.Code
		}
	}
	return ""
}

func TestUpgradeRoutes(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			f := newUpgradeFixture(t, e)
			old := f.agent(t, "old", "1.0.0")
			newer := f.agent(t, "newer", "1.2.0")
			other := f.agent(t, "other", "1.0.0")

			out := f.upgrade(t, map[string]any{"agent_ids": []string{old.ID, newer.ID}}, http.StatusOK)
			if len(out.Queued) != 1 || out.Queued[0].AgentID != old.ID || out.Queued[0].FromVersion != "1.0.0" || out.Queued[0].TargetVersion != "1.1.0" {
				t.Fatalf("queued %+v", out.Queued)
			}
			if skipCode(out.Skipped, newer.ID) != agentupgrade.SkipOlder {
				t.Errorf("skipped %+v, want the newer agent refused as a downgrade", out.Skipped)
			}

			// The command the agent gets: signed, with the binary's
			// signed identity and a path on the agent's own server.
			cmds := f.checkIn(t, old)
			if len(cmds) != 1 || cmds[0].Type != protocol.CmdUpdateAgent || cmds[0].ID != out.Queued[0].CommandID {
				t.Fatalf("check-in gave %+v", cmds)
			}
			c := cmds[0]
			if err := signing.VerifyCommand(f.pub, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: c.Params,
				IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}, c.Signature); err != nil {
				t.Errorf("the command's signature: %v", err)
			}
			var p protocol.UpdateAgentParams
			if err := json.Unmarshal(c.Params, &p); err != nil {
				t.Fatal(err)
			}
			sum := signing.SHA256Hex(f.binary)
			if p.Version != "1.1.0" || p.URL != agentupgrade.DownloadPath("linux", "amd64") || p.SHA256 != sum || p.Rollback {
				t.Errorf("params %+v", p)
			}
			if err := signing.VerifyBinary(f.pub, signing.BinaryFields{Version: "1.1.0", OS: "linux", Arch: "amd64", SHA256Hex: sum}, p.Signature); err != nil {
				t.Errorf("the binary signature: %v", err)
			}
			if d := f.detail(t, old.ID); d.Upgrade == nil || d.Upgrade.Status != store.UpgradeInProgress || d.Upgrade.Trigger != store.TriggerManual {
				t.Errorf("detail while in progress: %+v", d.Upgrade)
			}
			// A second request while it is under way is skipped.
			if again := f.upgrade(t, map[string]any{"agent_ids": []string{old.ID}}, http.StatusOK); skipCode(again.Skipped, old.ID) != agentupgrade.SkipInProgress {
				t.Errorf("second request %+v", again)
			}

			// The agent reports a failure: the detail shows why, blocked.
			f.result(t, old, c.ID, "failed", "update_agent failed (signature): refused: the binary's signature does not verify")
			d := f.detail(t, old.ID)
			if d.Upgrade == nil || d.Upgrade.Status != store.UpgradeFailed || !d.Upgrade.AutoUpgradeBlocked ||
				!strings.Contains(d.Upgrade.FailureReason, "signature does not verify") {
				t.Fatalf("detail after the failure: %+v", d.Upgrade)
			}

			// all_outdated: the blocked agent is left alone, the other goes.
			all := f.upgrade(t, map[string]any{"all_outdated": true}, http.StatusOK)
			if len(all.Queued) != 1 || all.Queued[0].AgentID != other.ID || skipCode(all.Skipped, old.ID) != agentupgrade.SkipBlocked {
				t.Errorf("all_outdated: %+v", all)
			}

			// Retry: the block goes, the upgrade is queued again.
			var rr struct {
				Upgrade *store.AgentUpgrade    `json:"upgrade"`
				Queued  []agentupgrade.Queued  `json:"queued"`
				Skipped []agentupgrade.Skipped `json:"skipped"`
			}
			f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + old.ID + "/upgrade/retry", Token: f.admin}).JSON(t, &rr)
			if len(rr.Queued) != 1 || rr.Upgrade == nil || rr.Upgrade.AutoUpgradeBlocked || rr.Upgrade.Status != store.UpgradeInProgress ||
				rr.Upgrade.Attempts != 2 || rr.Upgrade.Trigger != store.TriggerRetry {
				t.Errorf("retry: %+v %+v", rr.Upgrade, rr.Queued)
			}
			for _, c := range []struct {
				id   string
				want int
				code string
			}{
				{old.ID, http.StatusConflict, "upgrade_in_progress"},
				{newer.ID, http.StatusConflict, "no_upgrade"},
				{"0190a3b4-0000-7000-8000-000000000000", http.StatusNotFound, "not_found"},
			} {
				r := f.ts.Expect(t, c.want, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + c.id + "/upgrade/retry", Token: f.admin})
				if r.ErrorCode() != c.code {
					t.Errorf("retry %s: %s", c.id, r.Body)
				}
			}

			// A success settles the upgrade.
			cmds = f.checkIn(t, old)
			f.result(t, old, cmds[0].ID, "succeeded", "upgraded from 1.0.0 to 1.1.0")
			if d := f.detail(t, old.ID); d.Upgrade.Status != store.UpgradeSucceeded || d.Upgrade.FailureReason != "" {
				t.Errorf("after success: %+v", d.Upgrade)
			}
			r := f.ts.Expect(t, http.StatusConflict, testserver.Req{Method: "POST", Path: "/api/v1/agents/" + old.ID + "/upgrade/retry", Token: f.admin})
			if r.ErrorCode() != "nothing_to_retry" {
				t.Errorf("retry after success: %s", r.Body)
			}

			// An explicit rollback; a version guard; unknown agents.
			rb := f.upgrade(t, map[string]any{"agent_ids": []string{newer.ID}, "rollback": true}, http.StatusOK)
			if len(rb.Queued) != 1 || !rb.Queued[0].Rollback {
				t.Errorf("rollback: %+v", rb)
			}
			if g := f.upgrade(t, map[string]any{"agent_ids": []string{other.ID}, "version": "9.9.9"}, http.StatusOK); skipCode(g.Skipped, other.ID) != agentupgrade.SkipVersionMismatch {
				t.Errorf("version guard: %+v", g)
			}
			r = f.ts.Expect(t, http.StatusNotFound, testserver.Req{Method: "POST", Path: "/api/v1/agents/upgrade", Token: f.admin,
				Body: map[string]any{"agent_ids": []string{"0190a3b4-0000-7000-8000-000000000000"}}})
			if r.ErrorCode() != "unknown_agents" {
				t.Errorf("unknown agent: %s", r.Body)
			}
			for _, bad := range []any{
				map[string]any{},
				map[string]any{"agent_ids": []string{old.ID}, "all_outdated": true},
				map[string]any{"all_outdated": true, "rollback": true},
				map[string]any{"agent_ids": []string{old.ID}, "version": "latest"},
				map[string]any{"agent_ids": []string{"not-a-uuid"}},
			} {
				f.upgrade(t, bad, http.StatusBadRequest)
			}

			// update_agent through the generic command route is checked too.
			good := map[string]any{"version": "1.1.0", "url": "/api/v1/downloads/agent/linux/amd64", "sha256": sum, "signature": p.Signature, "key_id": p.KeyID}
			f.ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: f.admin,
				Body: map[string]any{"agent_ids": []string{other.ID}, "type": "update_agent", "params": good}})
			for name, mod := range map[string]func(m map[string]any){
				"bad version": func(m map[string]any) { m["version"] = "1.1" },
				"bad sha":     func(m map[string]any) { m["sha256"] = strings.ToUpper(sum) },
				"bad url":     func(m map[string]any) { m["url"] = "file:///etc/passwd" },
				"no sig":      func(m map[string]any) { m["signature"] = "" },
				"unknown":     func(m map[string]any) { m["surprise"] = 1 },
			} {
				m := map[string]any{}
				for k, v := range good {
					m[k] = v
				}
				mod(m)
				r := f.ts.Do(t, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: f.admin,
					Body: map[string]any{"agent_ids": []string{other.ID}, "type": "update_agent", "params": m}})
				if r.Status != http.StatusBadRequest {
					t.Errorf("%s: status %d %s", name, r.Status, r.Body)
				}
			}
		})
	}
}

func TestMinAgentVersionAutoUpgrade(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			f := newUpgradeFixture(t, e)
			var agents []testserver.Agent
			for _, n := range []string{"a1", "a2", "a3", "a4"} {
				agents = append(agents, f.agent(t, n, "1.0.0"))
			}
			current := f.agent(t, "current", "1.1.0")
			var info protocol.Info
			f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/info"}).JSON(t, &info)
			if info.MinAgentVersion != "0.1.0" {
				t.Errorf("info min_agent_version = %q before the setting", info.MinAgentVersion)
			}
			r := f.ts.Do(t, testserver.Req{Method: "PUT", Path: "/api/v1/settings", Token: f.admin, Body: map[string]any{"min_agent_version": "1.1"}})
			if r.Status != http.StatusBadRequest {
				t.Errorf("a malformed min_agent_version: %d %s", r.Status, r.Body)
			}
			f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "PUT", Path: "/api/v1/settings", Token: f.admin,
				Body: map[string]any{"min_agent_version": "1.1.0", "agent_upgrades_per_minute": 2}})
			f.ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/info"}).JSON(t, &info)
			if info.MinAgentVersion != "1.1.0" {
				t.Errorf("info min_agent_version = %q, want the setting", info.MinAgentVersion)
			}

			now := time.Now()
			st := f.ts.Server.Store()
			runner := &jobs.Runner{Store: st, Log: slog.New(slog.DiscardHandler), Defaults: store.DefaultSettings(300),
				Now: func() time.Time { return now },
				Upgrades: &agentupgrade.Planner{Store: st, Binaries: agentbin.New(f.ts.Config.AgentBinariesDir, mustLoadKey(t, f.ts), "0.1.0"),
					Key: mustLoadKey(t, f.ts), Now: func() time.Time { return now }}}
			queuedAuto := func() map[string]string {
				out := map[string]string{}
				for _, a := range append(agents, current) {
					if d := f.detail(t, a.ID); d.Upgrade != nil {
						out[a.ID] = d.Upgrade.Status
					}
				}
				return out
			}
			runOnce(t, runner)
			if got := queuedAuto(); len(got) != 2 {
				t.Fatalf("after one run: %v, want 2 upgrades (the rate)", got)
			}
			runOnce(t, runner)
			if got := queuedAuto(); len(got) != 2 {
				t.Fatalf("a second run within the minute queued more: %v", got)
			}
			// One of them fails: it is blocked and never retried by itself.
			up := queuedAuto()
			var failedID string
			for _, a := range agents {
				if up[a.ID] != "" {
					failedID = a.ID
					cmds := f.checkIn(t, a)
					f.result(t, a, cmds[0].ID, "failed", "update_agent failed (watchdog): the new version 1.1.0 did not check in")
					break
				}
			}
			now = now.Add(61 * time.Second)
			runOnce(t, runner)
			got := queuedAuto()
			if len(got) != 4 || got[failedID] != store.UpgradeFailed {
				t.Fatalf("after a minute: %v, want all four outdated agents handled and %s failed", got, failedID)
			}
			if d := f.detail(t, failedID); d.Upgrade.Trigger != store.TriggerAuto || !d.Upgrade.AutoUpgradeBlocked {
				t.Errorf("the failed automatic upgrade: %+v", d.Upgrade)
			}
			if _, ok := got[current.ID]; ok {
				t.Error("an agent at the minimum version was upgraded")
			}
			now = now.Add(10 * time.Minute)
			runOnce(t, runner)
			if d := f.detail(t, failedID); d.Upgrade.Status != store.UpgradeFailed || d.Upgrade.Attempts != 1 {
				t.Errorf("the blocked agent was upgraded again: %+v", d.Upgrade)
			}
		})
	}
}

// mustLoadKey reads the server's signing key from its data directory.
func mustLoadKey(t *testing.T, ts *testserver.TS) *signing.Key {
	t.Helper()
	k, _, err := signing.LoadOrCreateKeyFile(filepath.Join(ts.Config.DataDir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func runOnce(t *testing.T, r *jobs.Runner) {
	t.Helper()
	if err := r.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
}
