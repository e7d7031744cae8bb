package scanner

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestParsePacmanUpdates(t *testing.T) {
	tests := []struct {
		fixture  string
		input    string
		want     []pacmanUpdate
		unparsed int
	}{
		{fixture: "pacman/checkupdates.txt", want: []pacmanUpdate{
			{Name: "curl", From: "8.7.1-2", To: "8.8.0-1"},
			{Name: "glibc", From: "2.39+r52+gf8e4623421-1", To: "2.39+r52+gf8e4623421-2"},
			{Name: "go", From: "2:1.22.2-1", To: "2:1.22.3-1"},
			{Name: "lib32-glibc", From: "2.39+r52+gf8e4623421-1", To: "2.39+r52+gf8e4623421-2"},
			{Name: "linux", From: "6.8.9.arch1-1", To: "6.9.1.arch1-1"},
			{Name: "python-pip", From: "24.0-1", To: "24.0-2"},
			{Name: "vim", From: "9.1.0380-1", To: "9.1.0407-1"},
		}},
		{fixture: "pacman/checkupdates_color.txt", want: []pacmanUpdate{
			{Name: "curl", From: "8.7.1-2", To: "8.8.0-1"},
			{Name: "linux", From: "6.8.9.arch1-1", To: "6.9.1.arch1-1"},
		}},
		{fixture: "pacman/pacman_qu.txt", want: []pacmanUpdate{
			{Name: "firefox", From: "125.0.2-1", To: "125.0.3-1"},
			{Name: "linux", From: "6.8.9.arch1-1", To: "6.9.1.arch1-1", Ignored: true},
			{Name: "openssl", From: "3.3.0-1", To: "3.3.0-2"},
		}},
		{fixture: "aur/yay_qua.txt", want: []pacmanUpdate{
			{Name: "google-chrome", From: "124.0.6367.201-1", To: "125.0.6422.60-1"},
			{Name: "spotify", From: "1:1.2.31.1205-1", To: "1:1.2.37.701-1", Ignored: true},
			{Name: "zoom", From: "6.0.2-1", To: "6.0.11-1"},
		}},
		{input: ""},
		{input: "\n\n  \n"},
		{input: ":: Checking development packages...\ncurl 1 -> 2\n", want: []pacmanUpdate{{Name: "curl", From: "1", To: "2"}}, unparsed: 1},
		{input: "error: failed to synchronize all databases\n", unparsed: 1},
		{input: "curl 1 ->\ncurl -> 2\n-curl 1 -> 2\n", unparsed: 3},
	}
	for _, tt := range tests {
		name := tt.fixture
		if name == "" {
			name = strings.ReplaceAll(tt.input, "\n", `\n`)
		}
		t.Run(name, func(t *testing.T) {
			in := []byte(tt.input)
			if tt.fixture != "" {
				in = mgrFixture(t, tt.fixture)
			}
			got, unparsed := parsePacmanUpdates(in)
			if !reflect.DeepEqual(got, tt.want) || unparsed != tt.unparsed {
				t.Errorf("got %+v (%d unparsed), want %+v (%d unparsed)", got, unparsed, tt.want, tt.unparsed)
			}
		})
	}
}

