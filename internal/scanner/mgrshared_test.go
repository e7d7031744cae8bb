package scanner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

// mgrArgv wraps a Fake to record each call's exact argv: Fake's keys join
// the arguments with spaces, which would hide an argument containing one
// (pacman's --print-format '%n %v').
type mgrArgv struct {
	*Fake
	mu   sync.Mutex
	argv [][]string
	// seq answers the same call differently each time (a query before
	// and after an install), in order; the last answer repeats.
	seq map[string][]Result
}

func newMgrArgv(paths map[string]string) *mgrArgv {
	return &mgrArgv{Fake: &Fake{Paths: paths, Answers: map[string]Result{}, Errs: map[string]error{}}}
}

func (a *mgrArgv) Run(ctx context.Context, name string, args ...string) (Result, error) {
	key := strings.Join(append([]string{name}, args...), " ")
	a.mu.Lock()
	a.argv = append(a.argv, append([]string{name}, args...))
	if q := a.seq[key]; len(q) > 0 {
		a.Answers[key] = q[0]
		if len(q) > 1 {
			a.seq[key] = q[1:]
		}
	}
	a.mu.Unlock()
	return a.Fake.Run(ctx, name, args...)
}

// onSeq records successive answers to argv.
func (a *mgrArgv) onSeq(res []Result, argv ...string) {
	if a.seq == nil {
		a.seq = map[string][]Result{}
	}
	a.seq[strings.Join(argv, " ")] = res
}

// on records the answer to argv.
func (a *mgrArgv) on(res Result, argv ...string) { a.Answers[strings.Join(argv, " ")] = res }

func (a *mgrArgv) calls() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]string(nil), a.argv...)
}

// wantArgv fails t unless the recorded calls are exactly want.
func (a *mgrArgv) wantArgv(t *testing.T, want ...[]string) {
	t.Helper()
	got := a.calls()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("argv:\n got %q\nwant %q", got, want)
	}
}

func argv(s ...string) []string { return s }

// mgrFixture reads testdata/rel.
func mgrFixture(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

// mgrSeed seeds a fuzz target with every fixture in testdata/dir and with
// hostile output: a line over 1 MB, NULs and control characters, half
// lines, invalid UTF-8.
func mgrSeed(f *testing.F, dir string) {
	entries, err := os.ReadDir(filepath.Join("testdata", dir))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join("testdata", dir, e.Name())); err == nil {
			f.Add(b)
			if len(b) > 10 {
				f.Add(b[:len(b)/2]) // cut mid-line
			}
		}
	}
	for _, b := range mgrHostile() {
		f.Add(b)
	}
}

func mgrHostile() [][]byte {
	return [][]byte{
		nil,
		[]byte("\x00\x00\x00"),
		append(bytes.Repeat([]byte("a"), 1<<20+10), []byte(" 1 -> 2\n")...),
		[]byte("\x1b[31mfoo\x1b[0m 1 -> 2\r\x1b]0;title\x07\b\b\x7f\x9b"),
		[]byte("\xff\xfe\xfd -> \xc3\n\r\r\r\n\t\t\t"),
		[]byte("Name Id Version Available Source\n-----------\n" + strings.Repeat("x ", 5000)),
		[]byte("{\"formulae\": [{\"name\": 1}], \"casks\": \"x\"}"),
		[]byte(strings.Repeat("-", 70000) + "\n" + strings.Repeat("\t", 100)),
	}
}

func TestMgrLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"crlf", "a b\r\nc\r\n", []string{"a b", "c"}},
		{"cr cr lf", "a b\r\r\nc\r\n", []string{"a b", "c"}},
		{"spinner redraws the line", "\r   - \r   \\ \r\rName  Id\n", []string{"Name  Id"}},
		{"backspace", "ab\bc\n", []string{"ac"}},
		{"ansi colour and osc", "\x1b[1mcurl\x1b[0m \x1b]0;t\x07x\n", []string{"curl x"}},
		{"controls and nul dropped, tab kept", "a\x00b\x07\tc\x7f\n", []string{"ab\tc"}},
		{"no trailing newline", "half", []string{"half"}},
		{"invalid utf-8 kept as replacement", "a\xffb", []string{"a\uFFFDb"}},
		{"huge line skipped", strings.Repeat("x", mgrMaxLine+1) + "\nok", []string{"ok"}},
		{"c1 control dropped", "a\u009bb", []string{"ab"}},
		{"lone escape at end", "a\x1b", []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mgrLines([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mgrLines(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMgrRuleCheck(t *testing.T) {
	r := pacmanNameRule
	tests := []struct {
		in      string
		wantErr string
	}{
		{"openssl", ""},
		{"lib32-glibc", ""},
		{"", "empty"},
		{"-rf", "starts with '-'"},
		{"--config=/tmp/x", "starts with '-'"},
		{"foo bar", "whitespace"},
		{"foo\nbar", "whitespace"},
		{"foo\x00", "control"},
		{"foo;reboot", "shell metacharacters"},
		{"$(id)", "shell metacharacters"},
		{"a`b`", "shell metacharacters"},
		{".hidden", "not a valid"},
		{"foo/../bar", "not a valid"},
		{strings.Repeat("a", 300), "bytes long"},
	}
	for _, tt := range tests {
		err := r.check(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("check(%q) = %v, want nil", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("check(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestMgrCutColumns(t *testing.T) {
	_, starts := mgrHeaderColumns("Name   Id     Ver")
	tests := []struct {
		line    string
		want    []string
		aligned bool
	}{
		{"abc    x.y    1.0", []string{"abc", "x.y", "1.0"}, true},
		{"abcdef x.y    1.0", []string{"abcdef", "x.y", "1.0"}, true},
		{"汉字   x.y    1.0", []string{"汉字", "x.y", "1.0"}, true}, // wide: 4 columns + 3 spaces
		{"abcdefgx.y    1.0", []string{"abcdefg", "x.y", "1.0"}, false},
		{"汉字汉字x.y   1.0", []string{"汉字汉字", "x.y", "1.0"}, false}, // straddles
		{"short", []string{"short", "", ""}, true},
	}
	for _, tt := range tests {
		got, aligned := mgrCutColumns(tt.line, starts)
		if aligned != tt.aligned || (tt.aligned && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("mgrCutColumns(%q) = %q, %v; want %q, %v", tt.line, got, aligned, tt.want, tt.aligned)
		}
	}
}

func TestMgrPartition(t *testing.T) {
	items := []protocol.InstallItem{
		{UpdateID: "1", PackageType: "pacman", PackageName: "curl", Version: "8.8.0-1"},
		{UpdateID: "2", PackageType: "pacman", PackageName: "-x"},
		{UpdateID: "3", PackageType: "snap", PackageName: "curl"},
		{UpdateID: "4", PackageName: "vim", Version: "1.0 ; reboot"},
		{UpdateID: "5", PackageName: "vim"},
	}
	ok, refused := mgrPartition("pacman", items, pacmanCheckItem)
	if len(ok) != 2 || ok[0].UpdateID != "1" || ok[1].UpdateID != "5" {
		t.Errorf("ok = %+v", ok)
	}
	if len(refused) != 3 {
		t.Fatalf("refused = %+v", refused)
	}
	for i, want := range []string{"starts with '-'", "package type", "whitespace"} {
		r := refused[i]
		if r.Status != "failed" || !strings.HasPrefix(r.Message, mgrRefusedPrefix) || !strings.Contains(r.Message, want) {
			t.Errorf("refused[%d] = %+v, want a refusal mentioning %q", i, r, want)
		}
	}
}

func TestMgrLastLine(t *testing.T) {
	res := Result{Stdout: []byte("doing things\nmore\n"), Stderr: []byte("error: target not found: x\nwarning: y\n")}
	if got := mgrLastLine(res); got != "error: target not found: x — warning: y" {
		t.Errorf("mgrLastLine = %q", got)
	}
	if got := mgrLastLine(Result{Stdout: []byte("a\nlast\n\n")}); got != "last" {
		t.Errorf("mgrLastLine = %q", got)
	}
}

// resultsByID indexes install results for assertions.
func resultsByID(rs []protocol.InstallItemResult) map[string]protocol.InstallItemResult {
	m := map[string]protocol.InstallItemResult{}
	for _, r := range rs {
		m[r.UpdateID] = r
	}
	return m
}

// wantResult checks one result's status and that its message contains msg.
func wantResult(t *testing.T, rs map[string]protocol.InstallItemResult, id, status, version, msg string) {
	t.Helper()
	r, ok := rs[id]
	switch {
	case !ok:
		t.Errorf("no result for %s", id)
	case r.Status != status || r.InstalledVersion != version || !strings.Contains(r.Message, msg):
		t.Errorf("result %s = %+v; want status %s, version %q, message containing %q", id, r, status, version, msg)
	}
}
