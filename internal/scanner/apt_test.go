package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aptFake is a Debian machine as recorded output: apt-get, apt and
// dpkg-query exist.
func aptFake(answers map[string]Result) *Fake {
	return &Fake{
		Paths:   map[string]string{"apt-get": "/usr/bin/apt-get", "apt": "/usr/bin/apt", "dpkg-query": "/usr/bin/dpkg-query"},
		Answers: answers,
	}
}

const (
	aptSimKey  = "apt-get -s -o Debug::NoLocking=1 dist-upgrade"
	aptListKey = "apt list --upgradable"
)

func TestParseAPTSimulate(t *testing.T) {
	tests := []struct {
		fixture   string
		ops       int
		upgrades  int
		security  int
		check     map[string]aptOp // name → expected op (Origins compared by count)
		origins   map[string]int
		removeOps []string
	}{
		{fixture: "apt/simulate-dist-upgrade-bookworm.txt", ops: 113, upgrades: 113, security: 66,
			check: map[string]aptOp{
				"libssl3":            {Action: "Inst", Name: "libssl3", Old: "3.0.19-1~deb12u2", New: "3.0.22-1~deb12u2", Arch: "amd64"},
				"libgcrypt20":        {Action: "Inst", Name: "libgcrypt20", Old: "1.10.1-3", New: "1.10.1-3+deb12u1", Arch: "amd64"},
				"libpam-modules-bin": {Action: "Inst", Name: "libpam-modules-bin", Old: "1.5.2-6+deb12u1", New: "1.5.2-6+deb12u2", Arch: "amd64"},
				"libcap2":            {Action: "Inst", Name: "libcap2", Old: "1:2.66-4+deb12u2+b2", New: "1:2.66-4+deb12u3+b1", Arch: "amd64"},
			},
			origins: map[string]int{"libgcrypt20": 2, "libssl3": 1}},
		{fixture: "apt/simulate-dist-upgrade-jammy.txt", ops: 16, upgrades: 11, security: 8,
			check: map[string]aptOp{
				"libc6:i386":                    {Action: "Inst", Name: "libc6:i386", Old: "2.35-0ubuntu3.4", New: "2.35-0ubuntu3.5", Arch: "i386"},
				"linux-image-5.15.0-91-generic": {Action: "Inst", Name: "linux-image-5.15.0-91-generic", New: "5.15.0-91.101", Arch: "amd64"},
				"ubuntu-advantage-pro":          {Action: "Remv", Name: "ubuntu-advantage-pro", Old: "27.14.4~22.04"},
				"tzdata":                        {Action: "Inst", Name: "tzdata", Old: "2023c-0ubuntu0.22.04.2", New: "2024a-0ubuntu0.22.04", Arch: "all"},
			},
			origins: map[string]int{"libc6": 2, "tzdata": 1}},
		{fixture: "apt/simulate-dist-upgrade-thirdparty.txt", ops: 5, upgrades: 5, security: 0,
			check: map[string]aptOp{
				"docker-ce":         {Action: "Inst", Name: "docker-ce", Old: "5:24.0.7-1~debian.12~bookworm", New: "5:25.0.3-1~debian.12~bookworm", Arch: "amd64"},
				"redflag-e2e-dummy": {Action: "Inst", Name: "redflag-e2e-dummy", Old: "1.0-1", New: "2.0-1", Arch: "amd64"},
				"ppa-tool":          {Action: "Inst", Name: "ppa-tool", Old: "1.0-1ubuntu1", New: "1.1-0ppa1", Arch: "all"},
				"local-only":        {Action: "Inst", Name: "local-only", Old: "0.9", New: "1.0", Arch: "amd64"},
			},
			origins: map[string]int{"ppa-tool": 1, "docker-ce": 1}},
		{fixture: "apt/simulate-dist-upgrade-buster.txt", ops: 2, upgrades: 2, security: 1},
		{fixture: "apt/simulate-dist-upgrade-none.txt"},
		{fixture: "apt/install-simulate-bookworm.txt", ops: 3, upgrades: 3, security: 3},
		{fixture: "apt/install-simulate-notfound.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			ops, err := parseAPTSimulate(readFixture(t, tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != tc.ops {
				t.Fatalf("%d ops, want %d", len(ops), tc.ops)
			}
			ups := aptUpdatesFromSimulate(ops)
			if len(ups) != tc.upgrades {
				t.Errorf("%d upgrades, want %d", len(ups), tc.upgrades)
			}
			sec := 0
			for _, u := range ups {
				if u.Severity == protocol.SevImportant {
					sec++
				}
			}
			if sec != tc.security {
				t.Errorf("%d security upgrades, want %d", sec, tc.security)
			}
			for name, want := range tc.check {
				i := slices.IndexFunc(ops, func(o aptOp) bool { return o.Name == name })
				if i < 0 {
					t.Errorf("no op for %s", name)
					continue
				}
				got := ops[i]
				got.Origins = nil
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: got %+v, want %+v", name, got, want)
				}
			}
			for name, n := range tc.origins {
				i := slices.IndexFunc(ops, func(o aptOp) bool { return o.Name == name })
				if i < 0 || len(ops[i].Origins) != n {
					t.Errorf("%s: origins %v, want %d", name, ops, n)
				}
			}
		})
	}
}

