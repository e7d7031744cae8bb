package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
)

func TestSetup(t *testing.T) {
	newAdmin := func(name string) store.User {
		return store.User{ID: uid("user"), Username: name, PasswordHash: "hash-" + name, Role: "admin", CreatedAt: t0, PasswordChangedAt: t0}
	}
	// setupTokenStored reports whether a setup token is waiting.
	setupTokenStored := func(t *testing.T, st *store.Store) bool {
		_, found, err := st.Setting(ctx, "setup_token_sha256")
		must(t, err)
		return found
	}
	cases := []struct {
		name string
		run  func(t *testing.T, st *store.Store)
	}{
		{"without a setup token (REDFLAG_ADMIN_*)", func(t *testing.T, st *store.Store) {
			must(t, st.CreateFirstAdmin(ctx, newAdmin("root"), "", nil))
			if n, err := st.CountUsers(ctx); err != nil || n != 1 {
				t.Fatalf("CountUsers = %d, %v; want 1", n, err)
			}
		}},
		{"with the right setup token, which is consumed", func(t *testing.T, st *store.Store) {
			open, err := st.SetSetupToken(ctx, hashOf("setup-1"))
			must(t, err)
			if !open {
				t.Fatal("SetSetupToken on an empty database reported setup closed")
			}
			must(t, st.CreateFirstAdmin(ctx, newAdmin("root"), hashOf("setup-1"), nil))
			if setupTokenStored(t, st) {
				t.Error("setup token still stored after setup")
			}
		}},
		{"a wrong setup token changes nothing", func(t *testing.T, st *store.Store) {
			_, err := st.SetSetupToken(ctx, hashOf("setup-1"))
			must(t, err)
			before := counts(t, st)
			for _, wrong := range []string{hashOf("setup-2"), hashOf("setup-1")[:63], hashOf("setup-1") + "0", "x"} {
				wantErr(t, st.CreateFirstAdmin(ctx, newAdmin("root"), wrong, &store.Audit{ActorType: "user", Action: "setup"}), store.ErrSetupTokenInvalid)
			}
			if after := counts(t, st); after != before {
				t.Errorf("counts changed: %+v -> %+v", before, after)
			}
			if !setupTokenStored(t, st) {
				t.Error("a wrong attempt consumed the setup token")
			}
			must(t, st.CreateFirstAdmin(ctx, newAdmin("root"), hashOf("setup-1"), nil))
		}},
		{"a token when none was issued is refused", func(t *testing.T, st *store.Store) {
			wantErr(t, st.CreateFirstAdmin(ctx, newAdmin("root"), hashOf("guess"), nil), store.ErrSetupTokenInvalid)
		}},
		{"a newer setup token replaces the older", func(t *testing.T, st *store.Store) {
			_, err := st.SetSetupToken(ctx, hashOf("old"))
			must(t, err)
			_, err = st.SetSetupToken(ctx, hashOf("new"))
			must(t, err)
			wantErr(t, st.CreateFirstAdmin(ctx, newAdmin("root"), hashOf("old"), nil), store.ErrSetupTokenInvalid)
			must(t, st.CreateFirstAdmin(ctx, newAdmin("root"), hashOf("new"), nil))
		}},
		{"setup closes for good", func(t *testing.T, st *store.Store) {
			_, err := st.SetSetupToken(ctx, hashOf("setup-1"))
			must(t, err)
			must(t, st.CreateFirstAdmin(ctx, newAdmin("root"), hashOf("setup-1"), nil))
			before := counts(t, st)
			for _, h := range []string{"", hashOf("setup-1"), hashOf("other")} {
				wantErr(t, st.CreateFirstAdmin(ctx, newAdmin("second"), h, &store.Audit{ActorType: "user", Action: "setup"}), store.ErrSetupComplete)
				// Another username of the same name differing in case too.
				wantErr(t, st.CreateFirstAdmin(ctx, newAdmin("ROOT"), h, nil), store.ErrSetupComplete)
			}
			// A restart that would issue a new setup token learns setup is
			// closed, and no token is left behind.
			open, err := st.SetSetupToken(ctx, hashOf("setup-2"))
			must(t, err)
			if open {
				t.Error("SetSetupToken reported setup open although an admin exists")
			}
			if setupTokenStored(t, st) {
				t.Error("SetSetupToken stored a token although an admin exists")
			}
			if after := counts(t, st); after != before {
				t.Errorf("counts changed: %+v -> %+v", before, after)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eachEngine(t, c.run)
		})
	}
}

func TestUserByUsername(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		in := store.User{ID: uid("user"), Username: "Admin.Ops", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
			Role: "admin", CreatedAt: t0, PasswordChangedAt: t0.Add(time.Second)}
		must(t, st.CreateFirstAdmin(ctx, in, "", nil))
		cases := []struct {
			lookup string
			found  bool
		}{
			{"Admin.Ops", true},
			{"admin.ops", true},
			{"ADMIN.OPS", true},
			{"aDmIn.oPs", true},
			{"admin", false},
			{"admin.ops ", false},
			{"admin%", false},
			{"admin_ops", false},
			{"", false},
		}
		// Non-ASCII names are found by their exact spelling and by ASCII
		// case changes. Folding non-ASCII letters (Ü/ü) is engine-specific:
		// SQLite's lower() is ASCII-only, so it is not part of the contract.
		jurgen := secondUser(t, st)
		rawExec(t, st, "UPDATE users SET username = $1 WHERE id = $2", "Jürgen-Ω", jurgen.ID)
		for _, name := range []string{"Jürgen-Ω", "jürgen-Ω"} {
			u, err := st.UserByUsername(ctx, name)
			must(t, err)
			if u.ID != jurgen.ID || u.Username != "Jürgen-Ω" {
				t.Errorf("UserByUsername(%q) = %+v", name, u)
			}
		}
		for _, c := range cases {
			u, err := st.UserByUsername(ctx, c.lookup)
			if !c.found {
				wantErr(t, err, store.ErrNotFound)
				continue
			}
			must(t, err)
			if u.ID != in.ID || u.Username != in.Username || u.PasswordHash != in.PasswordHash || u.Role != in.Role {
				t.Errorf("UserByUsername(%q) = %+v, want %+v", c.lookup, u, in)
			}
			sameTime(t, "created_at", u.CreatedAt, in.CreatedAt)
			sameTime(t, "password_changed_at", u.PasswordChangedAt, in.PasswordChangedAt)
		}
	})
}

