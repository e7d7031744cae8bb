package jobs

import (
	"context"
	"time"
)

// keysAndStats retires signing keys past their not_after, and takes the
// daily stats snapshot (today's row, upserted) at the first run and then
// every StatsEvery, under its own lock so one replica does it.
func (r *Runner) keysAndStats(ctx context.Context, now time.Time) error {
	_, err := r.Store.RunExclusive(ctx, "keys-and-stats", func(ctx context.Context) error {
		retired, err := r.Store.RetireSigningKeys(ctx, now)
		if err != nil {
			return err
		}
		for _, id := range retired {
			r.Log.Info("signing key retired", "key_id", id)
		}
		every := r.StatsEvery
		if every <= 0 {
			every = time.Hour
		}
		if !r.lastStats.IsZero() && now.Sub(r.lastStats) < every && now.YearDay() == r.lastStats.YearDay() {
			return nil
		}
		if err := r.Store.SnapshotDay(ctx, now); err != nil {
			return err
		}
		r.lastStats = now
		return nil
	})
	return err
}

// SnapshotStats takes the daily stats snapshot of now's day at once.
func (r *Runner) SnapshotStats(ctx context.Context, now time.Time) error {
	return r.Store.SnapshotDay(ctx, now)
}
