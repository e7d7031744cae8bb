package events

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// Dashboard event types (GET /api/v1/events).
const (
	AgentCheckedIn  = "agent_checked_in"
	AgentRegistered = "agent_registered"
	ScanReported    = "scan_reported"
	CommandFinished = "command_finished"
	CommandQueued   = "command_queued"
	UpdatesChanged  = "updates_changed"
	// Resync is sent to a subscriber that lost events (its buffer was
	// full): the page refetches instead of trusting its state.
	Resync = "resync"
)

// StreamBuffer bounds the events waiting for one subscriber.
const StreamBuffer = 64

// CheckInCoalesce is the least time between two agent_checked_in events of
// one agent.
const CheckInCoalesce = 5 * time.Second

// Event is one dashboard event, its data already JSON.
type Event struct {
	Type string
	Data json.RawMessage
}

// Stream fans dashboard events out to live subscribers (SSE connections)
// of this server process. Publishing never blocks: a subscriber whose
// buffer is full loses the event and is flagged for a resync.
type Stream struct {
	mu       sync.Mutex
	subs     map[*Subscriber]struct{}
	n        atomic.Int32
	seenMu   sync.Mutex
	lastSeen map[string]time.Time
}

// Subscriber is one listener of a Stream.
type Subscriber struct {
	// C delivers the events, at most StreamBuffer waiting.
	C       chan Event
	dropped atomic.Bool
}

// TakeDropped reports whether events were dropped since the last call, and
// clears the flag.
func (s *Subscriber) TakeDropped() bool { return s.dropped.Swap(false) }

// NewStream returns a stream without subscribers.
func NewStream() *Stream {
	return &Stream{subs: map[*Subscriber]struct{}{}, lastSeen: map[string]time.Time{}}
}

// Subscribe adds a subscriber; the function removes it.
func (s *Stream) Subscribe() (*Subscriber, func()) {
	sub := &Subscriber{C: make(chan Event, StreamBuffer)}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.n.Store(int32(len(s.subs)))
	s.mu.Unlock()
	return sub, func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.n.Store(int32(len(s.subs)))
		s.mu.Unlock()
	}
}

// Subscribers counts live subscribers.
func (s *Stream) Subscribers() int { return int(s.n.Load()) }

// Publish sends an event to every subscriber without blocking. A nil
// stream or one without subscribers costs nothing.
func (s *Stream) Publish(typ string, data any) {
	if s == nil || s.n.Load() == 0 {
		return
	}
	b, err := json.Marshal(data)
	if err != nil {
		return
	}
	ev := Event{Type: typ, Data: b}
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		select {
		case sub.C <- ev:
		default:
			sub.dropped.Store(true)
		}
	}
}

// CheckedIn publishes agent_checked_in for the agent, at most once per
// CheckInCoalesce per agent; with nobody listening it does nothing. It is
// meant for the check-in path: a map lookup under a lock, no I/O.
func (s *Stream) CheckedIn(agentID string, at time.Time) {
	if s == nil || s.n.Load() == 0 {
		return
	}
	s.seenMu.Lock()
	last, ok := s.lastSeen[agentID]
	if ok && at.Sub(last) < CheckInCoalesce && at.Sub(last) >= 0 {
		s.seenMu.Unlock()
		return
	}
	if len(s.lastSeen) > 100000 { // forget everything rather than grow without bound
		clear(s.lastSeen)
	}
	s.lastSeen[agentID] = at
	s.seenMu.Unlock()
	s.Publish(AgentCheckedIn, map[string]any{"agent_id": agentID, "at": at.UTC()})
}
