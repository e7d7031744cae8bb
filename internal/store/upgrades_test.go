package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/store"
)

// upgradeCmd is an (unsigned: the store does not check) update_agent command.
func upgradeCmd(agentID string, now time.Time) store.CommandRecord {
	return store.CommandRecord{Command: store.Command{ID: uuid.Must(uuid.NewV7()).String(), AgentID: agentID, Type: "update_agent",
		Params: `{"version":"1.1.0"}`, KeyID: "k", Signature: "s", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(), CreatedAt: now},
		CreatedBy: "admin"}
}

func queueOne(t *testing.T, st *store.Store, agentID, trigger string, now time.Time) store.CommandRecord {
	t.Helper()
	c := upgradeCmd(agentID, now)
	q, pending, err := st.QueueUpgrades(ctx, []store.QueuedUpgrade{{Command: c, FromVersion: "1.0.0", Target: "1.1.0", Trigger: trigger}}, now,
		&store.Audit{ActorType: "user", ActorName: "admin", Action: "agent.upgrade", TargetType: "agent", TargetID: agentID})
	must(t, err)
	if len(q) != 1 || len(pending) != 0 || q[0].ID != c.ID || q[0].Status != "pending" {
		t.Fatalf("QueueUpgrades = %+v, pending %v", q, pending)
	}
	return c
}

