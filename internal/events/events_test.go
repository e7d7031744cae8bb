package events

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func TestHub(t *testing.T) {
	h := NewHub()
	a, stopA := h.Subscribe("a")
	b, stopB := h.Subscribe("b")
	defer stopB()
	h.Publish("a")
	select {
	case <-a:
	case <-time.After(time.Second):
		t.Fatal("subscriber of a not woken")
	}
	select {
	case <-b:
		t.Fatal("subscriber of b woken by a")
	default:
	}
	// Publishing twice before reading does not block and leaves one wake-up.
	h.Publish("a", "a")
	<-a
	select {
	case <-a:
		t.Fatal("wake-ups are not coalesced")
	default:
	}
	stopA()
	if h.Subscribers() != 1 {
		t.Fatalf("Subscribers = %d after unsubscribe, want 1", h.Subscribers())
	}
	h.Publish("a") // no subscriber: no panic, no block
}

func TestListenPostgres(t *testing.T) {
	dsn := os.Getenv("REDFLAG_TEST_POSTGRES_URL")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("REDFLAG_TEST_POSTGRES_URL is not set in CI")
		}
		t.Skip("set REDFLAG_TEST_POSTGRES_URL to test LISTEN/NOTIFY")
	}
	h := NewHub()
	ch, stop := h.Subscribe("agent-2")
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ListenPostgres(ctx, dsn, h, slog.New(slog.DiscardHandler))
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.After(10 * time.Second)
	for {
		// The listener may not be connected yet: notify until it hears one.
		if _, err := db.Exec("SELECT pg_notify($1, $2)", Channel, "agent-1,agent-2"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("notification never reached the hub")
		}
	}
}
