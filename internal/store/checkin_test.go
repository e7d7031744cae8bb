package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
)

// TestCheckInAgentCoalesces pins the hot path's write rules: a check-in
// soon after the last recorded one writes nothing unless a command waits or
// the agent's version changed.
func TestCheckInAgentCoalesces(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			st := storetest.Open(t, e)
			a := enrol(t, st, "coalesce", t0)
			auth := func() store.AgentAuth {
				t.Helper()
				au, err := st.AgentAuthByID(ctx, a.ID)
				must(t, err)
				return au
			}
			seen := func() time.Time {
				t.Helper()
				return auth().LastSeenAt
			}

			// Within the window, same version, nothing pending: no write.
			cmds, err := st.CheckInAgent(ctx, auth(), a.AgentVersion, t0.Add(10*time.Second))
			must(t, err)
			if len(cmds) != 0 || !seen().Equal(store.T(t0)) {
				t.Fatalf("fresh check-in wrote: cmds %v, last seen %v", cmds, seen())
			}
			// Past the window: last_seen_at moves.
			t1 := t0.Add(store.SeenCoalesce + time.Second)
			_, err = st.CheckInAgent(ctx, auth(), "", t1)
			must(t, err)
			if !seen().Equal(store.T(t1)) {
				t.Fatalf("stale check-in did not record: last seen %v, want %v", seen(), store.T(t1))
			}
			// A new version is recorded at once.
			_, err = st.CheckInAgent(ctx, auth(), "9.9.9", t1.Add(time.Second))
			must(t, err)
			if au := auth(); au.AgentVersion != "9.9.9" {
				t.Fatalf("version = %q, want 9.9.9", au.AgentVersion)
			}
			// A pending command is claimed inside the window, exactly once.
			c := store.CommandRecord{Command: store.Command{ID: uid("cmd"), AgentID: a.ID, Type: "collect_specs", Params: "{}",
				KeyID: "k", Signature: "s", IssuedAt: t1.Unix(), ExpiresAt: t1.Add(time.Hour).Unix(), CreatedAt: t1}}
			_, err = st.CreateCommands(ctx, []store.CommandRecord{c}, nil)
			must(t, err)
			au := auth()
			if !au.HasPending {
				t.Fatal("HasPending is false with a command queued")
			}
			cmds, err = st.CheckInAgent(ctx, au, "9.9.9", t1.Add(2*time.Second))
			must(t, err)
			if len(cmds) != 1 || cmds[0].ID != c.ID {
				t.Fatalf("claimed %v, want the queued command", cmds)
			}
			cmds, err = st.CheckInAgent(ctx, au, "9.9.9", t1.Add(3*time.Second)) // same stale auth row: still once
			must(t, err)
			if len(cmds) != 0 || auth().HasPending {
				t.Fatalf("second claim got %v", cmds)
			}
		})
	}
}