func TestQueueAndSettleUpgrades(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "up-host", t0)
		if u, err := st.GetAgentUpgrade(ctx, a.ID); err != nil || u != nil {
			t.Fatalf("GetAgentUpgrade before any upgrade = %+v, %v", u, err)
		}
		c := queueOne(t, st, a.ID, store.TriggerManual, t0)
		u, err := st.GetAgentUpgrade(ctx, a.ID)
		must(t, err)
		if u == nil || u.Status != store.UpgradeInProgress || *u.CommandID != c.ID || u.Attempts != 1 || u.TargetVersion != "1.1.0" ||
			u.FromVersion != "1.0.0" || u.Trigger != store.TriggerManual || u.RequestedBy != "admin" || u.AutoUpgradeBlocked {
			t.Fatalf("upgrade after queuing: %+v", u)
		}
		sameTime(t, "requested_at", u.RequestedAt, t0)
		if got, err := st.GetCommand(ctx, c.ID); err != nil || got.Status != "pending" || got.Type != "update_agent" {
			t.Fatalf("the command: %+v, %v", got, err)
		}
		if la := lastAudit(t, st); la.Action != "agent.upgrade" || la.Details["queued"] != float64(1) {
			t.Errorf("audit %+v", la)
		}

		// A second request while the command is pending keeps the first.
		c2 := upgradeCmd(a.ID, t0)
		q, pending, err := st.QueueUpgrades(ctx, []store.QueuedUpgrade{{Command: c2, FromVersion: "1.0.0", Target: "1.2.0", Trigger: store.TriggerManual}}, t0, nil)
		must(t, err)
		if len(q) != 0 || len(pending) != 1 || pending[0] != a.ID {
			t.Fatalf("second QueueUpgrades = %+v, pending %v", q, pending)
		}
		if u, _ := st.GetAgentUpgrade(ctx, a.ID); *u.CommandID != c.ID || u.TargetVersion != "1.1.0" {
			t.Errorf("the pending upgrade was overwritten: %+v", u)
		}

		// Nothing settles while the command is pending or sent.
		if ch, err := st.SettleUpgrades(ctx, t0); err != nil || len(ch) != 0 {
			t.Fatalf("SettleUpgrades of an open command = %+v, %v", ch, err)
		}
		_, err = st.ClaimPending(ctx, a.ID, t0)
		must(t, err)
		if ch, _ := st.SettleUpgrades(ctx, t0, c.ID); len(ch) != 0 {
			t.Fatalf("a sent command settled: %+v", ch)
		}

		// A failed result: failed, the agent's reason, blocked.
		reason := "update_agent failed (checksum): refused: the downloaded binary has SHA-256 0000… 'quoted' 🚩"
		_, err = st.SaveResult(ctx, a.ID, c.ID, "failed", []byte(`{"exit_code":1,"output":`+jsonString(reason)+`,"details":{"step":"checksum"}}`), t0.Add(time.Minute))
		must(t, err)
		ch, err := st.SettleUpgrades(ctx, t0.Add(time.Minute), c.ID)
		must(t, err)
		if len(ch) != 1 || ch[0].Status != store.UpgradeFailed || ch[0].FailureReason != reason || !ch[0].AutoUpgradeBlocked {
			t.Fatalf("settled %+v", ch)
		}
		u, _ = st.GetAgentUpgrade(ctx, a.ID)
		if u.Status != store.UpgradeFailed || u.FailureReason != reason || !u.AutoUpgradeBlocked || u.FinishedAt == nil {
			t.Fatalf("upgrade after the failure: %+v", u)
		}
		// Settling again changes nothing.
		if ch, _ := st.SettleUpgrades(ctx, t0.Add(2*time.Minute), c.ID); len(ch) != 0 {
			t.Errorf("a settled upgrade settled again: %+v", ch)
		}

		// The admin lifts the block; the next upgrade counts a second attempt.
		nAudit := counts(t, st).Audit
		u, err = st.ClearUpgradeBlock(ctx, a.ID, t0.Add(3*time.Minute), &store.Audit{ActorType: "user", ActorName: "admin", Action: "agent.upgrade_unblock"})
		must(t, err)
		if u.AutoUpgradeBlocked || u.Status != store.UpgradeFailed {
			t.Errorf("after ClearUpgradeBlock: %+v", u)
		}
		if counts(t, st).Audit != nAudit+1 {
			t.Error("lifting the block wrote no audit row")
		}
		c3 := queueOne(t, st, a.ID, store.TriggerRetry, t0.Add(4*time.Minute))
		_, _ = st.ClaimPending(ctx, a.ID, t0.Add(4*time.Minute))
		_, err = st.SaveResult(ctx, a.ID, c3.ID, "succeeded", []byte(`{"exit_code":0,"output":"upgraded from 1.0.0 to 1.1.0"}`), t0.Add(5*time.Minute))
		must(t, err)
		ch, _ = st.SettleUpgrades(ctx, t0.Add(5*time.Minute))
		if len(ch) != 1 || ch[0].Status != store.UpgradeSucceeded {
			t.Fatalf("settled %+v", ch)
		}
		u, _ = st.GetAgentUpgrade(ctx, a.ID)
		if u.Status != store.UpgradeSucceeded || u.Attempts != 2 || u.FailureReason != "" || u.Trigger != store.TriggerRetry {
			t.Errorf("upgrade after the retry: %+v", u)
		}

		if _, err := st.ClearUpgradeBlock(ctx, enrol(t, st, "never-upgraded", t0).ID, t0, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ClearUpgradeBlock of an agent never upgraded: %v", err)
		}
		if _, _, err := st.QueueUpgrades(ctx, []store.QueuedUpgrade{{Command: upgradeCmd(uuid.NewString(), t0), Target: "1.1.0", Trigger: "manual"}}, t0, nil); !errors.Is(err, store.ErrUnknownAgents) {
			t.Errorf("QueueUpgrades for an unknown agent: %v", err)
		}
	})
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestSettleUpgradesByTheClock(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		timedOut, expired, cancelled := enrol(t, st, "timed-out", t0), enrol(t, st, "expired", t0), enrol(t, st, "cancelled", t0)
		c1 := queueOne(t, st, timedOut.ID, store.TriggerAuto, t0)
		_, _ = st.ClaimPending(ctx, timedOut.ID, t0)
		c2 := queueOne(t, st, expired.ID, store.TriggerAuto, t0)
		c3 := queueOne(t, st, cancelled.ID, store.TriggerManual, t0)
		_, err := st.CancelCommand(ctx, c3.ID, t0, nil)
		must(t, err)
		later := t0.Add(2 * time.Hour)
		_, _, err = st.ExpireCommands(ctx, later, time.Hour)
		must(t, err)
		ch, err := st.SettleUpgrades(ctx, later)
		must(t, err)
		if len(ch) != 3 {
			t.Fatalf("settled %d upgrades, want 3: %+v", len(ch), ch)
		}
		for _, c := range []struct {
			agent, status, reason string
			blocked               bool
		}{
			{timedOut.ID, store.UpgradeFailed, "timed out", true},
			{expired.ID, store.UpgradeFailed, "expired", true},
			{cancelled.ID, store.UpgradeCancelled, "", false},
		} {
			u, _ := st.GetAgentUpgrade(ctx, c.agent)
			if u.Status != c.status || !strings.Contains(u.FailureReason, c.reason) || u.AutoUpgradeBlocked != c.blocked {
				t.Errorf("agent %s: %+v, want %s %q blocked %v", c.agent, u, c.status, c.reason, c.blocked)
			}
		}
		_ = c1
		_ = c2
		// A late result after the time-out still counts when the API
		// settles that command.
		_, err = st.SaveResult(ctx, timedOut.ID, c1.ID, "succeeded", []byte(`{"output":"upgraded"}`), later.Add(time.Minute))
		must(t, err)
		ch, _ = st.SettleUpgrades(ctx, later.Add(time.Minute), c1.ID)
		if len(ch) != 1 || ch[0].Status != store.UpgradeSucceeded || ch[0].AutoUpgradeBlocked {
			t.Errorf("late result: %+v", ch)
		}
		if n, err := st.CountUpgradesSince(ctx, store.TriggerAuto, t0); err != nil || n != 2 {
			t.Errorf("CountUpgradesSince(auto) = %d, %v; want 2", n, err)
		}
		if n, _ := st.CountUpgradesSince(ctx, store.TriggerAuto, t0.Add(time.Second)); n != 0 {
			t.Errorf("CountUpgradesSince after the requests = %d", n)
		}
	})
}

