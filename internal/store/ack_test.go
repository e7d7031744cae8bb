package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
)

// TestCheckInAckAndRedelivery pins the acknowledgement protocol: a command
// handed out but never acknowledged is offered again, once, after the
// redelivery delay; an acknowledged one, one with a result, an expired one
// or another agent's acknowledgement never changes that wrongly.
func TestCheckInAckAndRedelivery(t *testing.T) {
	ctx := context.Background()
	redeliver := store.DefaultCommandRedeliver
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			st := storetest.Open(t, e)
			a := enrol(t, st, "acker", t0)
			b := enrol(t, st, "other", t0)
			auth := func(id string) store.AgentAuth {
				t.Helper()
				au, err := st.AgentAuthByID(ctx, id)
				must(t, err)
				return au
			}
			queue := func(typ string, at time.Time, ttl time.Duration) store.CommandRecord {
				t.Helper()
				c := store.CommandRecord{Command: store.Command{ID: uid("cmd"), AgentID: a.ID, Type: typ, Params: "{}",
					KeyID: "k", Signature: "s", IssuedAt: at.Unix(), ExpiresAt: at.Add(ttl).Unix(), CreatedAt: at}}
				_, err := st.CreateCommands(ctx, []store.CommandRecord{c}, nil)
				must(t, err)
				return c
			}
			checkIn := func(id string, acks []string, at time.Time) []string {
				t.Helper()
				cmds, err := st.CheckInAgentAck(ctx, auth(id), "", acks, at)
				must(t, err)
				ids := []string{}
				for _, c := range cmds {
					ids = append(ids, c.ID)
				}
				return ids
			}
			get := func(id string) store.CommandRecord {
				t.Helper()
				c, err := st.GetCommand(ctx, id)
				must(t, err)
				return c
			}

			t1 := t0.Add(time.Minute)
			c1 := queue("collect_specs", t1, 24*time.Hour)
			if got := checkIn(a.ID, nil, t1); len(got) != 1 || got[0] != c1.ID {
				t.Fatalf("first claim got %v, want %s", got, c1.ID)
			}
			if !auth(a.ID).HasUnacked || auth(a.ID).HasPending {
				t.Fatalf("after the claim: %+v, want HasUnacked and not HasPending", auth(a.ID))
			}
			// Not acknowledged, but too soon: not offered again.
			if got := checkIn(a.ID, nil, t1.Add(redeliver-time.Second)); len(got) != 0 {
				t.Fatalf("offered again before the redelivery delay: %v", got)
			}
			// After the delay it is offered again, once, and re-stamped.
			t2 := t1.Add(redeliver + time.Second)
			if got := checkIn(a.ID, nil, t2); len(got) != 1 || got[0] != c1.ID {
				t.Fatalf("redelivery got %v, want %s", got, c1.ID)
			}
			if c := get(c1.ID); c.Status != "sent" || c.SentAt == nil || !c.SentAt.Equal(store.T(t2)) || c.AckedAt != nil {
				t.Fatalf("after redelivery: status %s, sent %v, acked %v", c.Status, c.SentAt, c.AckedAt)
			}
			if got := checkIn(a.ID, nil, t2.Add(time.Second)); len(got) != 0 {
				t.Fatalf("redelivered twice: %v", got)
			}
			// Another agent cannot acknowledge it.
			t3 := t2.Add(redeliver + time.Second)
			if got := checkIn(b.ID, []string{c1.ID}, t3); len(got) != 0 {
				t.Fatalf("the other agent got %v", got)
			}
			if c := get(c1.ID); c.AckedAt != nil {
				t.Fatalf("another agent's ack was recorded: %v", c.AckedAt)
			}
			// The acknowledgement, in the same check-in as the claim, stops
			// redelivery for good, and is recorded even within the
			// last-seen coalescing window.
			if got := checkIn(a.ID, []string{c1.ID, "0190a3b4-1111-7000-8000-00000000beef"}, t3); len(got) != 0 {
				t.Fatalf("check-in with the ack got %v", got)
			}
			c := get(c1.ID)
			if c.AckedAt == nil || !c.AckedAt.Equal(store.T(t3)) || c.Status != "sent" {
				t.Fatalf("after the ack: acked %v, status %s", c.AckedAt, c.Status)
			}
			if auth(a.ID).HasUnacked {
				t.Fatal("HasUnacked after the ack")
			}
			if got := checkIn(a.ID, nil, t3.Add(10*redeliver)); len(got) != 0 {
				t.Fatalf("an acknowledged command was offered again: %v", got)
			}
			// A second ack keeps the first time.
			checkIn(a.ID, []string{c1.ID}, t3.Add(time.Hour))
			if c := get(c1.ID); !c.AckedAt.Equal(store.T(t3)) {
				t.Fatalf("a second ack moved acked_at to %v", c.AckedAt)
			}

			// A command with a result is never offered again, acknowledged or not.
			t4 := t3.Add(2 * time.Hour)
			c2 := queue("scan_updates", t4, 24*time.Hour)
			if got := checkIn(a.ID, nil, t4); len(got) != 1 || got[0] != c2.ID {
				t.Fatalf("claim got %v, want %s", got, c2.ID)
			}
			_, err := st.SaveResult(ctx, a.ID, c2.ID, "succeeded", []byte(`{"status":"succeeded"}`), t4.Add(time.Second))
			must(t, err)
			if got := checkIn(a.ID, nil, t4.Add(10*redeliver)); len(got) != 0 {
				t.Fatalf("a finished command was offered again: %v", got)
			}

			// An expired command is not offered again.
			t5 := t4.Add(time.Hour)
			c3 := queue("reboot", t5, redeliver/2)
			if got := checkIn(a.ID, nil, t5); len(got) != 1 || got[0] != c3.ID {
				t.Fatalf("claim got %v, want %s", got, c3.ID)
			}
			if got := checkIn(a.ID, nil, t5.Add(redeliver+time.Second)); len(got) != 0 {
				t.Fatalf("an expired command was offered again: %v", got)
			}
		})
	}
}

