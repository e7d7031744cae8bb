package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
)

func TestRegisterAgent(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		tok := regToken(t, st, 3, t0.Add(-time.Hour), t0.Add(time.Hour))
		p := regParams(tok.TokenHash, hashOf("machine-1"), "web-01", t0)
		p.Agent.OSType, p.Agent.OSVersion, p.Agent.OSArch, p.Agent.AgentVersion, p.Agent.CheckInIntervalSeconds = "windows", "10.0.22631", "arm64", "1.2.3", 120
		before := counts(t, st)
		a, reinstall, err := st.RegisterAgent(ctx, p)
		must(t, err)
		if reinstall {
			t.Error("a new machine was reported as a reinstall")
		}
		want := store.Agent{ID: p.NewAgentID, Hostname: "web-01", OSType: "windows", OSVersion: "10.0.22631", OSArch: "arm64",
			AgentVersion: "1.2.3", MachineID: hashOf("machine-1"), Status: store.StatusOnline, CheckInIntervalSeconds: 120, TokenGeneration: 1}
		checkAgent(t, a, want, t0, &t0)
		after := counts(t, st)
		if d := diff(before, after); d != (store.Counts{Agents: 1, RefreshTokens: 1, RegistrationSeatsUsed: 1, Audit: 1}) {
			t.Errorf("registration changed counts by %+v", d)
		}
		rt, err := st.RegistrationTokenByID(ctx, tok.ID)
		must(t, err)
		if rt.SeatsUsed != 1 {
			t.Errorf("seats_used = %d, want 1", rt.SeatsUsed)
		}
		au := lastAudit(t, st)
		if au.Action != "agent.register" || au.ActorType != "agent" || au.ActorID != a.ID || au.TargetID != a.ID ||
			au.ActorName != "web-01" || au.IP != p.IP || au.Details["registration_token_id"] != tok.ID || au.Details["machine_id"] != a.MachineID {
			t.Errorf("audit row = %+v", au)
		}
		sameTime(t, "audit at", au.At, t0)

		// GetAgent reads back what was written.
		g, err := st.GetAgent(ctx, a.ID, t0)
		must(t, err)
		checkAgent(t, g, want, t0, &t0)
		if g.SystemInfo != nil || g.SystemInfoAt != nil {
			t.Errorf("fresh agent has system info %s at %v", g.SystemInfo, g.SystemInfoAt)
		}
		_, err = st.GetAgent(ctx, "nope", t0)
		wantErr(t, err, store.ErrNotFound)

		auth, err := st.AgentAuthByID(ctx, a.ID)
		must(t, err)
		if auth != (store.AgentAuth{ID: a.ID, MachineID: a.MachineID, TokenGeneration: 1, CheckInIntervalSeconds: 120,
			AgentVersion: "1.2.3", LastSeenAt: store.T(t0)}) {
			t.Errorf("AgentAuthByID = %+v", auth)
		}
		_, err = st.AgentAuthByID(ctx, "nope")
		wantErr(t, err, store.ErrNotFound)
	})
}

func diff(a, b store.Counts) store.Counts {
	return store.Counts{Agents: b.Agents - a.Agents, RefreshTokens: b.RefreshTokens - a.RefreshTokens,
		RegistrationSeatsUsed: b.RegistrationSeatsUsed - a.RegistrationSeatsUsed, Audit: b.Audit - a.Audit,
		UserTokens: b.UserTokens - a.UserTokens, Users: b.Users - a.Users}
}

func checkAgent(t *testing.T, got, want store.Agent, registered time.Time, seen *time.Time) {
	t.Helper()
	fields := []struct {
		name      string
		got, want any
	}{
		{"id", got.ID, want.ID},
		{"hostname", got.Hostname, want.Hostname},
		{"os_type", got.OSType, want.OSType},
		{"os_version", got.OSVersion, want.OSVersion},
		{"os_arch", got.OSArch, want.OSArch},
		{"agent_version", got.AgentVersion, want.AgentVersion},
		{"machine_id", got.MachineID, want.MachineID},
		{"status", got.Status, want.Status},
		{"check_in_interval_seconds", got.CheckInIntervalSeconds, want.CheckInIntervalSeconds},
		{"token_generation", got.TokenGeneration, want.TokenGeneration},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("agent %s = %.60q, want %.60q", f.name, fmt.Sprint(f.got), fmt.Sprint(f.want))
		}
	}
	sameTime(t, "registered_at", got.RegisteredAt, registered)
	sameTimePtr(t, "last_seen_at", got.LastSeenAt, seen)
}

func TestRegisterAgentRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		live := regToken(t, st, 5, t0.Add(-time.Hour), t0.Add(time.Hour))
		expired := regToken(t, st, 5, t0.Add(-2*time.Hour), t0.Add(-time.Hour))
		atExpiry := regToken(t, st, 5, t0.Add(-2*time.Hour), t0)
		revoked := regToken(t, st, 5, t0.Add(-time.Hour), t0.Add(time.Hour))
		_, err := st.RevokeRegistrationToken(ctx, revoked.ID, t0.Add(-time.Minute), nil)
		must(t, err)
		exhausted := regToken(t, st, 1, t0.Add(-time.Hour), t0.Add(time.Hour))
		known := enrolWith(t, st, regParams(exhausted.TokenHash, hashOf("m-known"), "known", t0))

		cases := []struct {
			name, hash, machine string
		}{
			{"unknown token", hashOf("never issued"), hashOf(uid("m"))},
			{"empty token", "", hashOf(uid("m"))},
			{"expired token", expired.TokenHash, hashOf(uid("m"))},
			{"token expiring this instant", atExpiry.TokenHash, hashOf(uid("m"))},
			{"revoked token", revoked.TokenHash, hashOf(uid("m"))},
			{"exhausted token", exhausted.TokenHash, hashOf(uid("m"))},
			// A reinstall needs a seat too, and a refused one must not touch the agent.
			{"reinstall with exhausted token", exhausted.TokenHash, known.MachineID},
			{"reinstall with revoked token", revoked.TokenHash, known.MachineID},
		}
		for _, c := range cases {
			before := counts(t, st)
			p := regParams(c.hash, c.machine, "refused-"+c.name, t0)
			a, reinstall, err := st.RegisterAgent(ctx, p)
			if !errors.Is(err, store.ErrRegistrationRefused) {
				t.Errorf("%s: err = %v, want ErrRegistrationRefused", c.name, err)
			}
			if reinstall || a.ID != "" {
				t.Errorf("%s: returned agent %+v, reinstall %v", c.name, a, reinstall)
			}
			if after := counts(t, st); after != before {
				t.Errorf("%s: counts changed %+v -> %+v", c.name, before, after)
			}
		}
		// The known agent is untouched: same generation, old refresh token works.
		auth, err := st.AgentAuthByID(ctx, known.ID)
		must(t, err)
		if auth.TokenGeneration != 1 {
			t.Errorf("refused reinstall bumped the generation to %d", auth.TokenGeneration)
		}
		g, err := st.GetAgent(ctx, known.ID, t0)
		must(t, err)
		if g.Hostname != "known" {
			t.Errorf("refused reinstall renamed the agent to %q", g.Hostname)
		}
		_, err = st.RenewRefreshToken(ctx, renewParams(known, known.MachineID, t0))
		must(t, err)
		// Seats are untouched on every token.
		for _, tk := range []store.RegistrationToken{live, expired, atExpiry, revoked} {
			got, err := st.RegistrationTokenByID(ctx, tk.ID)
			must(t, err)
			if got.SeatsUsed != 0 {
				t.Errorf("token %s: seats_used = %d after refusals", tk.ID, got.SeatsUsed)
			}
		}
	})
}

func TestReinstall(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		tok := regToken(t, st, 3, t0.Add(-time.Hour), t0.Add(time.Hour))
		machine := hashOf("machine-r")
		first := enrolWith(t, st, regParams(tok.TokenHash, machine, "old-name", t0))
		// Give the agent history that must survive the reinstall.
		must(t, st.SaveSystemInfo(ctx, first.ID, []byte(`{"kernel":"6.1"}`), t0))

		later := t0.Add(time.Hour / 2)
		before := counts(t, st)
		p := regParams(tok.TokenHash, machine, "new-name", later)
		p.Agent.AgentVersion = "2.0.0"
		a, reinstall, err := st.RegisterAgent(ctx, p)
		must(t, err)
		if !reinstall {
			t.Error("same machine id not reported as a reinstall")
		}
		if a.ID != first.ID {
			t.Fatalf("reinstall got agent id %s, want the old %s", a.ID, first.ID)
		}
		if a.TokenGeneration != 2 || a.Hostname != "new-name" || a.AgentVersion != "2.0.0" {
			t.Errorf("reinstalled agent = %+v", a)
		}
		sameTime(t, "registered_at kept", a.RegisteredAt, t0)
		sameTimePtr(t, "last_seen_at", a.LastSeenAt, &later)
		if d := diff(before, counts(t, st)); d != (store.Counts{RegistrationSeatsUsed: 1, Audit: 1}) {
			t.Errorf("reinstall changed counts by %+v, want one seat and one audit row", d)
		}
		if au := lastAudit(t, st); au.Action != "agent.reregister" || au.TargetID != a.ID {
			t.Errorf("audit = %+v", au)
		}
		// The earlier refresh token is gone; the new one works.
		_, err = st.RenewRefreshToken(ctx, renewParams(first, machine, later))
		wantErr(t, err, store.ErrNotFound)
		_, err = st.RenewRefreshToken(ctx, renewParams(enrolled{Agent: a, RefreshHash: p.RefreshTokenHash}, machine, later))
		must(t, err)
		auth, err := st.AgentAuthByID(ctx, a.ID)
		must(t, err)
		if auth.TokenGeneration != 2 {
			t.Errorf("generation = %d, want 2", auth.TokenGeneration)
		}
		g, err := st.GetAgent(ctx, a.ID, later)
		must(t, err)
		if string(g.SystemInfo) == "" {
			t.Error("reinstall dropped the agent's system info")
		}
		// A third install bumps again.
		a3, _, err := st.RegisterAgent(ctx, regParams(tok.TokenHash, machine, "third", later))
		must(t, err)
		if a3.ID != first.ID || a3.TokenGeneration != 3 {
			t.Errorf("third install: id %s generation %d", a3.ID, a3.TokenGeneration)
		}
	})
}

