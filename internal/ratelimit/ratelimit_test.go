package ratelimit

import (
	"testing"
	"time"
)

func TestKeyed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		events  int
		per     time.Duration
		calls   int
		allowed int
	}{
		{"burst then refused", 3, time.Minute, 5, 3},
		{"disabled", 0, time.Minute, 100, 100},
		{"one per minute", 1, time.Minute, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := New(tt.events, tt.per)
			got := 0
			var wait time.Duration
			for i := 0; i < tt.calls; i++ {
				ok, w := k.Allow("a", t0)
				if ok {
					got++
				} else {
					wait = w
				}
			}
			if got != tt.allowed {
				t.Fatalf("allowed %d of %d, want %d", got, tt.calls, tt.allowed)
			}
			if got < tt.calls && wait <= 0 {
				t.Fatalf("refusal without a wait")
			}
		})
	}
}

func TestKeysAreIndependentAndRefill(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := New(60, time.Minute)
	for i := 0; i < 60; i++ {
		if ok, _ := k.Allow("a", t0); !ok {
			t.Fatalf("call %d refused inside the burst", i)
		}
	}
	ok, wait := k.Allow("a", t0)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("61st call: ok=%v wait=%v, want refused with about 1s", ok, wait)
	}
	if ok, _ := k.Allow("b", t0); !ok {
		t.Fatal("another key was limited by the first")
	}
	if ok, _ := k.Allow("a", t0.Add(time.Second)); !ok {
		t.Fatal("no token after a second at 60/min")
	}
	if RetryAfterSeconds(wait) != 1 {
		t.Fatalf("RetryAfterSeconds(%v) = %d", wait, RetryAfterSeconds(wait))
	}
}

func TestIdleBucketsAreSwept(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := New(5, time.Minute)
	for i := 0; i < 100; i++ {
		k.Allow(string(rune('a'+i%26))+string(rune('a'+i/26)), t0)
	}
	if k.Len() != 100 {
		t.Fatalf("Len = %d, want 100", k.Len())
	}
	k.Allow("late", t0.Add(2*time.Minute))
	if k.Len() != 1 {
		t.Fatalf("after idle sweep Len = %d, want 1", k.Len())
	}
}
