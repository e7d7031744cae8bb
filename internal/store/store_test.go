package store_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
)

func TestSettings(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		v, found, err := st.Setting(ctx, "missing")
		must(t, err)
		if found || v != "" {
			t.Errorf("missing setting = %q, %v", v, found)
		}
		cases := []struct{ key, value string }{
			{"plain", "value"},
			{"empty", ""},
			{"json", `{"a":[1,2,{"b":null}]}`},
			{"plain", "overwritten"}, // upsert
			{"Plain", "case matters in keys"},
		}
		for _, h := range hostile {
			cases = append(cases, struct{ key, value string }{"k:" + h.s, h.s})
		}
		want := map[string]string{}
		for _, c := range cases {
			must(t, st.SetSetting(ctx, c.key, c.value, nil))
			want[c.key] = c.value
		}
		for k, w := range want {
			v, found, err := st.Setting(ctx, k)
			must(t, err)
			if !found || v != w {
				t.Errorf("Setting(%.40q) = %.40q, %v; want %.40q", k, v, found, w)
			}
		}
	})
}

func TestSigningKeys(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		keys, err := st.SigningKeys(ctx)
		must(t, err)
		if keys == nil || len(keys) != 0 {
			t.Errorf("SigningKeys on an empty database = %#v", keys)
		}
		must(t, st.EnsureSigningKey(ctx, "k1", "cHViMQ==", t0))
		// Idempotent: a second start with the same key id changes nothing,
		// not even the public key or the creation time.
		must(t, st.EnsureSigningKey(ctx, "k1", "b3RoZXI=", t0.Add(time.Hour)))
		must(t, st.EnsureSigningKey(ctx, "k2", "cHViMg==", t0.Add(time.Minute)))
		must(t, st.EnsureSigningKey(ctx, "k0", "cHViMA==", t0.Add(time.Minute))) // same time as k2: key_id breaks the tie
		must(t, st.EnsureSigningKey(ctx, "gone", "cHViMw==", t0.Add(2*time.Minute)))
		rawExec(t, st, "UPDATE signing_keys SET status = 'retiring', not_after = $1 WHERE key_id = 'k1'", store.T(t0.Add(48*time.Hour)))
		rawExec(t, st, "UPDATE signing_keys SET status = 'retired' WHERE key_id = 'gone'")

		keys, err = st.SigningKeys(ctx)
		must(t, err)
		want := []store.SigningKey{
			{KeyID: "k0", Algorithm: "ed25519", PublicKey: "cHViMA==", Status: "active", CreatedAt: store.T(t0.Add(time.Minute))},
			{KeyID: "k2", Algorithm: "ed25519", PublicKey: "cHViMg==", Status: "active", CreatedAt: store.T(t0.Add(time.Minute))},
			{KeyID: "k1", Algorithm: "ed25519", PublicKey: "cHViMQ==", Status: "retiring", CreatedAt: store.T(t0), NotAfter: ptr(store.T(t0.Add(48 * time.Hour)))},
		}
		if len(keys) != len(want) {
			t.Fatalf("SigningKeys = %+v, want %+v", keys, want)
		}
		for i := range want {
			g, w := keys[i], want[i]
			sameTime(t, g.KeyID+" created_at", g.CreatedAt, w.CreatedAt)
			sameTimePtr(t, g.KeyID+" not_after", g.NotAfter, w.NotAfter)
			g.CreatedAt, g.NotAfter, w.CreatedAt, w.NotAfter = time.Time{}, nil, time.Time{}, nil
			if g != w {
				t.Errorf("key %d = %+v, want %+v", i, g, w)
			}
		}
		// A retiring key stays retiring when the server starts with it again.
		must(t, st.EnsureSigningKey(ctx, "k1", "cHViMQ==", t0.Add(3*time.Hour)))
		keys, err = st.SigningKeys(ctx)
		must(t, err)
		if i := slices.IndexFunc(keys, func(k store.SigningKey) bool { return k.KeyID == "k1" }); i < 0 || keys[i].Status != "retiring" {
			t.Errorf("EnsureSigningKey changed a retiring key: %+v", keys)
		}
	})
}