func TestUserTokens(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		u := admin(t, st, "root")
		other := secondUser(t, st)
		mk := func(owner, kind string, created time.Time, exp *time.Time) store.UserToken {
			tok := store.UserToken{ID: uid("tok"), UserID: owner, Kind: kind, Name: "laptop " + kind, TokenHash: hashOf(uid("s")),
				CreatedAt: created, ExpiresAt: exp, CreatedIP: "2001:db8::1"}
			must(t, st.CreateUserToken(ctx, tok, nil))
			return tok
		}
		session := mk(u.ID, "session", t0, ptr(t0.Add(time.Hour)))
		api := mk(u.ID, "api", t0.Add(time.Second), nil)
		expired := mk(u.ID, "session", t0.Add(-2*time.Hour), ptr(t0.Add(-time.Hour)))
		otherTok := mk(other.ID, "api", t0, nil)

		// UserByToken: live tokens resolve to their owner, with the token's fields.
		for _, tok := range []store.UserToken{session, api, otherTok} {
			gu, gt, err := st.UserByToken(ctx, tok.TokenHash, t0)
			must(t, err)
			if gu.ID != tok.UserID || gt.ID != tok.ID || gt.Kind != tok.Kind || gt.Name != tok.Name || gt.UserID != tok.UserID || gt.TokenHash != tok.TokenHash {
				t.Errorf("UserByToken(%s) = %+v, %+v", tok.ID, gu, gt)
			}
			sameTime(t, "token created_at", gt.CreatedAt, tok.CreatedAt)
			sameTimePtr(t, "token expires_at", gt.ExpiresAt, tok.ExpiresAt)
			if gt.LastUsedAt != nil {
				t.Errorf("fresh token has last_used_at %v", gt.LastUsedAt)
			}
		}

		refused := []struct {
			name string
			hash string
			now  time.Time
		}{
			{"unknown", hashOf("nope"), t0},
			{"expired long ago", expired.TokenHash, t0},
			{"expiring exactly now", session.TokenHash, t0.Add(time.Hour)},
			{"expired a microsecond ago", session.TokenHash, t0.Add(time.Hour + time.Microsecond)},
			{"empty hash", "", t0},
		}
		for _, c := range refused {
			_, _, err := st.UserByToken(ctx, c.hash, c.now)
			if err != store.ErrNotFound {
				t.Errorf("%s: UserByToken error = %v, want ErrNotFound", c.name, err)
			}
		}
		if _, _, err := st.UserByToken(ctx, session.TokenHash, t0.Add(time.Hour-time.Microsecond)); err != nil {
			t.Errorf("a token a microsecond before expiry is refused: %v", err)
		}

		// TouchUserToken records use and may slide the expiry.
		used := t0.Add(10 * time.Minute)
		must(t, st.TouchUserToken(ctx, session.ID, used, ptr(t0.Add(3*time.Hour))))
		must(t, st.TouchUserToken(ctx, api.ID, used, nil))
		_, gt, err := st.UserByToken(ctx, session.TokenHash, t0.Add(2*time.Hour))
		must(t, err)
		sameTimePtr(t, "slid expires_at", gt.ExpiresAt, ptr(t0.Add(3*time.Hour)))
		sameTimePtr(t, "last_used_at", gt.LastUsedAt, &used)
		_, gt, err = st.UserByToken(ctx, api.TokenHash, t0)
		must(t, err)
		if gt.ExpiresAt != nil {
			t.Errorf("touching without a slide gave the API token an expiry %v", gt.ExpiresAt)
		}

		// ListUserTokens: live tokens of one kind and one user, newest first.
		s2 := mk(u.ID, "session", t0.Add(time.Minute), nil)
		list := func(userID, kind string) []string {
			toks, err := st.ListUserTokens(ctx, userID, kind, t0)
			must(t, err)
			var ids []string
			for _, tk := range toks {
				if tk.UserID != userID || tk.Kind != kind || tk.CreatedIP != "2001:db8::1" {
					t.Errorf("listed token %+v", tk)
				}
				ids = append(ids, tk.ID)
			}
			return ids
		}
		if got, want := list(u.ID, "session"), []string{s2.ID, session.ID}; !slices.Equal(got, want) {
			t.Errorf("sessions = %v, want %v (expired one hidden, newest first)", got, want)
		}
		if got, want := list(u.ID, "api"), []string{api.ID}; !slices.Equal(got, want) {
			t.Errorf("api tokens = %v, want %v", got, want)
		}
		if got := list("nobody", "api"); len(got) != 0 {
			t.Errorf("tokens of an unknown user: %v", got)
		}

		// RevokeUserToken only revokes the owner's token, once.
		before := counts(t, st)
		wantErr(t, st.RevokeUserToken(ctx, other.ID, session.ID, t0, &store.Audit{ActorType: "user", Action: "token.revoke"}), store.ErrNotFound)
		wantErr(t, st.RevokeUserToken(ctx, u.ID, otherTok.ID, t0, &store.Audit{ActorType: "user", Action: "token.revoke"}), store.ErrNotFound)
		wantErr(t, st.RevokeUserToken(ctx, u.ID, "no-such-token", t0, nil), store.ErrNotFound)
		if after := counts(t, st); after != before {
			t.Errorf("refused revocations changed counts: %+v -> %+v", before, after)
		}
		if _, _, err := st.UserByToken(ctx, otherTok.TokenHash, t0); err != nil {
			t.Errorf("another user's token died: %v", err)
		}
		must(t, st.RevokeUserToken(ctx, u.ID, session.ID, t0, nil))
		if _, _, err := st.UserByToken(ctx, session.TokenHash, t0); err != store.ErrNotFound {
			t.Errorf("revoked token: err = %v, want ErrNotFound", err)
		}
		wantErr(t, st.RevokeUserToken(ctx, u.ID, session.ID, t0, nil), store.ErrNotFound)
		if got, want := list(u.ID, "session"), []string{s2.ID}; !slices.Equal(got, want) {
			t.Errorf("sessions after revoke = %v, want %v", got, want)
		}

		// A token for an unknown user is refused by the foreign key.
		before = counts(t, st)
		if err := st.CreateUserToken(ctx, store.UserToken{ID: uid("tok"), UserID: "ghost", Kind: "api", TokenHash: hashOf("g"), CreatedAt: t0}, nil); err == nil {
			t.Error("CreateUserToken accepted an unknown user")
		}
		// And a duplicate token hash by the unique index.
		if err := st.CreateUserToken(ctx, store.UserToken{ID: uid("tok"), UserID: u.ID, Kind: "api", TokenHash: api.TokenHash, CreatedAt: t0}, nil); err == nil {
			t.Error("CreateUserToken accepted a duplicate token hash")
		}
		if after := counts(t, st); after != before {
			t.Errorf("refused token creations changed counts: %+v -> %+v", before, after)
		}
	})
}

