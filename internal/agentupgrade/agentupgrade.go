// Package agentupgrade decides which agents to upgrade to the agent binary
// the server serves for their platform, and queues their signed
// update_agent commands (SPEC §5, §6): by hand (one agent, a selection, all
// outdated agents, a retry) through the API, and automatically, at a
// bounded rate, for agents that report a version below the
// min_agent_version setting (the jobs package calls QueueAuto). An upgrade
// that failed blocks automatic upgrades of its agent until an admin
// retries it, so nothing is retried in a loop.
//
// It sits beside api and jobs, between them and the store: it imports
// store, agentbin, signing and protocol, and is imported by api and jobs.
package agentupgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/agentbin"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
)

// Skip codes: why an agent was not upgraded.
const (
	SkipNoBinary        = "no_binary"
	SkipVersionMismatch = "version_mismatch"
	SkipAlreadyCurrent  = "already_current"
	SkipOlder           = "older_than_agent"
	SkipUnknownVersion  = "unknown_version"
	SkipInProgress      = "in_progress"
	SkipBlocked         = "blocked"
	SkipAlreadyPending  = "already_pending"
)

// DownloadPath is the agent download route for a platform.
func DownloadPath(goos, arch string) string {
	return "/api/v1/downloads/agent/" + goos + "/" + arch
}

// Planner queues upgrades.
type Planner struct {
	Store    *store.Store
	Binaries *agentbin.Dir
	Key      *signing.Key
	// PublicURL, when set, makes the command's url absolute; otherwise it
	// is the download path, which the agent resolves against its own
	// server URL (the address it already reaches the server at, whatever
	// host the admin's browser used).
	PublicURL string
	Now       func() time.Time
	Log       *slog.Logger
}

// Request is a hand-made upgrade request.
type Request struct {
	// AgentIDs (deduplicated UUIDs) or AllOutdated.
	AgentIDs    []string
	AllOutdated bool
	// Version, when set, must be the version served for each agent's
	// platform (a guard against upgrading to something unexpected).
	Version  string
	Rollback bool
	Trigger  string // store.TriggerManual or store.TriggerRetry
	Actor    string
	Expiry   time.Duration
	Audit    *store.Audit
}

// Queued is one upgrade queued.
type Queued struct {
	AgentID       string `json:"agent_id"`
	CommandID     string `json:"command_id"`
	FromVersion   string `json:"from_version"`
	TargetVersion string `json:"target_version"`
	Rollback      bool   `json:"rollback"`
}

