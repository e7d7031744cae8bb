package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/protocol"
)

// Timing of the loop.
const (
	// longPollHeld is the least time a long-poll must take to count as held
	// by the server; a quicker empty answer means the server does not hold
	// requests, and the agent waits its interval instead of re-polling.
	longPollHeld = 2 * time.Second
	// rePollJitter bounds the pause between two held long-polls.
	rePollJitter = time.Second
	// stopFlushTimeout bounds the last attempt to deliver results on stop.
	stopFlushTimeout = 5 * time.Second
	// minBackoffSleep keeps full jitter from retrying in a tight loop.
	minBackoffSleep = 500 * time.Millisecond
	// maxRetryAfter caps how long a server's Retry-After is honoured.
	maxRetryAfter = time.Hour
	pruneEvery    = 24 * time.Hour
)

// interruptedOutput is the result of a command the agent could not finish.
const interruptedOutput = "interrupted: the agent stopped before the command finished; it is not run again"

// Run is the service loop: it reports results left from an earlier run,
// then checks in (long-poll by default) until ctx ends, running each
// verified command and reporting its result. It returns nil after a
// graceful stop, ErrRestartRequested when it stopped so that the service
// manager starts it again (after a self-upgrade or a watchdog restore), or
// an error when it cannot start.
func (a *Agent) Run(ctx context.Context) error {
	a.resumeUpgrade()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.stopRun = cancel
	if deadline, ok := a.upgradeDeadline(); ok {
		// The loop checks the deadline too (injected clocks); this timer
		// fires while a check-in or a command blocks.
		t := time.AfterFunc(max(time.Until(deadline), 0), a.checkUpgradeDeadline)
		defer t.Stop()
	}
	err := a.run1(ctx)
	if err == nil && a.restart.Load() {
		return ErrRestartRequested
	}
	return err
}

func (a *Agent) run1(ctx context.Context) error {
	turned, err := a.state.Recover(a.now())
	if err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	for _, id := range turned {
		a.log.Warn("a command was interrupted when the agent last stopped; reporting it as failed, not running it again", "command_id", id)
	}
	cfg := a.Config()
	a.log.Info("agent started", "version", a.version, "config", cfg, "state_dir", a.state.Dir(),
		"long_poll_seconds", a.longPoll, "pending_results", a.state.PendingCount(), "pending_acks", a.state.AckCount(), "executed_ids", a.state.ExecutedCount())
	a.lastPrune = a.now()
	if a.updates != nil {
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.updates.RunSchedule(sctx, a.sleep)
		}()
		// A scan cut off by the stop is simply not reported; wait for it
		// so no package manager is left running behind the agent.
		defer func() { cancel(); <-done }()
	}

	nextCheckIn := a.now()
	for {
		a.checkUpgradeDeadline()
		if ctx.Err() != nil {
			return a.stop()
		}
		now := a.now()
		if now.Sub(a.lastPrune) >= pruneEvery {
			a.lastPrune = now
			if err := a.state.Prune(now.Add(-a.retention)); err != nil {
				a.log.Error("pruning executed command ids failed", "error", err)
			}
		}
		if a.state.PendingCount() > 0 && !now.Before(a.nextFlush) {
			a.flush(ctx)
		}
		if !now.Before(nextCheckIn) {
			nextCheckIn = a.now().Add(a.cycle(ctx))
			continue
		}
		wake := nextCheckIn
		if a.state.PendingCount() > 0 && a.nextFlush.Before(wake) {
			wake = a.nextFlush
		}
		if err := a.sleep(ctx, wake.Sub(now)); err != nil {
			return a.stop()
		}
	}
}

// stop makes a last, bounded attempt to deliver pending results.
func (a *Agent) stop() error {
	if a.state.PendingCount() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), stopFlushTimeout)
		a.flush(ctx)
		cancel()
	}
	a.saveDirtyConfig()
	a.log.Info("agent stopped", "pending_results", a.state.PendingCount())
	return nil
}