// TestTimeRoundTrip writes awkward instants (zones, nanoseconds, far dates)
// through every kind of time column and expects UTC, microsecond-truncated
// equal values back from both engines.
func TestTimeRoundTrip(t *testing.T) {
	times := []struct {
		name string
		at   time.Time
	}{
		{"suite clock (+05:30, ns)", t0},
		{"unix epoch", time.Unix(0, 0)},
		{"before 1970", time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC)},
		{"year 2000 leap day", time.Date(2000, 2, 29, 23, 59, 59, 999999000, time.FixedZone("", -8*3600))},
		{"half-hour west zone", time.Date(2026, 3, 8, 1, 59, 59, 1000, time.FixedZone("NST", -(3*3600+1800)))},
		{"far future", time.Date(2999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", 14*3600))},
		{"whole second", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"local zone", time.Date(2030, 6, 15, 12, 0, 0, 500, time.Local)},
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		u := admin(t, st, "root")
		for i, tc := range times {
			at := tc.at
			// Registration token: created_at, expires_at, revoked_at.
			rt := store.RegistrationToken{ID: uid("rt"), TokenHash: hashOf(uid("s")), Seats: 1, CreatedAt: at, ExpiresAt: at.Add(time.Nanosecond)}
			must(t, st.CreateRegistrationToken(ctx, rt, nil))
			_, err := st.RevokeRegistrationToken(ctx, rt.ID, at, nil)
			must(t, err)
			got, err := st.RegistrationTokenByID(ctx, rt.ID)
			must(t, err)
			sameTime(t, tc.name+": reg created_at", got.CreatedAt, at)
			sameTime(t, tc.name+": reg expires_at", got.ExpiresAt, at.Add(time.Nanosecond))
			sameTimePtr(t, tc.name+": reg revoked_at", got.RevokedAt, &at)

			// User token: created_at, expires_at, last_used_at.
			ut := store.UserToken{ID: uid("tok"), UserID: u.ID, Kind: "api", TokenHash: hashOf(uid("s")), CreatedAt: at, ExpiresAt: ptr(at.Add(time.Hour))}
			must(t, st.CreateUserToken(ctx, ut, nil))
			must(t, st.TouchUserToken(ctx, ut.ID, at, nil))
			_, gt, err := st.UserByToken(ctx, ut.TokenHash, at)
			must(t, err)
			sameTime(t, tc.name+": token created_at", gt.CreatedAt, at)
			sameTimePtr(t, tc.name+": token expires_at", gt.ExpiresAt, ptr(at.Add(time.Hour)))
			sameTimePtr(t, tc.name+": token last_used_at", gt.LastUsedAt, &at)

			// Agent: registered_at, last_seen_at, system_info_at.
			tok := regToken(t, st, 1, at.Add(-time.Hour), at.Add(time.Hour))
			e := enrolWith(t, st, regParams(tok.TokenHash, hashOf(uid("m")), "t", at))
			must(t, st.SaveSystemInfo(ctx, e.ID, []byte(`{}`), at))
			g, err := st.GetAgent(ctx, e.ID, at)
			must(t, err)
			sameTime(t, tc.name+": agent registered_at", g.RegisteredAt, at)
			sameTimePtr(t, tc.name+": agent last_seen_at", g.LastSeenAt, &at)
			sameTimePtr(t, tc.name+": agent system_info_at", g.SystemInfoAt, &at)
			if g.Status != store.StatusOnline {
				t.Errorf("%s: agent registered at now is %s", tc.name, g.Status)
			}

			// Audit log.
			must(t, st.RecordAudit(ctx, store.Audit{At: at, ActorType: "system", Action: "time"}))
			sameTime(t, tc.name+": audit at", lastAudit(t, st).At, at)

			// Signing key.
			kid := "time-" + string(rune('a'+i))
			must(t, st.EnsureSigningKey(ctx, kid, "x", at))
			keys, err := st.SigningKeys(ctx)
			must(t, err)
			for _, k := range keys {
				if k.KeyID == kid {
					sameTime(t, tc.name+": key created_at", k.CreatedAt, at)
				}
			}
		}
		// The user's own times.
		got, err := st.UserByUsername(ctx, u.Username)
		must(t, err)
		sameTime(t, "user created_at", got.CreatedAt, t0)
		sameTime(t, "user password_changed_at", got.PasswordChangedAt, t0)
	})
}

