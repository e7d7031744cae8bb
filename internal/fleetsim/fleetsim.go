// Package fleetsim is RedFlag's fleet simulator: it registers N virtual
// agents with a registration token, checks them in round-robin at a given
// rate for a given time and answers their commands the way redflag-agent
// does (verify the SPEC §5 signature against the keys pinned at
// registration, then report a result, retried until the server
// acknowledges it). It measures what the server achieved: check-ins per
// second, latency percentiles, errors by kind, and commands delivered,
// completed and delivered twice (which must never happen).
//
// It is the load generator of the benchmarks and of the reliability tests,
// and the engine of cmd/redflag-fleetsim. It only talks to the one server
// URL it is given, and a run is bounded by its Duration.
package fleetsim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redflaghq/redflag/internal/client"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/version"
)

// ClockSkew is the allowance on a command's expires_at (SPEC §5).
const ClockSkew = 5 * time.Minute

// Defaults for Config.
const (
	DefaultConcurrency    = 32
	DefaultRequestTimeout = 10 * time.Second
	DefaultDrainTimeout   = 10 * time.Second
	maxBackoff            = 2 * time.Second
	baseBackoff           = 50 * time.Millisecond
)

// Config describes a run.
type Config struct {
	// ServerURL is the only server the simulator talks to.
	ServerURL string
	// RegistrationToken must have a seat for every agent.
	RegistrationToken string
	// Agents is the number of virtual agents (each a distinct machine id).
	Agents int
	// Rate is the check-ins per second aimed at over the whole fleet; 0
	// means as fast as Concurrency allows.
	Rate float64
	// Duration bounds the check-in phase (registration and the final
	// delivery of pending results come on top, each bounded).
	Duration time.Duration
	// Concurrency is the number of requests in flight at most; default 32.
	Concurrency int
	// Wait is the long-poll (?wait=) of each check-in, in seconds; 0 polls.
	Wait int
	// Answer makes the agents answer their commands: a verified command is
	// reported succeeded, a refused one failed. Without it commands are
	// only counted.
	Answer bool
	// HostnamePrefix names the agents PREFIX-000001…; default "fleetsim".
	HostnamePrefix string
	// Seed makes the machine ids; empty means random, so every run
	// registers new machines. The same seed again re-registers the same
	// machines (a reinstall, SPEC §4: same agent ids, one seat each).
	Seed string
	// AgentVersion is sent as agent_version and X-Agent-Version.
	AgentVersion string
	// RequestTimeout bounds each request other than a long-poll; default 10 s.
	RequestTimeout time.Duration
	// DrainTimeout bounds the delivery of results still unacknowledged when
	// the check-in phase ends; default 10 s.
	DrainTimeout time.Duration
	// HTTPClient carries the requests; nil means one sized for Concurrency.
	HTTPClient *http.Client
	// Progress, when set, receives a line every ProgressEvery (default 5 s).
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (c *Config) normalise() error {
	if _, err := client.ParseServerURL(c.ServerURL); err != nil {
		return err
	}
	if strings.TrimSpace(c.RegistrationToken) == "" {
		return errors.New("a registration token is required (create one with seats for every agent)")
	}
	if c.Agents < 1 {
		return fmt.Errorf("the number of agents must be at least 1, got %d", c.Agents)
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("the rate must be a number of check-ins per second, 0 or more, got %v", c.Rate)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("the duration must be positive, got %s", c.Duration)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("the concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.Wait < 0 || c.Wait > client.MaxLongPollWait {
		return fmt.Errorf("the long-poll wait must be 0 to %d seconds, got %d", client.MaxLongPollWait, c.Wait)
	}
	if c.HostnamePrefix == "" {
		c.HostnamePrefix = "fleetsim"
	}
	if c.AgentVersion == "" {
		c.AgentVersion = "fleetsim-" + version.Version
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 5 * time.Second
	}
	return nil
}

// Sim is a fleet of virtual agents. Register it once, Run it one or more
// times; the record of which command reached which agent spans all runs,
// so a command delivered again in a later run still counts as a duplicate.
type Sim struct {
	cfg    Config
	hc     *http.Client
	seed   []byte
	agents []*vagent // registered agents only, after Register

	mu        sync.Mutex
	delivered map[string]int  // command id -> deliveries
	completed map[string]bool // command ids whose result the server acknowledged
}

// vagent is one virtual agent. Its mutex makes it do one thing at a time,
// as a real agent does.
type vagent struct {
	mu        sync.Mutex
	index     int
	hostname  string
	machineID string
	c         *client.Client
	id        string
	refresh   string
	keys      map[string]ed25519.PublicKey
	pending   []pendingResult
	acks      []string // received command ids not yet acknowledged by a successful check-in
	failures  int
	notBefore time.Time
	lastOK    time.Time
}

type pendingResult struct {
	commandID string
	result    protocol.CommandResult
}

// New checks cfg and returns a simulator; nothing is sent yet.
func New(cfg Config) (*Sim, error) {
	if err := cfg.normalise(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, hc: cfg.HTTPClient, delivered: map[string]int{}, completed: map[string]bool{}}
	if s.hc == nil {
		tr := client.DefaultHTTPClient().Transport.(*http.Transport)
		tr.Proxy = nil // the server URL given, and nothing else, not even a proxy
		tr.MaxIdleConnsPerHost = cfg.Concurrency + 8
		tr.MaxIdleConns = cfg.Concurrency + 8
		s.hc = &http.Client{Transport: tr}
	}
	if cfg.Seed != "" {
		s.seed = []byte(cfg.Seed)
	} else {
		s.seed = make([]byte, 16)
		_, _ = rand.Read(s.seed)
	}
	return s, nil
}

// MachineID is the machine id of the agent with index i: SHA-256 of the
// seed and the index, as 64 lowercase hex characters.
func (s *Sim) MachineID(i int) string {
	h := sha256.New()
	h.Write(s.seed)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil))
}

