package events

import (
	"encoding/json"
	"testing"
	"time"
)

func TestStreamBoundedAndResync(t *testing.T) {
	s := NewStream()
	s.Publish(CommandQueued, map[string]int{"n": 0}) // nobody listening: nothing happens
	slow, endSlow := s.Subscribe()
	defer endSlow()
	fast, endFast := s.Subscribe()
	defer endFast()
	start := time.Now()
	for i := range 1000 {
		s.Publish(CommandFinished, map[string]int{"i": i})
		select { // a subscriber that keeps up gets every event
		case ev := <-fast.C:
			var d map[string]int
			if err := json.Unmarshal(ev.Data, &d); err != nil || d["i"] != i {
				t.Fatalf("reading subscriber: event %d is %s", i, ev.Data)
			}
		default:
			t.Fatalf("reading subscriber: event %d missing", i)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("publishing blocked on a slow subscriber")
	}
	if n := len(slow.C); n != StreamBuffer {
		t.Errorf("slow subscriber buffered %d events, want %d", n, StreamBuffer)
	}
	if !slow.TakeDropped() || slow.TakeDropped() {
		t.Error("dropped flag: want set once, then cleared")
	}
	if fast.TakeDropped() {
		t.Error("the reading subscriber must not be flagged")
	}
	ev := <-slow.C
	var d map[string]int
	if err := json.Unmarshal(ev.Data, &d); err != nil || ev.Type != CommandFinished || d["i"] != 0 {
		t.Errorf("first buffered event = %s %s", ev.Type, ev.Data)
	}
}

func TestStreamCoalescesCheckIns(t *testing.T) {
	s := NewStream()
	sub, end := s.Subscribe()
	defer end()
	t0 := time.Unix(1_700_000_000, 0)
	s.CheckedIn("a", t0)
	s.CheckedIn("a", t0.Add(time.Second))
	s.CheckedIn("b", t0.Add(time.Second))
	s.CheckedIn("a", t0.Add(CheckInCoalesce))
	if n := len(sub.C); n != 3 {
		t.Fatalf("got %d check-in events, want 3 (a, b, a again after the coalescing window)", n)
	}
}
