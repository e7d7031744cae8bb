package scanner

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestParseBrewOutdated(t *testing.T) {
	type up struct{ name, from, to, source, kind, pinned string }
	tests := []struct {
		name    string
		in      []byte
		want    []up
		wantErr string
	}{
		{name: "v2", in: mgrFixture(t, "homebrew/outdated_v2.json"), want: []up{
			{"git", "2.44.0", "2.45.1", "homebrew/core", "formula", ""},
			{"node", "22.1.0", "22.2.0", "homebrew/core", "formula", ""},
			{"postgresql@14", "14.11_1", "14.12", "homebrew/core", "formula", "true"},
			{"hashicorp/tap/terraform", "1.8.2", "1.8.3", "hashicorp/tap", "formula", ""},
			{"firefox", "125.0.3", "126.0", "homebrew/cask", "cask", ""},
			{"zoom", "6.0.2.33403", "6.0.11.35001", "homebrew/cask", "cask", ""},
		}},
		{name: "empty", in: mgrFixture(t, "homebrew/outdated_v2_empty.json")},
		{name: "homebrew 3 without pinned_version", in: mgrFixture(t, "homebrew/outdated_v2_brew3.json"), want: []up{
			{"openssl@1.1", "1.1.1k", "1.1.1l", "homebrew/core", "formula", ""},
		}},
		{name: "formula and cask of the same name", in: mgrFixture(t, "homebrew/outdated_v2_collision.json"), want: []up{
			{"docker", "26.1.1", "26.1.3", "homebrew/core", "formula", ""},
			{"homebrew/cask/docker", "4.29.0,145265", "4.30.0,149282", "homebrew/cask", "cask", ""},
		}},
		{name: "a warning line before the JSON", in: append([]byte("Warning: some tap is deprecated\n"), mgrFixture(t, "homebrew/outdated_v2_brew3.json")...),
			want: []up{{"openssl@1.1", "1.1.1k", "1.1.1l", "homebrew/core", "formula", ""}}},
		{name: "v1 array", in: mgrFixture(t, "homebrew/outdated_v1.json"), wantErr: "too old for --json=v2"},
		{name: "no JSON", in: mgrFixture(t, "homebrew/root_stderr.txt"), wantErr: "no JSON object"},
		{name: "truncated JSON", in: mgrFixture(t, "homebrew/outdated_v2.json")[:200], wantErr: "decoding the JSON"},
		{name: "wrong types", in: []byte(`{"formulae": [{"name": "x", "installed_versions": "1.0"}]}`), wantErr: "decoding the JSON"},
		{name: "nameless items dropped", in: []byte(`{"formulae": [{"name": " "}], "casks": [{"current_version": "1"}]}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			od, err := parseBrewOutdated(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []up
			for _, u := range od.updates() {
				got = append(got, up{u.PackageName, u.CurrentVersion, u.AvailableVersion, u.Source, u.Metadata["kind"], u.Metadata["pinned"]})
				if u.PackageType != "homebrew" || u.Severity != "unknown" {
					t.Errorf("update %+v", u)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseBrewDryRun(t *testing.T) {
	tests := []struct {
		fixture string
		want    []protocol.PackageChange
	}{
		{"homebrew/dryrun_formula.txt", []protocol.PackageChange{
			{PackageType: "homebrew", PackageName: "git", Action: "upgrade", FromVersion: "2.44.0", ToVersion: "2.45.1"},
			{PackageType: "homebrew", PackageName: "node", Action: "upgrade", FromVersion: "22.1.0", ToVersion: "22.2.0"},
			{PackageType: "homebrew", PackageName: "c-ares", Action: "install", ToVersion: "1.28.1"},
			{PackageType: "homebrew", PackageName: "libuv", Action: "install", ToVersion: "1.48.0"},
			{PackageType: "homebrew", PackageName: "icu4c", Action: "upgrade", FromVersion: "74.2", ToVersion: "75.1"},
		}},
		{"homebrew/dryrun_formula_pinned.txt", []protocol.PackageChange{
			{PackageType: "homebrew", PackageName: "git", Action: "upgrade", FromVersion: "2.44.0", ToVersion: "2.45.1"},
		}},
		{"homebrew/dryrun_cask.txt", []protocol.PackageChange{
			{PackageType: "homebrew", PackageName: "firefox", Action: "upgrade", FromVersion: "125.0.3", ToVersion: "126.0"},
		}},
		{"homebrew/upgrade_git.txt", nil}, // "Upgrading", not "Would upgrade"
	}
	for _, tt := range tests {
		got := parseBrewDryRun(mgrFixture(t, tt.fixture))
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.fixture, got, tt.want)
		}
	}
	// newer summaries add sizes; pinned lists after a Warning: line are not changes
	got := parseBrewDryRun([]byte("==> Would upgrade 1 outdated package:\ngit 2.44.0 -> 2.45.1 (12.3MB)\nWarning: Not upgrading 1 pinned package:\npostgresql@14 14.11_1\n"))
	if len(got) != 1 || got[0].PackageName != "git" || got[0].ToVersion != "2.45.1" {
		t.Errorf("got %+v", got)
	}
}

func TestHomebrewScan(t *testing.T) {
	t.Run("brew found at its default prefix", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"/opt/homebrew/bin/brew": "/opt/homebrew/bin/brew"})
		r.on(Result{Stdout: mgrFixture(t, "homebrew/outdated_v2.json")}, "/opt/homebrew/bin/brew", "outdated", "--json=v2")
		h := NewHomebrew(r, Options{})
		if !h.Available(context.Background()) {
			t.Fatal("not available")
		}
		ups, err := h.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) != 6 || ups[1].Metadata["installed_versions"] != "21.7.3, 22.1.0" || ups[2].Metadata["pinned_version"] != "14.11_1" {
			t.Errorf("updates %+v", ups)
		}
		r.wantArgv(t, argv("/opt/homebrew/bin/brew", "outdated", "--json=v2"))
	})
	t.Run("RefreshLists runs brew update first", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"brew": "/usr/local/bin/brew"})
		r.on(Result{Stdout: []byte("Already up-to-date.\n")}, "brew", "update")
		r.on(Result{Stdout: mgrFixture(t, "homebrew/outdated_v2_empty.json")}, "brew", "outdated", "--json=v2")
		ups, err := NewHomebrew(r, Options{RefreshLists: true}).Scan(context.Background())
		if err != nil || len(ups) != 0 {
			t.Fatalf("ups %+v err %v", ups, err)
		}
		r.wantArgv(t, argv("brew", "update"), argv("brew", "outdated", "--json=v2"))
	})
	t.Run("root", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"brew": "/usr/local/bin/brew"})
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "homebrew/root_stderr.txt")}, "brew", "outdated", "--json=v2")
		_, err := NewHomebrew(r, Options{}).Scan(context.Background())
		if !errors.Is(err, errBrewRoot) || !strings.Contains(err.Error(), "brew refuses to run as root") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("failure", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"brew": "/usr/local/bin/brew"})
		r.on(Result{ExitCode: 1, Stderr: []byte("Error: invalid JSON version: v2\n")}, "brew", "outdated", "--json=v2")
		_, err := NewHomebrew(r, Options{}).Scan(context.Background())
		if err == nil || !strings.Contains(err.Error(), "brew outdated --json=v2 exited 1: Error: invalid JSON version: v2") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("absent", func(t *testing.T) {
		if _, err := NewHomebrew(newMgrArgv(nil), Options{}).Scan(context.Background()); err != ErrUnavailable {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestHomebrewInstall(t *testing.T) {
	paths := map[string]string{"brew": "/opt/homebrew/bin/brew"}
	items := []protocol.InstallItem{
		{UpdateID: "git", PackageType: "homebrew", PackageName: "git", Version: "2.45.1"},
		{UpdateID: "ff", PackageType: "homebrew", PackageName: "firefox", Version: "126.0"},
		{UpdateID: "pg", PackageType: "homebrew", PackageName: "postgresql@14", Version: "14.12"},
		{UpdateID: "wget", PackageType: "homebrew", PackageName: "wget", Version: "1.24.5"},
		{UpdateID: "bad", PackageType: "homebrew", PackageName: "git --HEAD"},
	}
	common := func(t *testing.T, rs map[string]protocol.InstallItemResult) {
		t.Helper()
		wantResult(t, rs, "pg", "failed", "", "postgresql@14 is pinned (brew pin)")
		wantResult(t, rs, "wget", "failed", "", "brew does not list wget as outdated")
		wantResult(t, rs, "bad", "failed", "", "whitespace")
	}
	t.Run("upgrade", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.onSeq([]Result{{Stdout: mgrFixture(t, "homebrew/outdated_v2.json")}, {Stdout: mgrFixture(t, "homebrew/outdated_v2_after.json")}},
			"brew", "outdated", "--json=v2")
		r.on(Result{Stdout: mgrFixture(t, "homebrew/upgrade_git.txt")}, "brew", "upgrade", "--formula", "git")
		r.on(Result{Stdout: mgrFixture(t, "homebrew/upgrade_firefox.txt")}, "brew", "upgrade", "--cask", "firefox")
		res, err := NewHomebrew(r, Options{}).Install(context.Background(), items, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "git", "installed", "2.45.1", "")
		wantResult(t, rs, "ff", "installed", "126.0", "")
		common(t, rs)
		r.wantArgv(t,
			argv("brew", "outdated", "--json=v2"),
			argv("brew", "upgrade", "--formula", "git"),
			argv("brew", "upgrade", "--cask", "firefox"),
			argv("brew", "outdated", "--json=v2"))
		if !strings.Contains(res.Output, "firefox was successfully upgraded") || res.ExitCode != 0 {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("still outdated after a failed upgrade", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "homebrew/outdated_v2.json")}, "brew", "outdated", "--json=v2")
		r.on(Result{ExitCode: 1, Stderr: []byte("Error: An exception occurred within a child process:\n  DownloadError: Failed to download resource \"git\"\n")},
			"brew", "upgrade", "--formula", "git")
		res, err := NewHomebrew(r, Options{}).Install(context.Background(), items[:1], false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "git", "failed", "", "still outdated after brew upgrade (exit 1): DownloadError: Failed to download resource \"git\"")
		if res.ExitCode != 1 {
			t.Errorf("exit %d", res.ExitCode)
		}
	})
	t.Run("the cask upgrade times out after the formulae upgraded", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.onSeq([]Result{{Stdout: mgrFixture(t, "homebrew/outdated_v2.json")}, {Stdout: mgrFixture(t, "homebrew/outdated_v2_after.json")}},
			"brew", "outdated", "--json=v2")
		r.on(Result{Stdout: mgrFixture(t, "homebrew/upgrade_git.txt")}, "brew", "upgrade", "--formula", "git")
		r.Errs["brew upgrade --cask firefox"] = context.DeadlineExceeded
		res, err := NewHomebrew(r, Options{}).Install(context.Background(), items[:2], false)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "git", "installed", "2.45.1", "")
		wantResult(t, rs, "ff", "failed", "", "brew upgrade did not finish: context deadline exceeded")
		r.wantArgv(t,
			argv("brew", "outdated", "--json=v2"),
			argv("brew", "upgrade", "--formula", "git"),
			argv("brew", "upgrade", "--cask", "firefox"),
			argv("brew", "outdated", "--json=v2"))
	})
	t.Run("root", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "homebrew/root_stderr.txt")}, "brew", "outdated", "--json=v2")
		res, err := NewHomebrew(r, Options{}).Install(context.Background(), items, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "git", "failed", "", "brew refuses to run as root")
		wantResult(t, rs, "ff", "failed", "", "brew refuses to run as root")
		r.wantArgv(t, argv("brew", "outdated", "--json=v2"))
	})
	t.Run("dry run", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "homebrew/outdated_v2.json")}, "brew", "outdated", "--json=v2")
		r.on(Result{Stdout: mgrFixture(t, "homebrew/dryrun_formula.txt")}, "brew", "upgrade", "--formula", "--dry-run", "node", "git")
		r.on(Result{Stdout: mgrFixture(t, "homebrew/dryrun_cask.txt")}, "brew", "upgrade", "--cask", "--dry-run", "firefox")
		dry := append([]protocol.InstallItem{{UpdateID: "node", PackageName: "node"}}, items...)
		res, err := NewHomebrew(r, Options{}).Install(context.Background(), dry, true)
		if err != nil {
			t.Fatal(err)
		}
		wantChanges := []protocol.PackageChange{
			{PackageType: "homebrew", PackageName: "node", Action: "upgrade", FromVersion: "22.1.0", ToVersion: "22.2.0"},
			{PackageType: "homebrew", PackageName: "git", Action: "upgrade", FromVersion: "2.44.0", ToVersion: "2.45.1"},
			{PackageType: "homebrew", PackageName: "c-ares", Action: "install", ToVersion: "1.28.1"},
			{PackageType: "homebrew", PackageName: "libuv", Action: "install", ToVersion: "1.48.0"},
			{PackageType: "homebrew", PackageName: "icu4c", Action: "upgrade", FromVersion: "74.2", ToVersion: "75.1"},
			{PackageType: "homebrew", PackageName: "firefox", Action: "upgrade", FromVersion: "125.0.3", ToVersion: "126.0"},
		}
		if !reflect.DeepEqual(res.Changes, wantChanges) || !reflect.DeepEqual(res.Extras, wantChanges[2:5]) {
			t.Errorf("changes %+v\nextras %+v", res.Changes, res.Extras)
		}
		rs := resultsByID(res.Results)
		common(t, rs)
		if len(rs) != 3 {
			t.Errorf("results %+v", res.Results)
		}
		r.wantArgv(t,
			argv("brew", "outdated", "--json=v2"),
			argv("brew", "upgrade", "--formula", "--dry-run", "node", "git"),
			argv("brew", "upgrade", "--cask", "--dry-run", "firefox"))
	})
	t.Run("dry run on a Homebrew without --dry-run", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "homebrew/outdated_v2.json")}, "brew", "outdated", "--json=v2")
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "homebrew/invalid_dry_run_stderr.txt")}, "brew", "upgrade", "--cask", "--dry-run", "firefox")
		res, err := NewHomebrew(r, Options{}).Install(context.Background(), items[1:2], true)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changes) != 1 || len(res.Extras) != 0 || len(res.Results) != 0 {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("collision: the cask goes by homebrew/cask/docker", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.onSeq([]Result{{Stdout: mgrFixture(t, "homebrew/outdated_v2_collision.json")}, {Stdout: mgrFixture(t, "homebrew/outdated_v2_empty.json")}},
			"brew", "outdated", "--json=v2")
		r.on(Result{}, "brew", "upgrade", "--formula", "docker")
		r.on(Result{}, "brew", "upgrade", "--cask", "homebrew/cask/docker")
		res, err := NewHomebrew(r, Options{}).Install(context.Background(), []protocol.InstallItem{
			{UpdateID: "f", PackageName: "docker"}, {UpdateID: "c", PackageName: "homebrew/cask/docker"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "f", "installed", "26.1.3", "")
		wantResult(t, rs, "c", "installed", "4.30.0,149282", "")
	})
}

func FuzzParseBrew(f *testing.F) {
	mgrSeed(f, "homebrew")
	f.Fuzz(func(t *testing.T, b []byte) {
		od, err := parseBrewOutdated(b)
		if err != nil {
			return
		}
		for _, u := range od.updates() {
			if strings.TrimSpace(u.PackageName) == "" {
				t.Fatalf("nameless update %+v", u)
			}
		}
	})
}

func FuzzParseBrewDryRun(f *testing.F) {
	mgrSeed(f, "homebrew")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range parseBrewDryRun(b) {
			if c.PackageName == "" || c.ToVersion == "" || (c.Action != "upgrade" && c.Action != "install") {
				t.Fatalf("bad change %+v", c)
			}
		}
	})
}