// cycle is one check-in with the commands it brings; it returns the delay
// until the next check-in.
func (a *Agent) cycle(ctx context.Context) time.Duration {
	a.saveDirtyConfig()
	a.maybeRenew(ctx)

	hb, hbOn := a.heartbeatState()
	if a.hbWasActive && !hbOn {
		a.log.Info("heartbeat ended; back to the normal check-in interval")
	}
	a.hbWasActive = hbOn
	wait := a.longPoll
	if _, upgrading := a.upgradeDeadline(); hbOn || upgrading {
		// A self-upgraded agent's first check-in settles its upgrade: it
		// must not be held by a long-poll.
		wait = 0
	}
	start := time.Now() // real time: how long the server held the request
	resp, err := a.checkIn(ctx, wait)
	held := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		a.failures++
		d := a.backoff(a.failures, err)
		switch client.StatusCode(err) {
		case http.StatusForbidden:
			a.log.Error("the server refuses this agent (403): if the machine id changed, an admin must rebind the agent; the agent keeps retrying",
				"error", err, "failures", a.failures, "retry_in", d.Round(time.Millisecond))
		case http.StatusUnauthorized:
			a.log.Error("the server does not accept this agent's credentials (401) and renewal did not help; the agent keeps retrying",
				"error", err, "failures", a.failures, "retry_in", d.Round(time.Millisecond))
		default:
			a.log.Warn("check-in failed", "error", err, "failures", a.failures, "retry_in", d.Round(time.Millisecond))
		}
		return d
	}
	if a.failures > 0 {
		a.log.Info("check-in works again", "after_failures", a.failures)
	}
	a.failures = 0
	// The first check-in of a self-upgraded agent settles the upgrade,
	// before any command of this answer runs.
	a.confirmUpgrade()
	if resp.CheckInIntervalSeconds > 0 {
		a.mu.Lock()
		a.serverInterval = time.Duration(resp.CheckInIntervalSeconds) * time.Second
		a.mu.Unlock()
	}
	ran, fresh := false, false
	for _, sc := range resp.Commands {
		if ctx.Err() != nil {
			// Not started and not acknowledged: the server offers it again
			// after its redelivery delay. Nothing ran, nothing is lost.
			a.log.Warn("stopping before a delivered command could start; the server will offer it again", "command_id", sc.ID, "type", sc.Type)
			continue
		}
		// Acknowledged (durably, before anything else happens to it) on the
		// next check-in: received, whether it then runs or is refused. A
		// redelivery of an id already executed is acknowledged again and
		// refused as a replay, its first result standing.
		if err := a.state.AddAck(sc.ID); err != nil {
			a.log.Error("recording the receipt of a command failed; the server may offer it again (it is then refused as a replay)",
				"command_id", sc.ID, "error", err)
		}
		if !a.state.IsExecuted(sc.ID) && !a.refused[sc.ID] {
			fresh = true
		}
		if a.process(ctx, sc) {
			ran = true
		}
		if !a.now().Before(a.nextFlush) {
			a.flush(ctx)
		}
	}
	if ran {
		return 0 // more may be queued: check in again at once
	}
	if hbOn {
		return jitter(hb.interval, a.rand())
	}
	// A long-poll answered at once because commands were waiting says
	// nothing about whether the server holds requests: after commands not
	// seen before (all refused, as none ran) re-poll soon, as after a held
	// poll, or the agent would miss new commands for a whole interval. Only
	// redeliveries of commands already run or refused wait the interval, so
	// a server handing them out again cannot make the agent spin.
	if wait > 0 && (fresh || held >= min(time.Duration(wait)*time.Second/2, longPollHeld)) {
		return time.Duration(a.rand() * float64(rePollJitter))
	}
	return jitter(a.interval(), a.rand())
}

// maxRefusedIDs bounds the in-memory set of refused command ids.
const maxRefusedIDs = 1024

// noteRefused remembers a refused command id, so that its redelivery is
// told from a new command (see cycle). The set starts over when full.
func (a *Agent) noteRefused(id string) {
	if a.refused == nil || len(a.refused) >= maxRefusedIDs {
		a.refused = map[string]bool{}
	}
	a.refused[id] = true
}

// jitter spreads check-ins: a delay between half and all of d, so agents
// started together drift apart and none checks in later than its interval.
func jitter(d time.Duration, r float64) time.Duration {
	return d - time.Duration(r*float64(d)/2)
}

func (a *Agent) heartbeatState() (heartbeat, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.heartbeat, a.heartbeat.active(a.now())
}