func TestChangePassword(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		u := admin(t, st, "root")
		other := secondUser(t, st)
		mk := func(owner, kind string) store.UserToken {
			tok := store.UserToken{ID: uid("tok"), UserID: owner, Kind: kind, TokenHash: hashOf(uid("s")), CreatedAt: t0}
			must(t, st.CreateUserToken(ctx, tok, nil))
			return tok
		}
		current, stolen1, stolen2 := mk(u.ID, "session"), mk(u.ID, "session"), mk(u.ID, "session")
		apiTok := mk(u.ID, "api")
		otherSession := mk(other.ID, "session")

		changed := t0.Add(time.Hour)
		must(t, st.ChangePassword(ctx, u.ID, "new-hash", current.ID, changed, nil))

		live := map[string]bool{current.ID: true, apiTok.ID: true, otherSession.ID: true, stolen1.ID: false, stolen2.ID: false}
		for _, tok := range []store.UserToken{current, stolen1, stolen2, apiTok, otherSession} {
			_, _, err := st.UserByToken(ctx, tok.TokenHash, changed)
			if got := err == nil; got != live[tok.ID] {
				t.Errorf("token %s (%s of %s): live = %v (err %v), want %v", tok.ID, tok.Kind, tok.UserID, got, err, live[tok.ID])
			}
		}
		got, err := st.UserByUsername(ctx, "root")
		must(t, err)
		if got.PasswordHash != "new-hash" {
			t.Errorf("password hash = %q", got.PasswordHash)
		}
		sameTime(t, "password_changed_at", got.PasswordChangedAt, changed)
		sameTime(t, "created_at unchanged", got.CreatedAt, t0)

		// An empty keep id (e.g. a CLI token changed the password) ends every session.
		must(t, st.ChangePassword(ctx, u.ID, "newer-hash", "", changed, nil))
		if _, _, err := st.UserByToken(ctx, current.TokenHash, changed); err != store.ErrNotFound {
			t.Errorf("session survived a password change that kept none: %v", err)
		}

		before := counts(t, st)
		wantErr(t, st.ChangePassword(ctx, "ghost", "h", "", changed, &store.Audit{ActorType: "user", Action: "user.password"}), store.ErrNotFound)
		if after := counts(t, st); after != before {
			t.Errorf("failed password change changed counts: %+v -> %+v", before, after)
		}
	})
}

