package fleetsim_test

// Fault tests (issue 3, "Faults"): the server is killed in the middle of a
// fleet simulator run and restarted on the same database; PostgreSQL is
// restarted under load. Both are bounded to a few seconds each.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/fleetsim"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// queuer keeps queuing commands for slices of the fleet, through whichever
// server is current, until stopped. Requests that fail while the server is
// down are expected; the database is the ground truth afterwards.
type queuer struct {
	cur   atomic.Pointer[testserver.TS]
	stop  chan struct{}
	done  chan struct{}
	sent  atomic.Int64 // requests answered 201
	tried atomic.Int64
}

func startQueuer(ts *testserver.TS, admin string, agents []string, every time.Duration) *queuer {
	q := &queuer{stop: make(chan struct{}), done: make(chan struct{})}
	q.cur.Store(ts)
	types := []string{protocol.CmdCollectSpecs, protocol.CmdScanUpdates, protocol.CmdDisableHeartbeat}
	const slice = 10
	go func() {
		defer close(q.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-q.stop:
				return
			case <-t.C:
			}
			from := (i * slice) % len(agents)
			part := agents[from:min(from+slice, len(agents))]
			q.tried.Add(1)
			r, err := q.cur.Load().Try(testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin,
				Body: map[string]any{"agent_ids": part, "type": types[i%len(types)]}})
			if err == nil && r.Status == http.StatusCreated {
				q.sent.Add(1)
			}
		}
	}()
	return q
}

func (q *queuer) halt() { close(q.stop); <-q.done }

type runResult struct {
	rep *fleetsim.Report
	err error
}

func runAsync(sim *fleetsim.Sim) <-chan runResult {
	ch := make(chan runResult, 1)
	go func() {
		rep, err := sim.Run(context.Background())
		ch <- runResult{rep, err}
	}()
	return ch
}

// connectionErrors sums the check-in errors that are network failures.
func connectionErrors(rep *fleetsim.Report) int64 {
	var n int64
	for k, v := range rep.Errors {
		if strings.HasPrefix(k, "check-in: ") && !strings.HasPrefix(k, "check-in: http_") {
			n += v
		}
	}
	return n
}

// TestFaultServerKilledMidRun kills the server (listener and every
// connection closed at once, nothing answered) while 40 virtual agents
// check in and commands keep being queued, restarts it on the same data
// directory and database, and checks what happened to every command:
//
//   - no command id reached an agent twice;
//   - no command is lost: every one is succeeded, answered by the agent it
//     was for. A command whose claiming check-in the kill cut off after
//     the claim committed never reached its agent, so the agent never
//     acknowledged it: the restarted server offers it again after the
//     redelivery delay (1 s here), and it is delivered then, once;
//   - nothing is left pending: the agents came back by themselves (each
//     had a successful check-in after the restart) and every result reached
//     the server.
func TestFaultServerKilledMidRun(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) { killMidRun(t, e) })
	}
}

