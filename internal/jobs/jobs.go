// Package jobs runs the server's background work on a timer: command
// expiry and timeouts now, more later. Each job takes a store-level lock so
// that with several replicas on one PostgreSQL only one runs it at a time.
package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/redflaghq/redflag/internal/agentupgrade"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
)

// Runner runs the jobs every Interval.
type Runner struct {
	Store    *store.Store
	Log      *slog.Logger
	Interval time.Duration
	Defaults store.Settings
	Now      func() time.Time
	// OnRun, when set, is told about each run (tests use it to prove two
	// replicas never overlap).
	OnRun func(job string, start, end time.Time)
	// Upgrades, when set, queues automatic agent upgrades (the
	// min_agent_version setting); Wake is told which agents got a command.
	Upgrades *agentupgrade.Planner
	Wake     func(agentIDs ...string)
	// Keys, when set, is the server's keyring: RefreshKeys re-reads which
	// key is active (a rotation on another replica) at every tick, and the
	// upgrade planner signs with the active key.
	Keys        *signing.Keyring
	RefreshKeys func(context.Context) error
	// StatsEvery is how often the daily stats snapshot is taken (default
	// an hour); the first run takes one at once.
	StatsEvery time.Duration
	lastStats  time.Time
}

// Run ticks until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	if r.Interval <= 0 {
		r.Interval = 15 * time.Second
	}
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("background job failed; retrying on the next tick", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs every job once.
func (r *Runner) RunOnce(ctx context.Context) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if r.RefreshKeys != nil {
		if err := r.RefreshKeys(ctx); err != nil {
			r.Log.Error("cannot switch to the active signing key; still signing with the previous one", "error", err)
		}
	}
	if r.Keys != nil && r.Upgrades != nil {
		r.Upgrades.Key = r.Keys.Active() // the planner is used by this goroutine only
	}
	if err := r.keysAndStats(ctx, now()); err != nil {
		return err
	}
	_, err := r.Store.RunExclusive(ctx, "expire-commands", func(ctx context.Context) error {
		start := time.Now()
		set, err := r.Store.LoadSettings(ctx, r.Defaults)
		if err != nil {
			return err
		}
		exp, to, err := r.Store.ExpireCommands(ctx, now(), time.Duration(set.CommandTimeoutSeconds)*time.Second)
		if err != nil {
			return err
		}
		if exp+to > 0 {
			r.Log.Info("commands closed by the clock", "expired", exp, "timed_out", to)
		}
		// Under the same lock: upgrades settle from the commands just closed.
		if err := r.agentUpgrades(ctx, now(), set); err != nil {
			return err
		}
		if r.OnRun != nil {
			r.OnRun("expire-commands", start, time.Now())
		}
		return nil
	})
	return err
}
