package server_test

// Fleet-scale benchmarks of issue 3 (make bench; docs/PERFORMANCE.md,
// section "Issue 3: fleet-scale figures", holds the figures and targets):
//
//   - BenchmarkFleetCheckIns: 10,000 agents registered through the API by
//     internal/fleetsim, then fleetsim's sustained plain check-ins (no
//     long-poll) at the highest rate benchFleetConcurrency requests in
//     flight allow. Target: ≥ 5,000 check-ins/s with p99 ≤ 25 ms.
//   - BenchmarkBulkQueue10k: one POST /api/v1/commands queuing collect_specs
//     to 10,000 agents. Target: ≤ 2 s per request.
//
// As in bench_test.go there are no timing assertions: the targets are
// checked by reading the report.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/fleetsim"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// fleetAgents is the size of the simulated fleet (issue 3: 10,000).
const fleetAgents = 10000

// benchFleetConcurrency is fleetsim's number of requests in flight.
const benchFleetConcurrency = 48

// defaultFleetDuration is the check-in phase when -benchtime is a count
// (e.g. 1x) or shorter than it.
const defaultFleetDuration = 10 * time.Second

// fleetDuration returns how long BenchmarkFleetCheckIns checks in: the
// environment variable REDFLAG_BENCH_FLEET_DURATION (a Go duration) if set,
// else -benchtime when it is a duration of at least defaultFleetDuration,
// else defaultFleetDuration.
func fleetDuration(b *testing.B) time.Duration {
	if v := os.Getenv("REDFLAG_BENCH_FLEET_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("REDFLAG_BENCH_FLEET_DURATION=%q is not a positive duration", v)
		}
		return d
	}
	if f := flag.Lookup("test.benchtime"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > defaultFleetDuration {
			return d
		}
	}
	return defaultFleetDuration
}

// BenchmarkFleetCheckIns: one fleetsim run per engine; b.N is ignored (the
// run lasts fleetDuration, so the benchmark framework stops at b.N = 1).
// Reported: checkins/s, p50_ms, p95_ms, p99_ms, and reg_s (time to
// register the 10,000 agents through the API, not part of the rate).
//
// fleetsim checks the agents in round-robin, so at 5,000/s each agent
// checks in every ~2 s and the server's last-seen coalescing
// (store.SeenCoalesce, 30 s) makes most check-ins reads; see
// BenchmarkAgentCheckInWrite for check-ins that all write.
func BenchmarkFleetCheckIns(b *testing.B) {
	for _, e := range storetest.Engines(b) {
		b.Run(string(e), func(b *testing.B) {
			ts := testserver.Start(b, e, func(c *config.Server) { c.LogLevel = "warn"; c.AgentRateLimit = 0 })
			admin := ts.Login(b)
			reg, _ := ts.RegistrationToken(b, admin, fleetAgents)
			sim, err := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: fleetAgents,
				Duration: fleetDuration(b), Concurrency: benchFleetConcurrency, Wait: 0, Answer: true,
				HostnamePrefix: "fleet-" + string(e)})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			rr, err := sim.Register(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if rr.Registered != fleetAgents {
				b.Fatalf("registered %d of %d agents: %v", rr.Registered, fleetAgents, rr.Errors)
			}
			b.Logf("%s: registered %d agents through the API in %s (%.0f/s)", e, rr.Registered,
				rr.Elapsed.Round(time.Millisecond), float64(rr.Registered)/rr.Elapsed.Seconds())
			b.ResetTimer()
			rep, err := sim.Run(ctx)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if rep.Failed > 0 || len(rep.Errors) > 0 || rep.Duplicates > 0 || rep.Refused > 0 {
				b.Fatalf("fleetsim run not clean: %d failed check-ins, errors %v, %d duplicates, %d refused",
					rep.Failed, rep.Errors, rep.Duplicates, rep.Refused)
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.Logf("%s: %d check-ins in %s: %.0f/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms", e,
				rep.CheckIns, rep.Duration.Round(time.Millisecond), rep.Rate, ms(rep.P50), ms(rep.P95), ms(rep.P99), ms(rep.Max))
			b.ReportMetric(rep.Rate, "checkins/s")
			b.ReportMetric(ms(rep.P50), "p50_ms")
			b.ReportMetric(ms(rep.P95), "p95_ms")
			b.ReportMetric(ms(rep.P99), "p99_ms")
			b.ReportMetric(rr.Elapsed.Seconds(), "reg_s")
		})
	}
}