func TestUpgradeTargets(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		online := enrol(t, st, "online", t0)
		offline := enrol(t, st, "offline", t0.Add(-time.Hour))
		blocked := enrol(t, st, "blocked", t0)
		busy := enrol(t, st, "busy", t0)
		done := enrol(t, st, "done", t0)
		newer := enrol(t, st, "newer", t0)
		rawExec(t, st, "UPDATE agents SET agent_version = '1.1.0' WHERE id = $1", newer.ID)
		rawExec(t, st, "UPDATE agents SET os_arch = 'arm64' WHERE id = $1", done.ID)

		cb := queueOne(t, st, blocked.ID, store.TriggerAuto, t0)
		_, _ = st.ClaimPending(ctx, blocked.ID, t0)
		_, _ = st.SaveResult(ctx, blocked.ID, cb.ID, "failed", []byte(`{"output":"boom"}`), t0)
		queueOne(t, st, busy.ID, store.TriggerAuto, t0)
		cd := queueOne(t, st, done.ID, store.TriggerAuto, t0)
		_, _ = st.ClaimPending(ctx, done.ID, t0)
		_, _ = st.SaveResult(ctx, done.ID, cd.ID, "succeeded", []byte(`{"output":"ok"}`), t0)
		_, err := st.SettleUpgrades(ctx, t0)
		must(t, err)

		groups, err := st.AgentVersionGroups(ctx)
		must(t, err)
		want := map[string]int{"linux/amd64/1.0.0": 4, "linux/amd64/1.1.0": 1, "linux/arm64/1.0.0": 1}
		if len(groups) != len(want) {
			t.Fatalf("groups %+v", groups)
		}
		for _, g := range groups {
			if want[g.OSType+"/"+g.OSArch+"/"+g.AgentVersion] != g.N {
				t.Errorf("group %+v, want %d", g, want[g.OSType+"/"+g.OSArch+"/"+g.AgentVersion])
			}
		}

		ids := func(ts []store.UpgradeTarget) []string {
			var out []string
			for _, t := range ts {
				out = append(out, t.ID)
			}
			return out
		}
		g := store.VersionGroup{OSType: "linux", OSArch: "amd64", AgentVersion: "1.0.0"}
		all, err := st.UpgradeTargets(ctx, store.UpgradeTargetFilter{Group: &g, Now: t0})
		must(t, err)
		if len(all) != 4 {
			t.Fatalf("group targets %v", ids(all))
		}
		auto, err := st.UpgradeTargets(ctx, store.UpgradeTargetFilter{Group: &g, OnlineOnly: true, ExcludeBlocked: true, ExcludeInProgress: true,
			ExcludePendingCommand: true, ExcludeTarget: "1.1.0", Now: t0})
		must(t, err)
		if len(auto) != 1 || auto[0].ID != online.ID || !auto[0].Online || auto[0].Upgrade != nil {
			t.Fatalf("automatic targets %v (%+v), want only %s", ids(auto), auto, online.ID)
		}
		// The offline agent qualifies once online is not required.
		some, _ := st.UpgradeTargets(ctx, store.UpgradeTargetFilter{Group: &g, ExcludeBlocked: true, ExcludeInProgress: true, Now: t0})
		if len(some) != 2 {
			t.Errorf("targets without the online filter: %v, want online and offline", ids(some))
		}
		if lim, _ := st.UpgradeTargets(ctx, store.UpgradeTargetFilter{Group: &g, Limit: 2, Now: t0}); len(lim) != 2 {
			t.Errorf("Limit 2 gave %d", len(lim))
		}
		// By id: the upgrade rides along; unknown ids fail.
		byID, err := st.UpgradeTargets(ctx, store.UpgradeTargetFilter{IDs: []string{blocked.ID, offline.ID}, Now: t0})
		must(t, err)
		if len(byID) != 2 {
			t.Fatalf("by id: %v", ids(byID))
		}
		for _, tg := range byID {
			if tg.ID == blocked.ID && (tg.Upgrade == nil || !tg.Upgrade.AutoUpgradeBlocked || tg.Upgrade.FailureReason != "boom") {
				t.Errorf("blocked agent's upgrade: %+v", tg.Upgrade)
			}
			if tg.ID == offline.ID && tg.Online {
				t.Error("the offline agent reads as online")
			}
		}
		_, err = st.UpgradeTargets(ctx, store.UpgradeTargetFilter{IDs: []string{online.ID, uuid.NewString()}, Now: t0})
		var unknown *store.UnknownAgentsError
		if !errors.As(err, &unknown) || len(unknown.IDs) != 1 {
			t.Errorf("unknown id: %v", err)
		}
	})
}