func TestRenewRefreshToken(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		e := enrol(t, st, "renew", t0)
		other := enrol(t, st, "other", t0)
		now := t0.Add(time.Hour)

		refused := []struct {
			name string
			p    store.RenewParams
			want error
		}{
			{"wrong machine", renewParams(e, hashOf("elsewhere"), now), store.ErrMachineMismatch},
			{"another agent's machine", renewParams(e, other.MachineID, now), store.ErrMachineMismatch},
			{"another agent's id", func() store.RenewParams { p := renewParams(e, e.MachineID, now); p.AgentID = other.ID; return p }(), store.ErrNotFound},
			{"unknown agent", func() store.RenewParams { p := renewParams(e, e.MachineID, now); p.AgentID = "nope"; return p }(), store.ErrNotFound},
			{"unknown token", func() store.RenewParams { p := renewParams(e, e.MachineID, now); p.OldHash = hashOf("x"); return p }(), store.ErrNotFound},
			{"expiring this instant", renewParams(e, e.MachineID, t0.Add(90*24*time.Hour)), store.ErrNotFound},
			{"expired", renewParams(e, e.MachineID, t0.Add(91*24*time.Hour)), store.ErrNotFound},
		}
		for _, c := range refused {
			before := counts(t, st)
			_, err := st.RenewRefreshToken(ctx, c.p)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
			}
			if after := counts(t, st); after != before {
				t.Errorf("%s: counts changed %+v -> %+v", c.name, before, after)
			}
		}

		// None of the refusals consumed the token: it works once now.
		p := renewParams(e, e.MachineID, now)
		a, err := st.RenewRefreshToken(ctx, p)
		must(t, err)
		if a.ID != e.ID || a.MachineID != e.MachineID || a.TokenGeneration != 1 {
			t.Errorf("renew returned %+v", a)
		}
		_, err = st.RenewRefreshToken(ctx, p)
		wantErr(t, err, store.ErrNotFound)
		_, err = st.RenewRefreshToken(ctx, renewParams(e, e.MachineID, now))
		wantErr(t, err, store.ErrNotFound)

		// The new token slides: valid until its own expiry, not the old one's.
		next := enrolled{Agent: a, RefreshHash: p.NewHash}
		p2 := renewParams(next, e.MachineID, t0.Add(90*24*time.Hour))
		_, err = st.RenewRefreshToken(ctx, p2)
		must(t, err)
		if c := counts(t, st); c.RefreshTokens != 2 {
			t.Errorf("refresh tokens = %d, want one per agent", c.RefreshTokens)
		}
	})
}

func TestCheckIn(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		e := enrol(t, st, "checker", t0)
		// Long after registration the agent is stale; a check-in makes it online.
		now := t0.Add(30 * 24 * time.Hour)
		g, err := st.GetAgent(ctx, e.ID, now)
		must(t, err)
		if g.Status != store.StatusStale {
			t.Errorf("status before check-in = %q, want stale", g.Status)
		}
		cmds, err := st.CheckIn(ctx, e.ID, "1.5.0", 60, now)
		must(t, err)
		if cmds == nil || len(cmds) != 0 {
			t.Errorf("CheckIn commands = %#v, want an empty slice", cmds)
		}
		g, err = st.GetAgent(ctx, e.ID, now)
		must(t, err)
		if g.Status != store.StatusOnline || g.AgentVersion != "1.5.0" {
			t.Errorf("after check-in: status %q version %q", g.Status, g.AgentVersion)
		}
		sameTimePtr(t, "last_seen_at", g.LastSeenAt, &now)
		sameTime(t, "registered_at unchanged", g.RegisteredAt, t0)

		// The interval given decides when it turns offline: 2×60 s + 60 s.
		off := store.OfflineAfter(now, 60)
		sameTime(t, "OfflineAfter", off, now.Add(180*time.Second))
		for _, c := range []struct {
			at   time.Time
			want string
		}{
			{off.Add(-time.Microsecond), store.StatusOnline},
			{off, store.StatusOffline},
			{now.Add(store.StaleAfter - time.Microsecond), store.StatusOffline},
			{now.Add(store.StaleAfter), store.StatusStale},
		} {
			g, err := st.GetAgent(ctx, e.ID, c.at)
			must(t, err)
			if g.Status != c.want {
				t.Errorf("status at %v = %q, want %q", c.at, g.Status, c.want)
			}
		}

		// An empty version keeps the last known one.
		later := now.Add(time.Minute)
		_, err = st.CheckIn(ctx, e.ID, "", 60, later)
		must(t, err)
		g, err = st.GetAgent(ctx, e.ID, later)
		must(t, err)
		if g.AgentVersion != "1.5.0" {
			t.Errorf("empty version overwrote agent_version: %q", g.AgentVersion)
		}
		sameTimePtr(t, "last_seen_at", g.LastSeenAt, &later)

		_, err = st.CheckIn(ctx, "nope", "1.0.0", 60, now)
		wantErr(t, err, store.ErrNotFound)
	})
}

