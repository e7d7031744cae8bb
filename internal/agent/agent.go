// Package agent is RedFlag's agent: its config and persisted state, the
// verification of signed commands (SPEC §5), the command handlers and the
// service loop that checks in with the server, runs what it is given and
// reports back.
//
// The agent imports protocol, signing, client and version only: never a
// server package. Every dependency is passed in Options; clock, sleeps and
// randomness are injectable for tests.
package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/version"
)

// Defaults of Options.
const (
	DefaultShutdownGrace  = 30 * time.Second
	DefaultCommandTimeout = 2 * time.Hour
	// RenewBefore is how long before the JWT expires the agent renews it.
	RenewBefore = time.Hour
	// defaultTokenLifetime is the SPEC §4 JWT lifetime, assumed when the
	// token's exp claim cannot be read.
	defaultTokenLifetime = 24 * time.Hour
)

// Options are the dependencies of an Agent.
type Options struct {
	// ConfigPath is where renewed tokens and rotated keys are saved.
	ConfigPath string
	// Config is the loaded config (LoadConfig); the agent keeps a copy.
	Config *Config
	// State is the opened state directory (OpenState).
	State *State
	// Client talks to the server; nil builds one from Config.ServerURL with
	// MachineID. The agent sets its credentials.
	Client *client.Client
	// MachineID is sent as X-Machine-ID when Client is nil; default
	// Config.MachineID. The caller computes it freshly (MachineID()) so a
	// config copied to another machine does not pass as this one.
	MachineID string
	Logger    *slog.Logger
	// Version is this agent's version; default version.Version.
	Version string

	// Now, Sleep and Rand replace the clock, the waits of the loop and the
	// jitter source (Rand returns a number in [0, 1)). Sleep must return
	// ctx.Err() when ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64

	// Inventory collects the system report; default CollectInventory.
	Inventory InventoryFunc
	// Reboot schedules a reboot; nil makes reboot commands fail with "no
	// reboot action is configured". The real one is SystemReboot.
	Reboot RebootFunc
	// Scanner and Installer run scan_updates and install_updates; without
	// them those commands fail honestly.
	Scanner   Scanner
	Installer Installer
	// Updates, when set, is the real update manager: it serves
	// scan_updates, install_updates and confirm_dependencies (unless
	// Scanner or Installer are given) and scans on its schedule while Run
	// runs.
	Updates *Updates
	// Handlers adds or replaces handlers by command type.
	Handlers map[string]Handler

	// ShutdownGrace is how long a running command may go on after the
	// agent is asked to stop before it is recorded as interrupted.
	ShutdownGrace time.Duration
	// CommandTimeout bounds every command.
	CommandTimeout time.Duration
	// ExecutedRetention is how long executed ids are kept (pruned daily).
	ExecutedRetention time.Duration

	// Self-upgrade (selfupdate.go). Executable is the running binary
	// (default: os.Executable, links resolved); Download fetches the new
	// one (default: the client's Download); Preflight runs its `version`
	// (default: exec). UpgradeWatchdog overrides the config's
	// upgrade_watchdog_seconds; UpgradeMaxBytes and UpgradeTimeout bound
	// the download.
	Executable      string
	Download        Downloader
	Preflight       Preflight
	UpgradeWatchdog time.Duration
	UpgradeMaxBytes int64
	UpgradeTimeout  time.Duration
}

// Agent is the running agent. Create it with New and call Run once.
type Agent struct {
	cfgPath    string
	api        *client.Client
	state      *State
	log        *slog.Logger
	version    string
	now        func() time.Time
	sleep      func(ctx context.Context, d time.Duration) error
	rand       func() float64
	inventory  InventoryFunc
	reboot     RebootFunc
	scanner    Scanner
	installer  Installer
	updates    *Updates
	handlers   map[string]Handler
	grace      time.Duration
	cmdTimeout time.Duration
	retention  time.Duration

	renewMu sync.Mutex // one renewal at a time

	// Self-upgrade.
	exe        string
	download   Downloader
	preflight  Preflight
	upWatchdog time.Duration
	upMaxBytes int64
	upTimeout  time.Duration
	upMu       sync.Mutex
	upMarker   *upgradeMarker // the upgrade this new version must confirm
	stopRun    context.CancelCauseFunc
	restart    atomic.Bool  // Run must return ErrRestartRequested
	handedOff  atomic.Value // string: the command whose result the marker owns

	mu             sync.Mutex
	cfg            *Config   // guarded by mu; replaced, never modified in place
	cfgDirty       bool      // the in-memory config could not be saved yet
	heartbeat      heartbeat // guarded by mu
	serverInterval time.Duration
	renewFailures  int
	renewRetryAt   time.Time

	// Owned by the Run goroutine.
	longPoll      int
	failures      int
	flushFailures int
	nextFlush     time.Time
	lastPrune     time.Time
	hbWasActive   bool
	refused       map[string]bool // ids refused since start (noteRefused)
}

