package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
)

// TestAuditInTransaction checks, for every mutating method that takes an
// *Audit, that the audit row is written with the change, that a failing
// call writes none, and that a failing audit insert rolls the change back
// (so the log and the data can never disagree).
func TestAuditInTransaction(t *testing.T) {
	type env struct {
		user   store.User
		token  store.UserToken
		reg    store.RegistrationToken
		agent  enrolled
		agent2 enrolled
	}
	cases := []struct {
		name string
		// do makes the change; applied reports whether it is visible.
		do      func(st *store.Store, e *env, a *store.Audit) error
		applied func(t *testing.T, st *store.Store, e *env) bool
		// fail is the same call failing for a reason of its own (nil: none).
		fail     func(st *store.Store, e *env, a *store.Audit) error
		noPoison bool // the method replaces Details, so a poisoned audit cannot fail it
	}{
		{
			name: "CreateFirstAdmin",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.CreateFirstAdmin(ctx, store.User{ID: "first", Username: "first", PasswordHash: "h", Role: "admin", CreatedAt: t0, PasswordChangedAt: t0}, hashOf("setup"), a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				_, err := st.UserByUsername(ctx, "first")
				return err == nil
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				return st.CreateFirstAdmin(ctx, store.User{ID: "first", Username: "first", CreatedAt: t0, PasswordChangedAt: t0}, hashOf("wrong"), a)
			},
		},
		{
			name: "CreateUserToken",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.CreateUserToken(ctx, store.UserToken{ID: "new-tok", UserID: e.user.ID, Kind: "api", TokenHash: hashOf("new-tok"), CreatedAt: t0}, a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				_, _, err := st.UserByToken(ctx, hashOf("new-tok"), t0)
				return err == nil
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				return st.CreateUserToken(ctx, store.UserToken{ID: "bad-tok", UserID: "ghost", Kind: "api", TokenHash: hashOf("bad-tok"), CreatedAt: t0}, a)
			},
		},
		{
			name: "RevokeUserToken",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.RevokeUserToken(ctx, e.user.ID, e.token.ID, t0, a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				_, _, err := st.UserByToken(ctx, e.token.TokenHash, t0)
				return err != nil
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				return st.RevokeUserToken(ctx, "someone-else", e.token.ID, t0, a)
			},
		},
		{
			name: "ChangePassword",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.ChangePassword(ctx, e.user.ID, "changed", "", t0, a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				u, err := st.UserByUsername(ctx, e.user.Username)
				must(t, err)
				_, _, terr := st.UserByToken(ctx, e.token.TokenHash, t0)
				if (u.PasswordHash == "changed") != (terr != nil) {
					t.Errorf("password and session revocation disagree: hash %q, session err %v", u.PasswordHash, terr)
				}
				return u.PasswordHash == "changed"
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				return st.ChangePassword(ctx, "ghost", "changed", "", t0, a)
			},
		},
		{
			name: "CreateRegistrationToken",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.CreateRegistrationToken(ctx, store.RegistrationToken{ID: "new-reg", TokenHash: hashOf("new-reg"), Seats: 1, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				_, err := st.RegistrationTokenByID(ctx, "new-reg")
				return err == nil
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				return st.CreateRegistrationToken(ctx, store.RegistrationToken{ID: "bad-reg", TokenHash: hashOf("bad-reg"), Seats: 0, CreatedAt: t0, ExpiresAt: t0}, a)
			},
		},
		{
			name: "RevokeRegistrationToken",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				_, err := st.RevokeRegistrationToken(ctx, e.reg.ID, t0, a)
				return err
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				r, err := st.RegistrationTokenByID(ctx, e.reg.ID)
				must(t, err)
				return r.RevokedAt != nil
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				_, err := st.RevokeRegistrationToken(ctx, "ghost", t0, a)
				return err
			},
		},
		{
			name: "DeleteRegistrationToken",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.DeleteRegistrationToken(ctx, e.reg.ID, a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				_, err := st.RegistrationTokenByID(ctx, e.reg.ID)
				return err != nil
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				return st.DeleteRegistrationToken(ctx, "ghost", a)
			},
		},
		{
			name: "DeleteAgent",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.DeleteAgent(ctx, e.agent.ID, a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				_, err := st.GetAgent(ctx, e.agent.ID, t0)
				return err != nil
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				return st.DeleteAgent(ctx, "ghost", a)
			},
		},
		{
			name: "RebindAgent",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				_, err := st.RebindAgent(ctx, e.agent.ID, hashOf("rebound"), t0, a)
				return err
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				auth, err := st.AgentAuthByID(ctx, e.agent.ID)
				must(t, err)
				return auth.MachineID == hashOf("rebound")
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				_, err := st.RebindAgent(ctx, e.agent.ID, e.agent2.MachineID, t0, a)
				return err
			},
			noPoison: true,
		},
		{
			name: "SetSetting",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.SetSetting(ctx, "audited", "yes", a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool {
				v, found, err := st.Setting(ctx, "audited")
				must(t, err)
				return found && v == "yes"
			},
			fail: func(st *store.Store, e *env, a *store.Audit) error {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				return st.SetSetting(cctx, "audited", "yes", a)
			},
		},
		{
			name: "RecordAudit",
			do: func(st *store.Store, e *env, a *store.Audit) error {
				return st.RecordAudit(ctx, *a)
			},
			applied: func(t *testing.T, st *store.Store, e *env) bool { return true },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eachEngine(t, func(t *testing.T, st *store.Store) {
				e := &env{}
				if c.name == "CreateFirstAdmin" {
					_, err := st.SetSetupToken(ctx, hashOf("setup"))
					must(t, err)
				} else {
					e.user = admin(t, st, "root")
					e.token = store.UserToken{ID: uid("tok"), UserID: e.user.ID, Kind: "session", TokenHash: hashOf(uid("t")), CreatedAt: t0}
					must(t, st.CreateUserToken(ctx, e.token, nil))
				}
				e.reg = regToken(t, st, 5, t0.Add(-time.Hour), t0.Add(time.Hour))
				e.agent = enrolWith(t, st, regParams(e.reg.TokenHash, hashOf(uid("m")), "audited-agent", t0))
				e.agent2 = enrolWith(t, st, regParams(e.reg.TokenHash, hashOf(uid("m")), "other-agent", t0))
				mkAudit := func() *store.Audit {
					return &store.Audit{At: t0.Add(time.Minute), ActorType: "user", ActorID: "actor-1", ActorName: "Root Ops",
						Action: "test." + c.name, TargetType: "thing", TargetID: "target-1", IP: "203.0.113.9",
						Details: map[string]any{"why": "because", "n": 3.0}}
				}
				auditRows := func() int {
					n, err := st.CountAudit(ctx)
					must(t, err)
					return n
				}
				if c.applied(t, st, e) && c.name != "RecordAudit" {
					t.Fatal("change visible before it was made")
				}

				if !c.noPoison && c.name != "RecordAudit" {
					// An audit row that cannot be written fails the call and
					// leaves no trace of the change.
					before := counts(t, st)
					poisoned := mkAudit()
					poisoned.Details["bad"] = make(chan int)
					if err := c.do(st, e, poisoned); err == nil {
						t.Fatal("call succeeded although its audit row could not be written")
					}
					if c.applied(t, st, e) {
						t.Error("change committed although its audit row failed")
					}
					if after := counts(t, st); after != before {
						t.Errorf("counts changed: %+v -> %+v", before, after)
					}
				}

				if c.fail != nil {
					before := counts(t, st)
					if err := c.fail(st, e, mkAudit()); err == nil {
						t.Fatal("failing variant succeeded")
					}
					if after := counts(t, st); after != before {
						t.Errorf("failed call changed counts (audit rows?): %+v -> %+v", before, after)
					}
				}

				n := auditRows()
				want := mkAudit()
				must(t, c.do(st, e, want))
				if !c.applied(t, st, e) {
					t.Error("change not visible after success")
				}
				if got := auditRows(); got != n+1 {
					t.Fatalf("audit rows %d -> %d, want exactly one more", n, got)
				}
				got := lastAudit(t, st)
				if got.ID <= 0 {
					t.Errorf("audit id = %d", got.ID)
				}
				sameTime(t, "audit at", got.At, t0.Add(time.Minute))
				got.ID, got.At = 0, time.Time{}
				want.At = time.Time{}
				if !reflect.DeepEqual(got, *want) {
					t.Errorf("audit row = %+v\nwant        %+v", got, *want)
				}
			})
		})
	}
}