// interval is the check-in interval: the config override, else the
// server's latest value, else the config's.
func (a *Agent) interval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.cfg.Interval()
	if a.cfg.PollIntervalSeconds == 0 && a.serverInterval > 0 {
		d = a.serverInterval
	}
	return max(d, minCheckInInterval)
}

// checkIn asks for commands, acknowledging up to protocol.MaxAcksPerCheckIn
// commands received before (the oldest first; they are forgotten once the
// server answered 200). A 400 to a long-poll is taken as a server that
// does not know ?wait=: the same check-in is retried without it and, when
// that works, the agent polls plainly from then on.
func (a *Agent) checkIn(ctx context.Context, wait int) (*protocol.CheckInResponse, error) {
	acks := a.state.Acks(protocol.MaxAcksPerCheckIn)
	var resp *protocol.CheckInResponse
	err := a.withAuth(ctx, func() (err error) {
		resp, err = a.api.CheckInAck(ctx, wait, acks)
		return err
	})
	if wait > 0 && client.StatusCode(err) == http.StatusBadRequest {
		first := err
		err = a.withAuth(ctx, func() (err error) {
			resp, err = a.api.CheckInAck(ctx, 0, acks)
			return err
		})
		if err == nil {
			a.longPoll = 0
			a.log.Warn("the server refused a long-poll check-in; falling back to plain polling at the check-in interval", "error", first)
		}
	}
	if err == nil && len(acks) > 0 {
		if derr := a.state.DeleteAcks(acks); derr != nil {
			a.log.Error("forgetting delivered acknowledgements failed; they are sent again", "error", derr)
		}
	}
	return resp, err
}

// withAuth runs call; when the server answers 401 it renews the token once
// and runs call again.
func (a *Agent) withAuth(ctx context.Context, call func() error) error {
	err := call()
	if client.StatusCode(err) != http.StatusUnauthorized {
		return err
	}
	if rerr := a.renew(ctx); rerr != nil {
		return fmt.Errorf("%w (and renewing the token failed: %v)", err, rerr)
	}
	return call()
}

// maybeRenew renews the token when it expires within RenewBefore.
func (a *Agent) maybeRenew(ctx context.Context) {
	now := a.now()
	a.mu.Lock()
	exp, retryAt := a.cfg.TokenExpiresAt, a.renewRetryAt
	a.mu.Unlock()
	if exp.Sub(now) > RenewBefore || now.Before(retryAt) {
		return
	}
	_ = a.renew(ctx) // renew logs and schedules its own retry
}

// renew exchanges the refresh token for new tokens and saves them. A
// refusal is logged loudly; the agent never re-registers by itself.
func (a *Agent) renew(ctx context.Context) error {
	a.renewMu.Lock()
	defer a.renewMu.Unlock()
	cfg := a.Config()
	resp, err := a.api.Renew(ctx, cfg.AgentID, cfg.RefreshToken)
	if err != nil {
		a.mu.Lock()
		a.renewFailures++
		n := a.renewFailures
		a.mu.Unlock()
		retryAt := a.now().Add(a.backoff(n, err))
		a.mu.Lock()
		a.renewRetryAt = retryAt
		a.mu.Unlock()
		if sc := client.StatusCode(err); sc == http.StatusUnauthorized || sc == http.StatusForbidden {
			a.log.Error("THE SERVER REFUSED TO RENEW THIS AGENT'S TOKEN. The agent keeps retrying with backoff and never re-registers by itself. "+
				"If the agent was deleted or its tokens revoked, register it again: redflag-agent register --server URL --token TOKEN; "+
				"if the machine id changed, an admin can rebind the agent.",
				"agent_id", cfg.AgentID, "status", sc, "error", err, "attempts", n)
		} else {
			a.log.Warn("renewing the agent token failed; will retry", "error", err, "attempts", n)
		}
		return err
	}
	exp := tokenExpiry(resp.Token, a.now())
	serr := a.updateConfig(true, func(c *Config) error {
		c.Token, c.RefreshToken, c.TokenExpiresAt = resp.Token, resp.RefreshToken, exp
		return nil
	})
	a.api.SetCredentials(cfg.AgentID, resp.Token)
	a.mu.Lock()
	a.renewFailures, a.renewRetryAt = 0, time.Time{}
	a.mu.Unlock()
	if serr != nil {
		a.log.Error("the agent token was renewed but the config could not be saved; the new tokens live in memory and the save is retried (if the agent stops first it must be registered again)",
			"path", a.cfgPath, "error", serr)
	} else {
		a.log.Info("agent token renewed", "expires_at", exp.UTC().Format(time.RFC3339))
	}
	return nil
}

