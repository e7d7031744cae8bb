package server_test

// Two server replicas on one PostgreSQL database (issue 3, "Several
// replicas"): a command is handed out exactly once whichever replica the
// check-ins reach, a long-poll held on one replica is answered when the
// command is queued on the other, and the background jobs never run on both
// at the same time. PostgreSQL only: SQLite has a single server process.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/jobs"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/signing"
	"github.com/redflaghq/redflag/internal/store"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// replicaSecret is the JWT secret both replicas share (as they must).
const replicaSecret = "replica-test-jwt-secret-0123456789abcdef"

// postgresURL returns a fresh PostgreSQL database URL, or skips the test
// (fails in CI) when there is no PostgreSQL to test against.
func postgresURL(t *testing.T) string {
	t.Helper()
	if os.Getenv(storetest.EnvPostgres) == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set in CI: the replica tests must run there", storetest.EnvPostgres)
		}
		t.Skipf("replica tests need PostgreSQL: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", storetest.EnvPostgres)
	}
	return storetest.URL(t, "postgres")
}

// startReplicas runs two servers on one database, sharing the JWT secret
// and the signing key, as a deployment of replicas must.
func startReplicas(t *testing.T, url string) (r1, r2 *testserver.TS) {
	t.Helper()
	shared := func(dir string) func(*config.Server) {
		return func(c *config.Server) {
			c.DatabaseURL, c.JWTSecret, c.DataDir, c.LogLevel = url, replicaSecret, dir, "warn"
		}
	}
	dir1, dir2 := t.TempDir(), t.TempDir()
	r1 = testserver.Start(t, "postgres", shared(dir1))
	key, err := os.ReadFile(filepath.Join(dir1, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "signing.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	r2 = testserver.Start(t, "postgres", shared(dir2))
	return r1, r2
}

// registerAgents enrols n agents, alternating between the replicas.
func registerAgents(t *testing.T, rs []*testserver.TS, regToken string, n int) []testserver.Agent {
	t.Helper()
	out := make([]testserver.Agent, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := fmt.Sprintf("replica-%03d", i)
			mid := testserver.MachineID(host + t.Name())
			r, err := rs[i%len(rs)].Try(testserver.Req{Method: "POST", Path: "/api/v1/agents/register",
				Body: testserver.RegisterBody(regToken, host, mid)})
			if err == nil && r.Status != http.StatusCreated {
				err = fmt.Errorf("status %d: %s", r.Status, r.Body)
			}
			if err != nil {
				errs <- fmt.Errorf("registering %s: %w", host, err)
				return
			}
			var res protocol.RegisterResponse
			r.JSON(t, &res)
			out[i] = testserver.Agent{ID: res.AgentID, Token: res.Token, RefreshToken: res.RefreshToken, MachineID: mid}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

func queueFor(t *testing.T, ts *testserver.TS, admin, typ string, agentIDs []string) map[string]string {
	t.Helper()
	var out struct {
		Commands []struct {
			ID      string `json:"id"`
			AgentID string `json:"agent_id"`
			Status  string `json:"status"`
		} `json:"commands"`
	}
	ts.Expect(t, http.StatusCreated, testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin,
		Body: map[string]any{"agent_ids": agentIDs, "type": typ}}).JSON(t, &out)
	cmds := map[string]string{}
	for _, c := range out.Commands {
		if c.Status != protocol.StatePending {
			t.Fatalf("queued command %s is %s", c.ID, c.Status)
		}
		cmds[c.ID] = c.AgentID
	}
	if len(cmds) != len(agentIDs) {
		t.Fatalf("queued %d commands for %d agents", len(cmds), len(agentIDs))
	}
	return cmds
}

// TestReplicasDeliverExactlyOnce: 50 agents, a command queued for each
// through replica 1, then every agent checks in 8 times at once, 4 on each
// replica; over three rounds (three command types) every command must be
// delivered exactly once in total, to its own agent, and end up sent.
func TestReplicasDeliverExactlyOnce(t *testing.T) {
	url := postgresURL(t)
	r1, r2 := startReplicas(t, url)
	replicas := []*testserver.TS{r1, r2}
	admin := r1.Login(t)
	reg, _ := r1.RegistrationToken(t, admin, 50)
	agents := registerAgents(t, replicas, reg, 50)
	ids := make([]string, len(agents))
	for i, a := range agents {
		ids[i] = a.ID
	}
	const perAgent = 8 // concurrent check-ins per agent and round, half on each replica
	for round, typ := range []string{protocol.CmdCollectSpecs, protocol.CmdScanUpdates, protocol.CmdDisableHeartbeat} {
		queued := queueFor(t, r1, admin, typ, ids)
		var (
			mu        sync.Mutex
			delivered = map[string]int{}
			byReplica [2]int
			wrong     []string
			failures  []string
			start     = make(chan struct{})
			wg        sync.WaitGroup
		)
		for _, ag := range agents {
			for k := range perAgent {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					rep := k % 2
					r, err := replicas[rep].Try(testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands",
						Token: ag.Token, MachineID: ag.MachineID})
					mu.Lock()
					defer mu.Unlock()
					if err != nil || r.Status != http.StatusOK {
						failures = append(failures, fmt.Sprintf("replica %d: %v %d %s", rep+1, err, r.Status, r.Body))
						return
					}
					var ci protocol.CheckInResponse
					r.JSON(t, &ci)
					for _, c := range ci.Commands {
						delivered[c.ID]++
						byReplica[rep]++
						if c.AgentID != ag.ID || queued[c.ID] != ag.ID {
							wrong = append(wrong, c.ID)
						}
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("round %d: %d check-ins failed, e.g. %s", round, len(failures), failures[0])
		}
		if len(wrong) > 0 {
			t.Errorf("round %d: commands delivered to the wrong agent: %v", round, wrong)
		}
		for id := range queued {
			if n := delivered[id]; n != 1 {
				t.Errorf("round %d: command %s delivered %d times, want exactly 1", round, id, n)
			}
		}
		if len(delivered) != len(queued) {
			t.Errorf("round %d: %d distinct commands delivered, %d queued", round, len(delivered), len(queued))
		}
		t.Logf("round %d (%s): %d check-ins, %d commands delivered once each (%d by replica 1, %d by replica 2)",
			round, typ, len(agents)*perAgent, len(delivered), byReplica[0], byReplica[1])
		for id := range queued {
			c, err := r2.Server.Store().GetCommand(context.Background(), id)
			if err != nil || c.Status != protocol.StateSent || c.SentAt == nil {
				t.Errorf("round %d: command %s: status %q, err %v; want sent", round, id, c.Status, err)
			}
		}
	}
}

// TestReplicasLongPoll: an agent long-polls replica 2 with wait=10; a
// command queued through replica 1 reaches it (PostgreSQL NOTIFY between
// the replicas) well before the wait ends.
func TestReplicasLongPoll(t *testing.T) {
	url := postgresURL(t)
	r1, r2 := startReplicas(t, url)
	admin := r1.Login(t)
	reg, _ := r1.RegistrationToken(t, admin, 1)
	ag := r1.RegisterAgent(t, reg, "long-poller")
	pub, err := signing.ParsePublicKey(publicKey(t, r2))
	if err != nil {
		t.Fatal(err)
	}

	type answer struct {
		ci  protocol.CheckInResponse
		err error
		at  time.Time
	}
	got := make(chan answer, 1)
	polled := time.Now()
	go func() {
		r, err := r2.Try(testserver.Req{Method: "GET", Path: "/api/v1/agents/" + ag.ID + "/commands?wait=10",
			Token: ag.Token, MachineID: ag.MachineID})
		a := answer{err: err, at: time.Now()}
		if err == nil && r.Status != http.StatusOK {
			a.err = fmt.Errorf("status %d: %s", r.Status, r.Body)
		}
		if a.err == nil {
			r.JSON(t, &a.ci)
		}
		got <- a
	}()
	// Let the long-poll settle into its wait on replica 2.
	time.Sleep(500 * time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("the long-poll answered before any command existed: %+v", a)
	default:
	}
	created := time.Now()
	queued := queueFor(t, r1, admin, protocol.CmdCollectSpecs, []string{ag.ID})
	var a answer
	select {
	case a = <-got:
	case <-time.After(12 * time.Second):
		t.Fatal("the long-poll did not answer")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	latency := a.at.Sub(created)
	t.Logf("long-poll on replica 2 answered %s after the command was queued on replica 1 (held %s in all)",
		latency.Round(time.Millisecond), a.at.Sub(polled).Round(time.Millisecond))
	if len(a.ci.Commands) != 1 || queued[a.ci.Commands[0].ID] != ag.ID {
		t.Fatalf("long-poll answer %+v, queued %v", a.ci, queued)
	}
	if latency >= 5*time.Second {
		t.Errorf("the command took %s to reach the long-poll on the other replica, want < 5 s", latency)
	}
	c := a.ci.Commands[0]
	if err := signing.VerifyCommand(pub, signing.CommandFields{AgentID: c.AgentID, ID: c.ID, Type: c.Type, Params: c.Params,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}, c.Signature); err != nil {
		t.Errorf("command signed on replica 1 does not verify with replica 2's published key: %v", err)
	}
}

func publicKey(t *testing.T, ts *testserver.TS) string {
	t.Helper()
	var keys protocol.PublicKeys
	ts.Expect(t, http.StatusOK, testserver.Req{Method: "GET", Path: "/api/v1/public-keys"}).JSON(t, &keys)
	if len(keys.Keys) != 1 {
		t.Fatalf("public keys: %+v", keys)
	}
	return keys.Keys[0].PublicKey
}

// TestReplicaJobsNeverOverlap: the job runners of two replicas (two store
// handles, two connection pools, on one database) run their jobs many
// times concurrently, with 4 goroutines each, until each replica has run
// them 40 times (at most 3 s); the runs recorded inside the lock (each held
// for 2 ms to widen any overlap) must never overlap, and both replicas must
// have had turns.
func TestReplicaJobsNeverOverlap(t *testing.T) {
	url := postgresURL(t)
	type run struct {
		replica    int
		start, end time.Time
	}
	var (
		mu   sync.Mutex
		runs []run
	)
	var inside atomic.Int32
	var overlapSeen atomic.Bool
	runners := make([]*jobs.Runner, 2)
	for i := range runners {
		st, err := store.Open(context.Background(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		runners[i] = &jobs.Runner{Store: st, Log: slog.New(slog.DiscardHandler), Interval: time.Hour,
			Defaults: store.DefaultSettings(300),
			OnRun: func(job string, start, end time.Time) {
				// Called while the job's lock is held.
				if inside.Add(1) > 1 {
					overlapSeen.Store(true)
				}
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				mu.Lock()
				runs = append(runs, run{replica: i, start: start, end: time.Now()})
				mu.Unlock()
			}}
	}
	var wg sync.WaitGroup
	var attempts atomic.Int64
	deadline := time.Now().Add(3 * time.Second)
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		var per [2]int
		for _, r := range runs {
			per[r.replica]++
		}
		return per[0] >= 40 && per[1] >= 40
	}
	for i, r := range runners {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) && !enough() {
					attempts.Add(1)
					if err := r.RunOnce(context.Background()); err != nil {
						t.Errorf("replica %d: %v", i+1, err)
						return
					}
					time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
				}
			}()
		}
	}
	wg.Wait()
	slices.SortFunc(runs, func(a, b run) int { return a.start.Compare(b.start) })
	var per [2]int
	for i, r := range runs {
		per[r.replica]++
		if i > 0 && r.start.Before(runs[i-1].end) {
			t.Errorf("run %d (replica %d, %s) started before run %d (replica %d) ended (%s)",
				i, r.replica+1, r.start.Format(time.StampMicro), i-1, runs[i-1].replica+1, runs[i-1].end.Format(time.StampMicro))
		}
	}
	if overlapSeen.Load() {
		t.Error("two job runs were inside the lock at the same time")
	}
	t.Logf("%d attempts, %d runs (replica 1: %d, replica 2: %d), the others found the lock taken", attempts.Load(), len(runs), per[0], per[1])
	if per[0] < 10 || per[1] < 10 {
		t.Errorf("runs per replica %v: the test did not exercise both replicas", per)
	}
}