func TestListAudit(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		// An audit row with a zero time gets the current time.
		before := store.Now()
		must(t, st.RecordAudit(ctx, store.Audit{ActorType: "system", Action: "server.start"}))
		first := lastAudit(t, st)
		if first.At.Before(before) || first.At.After(store.Now()) || first.At.Location() != time.UTC {
			t.Errorf("zero At stored as %v", first.At)
		}
		if first.Details == nil || len(first.Details) != 0 {
			t.Errorf("nil details read back as %#v, want an empty map", first.Details)
		}

		actions := []string{"agent.delete", "token.create", "agent.rebind"}
		const n = 60
		for i := 0; i < n; i++ {
			must(t, st.RecordAudit(ctx, store.Audit{At: t0.Add(time.Duration(i) * time.Second), ActorType: "user",
				ActorID: fmt.Sprint("u", i%2), Action: actions[i%3], TargetID: fmt.Sprint("t", i%5),
				Details: map[string]any{"i": float64(i)}}))
		}
		all, err := st.ListAudit(ctx, store.AuditFilter{Limit: 500})
		must(t, err)
		if len(all) != n+1 {
			t.Fatalf("%d rows, want %d", len(all), n+1)
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID >= all[i-1].ID {
				t.Fatalf("not newest first: id %d after %d", all[i].ID, all[i-1].ID)
			}
		}
		if all[0].Details["i"] != float64(n-1) {
			t.Errorf("newest row details = %v", all[0].Details)
		}

		match := func(f store.AuditFilter, a store.Audit) bool {
			return (f.Action == "" || a.Action == f.Action) && (f.ActorID == "" || a.ActorID == f.ActorID) &&
				(f.TargetID == "" || a.TargetID == f.TargetID)
		}
		filters := []store.AuditFilter{
			{},
			{Action: "agent.delete"},
			{ActorID: "u1"},
			{TargetID: "t3"},
			{Action: "token.create", ActorID: "u0", TargetID: "t2"},
			{Action: "nothing"},
			{Action: "agent.%"},
			{ActorID: "u_"},
		}
		for _, f := range filters {
			var want []int64
			for _, a := range all {
				if match(f, a) {
					want = append(want, a.ID)
				}
			}
			// Walk the keyset cursor with a small page.
			var got []int64
			cursor := int64(0)
			for pages := 0; ; pages++ {
				if pages > n {
					t.Fatalf("filter %+v: cursor does not terminate", f)
				}
				ff := f
				ff.Limit, ff.BeforeID = 7, cursor
				rows, err := st.ListAudit(ctx, ff)
				must(t, err)
				if rows == nil {
					t.Fatalf("filter %+v: nil slice", f)
				}
				for _, r := range rows {
					got = append(got, r.ID)
				}
				if len(rows) < 7 {
					break
				}
				cursor = rows[len(rows)-1].ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("filter %+v: ids %v, want %v", f, got, want)
			}
		}

		// Limits: default 50, capped at 500; a cursor below every id is empty.
		for _, c := range []struct{ limit, want int }{{0, 50}, {-3, 50}, {501, 50}, {10, 10}, {500, n + 1}} {
			rows, err := st.ListAudit(ctx, store.AuditFilter{Limit: c.limit})
			must(t, err)
			if len(rows) != c.want {
				t.Errorf("limit %d: %d rows, want %d", c.limit, len(rows), c.want)
			}
		}
		rows, err := st.ListAudit(ctx, store.AuditFilter{BeforeID: all[len(all)-1].ID})
		must(t, err)
		if len(rows) != 0 {
			t.Errorf("before the oldest id: %d rows", len(rows))
		}
	})
}