// backoff is the delay before retry number n (1-based) after err:
// exponential with full jitter, capped, never shorter than the server's
// Retry-After.
func (a *Agent) backoff(n int, err error) time.Duration {
	a.mu.Lock()
	lo, hi := a.cfg.Backoff()
	a.mu.Unlock()
	ceil := lo
	for i := 1; i < n && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	d := max(time.Duration(a.rand()*float64(ceil)), minBackoffSleep)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = min(ae.RetryAfter, maxRetryAfter)
	}
	return d
}

// flush sends the pending results, oldest first, deleting each once the
// server acknowledged it. It stops at the first result that could not be
// delivered and schedules the next attempt with backoff.
func (a *Agent) flush(ctx context.Context) {
	ps, err := a.state.Pending()
	if err != nil {
		a.log.Error("reading pending results failed", "error", err)
		a.flushFailures++
		a.nextFlush = a.now().Add(a.backoff(a.flushFailures, err))
		return
	}
	// A placeholder still marked running here is one whose real result
	// could not be saved: it is sent as it stands ("interrupted"). flush
	// never runs while a handler runs, so no live command is reported.
	for _, p := range ps {
		err := a.withAuth(ctx, func() error { return a.api.SendResult(ctx, p.CommandID, p.Result) })
		switch {
		case err == nil:
			a.dropPending(p, "result delivered")
		case errors.Is(err, client.ErrCommandGone):
			a.dropPending(p, "the server no longer takes a result for this command; dropped it")
		case permanentRefusal(err):
			if rerr := a.state.RejectPending(p.CommandID); rerr != nil {
				a.log.Error("setting aside a refused result failed", "command_id", p.CommandID, "error", rerr)
			}
			a.log.Error("the server refused a command result for good; it is kept in the state directory's rejected/ folder",
				"command_id", p.CommandID, "type", p.Type, "error", err)
		default:
			a.flushFailures++
			a.nextFlush = a.now().Add(a.backoff(a.flushFailures, err))
			a.log.Warn("a command result could not be delivered yet; it stays on disk and is retried",
				"command_id", p.CommandID, "error", err, "retry_in", a.nextFlush.Sub(a.now()).Round(time.Millisecond))
			return
		}
	}
	if a.state.PendingCount() > 0 {
		// Delivered but not removable (a disk error, logged above): do
		// not spin on it.
		a.flushFailures++
		a.nextFlush = a.now().Add(a.backoff(a.flushFailures, nil))
		return
	}
	a.flushFailures, a.nextFlush = 0, time.Time{}
}

func (a *Agent) dropPending(p PendingResult, msg string) {
	if err := a.state.DeletePending(p.CommandID); err != nil {
		a.log.Error("removing a delivered result failed; it may be sent again", "command_id", p.CommandID, "error", err)
		return
	}
	a.log.Info(msg, "command_id", p.CommandID, "type", p.Type, "status", p.Result.Status)
}