func TestAPTOriginSecurity(t *testing.T) {
	tests := []struct {
		origin string
		want   bool
	}{
		{"Debian-Security:12/oldstable-security", true},
		{"Debian:12.15/oldstable", false},
		{"Ubuntu:22.04/jammy-security", true},
		{"Ubuntu:22.04/jammy-updates", false},
		{"UbuntuESMApps:22.04/jammy-apps-security", true},
		{"Debian-Security:10/oldoldstable", true}, // buster: only the label says it
		{"Docker CE:bookworm", false},
		{"PPA for Tools (nightly):22.04/jammy", false},
		{"localhost", false},
		{"bookworm-security", true},
		{"", false},
	}
	for _, tc := range tests {
		if got := aptOriginIsSecurity(tc.origin); got != tc.want {
			t.Errorf("aptOriginIsSecurity(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}

func TestParseAPTList(t *testing.T) {
	tests := []struct {
		fixture string
		want    int
		check   map[string]aptListEntry
	}{
		{fixture: "apt/list-upgradable-bookworm.txt", want: 113, check: map[string]aptListEntry{
			"krb5-locales": {Name: "krb5-locales", Suites: []string{"oldstable", "oldstable-security"}, Version: "1.20.1-2+deb12u5", Arch: "all", Current: "1.20.1-2+deb12u3"},
		}},
		{fixture: "apt/list-upgradable-jammy.txt", want: 12, check: map[string]aptListEntry{
			"netplan.io": {Name: "netplan.io", Suites: []string{"jammy-updates"}, Version: "0.106.1-7ubuntu0.22.04.2", Arch: "amd64", Current: "0.106-0ubuntu3"},
		}},
		// Without the suffix the current version is unknown; "[installed,
		// upgradable to: X]" reads the other way round; installed-only
		// lines are skipped.
		{fixture: "apt/list-upgradable-nosuffix.txt", want: 4, check: map[string]aptListEntry{
			"bash": {Name: "bash", Suites: []string{"stable"}, Version: "5.2.15-2+b7", Arch: "amd64"},
			"curl": {Name: "curl", Suites: []string{"stable", "stable-security"}, Version: "7.88.1-10+deb12u7", Arch: "amd64", Current: "7.88.1-10+deb12u5"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			entries, err := parseAPTList(readFixture(t, tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != tc.want {
				t.Fatalf("%d entries, want %d", len(entries), tc.want)
			}
			for name, want := range tc.check {
				i := slices.IndexFunc(entries, func(e aptListEntry) bool { return e.Name == name })
				if i < 0 || fmt.Sprint(entries[i]) != fmt.Sprint(want) {
					t.Errorf("%s: got %+v, want %+v", name, entries[max(i, 0)], want)
				}
			}
		})
	}
}

func TestAPTParsersHostileOutput(t *testing.T) {
	huge := bytes.Repeat([]byte("A"), 2<<20)
	tests := []struct {
		name   string
		in     []byte
		ops    int
		errors bool
	}{
		{"huge line skipped, next line read", append(append([]byte("Inst "), huge...), "\nInst a [1] (2 x:y/z [amd64])\n"...), 1, true},
		{"huge line without newline", append([]byte("Inst x "), huge...), 0, true},
		{"half line", []byte("Inst libssl3 [3.0.1] (3.0.2 Debian-Se"), 0, true},
		{"no name", []byte("Inst \nInst [1] (2)\n"), 0, true},
		{"NUL and control characters", []byte("Inst a\x00b [1\x01] (2\x1b[31m x [amd64])\n"), 1, false},
		{"only parentheses", []byte("Inst a ((((((((((\n"), 0, true},
		{"empty", nil, 0, false},
		{"CRLF", []byte("Inst a [1] (2 Debian:12/stable [amd64])\r\n"), 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := parseAPTSimulate(tc.in)
			if len(ops) != tc.ops || (err != nil) != tc.errors {
				t.Fatalf("got %d ops, err %v; want %d ops, error %v", len(ops), err, tc.ops, tc.errors)
			}
			if err != nil && !errors.Is(err, errToolOutput) {
				t.Fatalf("error %v does not wrap errToolOutput", err)
			}
			if err != nil && len(err.Error()) > 2000 {
				t.Fatalf("error is %d bytes long", len(err.Error()))
			}
			if _, err := parseAPTList(tc.in); err != nil && len(err.Error()) > 2000 {
				t.Fatalf("list error is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestAPTScan(t *testing.T) {
	f := aptFake(map[string]Result{
		"apt-get update": {},
		aptSimKey:        {Stdout: readFixture(t, "apt/simulate-dist-upgrade-bookworm.txt")},
		aptListKey:       {Stdout: readFixture(t, "apt/list-upgradable-bookworm.txt"), Stderr: []byte("\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\n")},
	})
	a := NewAPT(f, Options{RefreshLists: true})
	ups, err := a.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"apt-get update", aptSimKey, aptListKey}; !slices.Equal(f.Calls(), want) {
		t.Fatalf("calls %q, want %q", f.Calls(), want)
	}
	ups = Clean(a.Name(), ups)
	if len(ups) != 113 {
		t.Fatalf("%d updates, want 113", len(ups))
	}
	byName := map[string]protocol.Update{}
	for _, u := range ups {
		byName[u.PackageName] = u
	}
	tests := []struct {
		name, cur, avail, sev, source string
	}{
		{"libssl3", "3.0.19-1~deb12u2", "3.0.22-1~deb12u2", protocol.SevImportant, "Debian-Security:12/oldstable-security"},
		{"libgcrypt20", "1.10.1-3", "1.10.1-3+deb12u1", protocol.SevImportant, "Debian-Security:12/oldstable-security"},
		{"bash", "5.2.15-2+b8", "5.2.15-2+b13", protocol.SevUnknown, "Debian:12.15/oldstable"},
		{"tzdata", "2025b-0+deb12u2", "2026f-0+deb12u1", protocol.SevImportant, "Debian-Security:12/oldstable-security"},
	}
	for _, tc := range tests {
		u, ok := byName[tc.name]
		if !ok {
			t.Errorf("no update for %s", tc.name)
			continue
		}
		if tc.cur != "" && (u.CurrentVersion != tc.cur || u.AvailableVersion != tc.avail) {
			t.Errorf("%s: %s → %s, want %s → %s", tc.name, u.CurrentVersion, u.AvailableVersion, tc.cur, tc.avail)
		}
		if u.Severity != tc.sev || (tc.source != "" && u.Source != tc.source) {
			t.Errorf("%s: severity %s source %q, want %s %q", tc.name, u.Severity, u.Source, tc.sev, tc.source)
		}
		if u.PackageType != "apt" || u.Metadata["arch"] == "" {
			t.Errorf("%s: %+v", tc.name, u)
		}
	}
}

func TestAPTScanKeptBackAndPhased(t *testing.T) {
	f := aptFake(map[string]Result{
		aptSimKey:  {Stdout: readFixture(t, "apt/simulate-dist-upgrade-jammy.txt")},
		aptListKey: {Stdout: readFixture(t, "apt/list-upgradable-jammy.txt")},
	})
	ups, err := NewAPT(f, Options{}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ups = Clean("apt", ups)
	var names []string
	for _, u := range ups {
		names = append(names, u.PackageName)
	}
	// 11 upgrades from the simulation (new kernel images are not updates),
	// netplan.io kept back and the two phased packages from apt list.
	want := []string{"libc-bin", "libc6", "libc6:i386", "libssl3", "linux-generic", "linux-headers-generic",
		"linux-image-generic", "netplan.io", "openssl", "python3-software-properties", "snapd",
		"software-properties-common", "tzdata", "ubuntu-advantage-tools"}
	if !slices.Equal(names, want) {
		t.Fatalf("updates %q\nwant    %q", names, want)
	}
	for _, u := range ups {
		switch u.PackageName {
		case "netplan.io":
			if u.Metadata["kept_back"] != "true" || u.CurrentVersion != "0.106-0ubuntu3" || u.Severity != protocol.SevUnknown {
				t.Errorf("netplan.io: %+v", u)
			}
		case "libc6":
			if u.Severity != protocol.SevImportant || u.Source != "Ubuntu:22.04/jammy-security" {
				t.Errorf("libc6: %+v", u)
			}
		case "tzdata", "snapd":
			if u.Severity != protocol.SevUnknown {
				t.Errorf("%s: %+v", u.PackageName, u)
			}
		}
	}
}

func TestAPTScanFailures(t *testing.T) {
	bookworm := readFixture(t, "apt/simulate-dist-upgrade-bookworm.txt")
	tests := []struct {
		name      string
		paths     map[string]string
		answers   map[string]Result
		opts      Options
		updates   int
		errSubstr string
		unavail   bool
	}{
		{name: "apt-get missing", paths: map[string]string{}, unavail: true, errSubstr: "not present"},
		{name: "simulation fails", answers: map[string]Result{aptSimKey: {ExitCode: 100,
			Stderr: []byte("E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.\n")}},
			errSubstr: "dpkg was interrupted"},
		{name: "apt list fails: updates kept, error reported", answers: map[string]Result{aptSimKey: {Stdout: bookworm},
			aptListKey: {ExitCode: 1, Stderr: []byte("E: boom\n")}}, updates: 113, errSubstr: "apt list --upgradable exited 1"},
		{name: "refresh fails: lists as they are", opts: Options{RefreshLists: true}, answers: map[string]Result{
			"apt-get update": {ExitCode: 100, Stderr: []byte("E: Failed to fetch http://ppa.example/dists/jammy/InRelease  404  Not Found\nE: Some index files failed to download.\n")},
			aptSimKey:        {Stdout: bookworm}, aptListKey: {}}, updates: 113, errSubstr: "apt-get update exited 100"},
		{name: "no apt binary: simulation only", paths: map[string]string{"apt-get": "/usr/bin/apt-get"},
			answers: map[string]Result{aptSimKey: {Stdout: bookworm}}, updates: 113},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := aptFake(tc.answers)
			if tc.paths != nil {
				f.Paths = tc.paths
			}
			ups, err := NewAPT(f, tc.opts).Scan(context.Background())
			if len(ups) != tc.updates {
				t.Errorf("%d updates, want %d", len(ups), tc.updates)
			}
			if tc.errSubstr == "" && err != nil || tc.errSubstr != "" && (err == nil || !strings.Contains(err.Error(), tc.errSubstr)) {
				t.Errorf("err %v, want one containing %q", err, tc.errSubstr)
			}
			if errors.Is(err, ErrUnavailable) != tc.unavail {
				t.Errorf("errors.Is(ErrUnavailable) = %v", !tc.unavail)
			}
		})
	}
}

func TestAPTItemProblem(t *testing.T) {
	tests := []struct {
		name, version string
		ok            bool
	}{
		{"libssl3", "3.0.22-1~deb12u2", true},
		{"libc6:i386", "2.35-0ubuntu3.5", true},
		{"libcap2", "1:2.66-4+deb12u3+b1", true},
		{"g++", "4:12.2.0-3", true},
		{"python3.11", "", true},
		{"docker-ce", "5:25.0.3-1~debian.12~bookworm", true},
		{"-oAPT::Update::Pre-Invoke::=touch /tmp/x", "1", false},
		{"libssl3", "--allow-downgrades", false},
		{"libssl3", "-1", false},
		{"a", "1", false}, // one character
		{"LibSSL3", "1", false},
		{"libssl3; rm -rf /", "1", false},
		{"libssl3", "1.0 2.0", false},
		{"libssl3", "$(reboot)", false},
		{"libssl3", "`id`", false},
		{"libssl3", "1.0\n", false},
		{"libssl3", "1.0\x00", false},
		{"lib*", "1", false},
		{"libssl3=1.0", "", false},
		{"libssl3/bookworm-security", "", false},
		{"libssl3", "1.0|cat", false},
		{"", "1", false},
		{strings.Repeat("a", 300), "1", false},
		{"libssl3", strings.Repeat("1", 300), false},
		{"libé", "1", false},
	}
	for _, tc := range tests {
		why := aptItemProblem(tc.name, tc.version)
		if (why == "") != tc.ok {
			t.Errorf("aptItemProblem(%q, %q) = %q, want ok=%v", tc.name, tc.version, why, tc.ok)
		}
	}
}

func TestAPTInstallDryRun(t *testing.T) {
	const key = "apt-get -s -o Debug::NoLocking=1 install --only-upgrade openssl=3.0.22-1~deb12u2 libssl3=3.0.22-1~deb12u2"
	f := aptFake(map[string]Result{key: {Stdout: readFixture(t, "apt/install-simulate-bookworm.txt")}})
	items := []protocol.InstallItem{
		{UpdateID: "u1", PackageType: "apt", PackageName: "openssl", Version: "3.0.22-1~deb12u2"},
		{UpdateID: "u2", PackageType: "apt", PackageName: "libssl3", Version: "3.0.22-1~deb12u2"},
		{UpdateID: "u3", PackageType: "apt", PackageName: "openssl;reboot", Version: "1"},
	}
	res, err := NewAPT(f, Options{}).Install(context.Background(), items, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{key}; !slices.Equal(f.Calls(), want) {
		t.Fatalf("calls %q, want %q", f.Calls(), want)
	}
	if len(res.Changes) != 3 {
		t.Fatalf("changes %+v", res.Changes)
	}
	want := protocol.PackageChange{PackageType: "apt", PackageName: "libssl-dev", Action: "upgrade",
		FromVersion: "3.0.19-1~deb12u2", ToVersion: "3.0.22-1~deb12u2"}
	if len(res.Extras) != 1 || res.Extras[0] != want {
		t.Fatalf("extras %+v, want [%+v]", res.Extras, want)
	}
	if len(res.Results) != 1 || res.Results[0].UpdateID != "u3" || res.Results[0].Status != "failed" {
		t.Fatalf("results %+v: only the refused item", res.Results)
	}
}

func TestAPTInstallDryRunExtrasFromDependencies(t *testing.T) {
	// A kernel metapackage upgrade pulls new packages and removes one.
	sim := "Inst linux-image-5.15.0-91-generic (5.15.0-91.101 Ubuntu:22.04/jammy-updates [amd64])\n" +
		"Remv ubuntu-advantage-pro [27.14.4~22.04]\n" +
		"Inst linux-image-generic [5.15.0.88.85] (5.15.0.91.88 Ubuntu:22.04/jammy-updates [amd64])\n" +
		"Inst libc6:i386 [2.35-0ubuntu3.4] (2.35-0ubuntu3.5 Ubuntu:22.04/jammy-security [i386])\n"
	const key = "apt-get -s -o Debug::NoLocking=1 install --only-upgrade linux-image-generic=5.15.0.91.88 libc6:i386"
	f := aptFake(map[string]Result{key: {Stdout: []byte(sim)}})
	res, err := NewAPT(f, Options{}).Install(context.Background(), []protocol.InstallItem{
		{UpdateID: "k", PackageName: "linux-image-generic", Version: "5.15.0.91.88"},
		{UpdateID: "c", PackageName: "libc6:i386"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	var extras []string
	for _, e := range res.Extras {
		extras = append(extras, e.Action+" "+e.PackageName)
	}
	if want := []string{"install linux-image-5.15.0-91-generic", "remove ubuntu-advantage-pro"}; !slices.Equal(extras, want) {
		t.Fatalf("extras %q, want %q", extras, want)
	}
}

func TestAPTInstallDryRunFails(t *testing.T) {
	const key = "apt-get -s -o Debug::NoLocking=1 install --only-upgrade openssl=9.9.9"
	f := aptFake(map[string]Result{key: {ExitCode: 100, Stdout: readFixture(t, "apt/install-simulate-notfound.txt")}})
	res, err := NewAPT(f, Options{}).Install(context.Background(), []protocol.InstallItem{
		{UpdateID: "u1", PackageName: "openssl", Version: "9.9.9"}}, true)
	if err == nil || !strings.Contains(err.Error(), "Version '9.9.9' for 'openssl' was not found") {
		t.Fatalf("err %v", err)
	}
	if res.ExitCode != 100 || len(res.Results) != 1 || res.Results[0].Status != "failed" || res.Output == "" {
		t.Fatalf("result %+v", res)
	}
}

func TestAPTInstall(t *testing.T) {
	const key = "apt-get install -y --only-upgrade -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " +
		"-o DPkg::Lock::Timeout=120 openssl=3.0.22-1~deb12u2 libssl3=3.0.22-1~deb12u2 zip=3.0-14"
	installLog := "Reading package lists...\nBuilding dependency tree...\nReading state information...\n" +
		"The following packages will be upgraded:\n  libssl3 openssl\n" +
		"Setting up libssl3:amd64 (3.0.22-1~deb12u2) ...\nSetting up openssl (3.0.22-1~deb12u2) ...\n"
	tests := []struct {
		name     string
		exit     int
		versions map[string]string
		reboot   bool
		status   map[string]string
	}{
		{name: "all installed, reboot flagged", versions: map[string]string{"openssl": "3.0.22-1~deb12u2",
			"libssl3": "3.0.22-1~deb12u2", "zip": "3.0-14"}, reboot: true,
			status: map[string]string{"u1": "installed", "u2": "installed", "u3": "installed"}},
		{name: "apt-get failed half way", exit: 100, versions: map[string]string{"openssl": "3.0.22-1~deb12u2",
			"libssl3": "3.0.22-1~deb12u2", "zip": "3.0-13"},
			status: map[string]string{"u1": "installed", "u2": "installed", "u3": "failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			answers := map[string]Result{key: {ExitCode: tc.exit, Stdout: []byte(installLog),
				Stderr: []byte("E: Sub-process /usr/bin/dpkg returned an error code (1)\n")}}
			for n, v := range tc.versions {
				answers["dpkg-query -W -f ${Version} "+n] = Result{Stdout: []byte(v)}
			}
			f := aptFake(answers)
			a := NewAPT(f, Options{})
			a.rebootFile = filepath.Join(t.TempDir(), "reboot-required")
			if tc.reboot {
				if err := os.WriteFile(a.rebootFile, []byte("*** System restart required ***\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, err := a.Install(context.Background(), []protocol.InstallItem{
				{UpdateID: "u1", PackageType: "apt", PackageName: "openssl", Version: "3.0.22-1~deb12u2"},
				{UpdateID: "u2", PackageType: "apt", PackageName: "libssl3", Version: "3.0.22-1~deb12u2"},
				{UpdateID: "u3", PackageType: "apt", PackageName: "zip", Version: "3.0-14"},
				{UpdateID: "bad", PackageType: "apt", PackageName: "--purge", Version: "1"},
				{UpdateID: "other", PackageType: "dnf", PackageName: "zip", Version: "3.0-14"},
			}, false)
			if err != nil {
				t.Fatal(err)
			}
			calls := f.Calls()
			if calls[0] != key || len(calls) != 4 {
				t.Fatalf("calls %q", calls)
			}
			got := map[string]string{}
			for _, r := range res.Results {
				got[r.UpdateID] = r.Status
				if r.Status == "failed" && r.Message == "" {
					t.Errorf("%s failed without a message", r.UpdateID)
				}
				if r.UpdateID == "u3" && tc.exit != 0 && (!strings.Contains(r.Message, "3.0-13") || !strings.Contains(r.Message, "exited 100")) {
					t.Errorf("u3 message %q", r.Message)
				}
			}
			tc.status["bad"], tc.status["other"] = "failed", "failed"
			if fmt.Sprint(got) != fmt.Sprint(tc.status) {
				t.Errorf("statuses %v, want %v", got, tc.status)
			}
			wantReboot := tc.reboot && runtime.GOOS == "linux"
			if res.RebootRequired != wantReboot || res.ExitCode != tc.exit || !strings.Contains(res.Output, "Setting up openssl") {
				t.Errorf("reboot %v exit %d output %q", res.RebootRequired, res.ExitCode, res.Output)
			}
		})
	}
}

// TestAPTInstallRefusesHostileItems: nothing runs for a refused item, and
// the package manager sees valid names only, as separate argv entries.
func TestAPTInstallRefusesHostileItems(t *testing.T) {
	hostile := []protocol.InstallItem{
		{UpdateID: "1", PackageName: "-oDebug::pkgProblemResolver=1", Version: "1"},
		{UpdateID: "2", PackageName: "openssl", Version: "1.0 --allow-remove-essential"},
		{UpdateID: "3", PackageName: "openssl", Version: "$(touch /tmp/pwned)"},
		{UpdateID: "4", PackageName: "bash\nInst evil", Version: "1"},
		{UpdateID: "5", PackageName: "*", Version: ""},
		{UpdateID: "6", PackageName: "openssl", Version: "-1"},
		{UpdateID: "7", PackageName: "", Version: "1"},
	}
	for _, dry := range []bool{true, false} {
		f := aptFake(map[string]Result{})
		res, err := NewAPT(f, Options{}).Install(context.Background(), hostile, dry)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Calls()) != 0 {
			t.Fatalf("dry=%v: commands ran for refused items: %q", dry, f.Calls())
		}
		if len(res.Results) != len(hostile) {
			t.Fatalf("dry=%v: %d results", dry, len(res.Results))
		}
		for _, r := range res.Results {
			if r.Status != "failed" || !strings.HasPrefix(r.Message, "refused") {
				t.Errorf("dry=%v: %+v", dry, r)
			}
		}
	}
	// Mixed with a good item: only the good one reaches apt-get.
	const key = "apt-get -s -o Debug::NoLocking=1 install --only-upgrade openssl=3.0.22-1~deb12u2"
	f := aptFake(map[string]Result{key: {Stdout: []byte("Inst openssl [3.0.19-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])\n")}})
	items := append([]protocol.InstallItem{{UpdateID: "ok", PackageName: "openssl", Version: "3.0.22-1~deb12u2"}}, hostile...)
	res, err := NewAPT(f, Options{}).Install(context.Background(), items, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Calls(), []string{key}) || len(res.Extras) != 0 || len(res.Changes) != 1 {
		t.Fatalf("calls %q result %+v", f.Calls(), res)
	}
}

func TestAPTInstallConflictingDuplicates(t *testing.T) {
	const key = "apt-get -s -o Debug::NoLocking=1 install --only-upgrade zip=3.0-14"
	f := aptFake(map[string]Result{key: {}})
	res, err := NewAPT(f, Options{}).Install(context.Background(), []protocol.InstallItem{
		{UpdateID: "a", PackageName: "zip", Version: "3.0-14"},
		{UpdateID: "b", PackageName: "zip", Version: "3.0-14"},
		{UpdateID: "c", PackageName: "zip", Version: "3.0-15"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Calls(), []string{key}) || len(res.Results) != 1 || res.Results[0].UpdateID != "c" {
		t.Fatalf("calls %q results %+v", f.Calls(), res.Results)
	}
}

func TestAPTInstallUnavailable(t *testing.T) {
	f := &Fake{}
	res, err := NewAPT(f, Options{}).Install(context.Background(), []protocol.InstallItem{{UpdateID: "a", PackageName: "zip"}}, false)
	if !errors.Is(err, ErrUnavailable) || len(res.Results) != 1 || res.Results[0].Status != "failed" {
		t.Fatalf("err %v result %+v", err, res)
	}
}

func FuzzParseAPTSimulate(f *testing.F) {
	for _, fx := range []string{"simulate-dist-upgrade-bookworm.txt", "simulate-dist-upgrade-jammy.txt",
		"simulate-dist-upgrade-thirdparty.txt", "install-simulate-bookworm.txt"} {
		f.Add(readFixture(f, "apt/"+fx))
	}
	f.Add([]byte("Inst a [1] (2 PPA (x (y)):1/z [amd64]) []\nRemv b [1]\nInst c (\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ops, err := parseAPTSimulate(in)
		if err != nil && !errors.Is(err, errToolOutput) {
			t.Fatalf("error %v does not wrap errToolOutput", err)
		}
		for _, op := range ops {
			if op.Name == "" || strings.ContainsAny(op.Name, " \n") || (op.Action == "Inst" && op.New == "") {
				t.Fatalf("bad op %+v", op)
			}
		}
		aptUpdatesFromSimulate(ops)
		aptChanges(ops, []protocol.InstallItem{{PackageName: "a:amd64"}})
	})
}

func FuzzParseAPTList(f *testing.F) {
	for _, fx := range []string{"list-upgradable-bookworm.txt", "list-upgradable-jammy.txt", "list-upgradable-nosuffix.txt"} {
		f.Add(readFixture(f, "apt/"+fx))
	}
	f.Add([]byte("a/b 1 amd64 [upgradable from: \na/ 1 2 [\n/x 1 2\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		entries, err := parseAPTList(in)
		if err != nil && !errors.Is(err, errToolOutput) {
			t.Fatalf("error %v does not wrap errToolOutput", err)
		}
		for _, e := range entries {
			if e.Name == "" || strings.Contains(e.Name, "/") {
				t.Fatalf("bad entry %+v", e)
			}
		}
		mergeAPTKeptBack(nil, entries)
	})
}

// genAPTSimulate builds a dist-upgrade simulation of n packages in the
// shape apt-get prints (an Inst and a Conf line each, a third of them from
// the security archive).
func genAPTSimulate(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Reading package lists...\nBuilding dependency tree...\nReading state information...\nCalculating upgrade...\n")
	fmt.Fprintf(&b, "%d upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n", n)
	for i := range n {
		origin := "Debian:12.5/stable"
		if i%3 == 0 {
			origin = "Debian:12.5/stable, Debian-Security:12/stable-security"
		}
		fmt.Fprintf(&b, "Inst libexample%d-%d [1.%d.0-1] (1.%d.0-1+deb12u1 %s [amd64])\n", i, i%7, i, i, origin)
		fmt.Fprintf(&b, "Conf libexample%d-%d (1.%d.0-1+deb12u1 %s [amd64])\n", i, i%7, i, origin)
	}
	return b.Bytes()
}

func TestGenAPTSimulate5000(t *testing.T) {
	ops, err := parseAPTSimulate(genAPTSimulate(5000))
	if err != nil || len(ops) != 5000 {
		t.Fatalf("%d ops, err %v", len(ops), err)
	}
	ups := Clean("apt", aptUpdatesFromSimulate(ops))
	if len(ups) != 5000 {
		t.Fatalf("%d updates after Clean", len(ups))
	}
}

// BenchmarkParseAPT5000 measures parser throughput on a 5,000-package
// upgrade (simulation to cleaned updates).
func BenchmarkParseAPT5000(b *testing.B) {
	in := genAPTSimulate(5000)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		ops, err := parseAPTSimulate(in)
		if err != nil || len(ops) != 5000 {
			b.Fatalf("%d ops, err %v", len(ops), err)
		}
		aptUpdatesFromSimulate(ops)
	}
	b.ReportMetric(float64(5000*b.N)/b.Elapsed().Seconds(), "packages/s")
}

// TestAPTLiveReadOnly runs the real scan on this machine when asked
// (REDFLAG_LIVE_APT=1 on a Debian-like system): only read-only commands
// (a simulation without locking, apt list), and every upgrade the
// simulation shows must come out as an update.
func TestAPTLiveReadOnly(t *testing.T) {
	if os.Getenv("REDFLAG_LIVE_APT") != "1" {
		t.Skip("set REDFLAG_LIVE_APT=1 to scan this machine's apt (read-only)")
	}
	a := NewAPT(Exec{}, Options{})
	if !a.Available(context.Background()) {
		t.Skip("apt-get is not installed")
	}
	ups, err := a.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Exec{}.Run(context.Background(), "apt-get", aptSimulateUpgrade...)
	if err != nil {
		t.Fatal(err)
	}
	ops, perr := parseAPTSimulate(res.Stdout)
	if perr != nil {
		t.Fatal(perr)
	}
	t.Logf("%d updates (%d simulated actions)", len(Clean("apt", ups)), len(ops))
	if len(aptUpdatesFromSimulate(ops)) > len(ups) {
		t.Fatalf("scan lost updates")
	}
}