// RegisterReport says how registration went.
type RegisterReport struct {
	Agents     int              `json:"agents"`
	Registered int              `json:"registered"`
	Elapsed    time.Duration    `json:"elapsed_ns"`
	Errors     map[string]int64 `json:"errors"`
}

// Register enrols every agent, Concurrency at a time, retrying temporary
// failures a few times. It fails only when no agent could register; the
// others then run without the ones that failed (see the report's errors).
func (s *Sim) Register(ctx context.Context) (RegisterReport, error) {
	if s.agents != nil {
		return RegisterReport{}, errors.New("fleetsim: the agents are already registered")
	}
	rep := RegisterReport{Agents: s.cfg.Agents, Errors: map[string]int64{}}
	start := time.Now()
	all := make([]*vagent, s.cfg.Agents)
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < min(s.cfg.Concurrency, s.cfg.Agents); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= s.cfg.Agents || ctx.Err() != nil {
					return
				}
				a, err := s.register(ctx, i)
				if err != nil {
					mu.Lock()
					rep.Errors[Classify(err)]++
					mu.Unlock()
					continue
				}
				all[i] = a
			}
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	for _, a := range all {
		if a != nil {
			s.agents = append(s.agents, a)
		}
	}
	rep.Registered = len(s.agents)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if len(s.agents) == 0 {
		s.agents = nil
		return rep, fmt.Errorf("fleetsim: no agent could register (%s)", formatCounts(rep.Errors))
	}
	return rep, nil
}