// Skipped is one agent not upgraded, and why.
type Skipped struct {
	AgentID string `json:"agent_id"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
}

// Result is what a request did.
type Result struct {
	Queued  []Queued  `json:"queued"`
	Skipped []Skipped `json:"skipped"`
	// AgentIDs are the agents with a new command (to wake their
	// long-polls).
	AgentIDs []string `json:"-"`
}

// served is the binary the server serves for one platform.
type served struct {
	version, sha, sig, keyID string
	err                      error // why there is none
}

func (p *Planner) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// binaries caches the served binary per platform for one request.
type binaries struct {
	p     *Planner
	cache map[string]served
}

func (b *binaries) get(goos, arch string) served {
	k := goos + "/" + arch
	if s, ok := b.cache[k]; ok {
		return s
	}
	var s served
	switch {
	case b.p.Binaries == nil:
		s.err = errors.New("this server serves no agent binaries")
	case !agentbin.Supported(goos, arch):
		s.err = fmt.Errorf("there is no agent build for %s/%s", goos, arch)
	default:
		bin, err := b.p.Binaries.Open(goos, arch)
		switch {
		case errors.Is(err, agentbin.ErrNotFound):
			s.err = fmt.Errorf("the server has no agent binary for %s/%s", goos, arch)
		case err != nil:
			s.err = fmt.Errorf("the agent binary for %s/%s is unusable: %v", goos, arch, err)
		default:
			bin.Close()
			s = served{version: bin.Version, sha: bin.SHA256Hex, sig: bin.Signature, keyID: bin.KeyID}
			if !protocol.ValidVersion(s.version) {
				s.err = fmt.Errorf("the agent binary for %s/%s has version %q, which is not a semantic version", goos, arch, s.version)
			}
		}
	}
	b.cache[k] = s
	return s
}

// decide says whether target t may be upgraded to s, or why not.
func decide(t store.UpgradeTarget, s served, req Request) (skip *Skipped) {
	no := func(code, format string, args ...any) *Skipped {
		return &Skipped{AgentID: t.ID, Code: code, Reason: fmt.Sprintf(format, args...)}
	}
	if s.err != nil {
		return no(SkipNoBinary, "%v", s.err)
	}
	if req.Version != "" && s.version != req.Version {
		if c, ok := protocol.CompareVersions(s.version, req.Version); !ok || c != 0 {
			return no(SkipVersionMismatch, "the server serves version %s for %s/%s, not %s", s.version, t.OSType, t.OSArch, req.Version)
		}
	}
	if t.Upgrade != nil && t.Upgrade.Status == store.UpgradeInProgress {
		return no(SkipInProgress, "an upgrade to %s is already under way", t.Upgrade.TargetVersion)
	}
	if req.AllOutdated && t.Upgrade != nil && t.Upgrade.AutoUpgradeBlocked {
		return no(SkipBlocked, "its last upgrade failed (%s); upgrade it by id or retry it", t.Upgrade.FailureReason)
	}
	c, ok := protocol.CompareVersions(s.version, t.AgentVersion)
	switch {
	case !ok && req.AllOutdated:
		return no(SkipUnknownVersion, "it reports version %q, which cannot be compared; upgrade it by id", t.AgentVersion)
	case !ok:
		return nil // a developer build: any release replaces it
	case c == 0:
		return no(SkipAlreadyCurrent, "it already runs version %s", t.AgentVersion)
	case c < 0 && !req.Rollback:
		return no(SkipOlder, "the server serves version %s, older than the agent's %s; send rollback: true to downgrade it", s.version, t.AgentVersion)
	}
	return nil
}

// command builds the signed update_agent command of one upgrade.
func (p *Planner) command(t store.UpgradeTarget, s served, rollback bool, actor string, expiry time.Duration) (store.CommandRecord, error) {
	url := DownloadPath(t.OSType, t.OSArch)
	if p.PublicURL != "" {
		url = strings.TrimRight(p.PublicURL, "/") + url
	}
	params, err := json.Marshal(protocol.UpdateAgentParams{Version: s.version, URL: url, SHA256: s.sha, Signature: s.sig, KeyID: s.keyID, Rollback: rollback})
	if err != nil {
		return store.CommandRecord{}, err
	}
	now := store.T(p.now())
	issued, expires := now.Unix(), now.Add(expiry).Unix()
	id := uuid.Must(uuid.NewV7()).String()
	sig := signing.SignCommand(p.Key, signing.CommandFields{AgentID: t.ID, ID: id, Type: protocol.CmdUpdateAgent, Params: params,
		IssuedAt: issued, ExpiresAt: expires})
	return store.CommandRecord{Command: store.Command{ID: id, AgentID: t.ID, Type: protocol.CmdUpdateAgent, Params: string(params),
		Status: protocol.StatePending, KeyID: p.Key.ID, Signature: sig, IssuedAt: issued, ExpiresAt: expires, CreatedAt: now},
		CreatedBy: actor}, nil
}

// Queue plans and queues a hand-made request. Explicit agent ids are
// upgraded even when blocked from automatic upgrades (and the block is
// lifted); AllOutdated takes every agent older than its platform's binary
// and skips blocked ones.
func (p *Planner) Queue(ctx context.Context, req Request) (Result, error) {
	if req.Trigger == "" {
		req.Trigger = store.TriggerManual
	}
	bins := &binaries{p: p, cache: map[string]served{}}
	var targets []store.UpgradeTarget
	if req.AllOutdated {
		groups, err := p.Store.AgentVersionGroups(ctx)
		if err != nil {
			return Result{}, err
		}
		for _, g := range groups {
			s := bins.get(g.OSType, g.OSArch)
			if s.err != nil {
				continue // no binary to upgrade them to: not "outdated"
			}
			if c, ok := protocol.CompareVersions(g.AgentVersion, s.version); !ok || c >= 0 {
				continue
			}
			ts, err := p.Store.UpgradeTargets(ctx, store.UpgradeTargetFilter{Group: &g, Now: p.now()})
			if err != nil {
				return Result{}, err
			}
			targets = append(targets, ts...)
		}
	} else {
		var err error
		if targets, err = p.Store.UpgradeTargets(ctx, store.UpgradeTargetFilter{IDs: req.AgentIDs, Now: p.now()}); err != nil {
			return Result{}, err
		}
	}
	return p.queue(ctx, targets, bins, req)
}

func (p *Planner) queue(ctx context.Context, targets []store.UpgradeTarget, bins *binaries, req Request) (Result, error) {
	res := Result{Queued: []Queued{}, Skipped: []Skipped{}}
	var ups []store.QueuedUpgrade
	for _, t := range targets {
		s := bins.get(t.OSType, t.OSArch)
		if sk := decide(t, s, req); sk != nil {
			res.Skipped = append(res.Skipped, *sk)
			continue
		}
		c, err := p.command(t, s, req.Rollback, req.Actor, req.Expiry)
		if err != nil {
			return Result{}, err
		}
		ups = append(ups, store.QueuedUpgrade{Command: c, FromVersion: t.AgentVersion, Target: s.version, Rollback: req.Rollback, Trigger: req.Trigger})
	}
	if req.Audit != nil {
		req.Audit.Details = map[string]any{"trigger": req.Trigger, "agents": len(targets), "skipped": len(res.Skipped), "rollback": req.Rollback}
		if req.Version != "" {
			req.Audit.Details["version"] = req.Version
		}
	}
	if len(ups) == 0 {
		if req.Audit != nil {
			// Nothing to store: record the request alone.
			if err := p.Store.RecordAudit(ctx, *req.Audit); err != nil {
				return Result{}, err
			}
		}
		return res, nil
	}
	queued, pending, err := p.Store.QueueUpgrades(ctx, ups, p.now(), req.Audit)
	if err != nil {
		return Result{}, err
	}
	byAgent := map[string]store.QueuedUpgrade{}
	for _, u := range ups {
		byAgent[u.Command.AgentID] = u
	}
	for _, c := range queued {
		u := byAgent[c.AgentID]
		res.Queued = append(res.Queued, Queued{AgentID: c.AgentID, CommandID: c.ID, FromVersion: u.FromVersion, TargetVersion: u.Target, Rollback: u.Rollback})
		res.AgentIDs = append(res.AgentIDs, c.AgentID)
	}
	for _, id := range pending {
		res.Skipped = append(res.Skipped, Skipped{AgentID: id, Code: SkipAlreadyPending,
			Reason: "an update_agent command for it is already pending; cancel it first"})
	}
	return res, nil
}

// QueueAuto queues upgrades for online agents reporting a version below
// minVersion, to their platform's binary when that one is at least
// minVersion, at most perMinute a minute across every server replica
// (counted in the database). Agents blocked by a failed upgrade, with an
// upgrade under way, or whose last upgrade already aimed at that version
// are left alone.
func (p *Planner) QueueAuto(ctx context.Context, minVersion string, perMinute int, expiry time.Duration) (Result, error) {
	res := Result{Queued: []Queued{}, Skipped: []Skipped{}}
	if minVersion == "" || perMinute <= 0 {
		return res, nil
	}
	now := p.now()
	recent, err := p.Store.CountUpgradesSince(ctx, store.TriggerAuto, now.Add(-time.Minute))
	if err != nil {
		return res, err
	}
	budget := perMinute - recent
	if budget <= 0 {
		return res, nil
	}
	groups, err := p.Store.AgentVersionGroups(ctx)
	if err != nil {
		return res, err
	}
	bins := &binaries{p: p, cache: map[string]served{}}
	var targets []store.UpgradeTarget
	for _, g := range groups {
		if budget-len(targets) <= 0 {
			break
		}
		if c, ok := protocol.CompareVersions(g.AgentVersion, minVersion); !ok || c >= 0 {
			continue
		}
		s := bins.get(g.OSType, g.OSArch)
		if s.err != nil {
			continue
		}
		if c, _ := protocol.CompareVersions(s.version, minVersion); c < 0 {
			continue // the binary served is itself below the minimum
		}
		if c, _ := protocol.CompareVersions(s.version, g.AgentVersion); c <= 0 {
			continue
		}
		ts, err := p.Store.UpgradeTargets(ctx, store.UpgradeTargetFilter{Group: &g, OnlineOnly: true, ExcludeBlocked: true,
			ExcludeInProgress: true, ExcludePendingCommand: true, ExcludeTarget: s.version, Limit: budget - len(targets), Now: now})
		if err != nil {
			return res, err
		}
		targets = append(targets, ts...)
	}
	if len(targets) == 0 {
		return res, nil
	}
	audit := &store.Audit{ActorType: "system", ActorName: "auto-upgrade", Action: "agent.upgrade", TargetType: "agent"}
	if len(targets) == 1 {
		audit.TargetID = targets[0].ID
	}
	res, err = p.queue(ctx, targets, bins, Request{Trigger: store.TriggerAuto, Actor: "auto-upgrade", Expiry: expiry, Audit: audit})
	if err == nil && len(res.Queued) > 0 && p.Log != nil {
		p.Log.Info("queued automatic agent upgrades", "min_agent_version", minVersion, "queued", len(res.Queued), "skipped", len(res.Skipped))
	}
	return res, err
}