// BenchmarkBulkQueue10k: each operation is one POST /api/v1/commands
// queuing collect_specs to the same 10,000 registered agents. A pending
// command of a type is unique per agent (a second request would return the
// first), so between operations, with the timer stopped, every agent
// checks in once (claim: pending → sent) and the next operation queues
// 10,000 fresh commands; the benchmark checks they are fresh. Reported:
// s/req (wall time of the request, answer body read), and the setup time
// reg_s.
func BenchmarkBulkQueue10k(b *testing.B) {
	for _, e := range storetest.Engines(b) {
		b.Run(string(e), func(b *testing.B) {
			ts := testserver.Start(b, e, func(c *config.Server) { c.LogLevel = "warn"; c.AgentRateLimit = 0 })
			admin := ts.Login(b)
			t0 := time.Now()
			agents := registerMany(b, ts, admin, "bulk-"+string(e), fleetAgents)
			reg := time.Since(t0)
			ids := make([]string, len(agents))
			for i, a := range agents {
				ids[i] = a.ID
			}
			body := map[string]any{"agent_ids": ids, "type": protocol.CmdCollectSpecs}
			seen := make(map[string]bool, fleetAgents*2)
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				r, err := ts.Try(testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin, Body: body})
				d := time.Since(start)
				b.StopTimer()
				total += d
				if err != nil {
					b.Fatal(err)
				}
				if r.Status != http.StatusCreated {
					b.Fatalf("status %d: %.300s", r.Status, r.Body)
				}
				var out struct {
					Commands []struct {
						ID     string `json:"id"`
						Status string `json:"status"`
					} `json:"commands"`
				}
				r.JSON(b, &out)
				if len(out.Commands) != fleetAgents {
					b.Fatalf("%d commands queued, want %d", len(out.Commands), fleetAgents)
				}
				for _, c := range out.Commands {
					if seen[c.ID] || c.Status != protocol.StatePending {
						b.Fatalf("command %s (%s) is not a fresh pending command", c.ID, c.Status)
					}
					seen[c.ID] = true
				}
				claimAll(b, ts, agents)
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(total.Seconds()/float64(b.N), "s/req")
			b.ReportMetric(reg.Seconds(), "reg_s")
		})
	}
}

// claimAll checks every agent in once (32 at a time) and requires each to
// receive exactly one command, so none of them stays pending.
func claimAll(b *testing.B, ts *testserver.TS, agents []testserver.Agent) {
	b.Helper()
	var wg sync.WaitGroup
	work := make(chan testserver.Agent)
	var mu sync.Mutex
	var errs []string
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				r, err := ts.Try(testserver.Req{Method: "GET", Path: "/api/v1/agents/" + a.ID + "/commands", Token: a.Token,
					MachineID: a.MachineID, Header: map[string]string{protocol.HeaderAgentVersion: "0.1.0"}})
				if err == nil && r.Status != http.StatusOK {
					err = fmt.Errorf("status %d: %.200s", r.Status, r.Body)
				}
				var res protocol.CheckInResponse
				if err == nil {
					if err = json.Unmarshal(r.Body, &res); err == nil && len(res.Commands) != 1 {
						err = fmt.Errorf("%d commands delivered, want 1", len(res.Commands))
					}
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("agent %s: %v", a.ID, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, a := range agents {
		work <- a
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("claiming the queued commands: %d errors, first: %s", len(errs), strings.Join(errs[:min(3, len(errs))], "; "))
	}
}
