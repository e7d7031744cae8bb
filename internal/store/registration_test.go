package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
)

func TestRegistrationTokenStatus(t *testing.T) {
	exp := t0.Add(time.Hour)
	cases := []struct {
		name string
		tok  store.RegistrationToken
		now  time.Time
		want string
	}{
		{"fresh", store.RegistrationToken{Seats: 3, SeatsUsed: 0, ExpiresAt: exp}, t0, "active"},
		{"one seat left", store.RegistrationToken{Seats: 3, SeatsUsed: 2, ExpiresAt: exp}, t0, "active"},
		{"no seat left", store.RegistrationToken{Seats: 3, SeatsUsed: 3, ExpiresAt: exp}, t0, "exhausted"},
		{"a microsecond before expiry", store.RegistrationToken{Seats: 3, ExpiresAt: exp}, exp.Add(-time.Microsecond), "active"},
		{"at expiry", store.RegistrationToken{Seats: 3, ExpiresAt: exp}, exp, "expired"},
		{"expired beats exhausted", store.RegistrationToken{Seats: 1, SeatsUsed: 1, ExpiresAt: exp}, exp.Add(time.Second), "expired"},
		{"revoked beats everything", store.RegistrationToken{Seats: 1, SeatsUsed: 1, ExpiresAt: exp, RevokedAt: &t0}, exp.Add(time.Second), "revoked"},
		{"revoked while active", store.RegistrationToken{Seats: 5, ExpiresAt: exp, RevokedAt: &t0}, t0, "revoked"},
	}
	for _, c := range cases {
		if got := c.tok.Status(c.now); got != c.want {
			t.Errorf("%s: Status = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRegistrationTokens(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		in := store.RegistrationToken{ID: uid("rt"), TokenHash: hashOf("s1"), Note: "rack 4", Seats: 2, CreatedBy: "root",
			CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
		must(t, st.CreateRegistrationToken(ctx, in, nil))
		got, err := st.RegistrationTokenByID(ctx, in.ID)
		must(t, err)
		if got.ID != in.ID || got.TokenHash != in.TokenHash || got.Note != in.Note || got.Seats != 2 || got.SeatsUsed != 0 ||
			got.CreatedBy != in.CreatedBy || got.RevokedAt != nil {
			t.Errorf("RegistrationTokenByID = %+v, want %+v", got, in)
		}
		sameTime(t, "created_at", got.CreatedAt, in.CreatedAt)
		sameTime(t, "expires_at", got.ExpiresAt, in.ExpiresAt)
		if s := got.Status(t0); s != "active" {
			t.Errorf("status = %q, want active", s)
		}
		_, err = st.RegistrationTokenByID(ctx, "nope")
		wantErr(t, err, store.ErrNotFound)

		// Invalid rows are refused by the schema: no seats, a duplicate secret.
		before := counts(t, st)
		for _, bad := range []store.RegistrationToken{
			{ID: uid("rt"), TokenHash: hashOf("s0"), Seats: 0, CreatedAt: t0, ExpiresAt: t0},
			{ID: uid("rt"), TokenHash: hashOf("s-neg"), Seats: -1, CreatedAt: t0, ExpiresAt: t0},
			{ID: uid("rt"), TokenHash: in.TokenHash, Seats: 1, CreatedAt: t0, ExpiresAt: t0},
			{ID: in.ID, TokenHash: hashOf("s-dup-id"), Seats: 1, CreatedAt: t0, ExpiresAt: t0},
		} {
			if err := st.CreateRegistrationToken(ctx, bad, &store.Audit{ActorType: "user", Action: "registration_token.create"}); err == nil {
				t.Errorf("CreateRegistrationToken accepted %+v", bad)
			}
		}
		if after := counts(t, st); after != before {
			t.Errorf("refused creations changed counts: %+v -> %+v", before, after)
		}

		// Status follows seats: two registrations exhaust it.
		for i := 0; i < 2; i++ {
			enrolWith(t, st, regParams(in.TokenHash, hashOf(uid("m")), fmt.Sprint("host", i), t0))
		}
		got, err = st.RegistrationTokenByID(ctx, in.ID)
		must(t, err)
		if got.SeatsUsed != 2 || got.Status(t0) != "exhausted" {
			t.Errorf("after 2 registrations: seats_used %d, status %q", got.SeatsUsed, got.Status(t0))
		}
		if got.Status(in.ExpiresAt) != "expired" {
			t.Errorf("status at expiry = %q", got.Status(in.ExpiresAt))
		}

		// Revoking is idempotent and keeps the first revocation time.
		revoked := t0.Add(time.Minute)
		r1, err := st.RevokeRegistrationToken(ctx, in.ID, revoked, nil)
		must(t, err)
		sameTimePtr(t, "revoked_at", r1.RevokedAt, &revoked)
		r2, err := st.RevokeRegistrationToken(ctx, in.ID, revoked.Add(time.Hour), nil)
		must(t, err)
		sameTimePtr(t, "revoked_at after second revoke", r2.RevokedAt, &revoked)
		if r2.Status(t0) != "revoked" || r2.SeatsUsed != 2 {
			t.Errorf("revoked token: %+v status %q", r2, r2.Status(t0))
		}
		_, err = st.RevokeRegistrationToken(ctx, "nope", t0, &store.Audit{ActorType: "user", Action: "x"})
		wantErr(t, err, store.ErrNotFound)

		// Deleting removes the token, not the agents it enrolled.
		agentsBefore := counts(t, st).Agents
		must(t, st.DeleteRegistrationToken(ctx, in.ID, nil))
		_, err = st.RegistrationTokenByID(ctx, in.ID)
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, st.DeleteRegistrationToken(ctx, in.ID, &store.Audit{ActorType: "user", Action: "x"}), store.ErrNotFound)
		if c := counts(t, st); c.Agents != agentsBefore || c.Agents != 2 {
			t.Errorf("agents after deleting their token: %d, want 2", c.Agents)
		}
	})
}

