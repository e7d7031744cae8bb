package server_test

// Load benchmarks against the real server on loopback, on every engine
// (make bench; docs/PERFORMANCE.md holds the figures and the targets).
// Each benchmark runs ~48 concurrent HTTP clients, records the latency of
// every request and reports the achieved rate (req/s) and the p50 and p99
// latencies (p50_ms, p99_ms). Any non-2xx answer fails the benchmark. There
// are no timing assertions here: the targets are checked by reading the
// report.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// benchClients is the number of concurrent clients each benchmark aims at.
const benchClients = 48

// benchAgents is how many registered agents the check-in load is spread over.
const benchAgents = 1000

// maxSeats is the most seats one registration token may have (api.maxSeats).
const maxSeats = 100000

// startBench runs a server for load: agent rate limit off (testserver's
// default) and logging at warn so it does not dominate.
func startBench(b *testing.B, e storetest.Engine) *testserver.TS {
	b.Helper()
	return testserver.Start(b, e, func(c *config.Server) { c.LogLevel = "warn" })
}

// parallelism returns the b.SetParallelism factor giving about
// benchClients goroutines, and that goroutine count.
func parallelism() (factor, clients int) {
	procs := runtime.GOMAXPROCS(0)
	factor = max(1, (benchClients+procs/2)/procs)
	return factor, factor * procs
}