func TestParsePacmanNameVersion(t *testing.T) {
	got := parsePacmanNameVersion([]byte("libvpx 1.14.0-1\nwarning: foo is up to date -- skipping\nnss 3.100-1\n\nfirefox 126.0-1\n"))
	want := []pacmanPkg{{"libvpx", "1.14.0-1"}, {"nss", "3.100-1"}, {"firefox", "126.0-1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestPacmanScan(t *testing.T) {
	withCU := map[string]string{"pacman": "/usr/bin/pacman", "checkupdates": "/usr/bin/checkupdates"}
	noCU := map[string]string{"pacman": "/usr/bin/pacman"}
	tests := []struct {
		name     string
		paths    map[string]string
		answers  map[string]Result
		errs     map[string]error
		want     []string // "name from->to"
		wantMeta map[string]string
		wantErr  string
		wantArgv [][]string
	}{
		{
			name: "checkupdates", paths: withCU,
			answers:  map[string]Result{"checkupdates": {Stdout: mgrFixture(t, "pacman/checkupdates.txt")}},
			want:     []string{"curl 8.7.1-2->8.8.0-1", "glibc 2.39+r52+gf8e4623421-1->2.39+r52+gf8e4623421-2", "go 2:1.22.2-1->2:1.22.3-1", "lib32-glibc 2.39+r52+gf8e4623421-1->2.39+r52+gf8e4623421-2", "linux 6.8.9.arch1-1->6.9.1.arch1-1", "python-pip 24.0-1->24.0-2", "vim 9.1.0380-1->9.1.0407-1"},
			wantMeta: map[string]string{"checked_with": "checkupdates"},
			wantArgv: [][]string{{"checkupdates"}},
		},
		{
			name: "checkupdates exit 2 means no updates", paths: withCU,
			answers:  map[string]Result{"checkupdates": {ExitCode: 2}},
			wantArgv: [][]string{{"checkupdates"}},
		},
		{
			name: "checkupdates cannot fetch", paths: withCU,
			answers:  map[string]Result{"checkupdates": {ExitCode: 1, Stderr: mgrFixture(t, "pacman/checkupdates_error_stderr.txt")}},
			wantErr:  "checkupdates exited 1 (it syncs a private copy of the databases, so the mirrors must be reachable): ==> ERROR: Cannot fetch updates",
			wantArgv: [][]string{{"checkupdates"}},
		},
		{
			name: "checkupdates garbage", paths: withCU,
			answers: map[string]Result{"checkupdates": {Stdout: []byte("<html>captive portal</html>\n")}},
			wantErr: "unrecognised output",
		},
		{
			name: "pacman -Qu fallback skips ignored packages and says it may be stale", paths: noCU,
			answers:  map[string]Result{"pacman -Qu": {Stdout: mgrFixture(t, "pacman/pacman_qu.txt")}},
			want:     []string{"firefox 125.0.2-1->125.0.3-1", "openssl 3.3.0-1->3.3.0-2"},
			wantMeta: map[string]string{"checked_with": "pacman -Qu", "sync_db": "may be stale: compared with the sync databases as last refreshed (install pacman-contrib for checkupdates)"},
			wantArgv: [][]string{{"pacman", "-Qu"}},
		},
		{
			name: "pacman -Qu exit 1 without output means no updates", paths: noCU,
			answers: map[string]Result{"pacman -Qu": {ExitCode: 1}},
		},
		{
			name: "pacman -Qu error", paths: noCU,
			answers: map[string]Result{"pacman -Qu": {ExitCode: 1, Stderr: []byte("error: failed to initialize alpm library\n(could not find or read directory: /var/lib/pacman/)\n")}},
			wantErr: "pacman -Qu exited 1: error: failed to initialize alpm library",
		},
		{
			name: "runner error", paths: withCU,
			errs:    map[string]error{"checkupdates": context.DeadlineExceeded},
			wantErr: "running checkupdates: context deadline exceeded",
		},
		{name: "pacman absent", paths: map[string]string{}, wantErr: ErrUnavailable.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newMgrArgv(tt.paths)
			for k, v := range tt.answers {
				r.Answers[k] = v
			}
			for k, v := range tt.errs {
				r.Errs[k] = v
			}
			p := NewPacman(r, Options{})
			ups, err := p.Scan(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range ups {
				got = append(got, u.PackageName+" "+u.CurrentVersion+"->"+u.AvailableVersion)
				if u.PackageType != "pacman" || u.Severity != protocol.SevUnknown || !reflect.DeepEqual(u.Metadata, tt.wantMeta) {
					t.Errorf("update %+v", u)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("updates = %q, want %q", got, tt.want)
			}
			if tt.wantArgv != nil {
				r.wantArgv(t, tt.wantArgv...)
			}
		})
	}
	if !NewPacman(newMgrArgv(noCU), Options{}).Available(context.Background()) || NewPacman(newMgrArgv(nil), Options{}).Available(context.Background()) {
		t.Error("Available does not follow LookPath")
	}
}

func TestPacmanInstall(t *testing.T) {
	paths := map[string]string{"pacman": "/usr/bin/pacman"}
	items := []protocol.InstallItem{
		{UpdateID: "u1", PackageType: "pacman", PackageName: "firefox", Version: "126.0-1"},
		{UpdateID: "u2", PackageType: "pacman", PackageName: "openssl", Version: "3.3.0-2"},
		{UpdateID: "u3", PackageType: "pacman", PackageName: "--overwrite=*", Version: "1"},
		{UpdateID: "u4", PackageType: "pacman", PackageName: "vim;reboot"},
		{UpdateID: "u5", PackageType: "pacman", PackageName: "vim", Version: "$(id)"},
	}
	refusedOK := func(t *testing.T, rs map[string]protocol.InstallItemResult) {
		t.Helper()
		wantResult(t, rs, "u3", "failed", "", "starts with '-'")
		wantResult(t, rs, "u4", "failed", "", "shell metacharacters")
		wantResult(t, rs, "u5", "failed", "", "shell metacharacters")
	}

	t.Run("install", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.onSeq([]Result{{Stdout: mgrFixture(t, "pacman/query_before_install.txt")}, {Stdout: mgrFixture(t, "pacman/query_after.txt")}},
			"pacman", "-Q", "--", "firefox", "openssl")
		r.on(Result{Stdout: mgrFixture(t, "pacman/install_firefox.txt"), Stderr: mgrFixture(t, "pacman/install_uptodate_stderr.txt")},
			"pacman", "-S", "--noconfirm", "--needed", "--", "firefox", "openssl")
		res, err := NewPacman(r, Options{}).Install(context.Background(), items, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "u1", "installed", "126.0-1", "")
		wantResult(t, rs, "u2", "failed", "", "pacman left openssl at 3.3.0-1: the machine's sync database has no newer version")
		refusedOK(t, rs)
		r.wantArgv(t,
			argv("pacman", "-Q", "--", "firefox", "openssl"),
			argv("pacman", "-S", "--noconfirm", "--needed", "--", "firefox", "openssl"),
			argv("pacman", "-Q", "--", "firefox", "openssl"))
		if res.ExitCode != 0 || res.RebootRequired || !strings.Contains(res.Output, "upgrading firefox...") ||
			!strings.Contains(res.Output, "$ pacman -S --noconfirm --needed -- firefox openssl (exit 0)") {
			t.Errorf("result = %+v", res)
		}
	})

	t.Run("pacman fails", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: []byte("firefox 125.0.3-1\n")}, "pacman", "-Q", "--", "firefox")
		r.on(Result{ExitCode: 1, Stderr: []byte("error: failed to init transaction (unable to lock database)\nerror: could not lock database: File exists\n")},
			"pacman", "-S", "--noconfirm", "--needed", "--", "firefox")
		res, err := NewPacman(r, Options{}).Install(context.Background(), items[:1], false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "u1", "failed", "", "pacman exited 1: error: could not lock database: File exists")
		if res.ExitCode != 1 {
			t.Errorf("exit code %d", res.ExitCode)
		}
	})

	t.Run("runner error", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{}, "pacman", "-Q", "--", "firefox")
		r.Errs["pacman -S --noconfirm --needed -- firefox"] = context.DeadlineExceeded
		res, err := NewPacman(r, Options{}).Install(context.Background(), items[:1], false)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		wantResult(t, resultsByID(res.Results), "u1", "failed", "", "did not finish")
	})

	t.Run("dry run", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "pacman/print_firefox.txt"), Stderr: mgrFixture(t, "pacman/print_uptodate_stderr.txt")},
			"pacman", "-S", "--print", "--print-format", "%n %v", "--noconfirm", "--needed", "--", "firefox", "openssl")
		r.on(Result{ExitCode: 1, Stdout: mgrFixture(t, "pacman/query_before.txt"), Stderr: mgrFixture(t, "pacman/query_missing_stderr.txt")},
			"pacman", "-Q", "--", "libvpx", "nss", "firefox")
		res, err := NewPacman(r, Options{}).Install(context.Background(), items, true)
		if err != nil {
			t.Fatal(err)
		}
		wantChanges := []protocol.PackageChange{
			{PackageType: "pacman", PackageName: "libvpx", Action: "install", ToVersion: "1.14.0-1"},
			{PackageType: "pacman", PackageName: "nss", Action: "upgrade", FromVersion: "3.99-1", ToVersion: "3.100-1"},
			{PackageType: "pacman", PackageName: "firefox", Action: "upgrade", FromVersion: "125.0.3-1", ToVersion: "126.0-1"},
		}
		if !reflect.DeepEqual(res.Changes, wantChanges) || !reflect.DeepEqual(res.Extras, wantChanges[:2]) {
			t.Errorf("changes = %+v\nextras = %+v", res.Changes, res.Extras)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "u2", "failed", "", "pacman would not upgrade openssl")
		if _, ok := rs["u1"]; ok {
			t.Errorf("a planned item got a result: %+v", rs["u1"])
		}
		refusedOK(t, rs)
		r.wantArgv(t,
			argv("pacman", "-S", "--print", "--print-format", "%n %v", "--noconfirm", "--needed", "--", "firefox", "openssl"),
			argv("pacman", "-Q", "--", "libvpx", "nss", "firefox"))
	})

	t.Run("dry run target not found", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "pacman/target_not_found_stderr.txt")},
			"pacman", "-S", "--print", "--print-format", "%n %v", "--noconfirm", "--needed", "--", "nosuchpkg")
		res, err := NewPacman(r, Options{}).Install(context.Background(), []protocol.InstallItem{{UpdateID: "x", PackageName: "nosuchpkg"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "x", "failed", "", "pacman -S --print exited 1: error: target not found: nosuchpkg")
		if len(res.Changes) != 0 || res.ExitCode != 1 {
			t.Errorf("result = %+v", res)
		}
	})

	t.Run("everything refused runs nothing", func(t *testing.T) {
		r := newMgrArgv(paths)
		res, err := NewPacman(r, Options{}).Install(context.Background(), items[2:], false)
		if err != nil || len(res.Results) != 3 {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
		refusedOK(t, resultsByID(res.Results))
		r.wantArgv(t)
	})
}

