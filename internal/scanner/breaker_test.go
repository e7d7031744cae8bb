package scanner

import (
	"errors"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBreaker(BreakerConfig{Failures: 2, OpenFor: time.Minute}, func() time.Time { return now })
	fail := errors.New("boom")
	steps := []struct {
		name      string
		advance   time.Duration
		outcome   error // recorded with Done when the call was allowed
		wantAllow bool
		wantState BreakerState
	}{
		{"first failure keeps it closed", 0, fail, true, Closed},
		{"second failure opens", 0, fail, true, Open},
		{"open refuses", 30 * time.Second, nil, false, Open},
		{"after the cool-down one trial fails: open again", 31 * time.Second, fail, true, Open},
		{"still open right after", 59 * time.Second, nil, false, Open},
		{"trial succeeds: closed", 2 * time.Second, nil, true, Closed},
		{"one failure after closing keeps it closed", 0, fail, true, Closed},
		{"a success resets the count", 0, nil, true, Closed},
		{"so one more failure is still closed", 0, fail, true, Closed},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		err := b.Allow()
		if (err == nil) != s.wantAllow {
			t.Fatalf("%s: Allow() = %v, want allowed=%v", s.name, err, s.wantAllow)
		}
		if err == nil {
			b.Done(s.outcome)
		} else {
			var open *ErrOpen
			if !errors.As(err, &open) || open.Failures == 0 {
				t.Fatalf("%s: refusal %v is not an ErrOpen with a count", s.name, err)
			}
		}
		if got := b.State(); got != s.wantState {
			t.Fatalf("%s: state %s, want %s", s.name, got, s.wantState)
		}
	}
}

func TestBreakerHalfOpenLetsOneTrialThrough(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBreaker(BreakerConfig{Failures: 1, OpenFor: time.Minute}, func() time.Time { return now })
	if err := b.Allow(); err != nil {
		t.Fatal(err)
	}
	b.Done(errors.New("boom"))
	now = now.Add(2 * time.Minute)
	if err := b.Allow(); err != nil {
		t.Fatalf("trial refused: %v", err)
	}
	if b.State() != HalfOpen {
		t.Fatalf("state %s, want half_open", b.State())
	}
	if err := b.Allow(); err == nil {
		t.Fatal("a second call got through while the trial was running")
	}
	b.Done(nil)
	if err := b.Allow(); err != nil {
		t.Fatalf("closed breaker refused: %v", err)
	}
}