func (s *Sim) register(ctx context.Context, i int) (*vagent, error) {
	a := &vagent{index: i, hostname: fmt.Sprintf("%s-%06d", s.cfg.HostnamePrefix, i+1), machineID: s.MachineID(i)}
	c, err := client.New(s.cfg.ServerURL, client.Options{HTTPClient: s.hc, MachineID: a.machineID,
		AgentVersion: s.cfg.AgentVersion, RequestTimeout: s.cfg.RequestTimeout})
	if err != nil {
		return nil, err
	}
	a.c = c
	req := protocol.RegisterRequest{RegistrationToken: s.cfg.RegistrationToken, Hostname: a.hostname,
		OSType: protocol.OSLinux, OSVersion: "fleetsim", OSArch: "amd64", AgentVersion: s.cfg.AgentVersion, MachineID: a.machineID}
	var res *protocol.RegisterResponse
	for attempt := 0; ; attempt++ {
		res, err = c.Register(ctx, req)
		if err == nil || attempt == 4 || !temporary(err) {
			break
		}
		if sleepCtx(ctx, backoff(attempt)) != nil {
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	a.id, a.refresh = res.AgentID, res.RefreshToken
	c.SetCredentials(res.AgentID, res.Token)
	a.keys = map[string]ed25519.PublicKey{}
	for _, k := range res.PublicKeys {
		if k.Algorithm != "" && k.Algorithm != "ed25519" {
			continue
		}
		pub, err := signing.ParsePublicKey(k.PublicKey)
		if err != nil || signing.KeyID(pub) != k.KeyID {
			continue // a key whose id does not match is not pinned
		}
		a.keys[k.KeyID] = pub
	}
	if len(a.keys) == 0 {
		return nil, errors.New("fleetsim: the registration answer carries no usable signing key")
	}
	return a, nil
}

// AgentIDs lists the registered agents' ids, in agent order.
func (s *Sim) AgentIDs() []string {
	out := make([]string, len(s.agents))
	for i, a := range s.agents {
		out[i] = a.id
	}
	return out
}

// LastCheckIns returns, per agent id, when its last check-in succeeded
// (zero if never).
func (s *Sim) LastCheckIns() map[string]time.Time {
	out := make(map[string]time.Time, len(s.agents))
	for _, a := range s.agents {
		a.mu.Lock()
		out[a.id] = a.lastOK
		a.mu.Unlock()
	}
	return out
}

// Deliveries returns how many times each command id reached an agent, over
// every run so far.
func (s *Sim) Deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.delivered))
	for k, v := range s.delivered {
		out[k] = v
	}
	return out
}

// Completed returns the ids of the commands whose result the server
// acknowledged, over every run so far.
func (s *Sim) Completed() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.completed))
	for k := range s.completed {
		out[k] = true
	}
	return out
}