// TestRedeliveryOnce: many concurrent check-ins of one agent after the
// redelivery delay hand an unacknowledged command out exactly once.
func TestRedeliveryOnce(t *testing.T) {
	ctx := context.Background()
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			st := storetest.Open(t, e)
			a := enrol(t, st, "racer", t0)
			c := store.CommandRecord{Command: store.Command{ID: uid("cmd"), AgentID: a.ID, Type: "collect_specs", Params: "{}",
				KeyID: "k", Signature: "s", IssuedAt: t0.Unix(), ExpiresAt: t0.Add(24 * time.Hour).Unix(), CreatedAt: t0}}
			_, err := st.CreateCommands(ctx, []store.CommandRecord{c}, nil)
			must(t, err)
			first, err := st.ClaimPending(ctx, a.ID, t0)
			must(t, err)
			if len(first) != 1 {
				t.Fatalf("first claim got %d commands", len(first))
			}
			later := t0.Add(store.DefaultCommandRedeliver + time.Second)
			const n = 16
			got := make(chan int, n)
			for i := 0; i < n; i++ {
				go func() {
					au, err := st.AgentAuthByID(ctx, a.ID)
					if err != nil {
						got <- -1
						return
					}
					cmds, err := st.CheckInAgentAck(ctx, au, "", nil, later)
					if err != nil {
						got <- -1
						return
					}
					got <- len(cmds)
				}()
			}
			total := 0
			for i := 0; i < n; i++ {
				k := <-got
				if k < 0 {
					t.Fatal("a concurrent check-in failed")
				}
				total += k
			}
			if total != 1 {
				t.Fatalf("%d concurrent check-ins redelivered the command %d times, want once", n, total)
			}
		})
	}
}