// fleet enrols agents with controlled clocks for the list tests.
type fleetAgent struct {
	host, os   string
	registered time.Duration // relative to t0
	seen       time.Duration // check-in relative to t0 (0: none after registration)
}

func TestListAgents(t *testing.T) {
	specs := []fleetAgent{
		{"alpha", "linux", 0, 0},
		{"Bravo", "windows", time.Minute, 10 * time.Minute},
		{"charlie", "darwin", 2 * time.Minute, 5 * time.Minute},
		{"DELTA", "linux", 2 * time.Minute, 10 * time.Minute}, // ties: registered with charlie, seen with Bravo
		{"echo", "windows", 3 * time.Minute, 0},
		{"Echo", "linux", 4 * time.Minute, 0}, // ties echo on lower(hostname)
		{"foxtrot", "linux", 5 * time.Minute, 20 * time.Minute},
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		tok := regToken(t, st, 100, t0.Add(-time.Hour), t0.Add(time.Hour))
		var agents []store.Agent
		for _, s := range specs {
			p := regParams(tok.TokenHash, hashOf(uid("m")), s.host, t0.Add(s.registered))
			p.Agent.OSType = s.os
			e := enrolWith(t, st, p)
			if s.seen != 0 {
				_, err := st.CheckIn(ctx, e.ID, "", 300, t0.Add(s.seen))
				must(t, err)
			}
			g, err := st.GetAgent(ctx, e.ID, t0)
			must(t, err)
			agents = append(agents, g)
		}
		now := t0.Add(30 * time.Minute)
		ids := func(as []store.Agent) []string {
			out := []string{}
			for _, a := range as {
				out = append(out, a.ID)
			}
			return out
		}
		key := map[string]func(a store.Agent) string{
			"hostname":      func(a store.Agent) string { return strings.ToLower(a.Hostname) },
			"os_type":       func(a store.Agent) string { return a.OSType },
			"registered_at": func(a store.Agent) string { return a.RegisteredAt.Format(time.RFC3339Nano) },
			"last_seen_at":  func(a store.Agent) string { return a.LastSeenAt.Format(time.RFC3339Nano) },
		}
		sorted := func(field string, desc bool) []string {
			as := slices.Clone(agents)
			slices.SortFunc(as, func(a, b store.Agent) int {
				c := strings.Compare(key[field](a), key[field](b))
				if field == "registered_at" || field == "last_seen_at" {
					ta, tb := a.RegisteredAt, b.RegisteredAt
					if field == "last_seen_at" {
						ta, tb = *a.LastSeenAt, *b.LastSeenAt
					}
					c = ta.Compare(tb)
				}
				if c == 0 {
					c = strings.Compare(a.ID, b.ID)
				}
				if desc {
					c = -c
				}
				return c
			})
			return ids(as)
		}

		t.Run("sort", func(t *testing.T) {
			// The column keys; the computed ones (status, update_status,
			// pending_updates, critical_updates) and agent_version are
			// covered over HTTP in internal/server/agents_list_test.go.
			for field := range key {
				if _, ok := store.SortableAgentFields[field]; !ok {
					t.Fatalf("%s is not a sort key", field)
				}
				for _, desc := range []bool{false, true} {
					s := field
					if desc {
						s = "-" + field
					}
					got, total, err := st.ListAgents(ctx, store.AgentFilter{Sort: s}, now)
					must(t, err)
					if want := sorted(field, desc); !slices.Equal(ids(got), want) || total != len(specs) {
						t.Errorf("sort %s: %v (total %d)\nwant         %v", s, ids(got), total, want)
					}
				}
			}
			got, _, err := st.ListAgents(ctx, store.AgentFilter{}, now)
			must(t, err)
			if want := sorted("registered_at", true); !slices.Equal(ids(got), want) {
				t.Errorf("default order %v, want newest registration first %v", ids(got), want)
			}
			for _, bad := range []string{"id", "machine_id", "hostname;DROP TABLE agents", "--hostname", "-", "Hostname"} {
				_, _, err := st.ListAgents(ctx, store.AgentFilter{Sort: bad}, now)
				wantErr(t, err, store.ErrInvalid)
			}
		})

		t.Run("paging", func(t *testing.T) {
			for _, s := range []string{"hostname", "-last_seen_at", "os_type", ""} {
				var pages []string
				for off := 0; off < len(specs)+2; off += 2 {
					got, total, err := st.ListAgents(ctx, store.AgentFilter{Sort: s, Page: store.Page{Limit: 2, Offset: off}}, now)
					must(t, err)
					if total != len(specs) || len(got) > 2 {
						t.Errorf("sort %q offset %d: %d rows, total %d", s, off, len(got), total)
					}
					pages = append(pages, ids(got)...)
				}
				all, _, err := st.ListAgents(ctx, store.AgentFilter{Sort: s}, now)
				must(t, err)
				if !slices.Equal(pages, ids(all)) {
					t.Errorf("sort %q: pages %v do not add up to %v", s, pages, ids(all))
				}
			}
			got, total, err := st.ListAgents(ctx, store.AgentFilter{Page: store.Page{Limit: 5, Offset: 100}}, now)
			must(t, err)
			if len(got) != 0 || got == nil || total != len(specs) {
				t.Errorf("past the end: %v total %d", got, total)
			}
		})

		t.Run("filters", func(t *testing.T) {
			cases := []struct {
				f     store.AgentFilter
				hosts []string
			}{
				{store.AgentFilter{OSType: "linux"}, []string{"alpha", "DELTA", "Echo", "foxtrot"}},
				{store.AgentFilter{OSType: "windows"}, []string{"Bravo", "echo"}},
				{store.AgentFilter{OSType: "LINUX"}, nil},
				{store.AgentFilter{OSType: "plan9"}, nil},
				{store.AgentFilter{Hostname: "ECH"}, []string{"echo", "Echo"}},
				{store.AgentFilter{Hostname: "ha"}, []string{"alpha", "charlie"}},
				{store.AgentFilter{Hostname: "ha", OSType: "darwin"}, []string{"charlie"}},
				{store.AgentFilter{Hostname: "%"}, nil},
				{store.AgentFilter{Hostname: "_"}, nil},
				{store.AgentFilter{Hostname: `\`}, nil},
				{store.AgentFilter{Hostname: "a%a"}, nil},
				{store.AgentFilter{Hostname: "e_ho"}, nil},
			}
			for _, c := range cases {
				c.f.Sort = "hostname"
				got, total, err := st.ListAgents(ctx, c.f, now)
				must(t, err)
				var gotHosts []string
				for _, a := range got {
					gotHosts = append(gotHosts, a.Hostname)
				}
				slices.Sort(gotHosts)
				slices.Sort(c.hosts)
				if !slices.Equal(gotHosts, c.hosts) || total != len(c.hosts) {
					t.Errorf("filter %+v: %v (total %d), want %v", c.f, gotHosts, total, c.hosts)
				}
			}
		})
	})
}

func TestListAgentsHostnameLiteral(t *testing.T) {
	hosts := []string{
		"100%-cpu", "1000-cpu", "100x-cpu",
		"db_primary", "dbXprimary", "db-primary",
		`win\srv`, `win\\srv`, "winsrv", `trail\`,
		"münchen-ü1", "MÜNCHEN-ü2", "箱根-01", "🚩-flag", "שרת-1",
	}
	cases := []struct {
		filter string
		want   []string
	}{
		{"100%", []string{"100%-cpu"}},
		{"%-cpu", []string{"100%-cpu"}},
		{"0%", []string{"100%-cpu"}},
		{"db_p", []string{"db_primary"}},
		{"_", []string{"db_primary"}},
		{`n\s`, []string{`win\srv`}},
		{`\\`, []string{`win\\srv`}},
		{`\`, []string{`win\srv`, `win\\srv`, `trail\`}},
		{`l\`, []string{`trail\`}},
		{"ü1", []string{"münchen-ü1"}},
		{"MÜN", []string{"MÜNCHEN-ü2"}}, // exact case always matches; see below
		{"箱", []string{"箱根-01"}},
		{"🚩", []string{"🚩-flag"}},
		{"שרת", []string{"שרת-1"}},
		{"CPU", []string{"100%-cpu", "1000-cpu", "100x-cpu"}},
		{"%%", nil},
		{"[a-z]", nil},
		{"*", nil},
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		tok := regToken(t, st, 100, t0.Add(-time.Hour), t0.Add(time.Hour))
		for _, h := range hosts {
			enrolWith(t, st, regParams(tok.TokenHash, hashOf(uid("m")), h, t0))
		}
		for _, c := range cases {
			got, total, err := st.ListAgents(ctx, store.AgentFilter{Hostname: c.filter}, t0)
			must(t, err)
			var gotHosts []string
			for _, a := range got {
				gotHosts = append(gotHosts, a.Hostname)
			}
			slices.Sort(gotHosts)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if c.filter == "MÜN" {
				// Case folding beyond ASCII is engine-specific (SQLite's
				// lower() is ASCII-only); only the exact-case match is
				// part of the contract.
				if !slices.Contains(gotHosts, "MÜNCHEN-ü2") {
					t.Errorf("filter %q: %v lacks the exact-case match", c.filter, gotHosts)
				}
				continue
			}
			if !slices.Equal(gotHosts, want) || total != len(want) {
				t.Errorf("filter %q: %q (total %d), want %q", c.filter, gotHosts, total, want)
			}
		}
	})
}

func TestAgentStatus(t *testing.T) {
	// Agents at each side of each boundary, listed and counted at `now`.
	now := t0.Add(100 * 24 * time.Hour)
	type spec struct {
		name     string
		seen     time.Time // last check-in (registration counts as one)
		interval int
		want     string
	}
	specs := []spec{
		{"just checked in", now, 300, store.StatusOnline},
		{"last chance", now.Add(-660*time.Second + time.Microsecond), 300, store.StatusOnline},
		{"just missed", now.Add(-660 * time.Second), 300, store.StatusOffline},
		{"short interval", now.Add(-5 * time.Minute), 60, store.StatusOffline},
		{"long interval", now.Add(-5 * time.Hour), 3 * 3600, store.StatusOnline},
		{"a day ago", now.Add(-24 * time.Hour), 300, store.StatusOffline},
		{"almost stale", now.Add(-store.StaleAfter + time.Microsecond), 300, store.StatusOffline},
		{"exactly stale", now.Add(-store.StaleAfter), 300, store.StatusStale},
		{"a month ago", now.Add(-30 * 24 * time.Hour), 300, store.StatusStale},
		{"future clock skew", now.Add(time.Hour), 300, store.StatusOnline},
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		tok := regToken(t, st, 100, t0.Add(-time.Hour), now.Add(24*time.Hour))
		byID := map[string]spec{}
		want := map[string]int{store.StatusOnline: 0, store.StatusOffline: 0, store.StatusStale: 0}
		for _, s := range specs {
			p := regParams(tok.TokenHash, hashOf(uid("m")), s.name, t0)
			p.Agent.CheckInIntervalSeconds = s.interval
			e := enrolWith(t, st, p)
			_, err := st.CheckIn(ctx, e.ID, "", s.interval, s.seen)
			must(t, err)
			byID[e.ID] = s
			want[s.want]++
		}
		for _, status := range []string{store.StatusOnline, store.StatusOffline, store.StatusStale} {
			got, total, err := st.ListAgents(ctx, store.AgentFilter{Status: status}, now)
			must(t, err)
			var names []string
			for _, a := range got {
				names = append(names, a.Hostname)
				if a.Status != status {
					t.Errorf("%s listed under %s carries status %s", a.Hostname, status, a.Status)
				}
				if byID[a.ID].want != status {
					t.Errorf("%q listed as %s, want %s", a.Hostname, status, byID[a.ID].want)
				}
			}
			if total != want[status] || len(got) != want[status] {
				t.Errorf("status %s: %d rows %v (total %d), want %d", status, len(got), names, total, want[status])
			}
		}
		for id, s := range byID {
			g, err := st.GetAgent(ctx, id, now)
			must(t, err)
			if g.Status != s.want {
				t.Errorf("GetAgent(%q).Status = %s, want %s", s.name, g.Status, s.want)
			}
		}
		counts, err := st.AgentStatusCounts(ctx, now)
		must(t, err)
		if !reflect.DeepEqual(counts, want) {
			t.Errorf("AgentStatusCounts = %v, want %v", counts, want)
		}
		_, _, err = st.ListAgents(ctx, store.AgentFilter{Status: "zombie"}, now)
		wantErr(t, err, store.ErrInvalid)
	})
}

func TestAgentStatusCountsEmpty(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		got, err := st.AgentStatusCounts(ctx, t0)
		must(t, err)
		if want := map[string]int{"online": 0, "offline": 0, "stale": 0}; !reflect.DeepEqual(got, want) {
			t.Errorf("AgentStatusCounts on an empty fleet = %v", got)
		}
		list, total, err := st.ListAgents(ctx, store.AgentFilter{}, t0)
		must(t, err)
		if list == nil || len(list) != 0 || total != 0 {
			t.Errorf("ListAgents on an empty fleet = %#v, %d", list, total)
		}
	})
}

func TestDeleteAgent(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		gone := enrol(t, st, "gone", t0)
		kept := enrol(t, st, "kept", t0)
		before := counts(t, st)
		must(t, st.DeleteAgent(ctx, gone.ID, nil))
		if d := diff(before, counts(t, st)); d != (store.Counts{Agents: -1, RefreshTokens: -1}) {
			t.Errorf("delete changed counts by %+v, want the agent and its refresh token", d)
		}
		_, err := st.GetAgent(ctx, gone.ID, t0)
		wantErr(t, err, store.ErrNotFound)
		_, err = st.AgentAuthByID(ctx, gone.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = st.RenewRefreshToken(ctx, renewParams(gone, gone.MachineID, t0))
		wantErr(t, err, store.ErrNotFound)
		_, err = st.CheckIn(ctx, gone.ID, "", 300, t0)
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, st.SaveSystemInfo(ctx, gone.ID, []byte(`{}`), t0), store.ErrNotFound)
		wantErr(t, st.DeleteAgent(ctx, gone.ID, &store.Audit{ActorType: "user", Action: "agent.delete"}), store.ErrNotFound)
		// The other agent is untouched.
		_, err = st.RenewRefreshToken(ctx, renewParams(kept, kept.MachineID, t0))
		must(t, err)
		// The machine may enrol again, as a new agent.
		tok := regToken(t, st, 1, t0, t0.Add(time.Hour))
		p := regParams(tok.TokenHash, gone.MachineID, "gone", t0)
		a, reinstall, err := st.RegisterAgent(ctx, p)
		must(t, err)
		if reinstall || a.ID == gone.ID || a.TokenGeneration != 1 {
			t.Errorf("re-enrolment after delete: %+v reinstall %v", a, reinstall)
		}
	})
}

func TestRebindAgent(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "a", t0)
		b := enrol(t, st, "b", t0)
		newMachine := hashOf("new hardware")

		// Conflict with another agent's machine id: nothing changes.
		before := counts(t, st)
		_, err := st.RebindAgent(ctx, a.ID, b.MachineID, t0, &store.Audit{ActorType: "user", Action: "agent.rebind"})
		wantErr(t, err, store.ErrConflict)
		if after := counts(t, st); after != before {
			t.Errorf("refused rebind changed counts: %+v -> %+v", before, after)
		}
		for _, e := range []enrolled{a, b} {
			auth, err := st.AgentAuthByID(ctx, e.ID)
			must(t, err)
			if auth.MachineID != e.MachineID {
				t.Errorf("agent %s now bound to %s", e.Hostname, auth.MachineID)
			}
		}
		_, err = st.RebindAgent(ctx, "nope", newMachine, t0, &store.Audit{ActorType: "user", Action: "agent.rebind"})
		wantErr(t, err, store.ErrNotFound)
		if after := counts(t, st); after != before {
			t.Errorf("rebind of an unknown agent changed counts: %+v -> %+v", before, after)
		}

		got, err := st.RebindAgent(ctx, a.ID, newMachine, t0, &store.Audit{ActorType: "user", ActorID: "u1", Action: "agent.rebind", TargetID: a.ID})
		must(t, err)
		if got.ID != a.ID || got.MachineID != newMachine || got.Hostname != "a" {
			t.Errorf("RebindAgent returned %+v", got)
		}
		au := lastAudit(t, st)
		if au.Action != "agent.rebind" || au.Details["old_machine_id"] != a.MachineID || au.Details["new_machine_id"] != newMachine {
			t.Errorf("audit = %+v", au)
		}
		// The refresh token now answers only to the new machine.
		_, err = st.RenewRefreshToken(ctx, renewParams(a, a.MachineID, t0))
		wantErr(t, err, store.ErrMachineMismatch)
		_, err = st.RenewRefreshToken(ctx, renewParams(a, newMachine, t0))
		must(t, err)
		// Rebinding to its own machine id is a harmless no-op.
		_, err = st.RebindAgent(ctx, b.ID, b.MachineID, t0, nil)
		must(t, err)
		// The old machine id is free again: that machine can enrol afresh.
		tok := regToken(t, st, 1, t0, t0.Add(time.Hour))
		n, reinstall, err := st.RegisterAgent(ctx, regParams(tok.TokenHash, a.MachineID, "old box", t0))
		must(t, err)
		if reinstall || n.ID == a.ID {
			t.Errorf("old machine id enrolled as %+v reinstall %v", n, reinstall)
		}
	})
}

func TestSystemInfo(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		e := enrol(t, st, "inv", t0)
		var hostileJSON strings.Builder
		hostileJSON.WriteString(`{"disks":[{"mount":"/","size_bytes":512110190592,"used":0.5}],"reboot_required":true,"kernel":"6.1.0-18-amd64","cpu":null,"labels":{`)
		for i, h := range hostile {
			if i > 0 {
				hostileJSON.WriteByte(',')
			}
			k, _ := json.Marshal(h.name)
			v, _ := json.Marshal(h.s)
			fmt.Fprintf(&hostileJSON, "%s:%s", k, v)
		}
		hostileJSON.WriteString(`},"big":9007199254740993,"escaped":"\u00e9\ud83d\udea9\n"}`)
		infos := []string{`{}`, `{"os":"Debian GNU/Linux 12"}`, hostileJSON.String()}
		for i, info := range infos {
			at := t0.Add(time.Duration(i) * time.Minute)
			must(t, st.SaveSystemInfo(ctx, e.ID, []byte(info), at))
			g, err := st.GetAgent(ctx, e.ID, at)
			must(t, err)
			// PostgreSQL keeps JSONB, which normalises spacing and key
			// order; the document itself must be unchanged.
			if !jsonEqual(t, g.SystemInfo, []byte(info)) {
				t.Errorf("system info %d came back as %s", i, g.SystemInfo)
			}
			sameTimePtr(t, "system_info_at", g.SystemInfoAt, &at)
		}
		wantErr(t, st.SaveSystemInfo(ctx, "nope", []byte(`{}`), t0), store.ErrNotFound)
	})
}

// jsonEqual compares two JSON documents by value, numbers exactly.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	dec := func(raw []byte) any {
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
		return normNumbers(v)
	}
	return reflect.DeepEqual(dec(a), dec(b))
}

// normNumbers makes 0.5 and 0.50 equal while keeping big integers exact.
func normNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normNumbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

func TestConcurrentRegistration(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		tok := regToken(t, st, 5, t0.Add(-time.Hour), t0.Add(time.Hour))
		before := counts(t, st)
		const n = 20
		errs := make([]error, n)
		race(t, st, n, func(i int) {
			_, _, errs[i] = st.RegisterAgent(ctx, regParams(tok.TokenHash, hashOf(fmt.Sprint("race-", i)), fmt.Sprint("race-", i), t0))
		})
		okN := 0
		for i, err := range errs {
			switch {
			case err == nil:
				okN++
			case errors.Is(err, store.ErrRegistrationRefused):
			default:
				t.Errorf("registration %d: unexpected error %v", i, err)
			}
		}
		if okN != 5 {
			t.Errorf("%d of %d registrations succeeded with 5 seats", okN, n)
		}
		rt, err := st.RegistrationTokenByID(ctx, tok.ID)
		must(t, err)
		if rt.SeatsUsed != 5 {
			t.Errorf("seats_used = %d, want 5", rt.SeatsUsed)
		}
		if d := diff(before, counts(t, st)); d != (store.Counts{Agents: 5, RefreshTokens: 5, RegistrationSeatsUsed: 5, Audit: 5}) {
			t.Errorf("counts changed by %+v", d)
		}
	})
}

func TestConcurrentRenewal(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		e := enrol(t, st, "renew-race", t0)
		const n = 10
		params := make([]store.RenewParams, n)
		for i := range params {
			params[i] = renewParams(e, e.MachineID, t0.Add(time.Minute))
		}
		errs := make([]error, n)
		race(t, st, n, func(i int) {
			_, errs[i] = st.RenewRefreshToken(ctx, params[i])
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("renewals %d and %d both succeeded", winner, i)
				}
				winner = i
			case errors.Is(err, store.ErrNotFound):
			default:
				t.Errorf("renewal %d: unexpected error %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no renewal succeeded")
		}
		if c := counts(t, st); c.RefreshTokens != 1 {
			t.Errorf("%d refresh tokens after the race, want 1", c.RefreshTokens)
		}
		// Only the winner's new token works.
		for i, p := range params {
			_, err := st.RenewRefreshToken(ctx, renewParams(enrolled{Agent: e.Agent, RefreshHash: p.NewHash}, e.MachineID, t0.Add(2*time.Minute)))
			if (err == nil) != (i == winner) {
				t.Errorf("renewal %d's token: err %v (winner %d)", i, err, winner)
			}
		}
	})
}

// TestCheckInClaimsCommands: a check-in hands out each due command of its
// own agent exactly once, oldest first, with times in UTC.
func TestCheckInClaimsCommands(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		a := enrol(t, st, "claimer", t0)
		b := enrol(t, st, "bystander", t0)
		cmd := func(agent, typ string, created time.Time, expires time.Time) store.CommandRecord {
			return store.CommandRecord{Command: store.Command{ID: uid("cmd"), AgentID: agent, Type: typ, Params: `{"x":1}`,
				KeyID: "k1", Signature: "c2ln", IssuedAt: created.Unix(), ExpiresAt: expires.Unix(), CreatedAt: created}, CreatedBy: "root"}
		}
		now := t0.Add(time.Hour)
		later := cmd(a.ID, "scan", t0.Add(2*time.Minute), now.Add(time.Hour))
		earlier := cmd(a.ID, "reboot", t0.Add(time.Minute), now.Add(time.Hour))
		expired := cmd(a.ID, "install", t0, now)
		other := cmd(b.ID, "scan", t0, now.Add(time.Hour))
		_, err := st.CreateCommands(ctx, []store.CommandRecord{later, earlier, expired, other}, nil)
		must(t, err)

		got, err := st.CheckIn(ctx, a.ID, "", 300, now)
		must(t, err)
		if len(got) != 2 || got[0].ID != earlier.ID || got[1].ID != later.ID {
			t.Fatalf("claimed %+v, want [reboot scan]", got)
		}
		for i, want := range []store.CommandRecord{earlier, later} {
			c := got[i]
			if c.AgentID != a.ID || c.Type != want.Type || c.Params != want.Params || c.Status != "sent" ||
				c.KeyID != "k1" || c.Signature != "c2ln" || c.IssuedAt != want.IssuedAt || c.ExpiresAt != want.ExpiresAt {
				t.Errorf("claimed command %+v", c)
			}
			sameTime(t, "command created_at", c.CreatedAt, want.CreatedAt)
		}
		again, err := st.CheckIn(ctx, a.ID, "", 300, now)
		must(t, err)
		if len(again) != 0 {
			t.Errorf("second check-in claimed %d commands again", len(again))
		}
		gotB, err := st.CheckIn(ctx, b.ID, "", 300, now)
		must(t, err)
		if len(gotB) != 1 || gotB[0].ID != other.ID {
			t.Errorf("bystander claimed %+v", gotB)
		}
	})
}