func TestListRegistrationTokens(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		var all []store.RegistrationToken
		for i := 0; i < 7; i++ {
			created := t0.Add(time.Duration(i) * time.Minute)
			if i == 4 {
				created = t0.Add(3 * time.Minute) // a tie, broken by id
			}
			all = append(all, regToken(t, st, 1+i, created, t0.Add(time.Hour)))
		}
		// Newest first, ties by id descending.
		slices.SortFunc(all, func(a, b store.RegistrationToken) int {
			if c := store.T(b.CreatedAt).Compare(store.T(a.CreatedAt)); c != 0 {
				return c
			}
			if a.ID > b.ID {
				return -1
			}
			return 1
		})
		ids := func(ts []store.RegistrationToken) []string {
			var out []string
			for _, x := range ts {
				out = append(out, x.ID)
			}
			return out
		}
		cases := []struct {
			page     store.Page
			from, to int
		}{
			{store.Page{Limit: 3}, 0, 3},
			{store.Page{Limit: 3, Offset: 3}, 3, 6},
			{store.Page{Limit: 3, Offset: 6}, 6, 7},
			{store.Page{Limit: 3, Offset: 7}, 7, 7},
			{store.Page{Limit: 3, Offset: 100}, 7, 7},
			{store.Page{}, 0, 7},                      // default limit
			{store.Page{Limit: 100000}, 0, 7},         // over the cap: default
			{store.Page{Limit: 2, Offset: -5}, 0, 2},  // negative offset: start
			{store.Page{Limit: -1, Offset: 5}, 5, 7},  // negative limit: default
			{store.Page{Limit: 500, Offset: 1}, 1, 7}, // the cap itself
		}
		for _, c := range cases {
			got, total, err := st.ListRegistrationTokens(ctx, c.page)
			must(t, err)
			if total != 7 {
				t.Errorf("%+v: total = %d, want 7", c.page, total)
			}
			if want := ids(all[c.from:c.to]); !slices.Equal(ids(got), want) {
				t.Errorf("%+v: ids = %v, want %v", c.page, ids(got), want)
			}
		}
	})
}