func TestMinAgentVersionSetting(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		def := store.DefaultSettings(300)
		if def.MinAgentVersion != "" || def.AgentUpgradesPerMinute != 10 {
			t.Fatalf("defaults %+v", def)
		}
		set := def
		set.MinAgentVersion, set.AgentUpgradesPerMinute = "1.2.0", 25
		must(t, st.SaveSettings(ctx, set, nil))
		got, err := st.LoadSettings(ctx, def)
		must(t, err)
		if got.MinAgentVersion != "1.2.0" || got.AgentUpgradesPerMinute != 25 {
			t.Errorf("loaded %+v", got)
		}
		set.MinAgentVersion = ""
		must(t, st.SaveSettings(ctx, set, nil))
		if got, _ := st.LoadSettings(ctx, def); got.MinAgentVersion != "" {
			t.Errorf("min_agent_version could not be turned off: %+v", got)
		}
		for _, bad := range []store.Settings{
			func() store.Settings { s := def; s.MinAgentVersion = "1.2"; return s }(),
			func() store.Settings { s := def; s.MinAgentVersion = "latest"; return s }(),
			func() store.Settings { s := def; s.AgentUpgradesPerMinute = 0; return s }(),
			func() store.Settings { s := def; s.AgentUpgradesPerMinute = 100000; return s }(),
		} {
			if err := st.SaveSettings(ctx, bad, nil); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("SaveSettings(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
	})
}