type heartbeat struct {
	interval time.Duration
	until    time.Time
}

func (h heartbeat) active(now time.Time) bool { return h.interval > 0 && now.Before(h.until) }

// New checks the options and builds an Agent.
func New(o Options) (*Agent, error) {
	if o.Config == nil || o.State == nil || o.ConfigPath == "" {
		return nil, errors.New("agent: Config, ConfigPath and State are required")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	a := &Agent{cfgPath: o.ConfigPath, cfg: o.Config.clone(), state: o.State, api: o.Client, log: o.Logger,
		version: o.Version, now: o.Now, sleep: o.Sleep, rand: o.Rand, inventory: o.Inventory, reboot: o.Reboot,
		scanner: o.Scanner, installer: o.Installer, updates: o.Updates, grace: o.ShutdownGrace, cmdTimeout: o.CommandTimeout,
		retention: o.ExecutedRetention, exe: o.Executable, download: o.Download, preflight: o.Preflight,
		upWatchdog: o.UpgradeWatchdog, upMaxBytes: o.UpgradeMaxBytes, upTimeout: o.UpgradeTimeout}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.version == "" {
		a.version = version.Version
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.sleep == nil {
		a.sleep = sleepCtx
	}
	if a.rand == nil {
		a.rand = rand.Float64
	}
	if a.inventory == nil {
		a.inventory = CollectInventory
	}
	if a.grace <= 0 {
		a.grace = DefaultShutdownGrace
	}
	if a.cmdTimeout <= 0 {
		a.cmdTimeout = DefaultCommandTimeout
	}
	if a.retention <= 0 {
		a.retention = DefaultExecutedRetention
	}
	if a.api == nil {
		mid := o.MachineID
		if mid == "" {
			mid = a.cfg.MachineID
		}
		c, err := client.New(a.cfg.ServerURL, client.Options{MachineID: mid, AgentVersion: a.version})
		if err != nil {
			return nil, err
		}
		a.api = c
	}
	a.api.SetCredentials(a.cfg.AgentID, a.cfg.Token)
	if a.download == nil {
		a.download = a.api.Download
	}
	if a.preflight == nil {
		a.preflight = runVersion
	}
	if a.upMaxBytes <= 0 {
		a.upMaxBytes = DefaultUpgradeMaxBytes
	}
	if a.upTimeout <= 0 {
		a.upTimeout = DefaultUpgradeDownloadTimeout
	}
	if a.cfg.TokenExpiresAt.IsZero() {
		a.cfg.TokenExpiresAt = tokenExpiry(a.cfg.Token, a.now())
	}
	if a.updates != nil {
		a.updates.api, a.updates.now = a.api, a.now
		if a.scanner == nil {
			a.scanner = a.updates
		}
		if a.installer == nil {
			a.installer = a.updates
		}
	}
	a.longPoll = a.cfg.LongPoll()
	a.handlers = a.defaultHandlers()
	for t, h := range o.Handlers {
		a.handlers[t] = h
	}
	return a, nil
}

// Config returns a copy of the current config (tokens and keys included).
func (a *Agent) Config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.clone()
}

// updateConfig applies fn to a copy of the config and saves it. When the
// save fails the change is dropped, unless keepOnSaveError is set (renewed
// tokens: the server already replaced the old ones, so they must be used
// even if only in memory; the save is retried later).
func (a *Agent) updateConfig(keepOnSaveError bool, fn func(c *Config) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.cfg.clone()
	if err := fn(c); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if err := SaveConfig(a.cfgPath, c); err != nil {
		if keepOnSaveError {
			a.cfg, a.cfgDirty = c, true
		}
		return err
	}
	a.cfg, a.cfgDirty = c, false
	return nil
}

// saveDirtyConfig retries a config save that failed before.
func (a *Agent) saveDirtyConfig() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.cfgDirty {
		return
	}
	if err := SaveConfig(a.cfgPath, a.cfg); err != nil {
		a.log.Error("the agent config still cannot be saved; renewed tokens live only in memory until it can", "path", a.cfgPath, "error", err)
		return
	}
	a.cfgDirty = false
	a.log.Info("the agent config was saved after an earlier failure", "path", a.cfgPath)
}

// tokenExpiry reads the exp claim of a JWT without verifying it (the agent
// has no key for that; it only schedules the renewal). Without a readable
// exp it assumes the SPEC lifetime from now.
func tokenExpiry(token string, now time.Time) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var claims struct {
				Exp json.Number `json:"exp"`
			}
			if json.Unmarshal(b, &claims) == nil {
				if f, err := claims.Exp.Float64(); err == nil && f > 0 {
					return time.Unix(int64(f), 0)
				}
			}
		}
	}
	return now.Add(defaultTokenLifetime)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