func FuzzParsePacman(f *testing.F) {
	mgrSeed(f, "pacman")
	mgrSeed(f, "aur")
	f.Fuzz(func(t *testing.T, b []byte) {
		ups, unparsed := parsePacmanUpdates(b)
		if unparsed < 0 || len(ups) > MaxUpdates {
			t.Fatalf("%d updates, %d unparsed", len(ups), unparsed)
		}
		for _, u := range ups {
			if u.Name == "" || u.From == "" || u.To == "" || strings.ContainsAny(u.Name+u.From+u.To, " \t\n") {
				t.Fatalf("bad update %+v", u)
			}
		}
		for _, p := range parsePacmanNameVersion(b) {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("bad package %+v", p)
			}
		}
		if _, err := pacmanUpdates("pacman", "x", b, nil); err == nil && len(ups) == 0 && unparsed > 0 {
			t.Fatal("unrecognised output accepted")
		}
	})
}

// The real-pacman602-* fixtures were captured from pacman 6.0.2 (Debian 12)
// against a scratch root and a local file:// repository (see
// testdata/pacman/README.md).
func TestPacmanRealPacman602(t *testing.T) {
	ups, unparsed := parsePacmanUpdates(mgrFixture(t, "pacman/real-pacman602-qu.txt"))
	want := []pacmanUpdate{{Name: "rfhello", From: "1.0-1", To: "1.1-1"}, {Name: "rfutil", From: "1:2.0-1", To: "1:2.1-1"}}
	if unparsed != 0 || !slices.Equal(ups, want) {
		t.Errorf("-Qu: %+v (%d unparsed), want %+v", ups, unparsed, want)
	}
	ups, unparsed = parsePacmanUpdates(mgrFixture(t, "pacman/real-pacman602-qu-ignored.txt"))
	if want := []pacmanUpdate{want[0], {Name: "rfutil", From: "1:2.0-1", To: "1:2.1-1", Ignored: true}}; unparsed != 0 || !slices.Equal(ups, want) {
		t.Errorf("-Qu with IgnorePkg: %+v (%d unparsed), want %+v", ups, unparsed, want)
	}
	pk := parsePacmanNameVersion(mgrFixture(t, "pacman/real-pacman602-print.txt"))
	if want := []pacmanPkg{{Name: "rfhello", Version: "1.1-1"}, {Name: "rfutil", Version: "1:2.1-1"}}; !slices.Equal(pk, want) {
		t.Errorf("--print: %+v, want %+v", pk, want)
	}

	r := newMgrArgv(map[string]string{"pacman": "/usr/bin/pacman"})
	r.on(Result{Stdout: mgrFixture(t, "pacman/real-pacman602-qu.txt")}, "pacman", "-Qu")
	got, err := NewPacman(r, Options{}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PackageName != "rfhello" || got[0].CurrentVersion != "1.0-1" || got[0].AvailableVersion != "1.1-1" ||
		got[1].PackageName != "rfutil" || got[1].CurrentVersion != "1:2.0-1" || got[1].AvailableVersion != "1:2.1-1" {
		t.Errorf("scan: %+v", got)
	}
	r.wantArgv(t, argv("pacman", "-Qu"))

}