// TestHostileText round-trips SQL metacharacters, quotes, backslashes and
// unicode through every text column the store writes, byte for byte.
func TestHostileText(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		// Only one account can be created, so its text carries every case.
		var all []string
		for _, h := range hostile {
			all = append(all, h.s)
		}
		joined := strings.Join(all, "|")
		u := store.User{ID: "id " + joined, Username: "user " + joined, PasswordHash: "hash " + joined, Role: "role " + joined,
			CreatedAt: t0, PasswordChangedAt: t0}
		must(t, st.CreateFirstAdmin(ctx, u, "", nil))
		gu, err := st.UserByUsername(ctx, u.Username)
		must(t, err)
		if gu.ID != u.ID || gu.Username != u.Username || gu.PasswordHash != u.PasswordHash || gu.Role != u.Role {
			t.Errorf("user text changed in the round trip")
		}

		for _, h := range hostile {
			t.Run(h.name, func(t *testing.T) {
				s := h.s
				// User token.
				ut := store.UserToken{ID: "tok " + s, UserID: u.ID, Kind: "api", Name: s, TokenHash: "hash " + s, CreatedAt: t0, CreatedIP: s}
				must(t, st.CreateUserToken(ctx, ut, nil))
				gu, gt, err := st.UserByToken(ctx, ut.TokenHash, t0)
				must(t, err)
				if gu.ID != u.ID || gt.ID != ut.ID || gt.Name != s || gt.TokenHash != ut.TokenHash {
					t.Errorf("user token: %.60q %.60q", gt.ID, gt.Name)
				}
				toks, err := st.ListUserTokens(ctx, u.ID, "api", t0)
				must(t, err)
				if i := slices.IndexFunc(toks, func(x store.UserToken) bool { return x.ID == ut.ID }); i < 0 || toks[i].Name != s || toks[i].CreatedIP != s {
					t.Errorf("listed token lost its text")
				}
				must(t, st.RevokeUserToken(ctx, u.ID, ut.ID, t0, nil))

				// Registration token.
				rt := store.RegistrationToken{ID: "rt " + s, TokenHash: "reg " + s, Note: s, Seats: 2, CreatedBy: s, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
				must(t, st.CreateRegistrationToken(ctx, rt, nil))
				grt, err := st.RegistrationTokenByID(ctx, rt.ID)
				must(t, err)
				if grt.ID != rt.ID || grt.TokenHash != rt.TokenHash || grt.Note != s || grt.CreatedBy != s {
					t.Errorf("registration token text changed")
				}

				// Agent, every text column, found again by a hostname filter.
				p := regParams(rt.TokenHash, "machine "+s, s, t0)
				p.NewAgentID, p.RefreshTokenID, p.RefreshTokenHash, p.IP = "agent "+s, "refresh "+s, "refresh-hash "+s, s
				p.Agent.OSType, p.Agent.OSVersion, p.Agent.OSArch, p.Agent.AgentVersion = "os "+s, "ver "+s, "arch "+s, "agent "+s
				a, _, err := st.RegisterAgent(ctx, p)
				must(t, err)
				want := p.Agent
				want.ID, want.Status, want.TokenGeneration = p.NewAgentID, store.StatusOnline, 1
				checkAgent(t, a, want, t0, &t0)
				g, err := st.GetAgent(ctx, a.ID, t0)
				must(t, err)
				checkAgent(t, g, want, t0, &t0)
				list, total, err := st.ListAgents(ctx, store.AgentFilter{Hostname: s}, t0)
				must(t, err)
				if total != 1 || len(list) != 1 || list[0].ID != a.ID {
					t.Errorf("hostname filter for its own hostname found %d agents (total %d)", len(list), total)
				}
				list, _, err = st.ListAgents(ctx, store.AgentFilter{OSType: "os " + s}, t0)
				must(t, err)
				if len(list) != 1 || list[0].ID != a.ID {
					t.Errorf("os filter found %d agents", len(list))
				}
				auth, err := st.AgentAuthByID(ctx, a.ID)
				must(t, err)
				if auth.ID != a.ID || auth.MachineID != "machine "+s {
					t.Errorf("agent auth text changed")
				}
				ren, err := st.RenewRefreshToken(ctx, store.RenewParams{AgentID: a.ID, OldHash: p.RefreshTokenHash, MachineID: "machine " + s,
					NewID: "refresh2 " + s, NewHash: "refresh-hash2 " + s, NewExpiresAt: t0.Add(time.Hour), Now: t0})
				must(t, err)
				if ren.ID != a.ID {
					t.Errorf("renewal returned agent %.60q", ren.ID)
				}
				_, err = st.CheckIn(ctx, a.ID, "checked "+s, 300, t0)
				must(t, err)
				reb, err := st.RebindAgent(ctx, a.ID, "machine2 "+s, t0, &store.Audit{ActorType: "user", Action: "agent.rebind"})
				must(t, err)
				if reb.MachineID != "machine2 "+s || reb.AgentVersion != "checked "+s {
					t.Errorf("rebind/check-in text changed")
				}
				info, _ := json.Marshal(map[string]any{s: []string{s, s}, "k": s})
				must(t, st.SaveSystemInfo(ctx, a.ID, info, t0))
				g, err = st.GetAgent(ctx, a.ID, t0)
				must(t, err)
				var back map[string]any
				must(t, json.Unmarshal(g.SystemInfo, &back))
				if !reflect.DeepEqual(back, map[string]any{s: []any{s, s}, "k": s}) {
					t.Errorf("system info text changed")
				}
				if au := lastAudit(t, st); au.Details["new_machine_id"] != "machine2 "+s || au.Details["old_machine_id"] != "machine "+s {
					t.Errorf("rebind audit details changed")
				}

				// Audit row, every field and the details.
				in := store.Audit{At: t0, ActorType: s, ActorID: s, ActorName: s, Action: s, TargetType: s, TargetID: s, IP: s,
					Details: map[string]any{s: s, "nested": map[string]any{"list": []any{s, 1.5, true, nil}}}}
				must(t, st.RecordAudit(ctx, in))
				rows, err := st.ListAudit(ctx, store.AuditFilter{Action: s, ActorID: s, TargetID: s})
				must(t, err)
				if len(rows) != 1 {
					t.Fatalf("audit filter on hostile text found %d rows", len(rows))
				}
				got := rows[0]
				got.ID, got.At, in.At = 0, time.Time{}, time.Time{}
				if !reflect.DeepEqual(got, in) {
					t.Errorf("audit row text changed")
				}

				// Setting and signing key.
				must(t, st.SetSetting(ctx, s, s, nil))
				v, found, err := st.Setting(ctx, s)
				must(t, err)
				if !found || v != s {
					t.Errorf("setting text changed")
				}
				must(t, st.EnsureSigningKey(ctx, "key "+s, s, t0))
				keys, err := st.SigningKeys(ctx)
				must(t, err)
				if i := slices.IndexFunc(keys, func(k store.SigningKey) bool { return k.KeyID == "key "+s }); i < 0 || keys[i].PublicKey != s {
					t.Errorf("signing key text changed")
				}

				// Deleting by a hostile id removes that row only.
				before := counts(t, st)
				must(t, st.DeleteAgent(ctx, a.ID, nil))
				must(t, st.DeleteRegistrationToken(ctx, rt.ID, nil))
				if after := counts(t, st); after.Agents != before.Agents-1 || after.RefreshTokens != before.RefreshTokens-1 {
					t.Errorf("delete by hostile id: %+v -> %+v", before, after)
				}
			})
		}
		// Nothing was dropped along the way.
		if c := counts(t, st); c.Users != 1 || c.Agents != 0 || c.UserTokens != len(hostile) {
			t.Errorf("counts after the hostile run: %+v", c)
		}
	})
}
