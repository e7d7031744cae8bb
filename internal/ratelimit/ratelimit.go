// Package ratelimit keeps one token bucket per key (an IP, a user name, an
// agent id) with bounded memory: idle buckets are swept away.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed is a set of token buckets, one per key. The zero value is not usable;
// call New.
type Keyed struct {
	mu        sync.Mutex
	limit     rate.Limit
	burst     int
	buckets   map[string]*bucket
	lastSweep time.Time
	idle      time.Duration
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New allows `events` per `per` for each key, with bursts of up to `events`.
// events <= 0 disables limiting.
func New(events int, per time.Duration) *Keyed {
	k := &Keyed{buckets: map[string]*bucket{}, burst: events}
	if events > 0 {
		k.limit = rate.Limit(float64(events) / per.Seconds())
		// A bucket untouched for a full refill period is as good as new.
		k.idle = per
		if k.idle < time.Minute {
			k.idle = time.Minute
		}
	}
	return k
}

// Allow takes one token for key at now. When none is left it returns false
// and how long until one is.
func (k *Keyed) Allow(key string, now time.Time) (bool, time.Duration) {
	if k.burst <= 0 {
		return true, 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.lastSweep) > k.idle {
		for key, b := range k.buckets {
			if now.Sub(b.seen) > k.idle {
				delete(k.buckets, key)
			}
		}
		k.lastSweep = now
	}
	b, ok := k.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// RetryAfterSeconds rounds a wait up to whole seconds for a Retry-After header.
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// Len reports how many keys are tracked (for tests of the sweep).
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}