func killMidRun(t *testing.T, e storetest.Engine) {
	const agents, concurrency = 40, 8
	// A test-sized redelivery delay, so that commands cut off by the kill
	// are offered again within the run.
	ts := testserver.Start(t, e, quiet, func(c *config.Server) { c.CommandRedeliver = 1 })
	admin := ts.Login(t)
	reg, _ := ts.RegistrationToken(t, admin, agents)
	sim, err := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: agents, Rate: 400,
		Duration: 5 * time.Second, Concurrency: concurrency, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := sim.AgentIDs()
	q := startQueuer(ts, admin, ids, 20*time.Millisecond)
	run := runAsync(sim)

	time.Sleep(1500 * time.Millisecond)
	killAt := time.Now()
	ts.Kill()
	killed := time.Now()
	time.Sleep(400 * time.Millisecond) // down: the agents meet a closed port
	ts2 := ts.Restart(t)
	restarted := time.Now()
	q.cur.Store(ts2)
	t.Logf("killed in %s, restarted %s after the kill", killed.Sub(killAt).Round(time.Millisecond), restarted.Sub(killAt).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	q.halt() // the last ~1.5 s of the run only delivers what is queued
	res := <-run
	if res.err != nil {
		t.Fatal(res.err)
	}
	rep := res.rep
	settle(t, sim, ts2.Server.Store(), rep, time.Minute)
	var sb strings.Builder
	rep.Print(&sb)
	t.Logf("queued %d of %d bulk requests; report:\n%s", q.sent.Load(), q.tried.Load(), sb.String())

	if rep.Duplicates != 0 {
		t.Errorf("%d duplicate deliveries", rep.Duplicates)
	}
	if rep.Refused != 0 || rep.ResultsUnsent != 0 {
		t.Errorf("refused %d, results unsent %d; want 0", rep.Refused, rep.ResultsUnsent)
	}
	if connectionErrors(rep) == 0 {
		t.Errorf("no check-in met the dead server (errors %v): the kill did not happen mid-run", rep.Errors)
	}

	st := ts2.Server.Store()
	cmds := allCommands(t, st)
	delivered, completed := sim.Deliveries(), sim.Completed()
	agentOf := map[string]string{}
	var succeeded, afterRestart, lateSent int
	for _, c := range cmds {
		agentOf[c.ID] = c.AgentID
		n := delivered[c.ID]
		if n > 1 {
			t.Errorf("command %s delivered %d times", c.ID, n)
		}
		if c.Status != protocol.StateSucceeded || n != 1 || !completed[c.ID] {
			t.Errorf("command %s (%s, created %s, sent %v, acked %v): status %s, delivered %d, completed %v; want succeeded, delivered once",
				c.ID, c.Type, c.CreatedAt.Format(time.StampMilli), c.SentAt, c.AckedAt, c.Status, n, completed[c.ID])
			continue
		}
		succeeded++
		if c.CreatedAt.After(restarted) {
			afterRestart++
		}
		// Queued before the kill, (last) sent after the restart: those
		// the kill cut off, offered again, are among them.
		if c.CreatedAt.Before(killed) && c.SentAt != nil && c.SentAt.After(restarted) {
			lateSent++
		}
	}
	for id := range delivered {
		if _, ok := agentOf[id]; !ok {
			t.Errorf("the agents received command %s, which the server does not have", id)
		}
	}
	if succeeded < agents || afterRestart == 0 {
		t.Errorf("only %d commands went through (%d queued after the restart): the test did not exercise anything", succeeded, afterRestart)
	}
	t.Logf("%d commands: %d succeeded (%d queued after the restart, %d queued before the kill and sent after the restart)",
		len(cmds), succeeded, afterRestart, lateSent)
	// The agents recovered by themselves: each checked in after the restart.
	for id, at := range sim.LastCheckIns() {
		if !at.After(restarted) {
			t.Errorf("agent %s: last successful check-in %v, not after the restart", id, at)
		}
	}
	// (Not checked through last_seen_at: the server may coalesce those
	// writes, so a check-in right after the restart need not move it.)
}

// pgCluster is a throwaway PostgreSQL this test starts, stops and
// restarts itself (never the shared one).
type pgCluster struct {
	dir, data string
	port      int
	URL       string
}

const pgBin = "/usr/lib/postgresql/15/bin"

// startPostgres creates and starts a cluster as the postgres user in a
// temporary directory on a free port. Outside CI it skips when that is not
// possible (not root, no PostgreSQL binaries); in CI it fails.
func startPostgres(t *testing.T) *pgCluster {
	t.Helper()
	cannot := func(why string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: the PostgreSQL restart test must run, but %s", why)
		}
		t.Skipf("PostgreSQL restart test skipped: %s (it runs as root with %s, and always in CI)", why, pgBin)
	}
	if os.Geteuid() != 0 {
		cannot("it needs root to run initdb and pg_ctl as the postgres user")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		cannot("initdb is missing (apt-get install postgresql-15)")
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		cannot("runuser is missing")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		cannot("there is no postgres user")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "redflag-pgfault-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pg := &pgCluster{dir: dir, data: filepath.Join(dir, "data"), port: port,
		URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	t.Cleanup(func() {
		_ = pg.run(t, "pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if err := pg.run(t, "initdb", "-D", pg.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	pg.start(t)
	return pg
}

func (pg *pgCluster) run(t *testing.T, bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", filepath.Join(pgBin, bin)}, args...)...)
	cmd.Dir = pg.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return nil
}

func (pg *pgCluster) start(t *testing.T) {
	t.Helper()
	if err := pg.run(t, "pg_ctl", "-D", pg.data, "-l", filepath.Join(pg.dir, "log"), "-w", "-t", "30", "start",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", pg.port, pg.dir)); err != nil {
		t.Fatal(err)
	}
}

func (pg *pgCluster) stop(t *testing.T) {
	t.Helper()
	if err := pg.run(t, "pg_ctl", "-D", pg.data, "-m", "fast", "-w", "-t", "30", "stop"); err != nil {
		t.Fatal(err)
	}
}

// health returns the status of GET /health (0 when there is no answer).
func health(ts *testserver.TS) int {
	r, err := ts.Try(testserver.Req{Method: "GET", Path: "/health"})
	if err != nil {
		return 0
	}
	return r.Status
}

// waitHealth polls /health until it answers want, for at most d; it
// returns how long that took, or fails.
func waitHealth(t *testing.T, ts *testserver.TS, want int, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last := 0
	for time.Since(start) < d {
		if last = health(ts); last == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/health answered %d for %s, want %d", last, d, want)
	return 0
}

// TestFaultPostgresRestart restarts PostgreSQL (pg_ctl stop -m fast, then
// start: a restart split in two so the outage can be observed) under a
// fleet simulator run. While the database is away /health is 503 and the
// agents meet errors; once it is back, /health is 200 and the same server
// process, never restarted, serves check-ins and new commands again: every
// agent checks in successfully after the restart and every command
// queued after it is delivered once and completed.
func TestFaultPostgresRestart(t *testing.T) {
	pg := startPostgres(t)
	// The engine argument only picks the default URL, replaced here.
	ts := testserver.Start(t, "sqlite", quiet, func(c *config.Server) { c.DatabaseURL = pg.URL })
	admin := ts.Login(t)
	const agents = 30
	reg, _ := ts.RegistrationToken(t, admin, agents)
	sim, err := fleetsim.New(fleetsim.Config{ServerURL: ts.URL, RegistrationToken: reg, Agents: agents, Rate: 300,
		Duration: 6 * time.Second, Concurrency: 8, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := sim.AgentIDs()
	before := queue(t, ts, admin, protocol.CmdCollectSpecs, ids)
	run := runAsync(sim)

	time.Sleep(time.Second)
	downAt := time.Now()
	pg.stop(t)
	took := waitHealth(t, ts, http.StatusServiceUnavailable, 3*time.Second)
	t.Logf("PostgreSQL stopped in %s; /health 503 after %s more", time.Since(downAt).Round(time.Millisecond), took.Round(time.Millisecond))
	// It stays 503 while the database is away.
	var during []int
	for range 5 {
		time.Sleep(100 * time.Millisecond)
		during = append(during, health(ts))
	}
	for _, s := range during {
		if s != http.StatusServiceUnavailable {
			t.Errorf("/health answered %d while PostgreSQL was down (%v), want 503", s, during)
			break
		}
	}
	pg.start(t)
	upAt := time.Now()
	took = waitHealth(t, ts, http.StatusOK, 10*time.Second)
	t.Logf("PostgreSQL down for %s; /health 200 %s after it was back", upAt.Sub(downAt).Round(time.Millisecond), took.Round(time.Millisecond))
	// The same server takes writes again: queue the next wave through it.
	var after []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := ts.Try(testserver.Req{Method: "POST", Path: "/api/v1/commands", Token: admin,
			Body: map[string]any{"agent_ids": ids, "type": protocol.CmdScanUpdates}})
		if err == nil && r.Status == http.StatusCreated {
			var out struct {
				Commands []struct {
					ID string `json:"id"`
				} `json:"commands"`
			}
			r.JSON(t, &out)
			for _, c := range out.Commands {
				after = append(after, c.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queuing commands after the restart: %v %d %s", err, r.Status, r.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res := <-run
	if res.err != nil {
		t.Fatal(res.err)
	}
	rep := res.rep
	settle(t, sim, ts.Server.Store(), rep, time.Minute)
	var sb strings.Builder
	rep.Print(&sb)
	t.Logf("report:\n%s", sb.String())
	if rep.Duplicates != 0 || rep.Refused != 0 || rep.ResultsUnsent != 0 {
		t.Errorf("duplicates %d, refused %d, results unsent %d; want 0", rep.Duplicates, rep.Refused, rep.ResultsUnsent)
	}
	if rep.Failed == 0 {
		t.Errorf("no check-in failed while PostgreSQL was down: errors %v", rep.Errors)
	}
	completed := sim.Completed()
	for _, id := range append(before, after...) {
		c, err := ts.Server.Store().GetCommand(context.Background(), id)
		if err != nil || c.Status != protocol.StateSucceeded || !completed[id] {
			t.Errorf("command %s: status %q (err %v), completed by the agent %v; want succeeded", id, c.Status, err, completed[id])
		}
	}
	for id, at := range sim.LastCheckIns() {
		if !at.After(upAt) {
			t.Errorf("agent %s: last successful check-in %v, not after PostgreSQL came back", id, at)
		}
	}
	if s := health(ts); s != http.StatusOK {
		t.Errorf("/health at the end: %d", s)
	}
}