// load runs op on b.N requests over the parallel clients and reports the
// rate and latency percentiles. op is called with the client's index (0 to
// clients-1, fixed for the goroutine) and the global operation number; it
// returns the HTTP status and body, or an error.
func load(b *testing.B, op func(client int, n int64) (testserver.Resp, error)) {
	b.Helper()
	factor, _ := parallelism()
	b.SetParallelism(factor)
	var (
		mu        sync.Mutex
		all       = make([]time.Duration, 0, b.N)
		nextIndex atomic.Int64
		nextOp    atomic.Int64
		failed    atomic.Bool
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		client := int(nextIndex.Add(1) - 1)
		lat := make([]time.Duration, 0, b.N/benchClients+1)
		for pb.Next() {
			if failed.Load() {
				continue // drain quickly after a failure
			}
			n := nextOp.Add(1) - 1
			t0 := time.Now()
			r, err := op(client, n)
			lat = append(lat, time.Since(t0))
			if err != nil {
				failed.Store(true)
				b.Errorf("request %d: %v", n, err)
				continue
			}
			if r.Status < 200 || r.Status > 299 {
				failed.Store(true)
				b.Errorf("request %d: status %d, body %s", n, r.Status, r.Body)
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() {
		b.FailNow()
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		i := int(p * float64(len(all)-1))
		return float64(all[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// registerMany enrols n agents with up to 32 requests in flight.
func registerMany(b *testing.B, ts *testserver.TS, admin, label string, n int) []testserver.Agent {
	b.Helper()
	out := make([]testserver.Agent, n)
	for first := 0; first < n; first += maxSeats {
		count := min(maxSeats, n-first)
		reg, _ := ts.RegistrationToken(b, admin, count)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		errs := make(chan error, count)
		for i := first; i < first+count; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				mid := testserver.MachineID(fmt.Sprintf("%s-%d", label, i))
				r, err := ts.Try(testserver.Req{Method: "POST", Path: "/api/v1/agents/register",
					Body: testserver.RegisterBody(reg, fmt.Sprintf("%s-%d", label, i), mid)})
				if err == nil && r.Status != http.StatusCreated {
					err = fmt.Errorf("status %d: %s", r.Status, r.Body)
				}
				if err != nil {
					errs <- fmt.Errorf("registering agent %d: %w", i, err)
					return
				}
				var res protocol.RegisterResponse
				if err := json.Unmarshal(r.Body, &res); err != nil {
					errs <- err
					return
				}
				out[i] = testserver.Agent{ID: res.AgentID, Token: res.Token, RefreshToken: res.RefreshToken, MachineID: mid}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkRegister: each operation registers a new machine id with a
// registration token that has seats for all of them.
func BenchmarkRegister(b *testing.B) {
	for _, e := range storetest.Engines(b) {
		ts := startBench(b, e)
		admin := ts.Login(b)
		var round atomic.Int64
		b.Run(string(e), func(b *testing.B) {
			// Tokens for this round: one per maxSeats registrations.
			tokens := make([]string, 0, b.N/maxSeats+1)
			for left := b.N; left > 0; left -= maxSeats {
				t, _ := ts.RegistrationToken(b, admin, min(left, maxSeats))
				tokens = append(tokens, t)
			}
			r := round.Add(1)
			load(b, func(_ int, n int64) (testserver.Resp, error) {
				host := fmt.Sprintf("bench-%d-%d", r, n)
				return ts.Try(testserver.Req{Method: "POST", Path: "/api/v1/agents/register",
					Body: testserver.RegisterBody(tokens[n/maxSeats], host, testserver.MachineID(host))})
			})
		})
	}
}

// BenchmarkRenew: each client owns an agent and chains renewals, so every
// operation presents the refresh token the previous one handed out.
func BenchmarkRenew(b *testing.B) {
	for _, e := range storetest.Engines(b) {
		ts := startBench(b, e)
		admin := ts.Login(b)
		_, clients := parallelism()
		agents := registerMany(b, ts, admin, "renew", clients)
		b.Run(string(e), func(b *testing.B) {
			load(b, func(client int, _ int64) (testserver.Resp, error) {
				ag := &agents[client] // owned by this goroutine for the round
				r, err := ts.Try(testserver.Req{Method: "POST", Path: "/api/v1/agents/renew", MachineID: ag.MachineID,
					Body: protocol.RenewRequest{AgentID: ag.ID, RefreshToken: ag.RefreshToken}})
				if err != nil || r.Status != http.StatusOK {
					return r, err
				}
				var rn protocol.RenewResponse
				if err := json.Unmarshal(r.Body, &rn); err != nil {
					return r, err
				}
				if rn.RefreshToken == "" || rn.RefreshToken == ag.RefreshToken {
					return r, fmt.Errorf("renewal did not slide the refresh token: %s", r.Body)
				}
				ag.Token, ag.RefreshToken = rn.Token, rn.RefreshToken
				return r, nil
			})
		})
	}
}

// BenchmarkAgentRequest: the authenticated check-in (JWT + X-Machine-ID),
// spread round-robin over benchAgents registered agents. Each agent checks
// in many times a second here, so the server's last-seen coalescing
// (store.SeenCoalesce) turns almost every request into reads only; see
// BenchmarkAgentCheckInWrite for check-ins that record last-seen.
func BenchmarkAgentRequest(b *testing.B) {
	for _, e := range storetest.Engines(b) {
		ts := startBench(b, e)
		admin := ts.Login(b)
		agents := registerMany(b, ts, admin, "checkin", benchAgents)
		reqs := make([]testserver.Req, len(agents))
		for i, ag := range agents {
			reqs[i] = testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: ag.Token,
				MachineID: ag.MachineID, Header: map[string]string{protocol.HeaderAgentVersion: "0.1.0"}}
		}
		b.Run(string(e), func(b *testing.B) {
			load(b, func(_ int, n int64) (testserver.Resp, error) {
				return ts.Try(reqs[n%int64(len(reqs))])
			})
		})
	}
}

// BenchmarkAgentCheckInWrite is BenchmarkAgentRequest with every check-in
// writing, as in a real fleet where an agent checks in every few minutes
// and so always finds its last-seen stale: each request of an agent sends
// an X-Agent-Version it has not sent before, which the server records in
// the same UPDATE as last-seen.
func BenchmarkAgentCheckInWrite(b *testing.B) {
	for _, e := range storetest.Engines(b) {
		ts := startBench(b, e)
		admin := ts.Login(b)
		agents := registerMany(b, ts, admin, "checkin-write", benchAgents)
		var visits atomic.Int64 // continues across rounds so versions never repeat
		b.Run(string(e), func(b *testing.B) {
			load(b, func(_ int, _ int64) (testserver.Resp, error) {
				v := visits.Add(1) - 1
				ag := agents[v%int64(len(agents))]
				return ts.Try(testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands", Token: ag.Token,
					MachineID: ag.MachineID, Header: map[string]string{protocol.HeaderAgentVersion: fmt.Sprintf("1.0.%d", v/int64(len(agents)))}})
			})
		})
	}
}