// permanentRefusal reports whether the server rejected a result for a
// reason that retrying cannot fix (a malformed or oversized body).
func permanentRefusal(err error) bool {
	switch client.StatusCode(err) {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// process verifies one delivered command and, when it passes, runs it. The
// order of the durable writes is what makes a command run at most once and
// its result delivered at least once:
//
//  1. the placeholder result ("interrupted") is saved,
//  2. the id is recorded as executed,
//  3. the handler runs,
//  4. the real result replaces the placeholder,
//  5. the result is sent and deleted when the server acknowledges it.
//
// A crash anywhere leaves a result on file that is reported after restart,
// and a command that is never run again. process reports whether a handler
// ran.
func (a *Agent) process(ctx context.Context, sc protocol.SignedCommand) bool {
	now := a.now()
	cfg := a.Config()
	if err := Verify(sc, cfg.AgentID, cfg.PinnedKeys, a.state.IsExecuted, now); err != nil {
		var re *RefusedError
		if !errors.As(err, &re) {
			re = &RefusedError{Code: RefuseMalformed, Reason: err.Error()}
		}
		a.log.Warn("refused a command; nothing was run", "command_id", sc.ID, "type", sc.Type, "code", re.Code, "reason", re.Reason)
		a.noteRefused(sc.ID)
		if sc.ID == "" || a.state.HasPending(sc.ID) {
			return false // never overwrite the genuine result of a replayed id
		}
		res := toResult(Outcome{ExitCode: 1, Output: "refused: " + re.Reason, Details: map[string]any{"refused": re.Code}}, now, now)
		if err := a.state.SavePending(PendingResult{CommandID: sc.ID, Type: sc.Type, CreatedAt: now, ExpiresAt: sc.ExpiresAt, Result: res}); err != nil {
			a.log.Error("saving the refusal of a command failed", "command_id", sc.ID, "error", err)
		}
		return false
	}

	started := a.now()
	p := PendingResult{CommandID: sc.ID, Type: sc.Type, Running: true, CreatedAt: started, ExpiresAt: sc.ExpiresAt,
		Result: toResult(Outcome{ExitCode: 1, Output: interruptedOutput, Details: map[string]any{"interrupted": true}}, started, started)}
	if err := a.state.SavePending(p); err != nil {
		a.log.Error("not running a command: its result could not be recorded in the state directory", "command_id", sc.ID, "type", sc.Type, "error", err)
		return false
	}
	if err := a.state.MarkExecuted(sc.ID, started, sc.ExpiresAt); err != nil {
		a.log.Error("not running a command: it could not be recorded as executed", "command_id", sc.ID, "type", sc.Type, "error", err)
		p.Running = false
		p.Result = toResult(Failed("not run: the agent could not record the command as executed: %v", err), started, a.now())
		if err := a.state.SavePending(p); err != nil {
			a.log.Error("saving a command result failed", "command_id", sc.ID, "error", err)
		}
		return false
	}

	a.log.Info("running command", "command_id", sc.ID, "type", sc.Type)
	cmd := Command{ID: sc.ID, Type: sc.Type, Params: sc.Params, IssuedAt: time.Unix(sc.IssuedAt, 0), ExpiresAt: time.Unix(sc.ExpiresAt, 0)}
	o, interrupted := a.run(ctx, cmd)
	if a.isHandedOff(sc.ID) {
		// A self-upgrade installed the new version: the upgrade marker
		// holds this command's result until the new version checks in.
		return true
	}
	finished := a.now()
	p.Running = false
	if interrupted {
		p.Result.FinishedAt = finished.UTC()
		a.log.Warn("a command did not finish within the shutdown grace period; it is reported as interrupted", "command_id", sc.ID, "type", sc.Type, "grace", a.grace)
	} else {
		p.Result = toResult(o, started, finished)
		a.log.Info("command finished", "command_id", sc.ID, "type", sc.Type, "status", p.Result.Status, "duration", finished.Sub(started).Round(time.Millisecond))
	}
	if err := a.state.SavePending(p); err != nil {
		a.log.Error("saving a command result failed; the command will be reported as interrupted", "command_id", sc.ID, "error", err)
	}
	return true
}

// run calls the command's handler in its own goroutine. When ctx ends (the
// agent is stopping) the handler may go on for the grace period; after it,
// its context is cancelled and run reports interrupted.
func (a *Agent) run(ctx context.Context, cmd Command) (o Outcome, interrupted bool) {
	h, ok := a.handlers[cmd.Type]
	if !ok {
		return Failed("unknown command type %q", cmd.Type), false
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cmdTimeout)
	defer cancel()
	done := make(chan Outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- Failed("the %s handler crashed: %v", cmd.Type, r)
			}
		}()
		done <- h.Handle(cctx, cmd)
	}()
	select {
	case o := <-done:
		return o, false
	case <-ctx.Done():
	}
	a.log.Info("stop requested while a command runs; waiting for it", "command_id", cmd.ID, "type", cmd.Type, "grace", a.grace)
	t := time.NewTimer(a.grace)
	defer t.Stop()
	select {
	case o := <-done:
		return o, false
	case <-t.C:
		return Outcome{}, true
	}
}
