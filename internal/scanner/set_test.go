package scanner

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

type stubScanner struct {
	name    string
	present bool
	ups     []protocol.Update
	err     error
	block   bool
	calls   int
}

func (s *stubScanner) Name() string                   { return s.name }
func (s *stubScanner) Available(context.Context) bool { return s.present }
func (s *stubScanner) Scan(ctx context.Context) ([]protocol.Update, error) {
	s.calls++
	if s.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.ups, s.err
}

func TestClean(t *testing.T) {
	in := []protocol.Update{
		{PackageName: "zsh", Severity: "important", CVEIDs: []string{"CVE-2", "CVE-1", "CVE-1"}, SizeBytes: -5},
		{PackageName: "  ", Severity: "critical"},
		{PackageName: "evil\x1b[31m<script>", Severity: "urgent", CurrentVersion: "1\x00", Metadata: map[string]string{"k\n": "v\x07"}},
		{PackageName: "zsh", Severity: "low"}, // duplicate name: the first wins
		{PackageName: "bad\xffutf8", Severity: "low", AvailableVersion: strings.Repeat("9", 1000)},
	}
	out := Clean("apt", in)
	if len(out) != 3 {
		t.Fatalf("%d updates kept, want 3: %+v", len(out), out)
	}
	byName := map[string]protocol.Update{}
	for _, u := range out {
		if u.PackageType != "apt" {
			t.Errorf("%s: package_type %q", u.PackageName, u.PackageType)
		}
		if err := protocol.CheckText(u.PackageName, MaxNameLen, false); err != nil {
			t.Errorf("%q still fails the server's text check: %v", u.PackageName, err)
		}
		byName[u.PackageName] = u
	}
	z := byName["zsh"]
	if z.Severity != "important" || strings.Join(z.CVEIDs, ",") != "CVE-1,CVE-2" || z.SizeBytes != 0 {
		t.Errorf("zsh cleaned to %+v", z)
	}
	e, ok := byName["evil [31m<script>"]
	if !ok || e.Severity != protocol.SevUnknown || e.CurrentVersion != "1" || e.Metadata["k"] != "v" {
		t.Errorf("hostile update cleaned to %+v (all: %v)", e, out)
	}
	b := byName["bad?utf8"]
	if len(b.AvailableVersion) != MaxVersionLen {
		t.Errorf("long version kept %d bytes, want %d", len(b.AvailableVersion), MaxVersionLen)
	}
	if out[0].PackageName > out[1].PackageName || out[1].PackageName > out[2].PackageName {
		t.Errorf("not sorted by name: %v", out)
	}
}

func TestSetScanOne(t *testing.T) {
	ok := &stubScanner{name: "apt", present: true, ups: []protocol.Update{{PackageName: "a", Severity: "low"}}}
	absent := &stubScanner{name: "snap"}
	slow := &stubScanner{name: "dnf", present: true, block: true}
	broken := &stubScanner{name: "flatpak", present: true, err: errors.New("remote is gone")}
	set := NewSet([]Scanner{ok, absent, slow, broken}, nil, 20*time.Millisecond, BreakerConfig{Failures: 2, OpenFor: time.Hour}, nil)
	ctx := context.Background()

	if o := set.ScanOne(ctx, "apt"); o.Err != nil || len(o.Updates) != 1 || o.Updates[0].PackageType != "apt" {
		t.Fatalf("apt: %+v", o)
	}
	if o := set.ScanOne(ctx, "snap"); !o.Skipped || o.Err != nil || absent.calls != 0 {
		t.Fatalf("absent tool: %+v (calls %d)", o, absent.calls)
	}
	if o := set.ScanOne(ctx, "dnf"); o.Err == nil || !strings.Contains(o.Err.Error(), "timed out") {
		t.Fatalf("slow scanner: %+v", o)
	}
	if o := set.ScanOne(ctx, "nix"); !errors.Is(o.Err, ErrUnknownScanner) {
		t.Fatalf("unknown scanner: %+v", o)
	}
	for range 2 {
		set.ScanOne(ctx, "flatpak")
	}
	o := set.ScanOne(ctx, "flatpak")
	var open *ErrOpen
	if !errors.As(o.Err, &open) || broken.calls != 2 {
		t.Fatalf("after 2 failures the breaker did not open: %+v, calls %d", o, broken.calls)
	}
	// A cancelled parent is not the tool's fault: the breaker stays closed.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	set.ScanOne(cctx, "dnf")
	if st := set.Breaker("dnf").State(); st != Closed {
		t.Fatalf("dnf breaker %s after one timeout and one cancellation, want closed", st)
	}
	if got := set.Scan(ctx, nil); len(got) != 4 {
		t.Fatalf("Scan(all) gave %d outcomes", len(got))
	}
}

func TestExecRunnerNoShellAndLocale(t *testing.T) {
	r := Exec{}
	if _, err := r.LookPath("sh"); err != nil {
		t.Skip("no sh on this machine")
	}
	// The argument would expand under a shell; here it must arrive verbatim.
	res, err := r.Run(context.Background(), "sh", "-c", `printf '%s|%s' "$LC_ALL" "$1"`, "x", "$(id)")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "C|$(id)" {
		t.Fatalf("got %q, want %q", got, "C|$(id)")
	}
	res, err = r.Run(context.Background(), "sh", "-c", "exit 100")
	if err != nil || res.ExitCode != 100 {
		t.Fatalf("exit code %d, err %v: a non-zero exit is an answer, not an error", res.ExitCode, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Run(ctx, "sleep", "5"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout gave %v", err)
	}
	if _, err := r.Run(context.Background(), "/nonexistent/tool"); err == nil {
		t.Fatal("a missing program ran")
	}
}

func TestCapBuffer(t *testing.T) {
	c := &capBuffer{max: 10}
	c.Write([]byte("0123456"))
	c.Write([]byte("789abcdef"))
	if got := string(c.Bytes()); !strings.HasPrefix(got, "0123456789\n[6 bytes of output dropped]") {
		t.Fatalf("got %q", got)
	}
	if got := Tail("line1\nline2\nline3\n", 9); got != "[…]\nline3\n" {
		t.Fatalf("Tail = %q", got)
	}
}

// TestDefaultCoversEveryPackageType: one scanner and one installer per
// SPEC §7 package type, in the SPEC's order.
func TestDefaultCoversEveryPackageType(t *testing.T) {
	scs, ins := Default(&Fake{}, Options{})
	if len(scs) != len(protocol.PackageTypes) || len(ins) != len(protocol.PackageTypes) {
		t.Fatalf("%d scanners, %d installers; want %d each", len(scs), len(ins), len(protocol.PackageTypes))
	}
	for i, want := range protocol.PackageTypes {
		if scs[i].Name() != want || ins[i].Name() != want {
			t.Errorf("position %d: scanner %q, installer %q; want %q", i, scs[i].Name(), ins[i].Name(), want)
		}
	}
}
