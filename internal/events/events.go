// Package events is in-process publish/subscribe keyed by a string (an agent
// id: "a command is waiting for you"), bridged across server replicas by
// PostgreSQL LISTEN/NOTIFY.
package events

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redflaghq/redflag/internal/store"
)

// Hub fans out wake-ups to subscribers of a key. A wake-up carries no data:
// the subscriber re-reads the store, so a missed or doubled one is harmless.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a value after each Publish of
// key, and a function that ends the subscription.
func (h *Hub) Subscribe(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	m := h.subs[key]
	if m == nil {
		m = map[chan struct{}]struct{}{}
		h.subs[key] = m
	}
	m[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[key], ch)
		if len(h.subs[key]) == 0 {
			delete(h.subs, key)
		}
		h.mu.Unlock()
	}
}

// Publish wakes every subscriber of each key without blocking.
func (h *Hub) Publish(keys ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		for ch := range h.subs[k] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// Subscribers counts live subscriptions (for tests and metrics).
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.subs {
		n += len(m)
	}
	return n
}

// Channel is the PostgreSQL notification channel for command wake-ups (the
// store raises them); the payload is a comma-separated list of agent ids.
const Channel = store.NotifyChannel

// ListenPostgres relays notifications on Channel into hub until ctx ends,
// reconnecting with backoff when the connection drops, so a wake-up raised
// on any replica reaches long-polls held on this one.
func ListenPostgres(ctx context.Context, dsn string, hub *Hub, log *slog.Logger) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := listenOnce(ctx, dsn, hub, func() { backoff = time.Second })
		if ctx.Err() != nil {
			return
		}
		log.Warn("event listener lost its PostgreSQL connection; reconnecting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func listenOnce(ctx context.Context, dsn string, hub *Hub, connected func()) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload != "" {
			hub.Publish(strings.Split(n.Payload, ",")...)
		}
	}
}
