package scanner

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkAPTScanOverhead measures what the agent adds to an APT scan on
// this machine: each iteration runs the very commands the scanner runs
// (`apt-get -s dist-upgrade`, `apt list --upgradable`) raw, then a full
// APT.Scan through the real Exec runner (the same commands plus parsing
// and cleaning), and reports both and the overhead. The order alternates
// so page-cache warmth favours neither.
func BenchmarkAPTScanOverhead(b *testing.B) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		b.Skip("apt-get is not installed here: nothing to compare against")
	}
	ctx := context.Background()
	r := Exec{}
	raw := func() {
		if _, err := r.Run(ctx, "apt-get", aptSimulateUpgrade...); err != nil {
			b.Fatal(err)
		}
		if _, err := exec.LookPath("apt"); err == nil {
			if _, err := r.Run(ctx, "apt", "list", "--upgradable"); err != nil {
				b.Fatal(err)
			}
		}
	}
	a := NewAPT(r, Options{})
	var n int
	scan := func() {
		ups, err := a.Scan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n = len(ups)
	}
	raw() // warm the cache once
	var rawT, scanT time.Duration
	b.ResetTimer()
	for i := range b.N {
		steps := []func(){raw, scan}
		if i%2 == 1 {
			steps = []func(){scan, raw}
		}
		for j, f := range steps {
			start := time.Now()
			f()
			d := time.Since(start)
			if (i%2 == 0) == (j == 0) {
				rawT += d
			} else {
				scanT += d
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rawT.Milliseconds())/float64(b.N), "raw_ms")
	b.ReportMetric(float64(scanT.Milliseconds())/float64(b.N), "scan_ms")
	b.ReportMetric(100*(scanT.Seconds()-rawT.Seconds())/rawT.Seconds(), "overhead_%")
	b.ReportMetric(float64(n), "updates")
}