// TestConcurrentSetup: a setup token used by several requests at once (a
// double submit, two browser tabs, two replicas) creates exactly one admin.
func TestConcurrentSetup(t *testing.T) {
	for _, withToken := range []bool{true, false} {
		t.Run(map[bool]string{true: "setup token", false: "no token"}[withToken], func(t *testing.T) {
			eachEngine(t, func(t *testing.T, st *store.Store) {
				hash := ""
				if withToken {
					hash = hashOf("setup")
					_, err := st.SetSetupToken(ctx, hash)
					must(t, err)
				}
				const n = 10
				errs := make([]error, n)
				race(t, st, n, func(i int) {
					u := store.User{ID: uid("user"), Username: fmt.Sprint("admin", i), PasswordHash: "h", Role: "admin", CreatedAt: t0, PasswordChangedAt: t0}
					errs[i] = st.CreateFirstAdmin(ctx, u, hash, &store.Audit{ActorType: "user", Action: "setup"})
				})
				okN := 0
				for i, err := range errs {
					switch {
					case err == nil:
						okN++
					case errors.Is(err, store.ErrSetupComplete), errors.Is(err, store.ErrSetupTokenInvalid):
					default:
						t.Errorf("setup %d: unexpected error %v", i, err)
					}
				}
				c := counts(t, st)
				if okN != 1 || c.Users != 1 || c.Audit != 1 {
					t.Errorf("%d setups succeeded; %d users, %d audit rows; want exactly one of each", okN, c.Users, c.Audit)
				}
			})
		})
	}
}
