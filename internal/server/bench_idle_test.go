package server_test

// BenchmarkIdleAgent (issue 3): the footprint of a real, idle redflag-agent
// process. Target: ≤ 20 MB RSS and ≤ 1 s CPU per hour. See
// docs/PERFORMANCE.md, section "Issue 3: fleet-scale figures".

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/storetest"
	"github.com/redflaghq/redflag/internal/testserver"
)

// idleSettle is the start of an idle run left out of the CPU rate: the
// agent's start-up (config, state, first check-in) is a one-off cost,
// reported separately as startup_cpu_s.
const idleSettle = 5 * time.Second

// idleDuration is how long the agent is watched: REDFLAG_BENCH_IDLE_DURATION
// (a Go duration) or 60 s.
func idleDuration(b *testing.B) time.Duration {
	if v := os.Getenv("REDFLAG_BENCH_IDLE_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= idleSettle {
			b.Fatalf("REDFLAG_BENCH_IDLE_DURATION=%q is not a duration longer than %s", v, idleSettle)
		}
		return d
	}
	return 120 * time.Second
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clkTck = 100

// procCPU returns utime+stime of pid, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// procSchedCPU returns the CPU time of pid's threads in nanoseconds, the
// sum of the first field of /proc/<pid>/task/*/schedstat.
func procSchedCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no /proc/%d/task/*/schedstat: %v", pid, err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected %s: %q", t, b)
		}
		sum += ns
	}
	return time.Duration(sum), nil
}

// procRSS returns VmRSS of pid in bytes, from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// buildAgent builds cmd/redflag-agent into dir with the go command running
// the benchmark (go test puts its GOROOT/bin first on PATH).
func buildAgent(b *testing.B, dir string) string {
	b.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the go command is not on PATH; BenchmarkIdleAgent builds redflag-agent with it: %v", err)
	}
	bin := filepath.Join(dir, "redflag-agent")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/redflaghq/redflag/cmd/redflag-agent")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return bin
}

// agentEnv is the environment without REDFLAG_* variables, so the agent
// takes its settings from its flags and config only.
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDFLAG_") {
			env = append(env, kv)
		}
	}
	return env
}

// lockedBuf is an io.Writer for a child's output that may be read while
// the child writes.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scanDone reports whether the agent's log shows its first update scan
// finished (reported, failed, or undeliverable).
func scanDone(log string) bool {
	return strings.Contains(log, "scan reported") || strings.Contains(log, "a scanner failed") ||
		strings.Contains(log, "could not be delivered")
}

// BenchmarkIdleAgent registers a real redflag-agent process with a server
// whose check-in interval is 300 s, runs it with its defaults (`run`: the
// long-poll check-in, ?wait=30) for idleDuration with nothing queued, and
// samples /proc every 250 ms. b.N is ignored: one run per engine. Reported:
// rss_MB (the largest VmRSS seen), cpu_s_per_hour (utime+stime after the
// first idleSettle, extrapolated to an hour; utime and stime count in
// 10 ms ticks, so over 55 s one tick is 0.65 s/hour), sched_cpu_s_per_hour
// (the same from the nanosecond run times of /proc/<pid>/task/*/schedstat)
// and startup_cpu_s. The steady window starts after the agent's first
// update scan (30 s after start; then every 6 h): that scan's CPU is
// reported as first_scan_cpu_s, and cpu_s_per_hour_with_scans adds it
// amortised over the 6 h interval.
func BenchmarkIdleAgent(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skipf("BenchmarkIdleAgent reads /proc and runs on Linux only (this is %s)", runtime.GOOS)
	}
	bin := buildAgent(b, b.TempDir())
	for _, e := range storetest.Engines(b) {
		b.Run(string(e), func(b *testing.B) {
			ts := testserver.Start(b, e, func(c *config.Server) {
				c.LogLevel = "warn"
				c.CheckInInterval = 300
			})
			admin := ts.Login(b)
			reg, _ := ts.RegistrationToken(b, admin, 1)
			dir := b.TempDir()
			cfgPath, stateDir := filepath.Join(dir, "etc", "config.json"), filepath.Join(dir, "state")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			regCmd := exec.CommandContext(ctx, bin, "register", "--server", ts.URL, "--token", reg, "--config", cfgPath, "--state-dir", stateDir)
			regCmd.Env = agentEnv()
			out, err := regCmd.CombinedOutput()
			cancel()
			if err != nil {
				b.Fatalf("redflag-agent register: %v\n%s", err, out)
			}

			logs := &lockedBuf{} // written by the process, read by the sampler
			run := exec.Command(bin, "run", "--config", cfgPath, "--state-dir", stateDir)
			run.Env = agentEnv()
			run.Stdout, run.Stderr = logs, logs
			b.ResetTimer()
			if err := run.Start(); err != nil {
				b.Fatal(err)
			}
			pid := run.Process.Pid
			exited := make(chan error, 1)
			go func() { exited <- run.Wait() }()
			stop := func() {
				_ = run.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					_ = run.Process.Kill()
					<-exited
				}
			}

			total := idleDuration(b)
			start := time.Now()
			var maxRSS int64
			var cpuStarted, cpuSettled, schedSettled time.Duration
			var settledAt time.Time
			started, settled := false, false
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for time.Since(start) < total {
				select {
				case err := <-exited:
					b.Fatalf("the agent exited during the run: %v\n%s", err, logs.String())
				case <-tick.C:
				}
				rss, err := procRSS(pid)
				if err != nil {
					stop()
					b.Fatal(err)
				}
				maxRSS = max(maxRSS, rss)
				if !started && time.Since(start) >= idleSettle {
					if cpuStarted, err = procCPU(pid); err != nil {
						stop()
						b.Fatal(err)
					}
					started = true
				}
				// The steady window starts once the first update scan
				// (30 s after start, then every 6 h) has been reported.
				if started && !settled && scanDone(logs.String()) {
					if cpuSettled, err = procCPU(pid); err == nil {
						schedSettled, err = procSchedCPU(pid)
					}
					if err != nil {
						stop()
						b.Fatal(err)
					}
					settled, settledAt = true, time.Now()
				}
			}
			cpuEnd, err := procCPU(pid)
			schedEnd, err2 := procSchedCPU(pid)
			elapsed := time.Since(start)
			if err == nil {
				err = err2
			}
			stop()
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if !settled {
				b.Fatalf("the agent never reported its first update scan within %s; raise REDFLAG_BENCH_IDLE_DURATION\n%s", total, logs.String())
			}
			window := time.Since(settledAt)
			scanCPU := (cpuSettled - cpuStarted).Seconds()
			perHour := (cpuEnd - cpuSettled).Seconds() * float64(time.Hour) / float64(window)
			schedPerHour := (schedEnd - schedSettled).Seconds() * float64(time.Hour) / float64(window)
			b.Logf("%s: schedstat: %.4f s in all, %.4f s over the last %s → %.3f s/hour", e, schedEnd.Seconds(),
				(schedEnd - schedSettled).Seconds(), window.Round(time.Millisecond), schedPerHour)
			b.Logf("%s: agent pid %d watched %s: max VmRSS %.1f MB, CPU %.2f s in all (%.2f s in the first %s), %.2f s over the last %s → %.2f s/hour",
				e, pid, elapsed.Round(time.Millisecond), float64(maxRSS)/1e6, cpuEnd.Seconds(), cpuSettled.Seconds(), idleSettle,
				(cpuEnd - cpuSettled).Seconds(), window.Round(time.Millisecond), perHour)
			b.ReportMetric(float64(maxRSS)/1e6, "rss_MB")
			b.ReportMetric(perHour, "cpu_s_per_hour")
			b.ReportMetric(schedPerHour, "sched_cpu_s_per_hour")
			b.ReportMetric(cpuStarted.Seconds(), "startup_cpu_s")
			// The first scan's CPU (it includes a few idle check-ins too,
			// so it overstates the scan), amortised over the default 6 h
			// scan interval and added to the idle figure.
			b.ReportMetric(scanCPU, "first_scan_cpu_s")
			b.ReportMetric(perHour+scanCPU/6, "cpu_s_per_hour_with_scans")
		})
	}
}
