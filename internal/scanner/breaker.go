package scanner

import (
	"fmt"
	"sync"
	"time"
)

// BreakerState is a circuit breaker's state.
type BreakerState string

// Circuit breaker states.
const (
	Closed   BreakerState = "closed"    // calls go through
	Open     BreakerState = "open"      // calls are refused until the cool-down ends
	HalfOpen BreakerState = "half_open" // one trial call decides
)

// BreakerConfig sets when a breaker opens and how long it stays open.
type BreakerConfig struct {
	// Failures in a row that open the breaker (default 3).
	Failures int
	// OpenFor is the cool-down before one trial call (default 30 minutes).
	OpenFor time.Duration
}

// Breaker stops calling a package manager that keeps failing, so a broken
// dpkg lock or a dead registry is not hammered every scan. After OpenFor,
// one trial call is let through (half-open): success closes the breaker,
// failure opens it again for another OpenFor.
type Breaker struct {
	cfg BreakerConfig
	now func() time.Time

	mu       sync.Mutex
	state    BreakerState
	failures int
	openedAt time.Time
	trial    bool
}

// NewBreaker returns a closed breaker; now may be nil (time.Now).
func NewBreaker(cfg BreakerConfig, now func() time.Time) *Breaker {
	if cfg.Failures <= 0 {
		cfg.Failures = 3
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = 30 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &Breaker{cfg: cfg, now: now, state: Closed}
}

// ErrOpen is returned by Allow while the breaker is open.
type ErrOpen struct {
	Failures int
	Until    time.Time
}

func (e *ErrOpen) Error() string {
	return fmt.Sprintf("skipped: circuit open after %d failures in a row, next try after %s",
		e.Failures, e.Until.UTC().Format(time.RFC3339))
}

// Allow reports whether a call may go ahead. In half-open state only one
// caller gets through until it reports with Done.
func (b *Breaker) Allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Open:
		until := b.openedAt.Add(b.cfg.OpenFor)
		if b.now().Before(until) {
			return &ErrOpen{Failures: b.failures, Until: until}
		}
		b.state, b.trial = HalfOpen, true
		return nil
	case HalfOpen:
		if b.trial {
			return &ErrOpen{Failures: b.failures, Until: b.now()}
		}
		b.trial = true
	}
	return nil
}

// Done records the outcome of an allowed call.
func (b *Breaker) Done(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if err == nil {
		b.state, b.failures = Closed, 0
		return
	}
	b.failures++
	if b.state == HalfOpen || b.failures >= b.cfg.Failures {
		b.state, b.openedAt = Open, b.now()
	}
}

// State returns the current state (Open turns into HalfOpen only on the
// next Allow).
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