// Report is what one Run measured.
type Report struct {
	Agents   int           `json:"agents"`
	Duration time.Duration `json:"duration_ns"` // the check-in phase, as run
	// CheckIns succeeded; Failed got an error (see Errors).
	CheckIns int64 `json:"check_ins"`
	Failed   int64 `json:"failed_check_ins"`
	// Rate is successful check-ins per second over Duration.
	Rate float64       `json:"check_ins_per_second"`
	P50  time.Duration `json:"p50_ns"`
	P95  time.Duration `json:"p95_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	// Errors counts failed requests by kind ("check-in: …", "result: …",
	// "renew: …").
	Errors map[string]int64 `json:"errors"`
	// Delivered counts the distinct commands received in this run;
	// Duplicates the deliveries of a command id already received (in this
	// run or an earlier one): it must be 0.
	Delivered  int64 `json:"commands_delivered"`
	Duplicates int64 `json:"commands_duplicated"`
	// Refused counts commands that failed verification (signature, agent
	// id, expiry): each is reported failed, never run. It must be 0
	// against an honest server.
	Refused int64 `json:"commands_refused"`
	// Completed counts succeeded results the server acknowledged;
	// ReportedFailed the failed ones (refusals); ResultsGone the results
	// the server no longer accepted (404/409: the command was closed
	// meanwhile); ResultsUnsent the results still unacknowledged when the
	// run ended.
	Completed      int64 `json:"commands_completed"`
	ReportedFailed int64 `json:"results_failed"`
	ResultsGone    int64 `json:"results_gone"`
	ResultsUnsent  int64 `json:"results_unsent"`
}

// workerStats is one worker's tally, merged at the end.
type workerStats struct {
	lat                                               []time.Duration
	ok, failed                                        int64
	errs                                              map[string]int64
	delivered, dup, refused, completed, rfailed, gone int64
}

func newWorkerStats() *workerStats { return &workerStats{errs: map[string]int64{}} }

// Run registers the agents if that has not been done, then checks them in
// for Duration and lets the results still pending reach the server (up to
// DrainTimeout). Cancelling ctx aborts everything at once.
func (s *Sim) Run(ctx context.Context) (*Report, error) {
	if s.agents == nil {
		if _, err := s.Register(ctx); err != nil {
			return nil, err
		}
	}
	workers := s.cfg.Concurrency
	var (
		tickets chan struct{}
		cursor  atomic.Uint64
		wg      sync.WaitGroup
		stats   = make([]*workerStats, workers)
	)
	phase, endPhase := context.WithTimeout(ctx, s.cfg.Duration)
	defer endPhase()
	start := time.Now()
	if s.cfg.Rate > 0 {
		tickets = make(chan struct{}, workers)
		go pace(phase, s.cfg.Rate, tickets)
	}
	var progressCount atomic.Int64
	for w := range workers {
		stats[w] = newWorkerStats()
		wg.Add(1)
		go func(st *workerStats) {
			defer wg.Done()
			for phase.Err() == nil {
				if tickets != nil {
					select {
					case <-phase.Done():
						return
					case _, ok := <-tickets:
						if !ok {
							return
						}
					}
				}
				a := s.pick(&cursor)
				for a == nil && phase.Err() == nil {
					// Every agent is busy or backing off: keep the ticket.
					_ = sleepCtx(phase, 2*time.Millisecond)
					a = s.pick(&cursor)
				}
				if a == nil {
					return
				}
				// Requests use ctx, not phase: a check-in in flight when the
				// phase ends completes, so no command it claimed is dropped.
				if s.turn(ctx, a, st) {
					progressCount.Add(1)
				}
				a.mu.Unlock()
			}
		}(stats[w])
	}
	stopProgress := s.progress(phase, start, &progressCount)
	wg.Wait()
	stopProgress()
	elapsed := time.Since(start)
	s.drain(ctx, stats)

	rep := &Report{Agents: len(s.agents), Duration: elapsed, Errors: map[string]int64{}}
	var lat []time.Duration
	for _, st := range stats {
		lat = append(lat, st.lat...)
		rep.CheckIns += st.ok
		rep.Failed += st.failed
		rep.Delivered += st.delivered
		rep.Duplicates += st.dup
		rep.Refused += st.refused
		rep.Completed += st.completed
		rep.ReportedFailed += st.rfailed
		rep.ResultsGone += st.gone
		for k, v := range st.errs {
			rep.Errors[k] += v
		}
	}
	for _, a := range s.agents {
		a.mu.Lock()
		rep.ResultsUnsent += int64(len(a.pending))
		a.mu.Unlock()
	}
	if elapsed > 0 {
		rep.Rate = float64(rep.CheckIns) / elapsed.Seconds()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		rep.P50, rep.P95, rep.P99, rep.Max = percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99), lat[len(lat)-1]
	}
	return rep, ctx.Err()
}

// pace releases rate tickets per second into ch until ctx ends. A ticket
// not taken because every worker is busy waits; the achieved rate is then
// below the target, which the report shows.
func pace(ctx context.Context, rate float64, ch chan<- struct{}) {
	start := time.Now()
	var issued int64
	step := time.Duration(float64(time.Second) / rate)
	step = min(max(step, time.Millisecond), 50*time.Millisecond)
	for {
		due := int64(time.Since(start).Seconds() * rate)
		for ; issued < due; issued++ {
			select {
			case ch <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		if sleepCtx(ctx, step) != nil {
			return
		}
	}
}

// pick returns the next agent in round-robin order that is neither busy
// nor backing off, locked; nil if there is none.
func (s *Sim) pick(cursor *atomic.Uint64) *vagent {
	n := uint64(len(s.agents))
	now := time.Now()
	for range min(n, 64) {
		a := s.agents[(cursor.Add(1)-1)%n]
		if !a.mu.TryLock() {
			continue
		}
		if now.Before(a.notBefore) {
			a.mu.Unlock()
			continue
		}
		return a
	}
	return nil
}

// turn is one check-in of agent a (whose lock the caller holds): first the
// results it still owes the server, then the check-in, then its commands.
// It reports whether the check-in succeeded.
func (s *Sim) turn(ctx context.Context, a *vagent, st *workerStats) bool {
	if !s.flush(ctx, a, st) {
		return false
	}
	acks := a.acks[:min(len(a.acks), protocol.MaxAcksPerCheckIn)]
	t0 := time.Now()
	res, err := a.c.CheckInAck(ctx, s.cfg.Wait, acks)
	lat := time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			return false // aborted: not the server's doing
		}
		st.failed++
		st.errs["check-in: "+Classify(err)]++
		s.failedRequest(ctx, a, err, st)
		return false
	}
	st.ok++
	st.lat = append(st.lat, lat)
	a.failures, a.lastOK = 0, time.Now()
	a.acks = a.acks[len(acks):]
	for _, cmd := range res.Commands {
		s.handle(a, cmd, st)
	}
	s.flush(ctx, a, st)
	return true
}

// failedRequest applies what a real agent does after an error: renew its
// token on 401, honour Retry-After, otherwise back off (full jitter).
func (s *Sim) failedRequest(ctx context.Context, a *vagent, err error, st *workerStats) {
	a.failures++
	wait := backoff(a.failures - 1)
	var ae *client.APIError
	if errors.As(err, &ae) {
		if ae.RetryAfter > 0 {
			wait = ae.RetryAfter
		}
		if ae.StatusCode == http.StatusUnauthorized {
			rn, rerr := a.c.Renew(ctx, a.id, a.refresh)
			if rerr != nil {
				if ctx.Err() == nil {
					st.errs["renew: "+Classify(rerr)]++
				}
			} else {
				a.refresh = rn.RefreshToken
				a.c.SetCredentials(a.id, rn.Token)
				wait = 0
			}
		}
	}
	a.notBefore = time.Now().Add(wait)
}

// handle records a delivered command, verifies it and queues its result.
// Like redflag-agent, it acknowledges every command id it receives (a
// redelivery too) on its next check-in.
func (s *Sim) handle(a *vagent, cmd protocol.SignedCommand, st *workerStats) {
	if protocol.ValidCommandID(cmd.ID) && !slices.Contains(a.acks, cmd.ID) {
		a.acks = append(a.acks, cmd.ID)
	}
	s.mu.Lock()
	s.delivered[cmd.ID]++
	n := s.delivered[cmd.ID]
	s.mu.Unlock()
	if n > 1 {
		// A real agent finds the id in its executed list and runs nothing;
		// the result of the first delivery stands.
		st.dup++
		return
	}
	st.delivered++
	started := time.Now()
	refusal := a.verify(cmd, started)
	if refusal != nil {
		st.refused++
	}
	if !s.cfg.Answer {
		return
	}
	res := protocol.CommandResult{Status: protocol.StateSucceeded, Output: "fleetsim: " + cmd.Type + " simulated",
		StartedAt: started.UTC(), FinishedAt: time.Now().UTC(), Details: json.RawMessage(`{"simulated":true}`)}
	if refusal != nil {
		res.Status, res.ExitCode, res.Output = protocol.StateFailed, 1, refusal.Error()
		res.Details = json.RawMessage(`{"refused":true}`)
	}
	a.pending = append(a.pending, pendingResult{commandID: cmd.ID, result: res})
}

// verify applies SPEC §5 with the keys pinned at registration.
func (a *vagent) verify(cmd protocol.SignedCommand, now time.Time) error {
	pub, ok := a.keys[cmd.KeyID]
	if !ok {
		return fmt.Errorf("command %s is signed with key %q, which this agent has not pinned", cmd.ID, cmd.KeyID)
	}
	err := signing.VerifyCommand(pub, signing.CommandFields{AgentID: cmd.AgentID, ID: cmd.ID, Type: cmd.Type,
		Params: cmd.Params, IssuedAt: cmd.IssuedAt, ExpiresAt: cmd.ExpiresAt}, cmd.Signature)
	if err != nil {
		return fmt.Errorf("command %s: %w", cmd.ID, err)
	}
	if cmd.AgentID != a.id {
		return fmt.Errorf("command %s is for agent %s, not %s", cmd.ID, cmd.AgentID, a.id)
	}
	if now.After(time.Unix(cmd.ExpiresAt, 0).Add(ClockSkew)) {
		return fmt.Errorf("command %s expired at %s", cmd.ID, time.Unix(cmd.ExpiresAt, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// flush sends a's unacknowledged results in order. It stops at the first
// failure (the result stays queued, the agent backs off) and reports
// whether everything went.
func (s *Sim) flush(ctx context.Context, a *vagent, st *workerStats) bool {
	for len(a.pending) > 0 {
		p := a.pending[0]
		err := a.c.SendResult(ctx, p.commandID, p.result)
		switch {
		case err == nil:
			s.mu.Lock()
			first := !s.completed[p.commandID]
			s.completed[p.commandID] = true
			s.mu.Unlock()
			if first && p.result.Status == protocol.StateSucceeded {
				st.completed++
			} else if first {
				st.rfailed++
			}
		case errors.Is(err, client.ErrCommandGone):
			st.gone++
		default:
			if ctx.Err() != nil {
				return false
			}
			st.errs["result: "+Classify(err)]++
			s.failedRequest(ctx, a, err, st)
			return false
		}
		a.pending = a.pending[1:]
	}
	return true
}

// drain delivers the results still owed when the check-in phase ended,
// Concurrency agents at a time, for at most DrainTimeout.
func (s *Sim) drain(ctx context.Context, stats []*workerStats) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, st := range stats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for dctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(s.agents) {
					return
				}
				a := s.agents[i]
				a.mu.Lock()
				for len(a.pending) > 0 && dctx.Err() == nil {
					if s.flush(dctx, a, st) {
						break
					}
					wait := time.Until(a.notBefore)
					a.mu.Unlock()
					_ = sleepCtx(dctx, max(wait, 10*time.Millisecond))
					a.mu.Lock()
				}
				a.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (s *Sim) progress(ctx context.Context, start time.Time, n *atomic.Int64) func() {
	if s.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(s.cfg.ProgressEvery)
		defer t.Stop()
		last, lastT := int64(0), start
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				cur := n.Load()
				fmt.Fprintf(s.cfg.Progress, "fleetsim: %s: %d check-ins (%.0f/s now)\n",
					now.Sub(start).Round(time.Second), cur, float64(cur-last)/now.Sub(lastT).Seconds())
				last, lastT = cur, now
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// backoff is the full-jitter exponential backoff after the n-th
// consecutive failure (n from 0), capped at maxBackoff.
func backoff(n int) time.Duration {
	ceil := baseBackoff << min(n, 10)
	ceil = min(ceil, maxBackoff)
	return time.Duration(mrand.Int64N(int64(ceil)) + 1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func temporary(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	var ne *client.NetworkError
	return errors.As(err, &ne)
}

// Classify names the kind of a failed request for the report:
// "http_<status>_<code>" for an HTTP answer, else the network failure
// ("connection_refused", "connection_reset", "connection_closed",
// "timeout", "bad_response", "network").
func Classify(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		if ae.Code != "" {
			return fmt.Sprintf("http_%d_%s", ae.StatusCode, ae.Code)
		}
		return fmt.Sprintf("http_%d", ae.StatusCode)
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return "connection_closed"
	case client.IsTimeout(err):
		return "timeout"
	}
	var ne *client.NetworkError
	if errors.As(err, &ne) {
		if strings.Contains(ne.Err.Error(), "response") {
			return "bad_response"
		}
		return "network"
	}
	return "other"
}

func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "agents:              %d\n", r.Agents)
	fmt.Fprintf(w, "duration:            %s\n", r.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "check-ins:           %d ok, %d failed\n", r.CheckIns, r.Failed)
	fmt.Fprintf(w, "achieved:            %.1f check-ins/s\n", r.Rate)
	fmt.Fprintf(w, "latency:             p50 %s, p95 %s, p99 %s, max %s\n", ms(r.P50), ms(r.P95), ms(r.P99), ms(r.Max))
	fmt.Fprintf(w, "errors:              %s\n", formatCounts(r.Errors))
	fmt.Fprintf(w, "commands delivered:  %d\n", r.Delivered)
	fmt.Fprintf(w, "commands completed:  %d (results acknowledged; %d failed, %d no longer accepted, %d unsent)\n",
		r.Completed, r.ReportedFailed, r.ResultsGone, r.ResultsUnsent)
	fmt.Fprintf(w, "refused (bad sig):   %d\n", r.Refused)
	fmt.Fprintf(w, "duplicates:          %d (a command id delivered twice; must be 0)\n", r.Duplicates)
}

// Print writes the registration report for people.
func (r RegisterReport) Print(w io.Writer) {
	rate := 0.0
	if r.Elapsed > 0 {
		rate = float64(r.Registered) / r.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "registered:          %d of %d agents in %s (%.0f/s); errors: %s\n",
		r.Registered, r.Agents, r.Elapsed.Round(time.Millisecond), rate, formatCounts(r.Errors))
}
