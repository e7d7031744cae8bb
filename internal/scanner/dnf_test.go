package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

const rpmQAKey = `rpm -qa --qf %{NAME}\t%{ARCH}\t%{EPOCH}\t%{VERSION}-%{RELEASE}\n`

// dnfFake is an RPM machine as recorded output; bins are the front ends
// that exist (dnf5, dnf, yum, needs-restarting).
func dnfFake(answers map[string]Result, bins ...string) *Fake {
	f := &Fake{Paths: map[string]string{"rpm": "/usr/bin/rpm"}, Answers: answers}
	for _, b := range bins {
		f.Paths[b] = "/usr/bin/" + b
	}
	return f
}

func TestParseDNFCheckUpdate(t *testing.T) {
	tests := []struct {
		fixture string
		want    int
		check   map[string]dnfPkg
	}{
		{fixture: "dnf/check-update-el9.txt", want: 13, check: map[string]dnfPkg{
			"bind-libs": {Name: "bind-libs", Arch: "x86_64", EVR: "32:9.16.23-14.el9_3.4", Repo: "appstream"},
			// Wrapped onto two lines by dnf 4.
			"python3-dnf-plugin-post-transaction-actions": {Name: "python3-dnf-plugin-post-transaction-actions",
				Arch: "noarch", EVR: "4.3.0-11.el9_3", Repo: "baseos"},
		}},
		{fixture: "dnf/check-upgrade-fedora41.txt", want: 10, check: map[string]dnfPkg{
			"qemu-img": {Name: "qemu-img", Arch: "x86_64", EVR: "2:9.1.2-1.fc41", Repo: "updates"},
		}},
		{fixture: "dnf/check-update-el7-yum.txt", want: 2, check: map[string]dnfPkg{
			"openssl-libs": {Name: "openssl-libs", Arch: "x86_64", EVR: "1:1.0.2k-26.el7_9", Repo: "updates"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			pkgs, err := parseDNFCheckUpdate(readFixture(t, tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkgs) != tc.want {
				t.Fatalf("%d packages, want %d: %+v", len(pkgs), tc.want, pkgs)
			}
			for name, want := range tc.check {
				i := slices.IndexFunc(pkgs, func(p dnfPkg) bool { return p.Name == name })
				if i < 0 || pkgs[i] != want {
					t.Errorf("%s: got %+v, want %+v", name, pkgs[max(i, 0)], want)
				}
			}
			for _, p := range pkgs {
				if strings.HasPrefix(p.Name, "grub2") {
					t.Errorf("obsoleting section read as upgrades: %+v", p)
				}
			}
		})
	}
}

func TestParseDNFCheckUpdateMalformed(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		pkgs   int
		errors bool
	}{
		{"wrapped name never completed", "very-long-name.noarch\n\nfoo.x86_64 1-1 baseos\n", 1, true},
		{"extra columns", "foo.x86_64 1-1 baseos extra\n", 0, true},
		{"bad version", "foo.x86_64 notaversion baseos\n", 0, true},
		{"NUL in name", "fo\x00o.x86_64 1-1 baseos\n", 1, false},
		{"huge line", "foo.x86_64 1-1 " + strings.Repeat("r", 1<<20) + "\nbar.noarch 2-2 x\n", 1, true},
		{"half line", "foo.x86_64 1-1", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkgs, err := parseDNFCheckUpdate([]byte(tc.in))
			if len(pkgs) != tc.pkgs || (err != nil) != tc.errors {
				t.Fatalf("got %d packages, err %v; want %d, error %v", len(pkgs), err, tc.pkgs, tc.errors)
			}
		})
	}
}

func TestParseDNFUpdateinfo(t *testing.T) {
	tests := []struct {
		fixture string
		want    int
		check   dnfAdvisory
	}{
		{"dnf/updateinfo-list-el9.txt", 16, dnfAdvisory{ID: "RHSA-2024:0239", Type: "security", Severity: "Important",
			Name: "bind-libs", EVR: "32:9.16.23-14.el9_3.4", Arch: "x86_64"}},
		{"dnf/updateinfo-list-cve-el9.txt", 15, dnfAdvisory{ID: "CVE-2024-0741", Type: "security", Severity: "Critical",
			Name: "firefox", EVR: "115.7.0-1.el9_3", Arch: "x86_64"}},
		{"dnf/advisory-list-fedora41.txt", 10, dnfAdvisory{ID: "FEDORA-2024-a0e5b8c7d1", Type: "security", Severity: "Critical",
			Name: "qemu-img", EVR: "2:9.1.2-1.fc41", Arch: "x86_64"}},
		{"dnf/advisory-list-cve-fedora41.txt", 7, dnfAdvisory{ID: "CVE-2024-53141", Type: "security", Severity: "Important",
			Name: "kernel-core", EVR: "6.12.4-200.fc41", Arch: "x86_64"}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			advs, err := parseDNFUpdateinfo(readFixture(t, tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if len(advs) != tc.want {
				t.Fatalf("%d advisories, want %d", len(advs), tc.want)
			}
			if !slices.Contains(advs, tc.check) {
				t.Errorf("missing %+v in %+v", tc.check, advs)
			}
		})
	}
	// Forms not in the fixtures: dnf 4's --all marker, an unknown security
	// severity, dnf 5 without a severity, truncated columns.
	advs, err := parseDNFUpdateinfo([]byte("i RHSA-2024:1 Low/Sec. a-1-1.noarch\nRHSA-2024:2 Unknown/Sec. b-1-1.noarch\n" +
		"FEDORA-2024-3 security c-1-1.fc41.noarch 2024-01-01 00:00:00\nFEDORA-2024-4 secu Importan d-1-1.fc41.noarch 2024-01-01 00:00:00\n" +
		"updateinfo list done\n"))
	if err != nil || len(advs) != 4 {
		t.Fatalf("%+v %v", advs, err)
	}
	want := []string{protocol.SevLow, protocol.SevUnknown, protocol.SevUnknown, protocol.SevImportant}
	for i, a := range advs {
		if got := dnfSeverity(a); got != want[i] {
			t.Errorf("%+v: severity %s, want %s", a, got, want[i])
		}
	}
}

func TestDNFSeverity(t *testing.T) {
	tests := []struct {
		typ, sev, want string
	}{
		{"security", "Critical", protocol.SevCritical},
		{"security", "Important", protocol.SevImportant},
		{"security", "Moderate", protocol.SevModerate},
		{"security", "Low", protocol.SevLow},
		{"security", "None", protocol.SevUnknown},
		{"security", "", protocol.SevUnknown},
		{"security", "urgent", protocol.SevUnknown},
		{"bugfix", "Moderate", protocol.SevUnknown}, // not a security rating
		{"enhancement", "Critical", protocol.SevUnknown},
		{"secu", "Crit", protocol.SevCritical}, // dnf 5 on a narrow terminal
		{"security", "Lo", protocol.SevUnknown},
	}
	for _, tc := range tests {
		if got := dnfSeverity(dnfAdvisory{Type: tc.typ, Severity: tc.sev}); got != tc.want {
			t.Errorf("dnfSeverity(%s, %s) = %s, want %s", tc.typ, tc.sev, got, tc.want)
		}
	}
}

func TestRPMVerCmp(t *testing.T) {
	// Vectors from rpm's own behaviour (rpmvercmp.at).
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0}, {"1.0", "2.0", -1}, {"2.0", "1.0", 1},
		{"2.0.1", "2.0.1", 0}, {"2.0", "2.0.1", -1}, {"2.0.1a", "2.0.1", 1},
		{"5.5p1", "5.5p2", -1}, {"5.5p10", "5.5p1", 1},
		{"10xyz", "10.1xyz", -1}, {"xyz10", "xyz10.1", -1},
		{"xyz.4", "8", -1}, {"8", "xyz.4", 1},
		{"1.0010", "1.9", 1}, {"1.05", "1.5", 0},
		{"1.0~rc1", "1.0", -1}, {"1.0~rc1", "1.0~rc2", -1}, {"1.0~rc1~git123", "1.0~rc1", -1},
		{"1.0^", "1.0", 1}, {"1.0^git1", "1.0", 1}, {"1.0^git1", "1.01", -1}, {"1.0^git1~pre", "1.0^git1", -1},
		{"b", "a", 1}, {"a+", "a_", 0}, {"+a", "_a", 0},
	}
	for _, tc := range tests {
		if got := rpmvercmp(tc.a, tc.b); got != tc.want {
			t.Errorf("rpmvercmp(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	evr := []struct {
		a, b string
		want int
	}{
		{"1:1.0-1", "2.0-1", 1}, {"0:2.0-1", "2.0-1", 0}, {"5.14.0-362.18.1.el9_3", "5.14.0-362.8.1.el9_3", 1},
		{"3.0.7-25.el9_3", "3.0.7", 0}, {"1:3.0.7-27.el9_4", "1:3.0.7-25.el9_3", 1},
	}
	for _, tc := range evr {
		if got := rpmCompareEVR(tc.a, tc.b); got != tc.want {
			t.Errorf("rpmCompareEVR(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestDNFScanDNF4(t *testing.T) {
	f := dnfFake(map[string]Result{
		"dnf check-update --refresh":               {ExitCode: 100, Stdout: readFixture(t, "dnf/check-update-el9.txt")},
		"dnf updateinfo list --updates":            {Stdout: readFixture(t, "dnf/updateinfo-list-el9.txt")},
		"dnf updateinfo list --updates --with-cve": {Stdout: readFixture(t, "dnf/updateinfo-list-cve-el9.txt")},
		rpmQAKey: {Stdout: readFixture(t, "dnf/rpm-qa-el9.txt")},
		"dnf5 check-upgrade --refresh (must not be used)": {},
	}, "dnf", "yum")
	d := NewDNF(f, Options{RefreshLists: true})
	if !d.Available(context.Background()) || d.Name() != "dnf" {
		t.Fatal("dnf not available")
	}
	ups, err := d.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dnf check-update --refresh", "dnf updateinfo list --updates", "dnf updateinfo list --updates --with-cve", rpmQAKey}
	if !slices.Equal(f.Calls(), want) {
		t.Fatalf("calls %q\nwant  %q", f.Calls(), want)
	}
	ups = Clean("dnf", ups)
	if len(ups) != 12 { // glibc.i686 and glibc.x86_64 are one package name
		t.Fatalf("%d updates", len(ups))
	}
	tests := []struct {
		name, cur, avail, sev, advisories string
		cves                              []string
	}{
		{"bind-libs", "32:9.16.23-14.el9_3", "32:9.16.23-14.el9_3.4", protocol.SevImportant, "RHSA-2024:0239",
			[]string{"CVE-2023-4408", "CVE-2023-50387", "CVE-2023-50868"}},
		{"firefox", "115.6.0-1.el9_3", "115.7.0-1.el9_3", protocol.SevCritical, "RHSA-2024:0600", []string{"CVE-2024-0741", "CVE-2024-0746"}},
		{"curl", "7.76.1-26.el9_3", "7.76.1-26.el9_3.2", protocol.SevModerate, "RHSA-2024:0253", []string{"CVE-2023-46218"}},
		{"glibc", "2.34-83.el9_3.5", "2.34-83.el9_3.7", protocol.SevLow, "RHBA-2024:0135,RHSA-2024:0033", []string{"CVE-2023-4806"}},
		// Two advisories on the way to the offered version: the worse counts.
		{"kernel-core", "5.14.0-362.8.1.el9_3", "5.14.0-362.18.1.el9_3", protocol.SevImportant, "RHSA-2024:0134,RHSA-2024:0461",
			[]string{"CVE-2023-3812", "CVE-2023-42753", "CVE-2023-4622"}},
		// The Important advisory is for a version this upgrade does not reach.
		{"openssl-libs", "1:3.0.7-24.el9", "1:3.0.7-25.el9_3", protocol.SevModerate, "RHSA-2024:0310", []string{"CVE-2023-5678"}},
		{"NetworkManager", "1:1.44.0-3.el9", "1:1.44.0-4.el9_3", protocol.SevUnknown, "RHBA-2024:0182", []string{}},
		{"tzdata", "2023c-1.el9", "2023d-1.el9", protocol.SevUnknown, "RHEA-2024:0085", []string{}},
		{"python3-dnf-plugin-post-transaction-actions", "4.3.0-10.el9", "4.3.0-11.el9_3", protocol.SevUnknown, "", []string{}},
	}
	for _, tc := range tests {
		i := slices.IndexFunc(ups, func(u protocol.Update) bool { return u.PackageName == tc.name })
		if i < 0 {
			t.Errorf("no update for %s", tc.name)
			continue
		}
		u := ups[i]
		if u.CurrentVersion != tc.cur || u.AvailableVersion != tc.avail || u.Severity != tc.sev ||
			u.Metadata["advisories"] != tc.advisories || !slices.Equal(u.CVEIDs, tc.cves) {
			t.Errorf("%s: got %s → %s %s %q %q\nwant %s → %s %s %q %q", tc.name, u.CurrentVersion, u.AvailableVersion,
				u.Severity, u.Metadata["advisories"], u.CVEIDs, tc.cur, tc.avail, tc.sev, tc.advisories, tc.cves)
		}
	}
}

func TestDNFScanDNF5(t *testing.T) {
	f := dnfFake(map[string]Result{
		"dnf5 check-upgrade":                      {ExitCode: 100, Stdout: readFixture(t, "dnf/check-upgrade-fedora41.txt")},
		"dnf5 advisory list --updates":            {Stdout: readFixture(t, "dnf/advisory-list-fedora41.txt")},
		"dnf5 advisory list --updates --with-cve": {Stdout: readFixture(t, "dnf/advisory-list-cve-fedora41.txt")},
		rpmQAKey: {Stdout: readFixture(t, "dnf/rpm-qa-fedora41.txt")},
	}, "dnf5", "dnf")
	ups, err := NewDNF(f, Options{}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ups = Clean("dnf", ups)
	got := map[string]string{}
	for _, u := range ups {
		got[u.PackageName] = fmt.Sprintf("%s→%s %s %d", u.CurrentVersion, u.AvailableVersion, u.Severity, len(u.CVEIDs))
	}
	want := map[string]string{
		"curl":           "8.9.1-2.fc41→8.9.1-3.fc41 moderate 1",
		"glib2":          "2.82.1-1.fc41→2.82.2-1.fc41 unknown 0",
		"kernel":         "6.11.10-300.fc41→6.12.4-200.fc41 important 1",
		"kernel-core":    "6.11.10-300.fc41→6.12.4-200.fc41 important 2",
		"libcurl":        "8.9.1-2.fc41→8.9.1-3.fc41 moderate 1",
		"python3-jinja2": "3.1.4-3.fc41→3.1.4-4.fc41 unknown 0", // a bugfix's Moderate is no security rating
		"qemu-img":       "2:9.1.1-2.fc41→2:9.1.2-1.fc41 critical 1",
		"unbound-libs":   "1.21.1-1.fc41→1.22.0-8.fc41 unknown 0",
		"vim-minimal":    "2:9.1.825-1.fc41→2:9.1.866-1.fc41 low 1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestDNFScanYumFallback(t *testing.T) {
	f := dnfFake(map[string]Result{
		"yum check-update":            {ExitCode: 100, Stdout: readFixture(t, "dnf/check-update-el7-yum.txt")},
		"yum updateinfo list updates": {Stdout: []byte("Loaded plugins: fastestmirror\nRHSA-2024:0115 Important/Sec. openssl-libs-1:1.0.2k-26.el7_9.x86_64\nupdateinfo list done\n")},
		"yum updateinfo list cves":    {Stdout: []byte("CVE-2023-3817 Important/Sec. openssl-libs-1:1.0.2k-26.el7_9.x86_64\n")},
		rpmQAKey:                      {Stdout: []byte("openssl-libs\tx86_64\t1\t1.0.2k-25.el7_9\nopenssl\tx86_64\t1\t1.0.2k-25.el7_9\n")},
	}, "yum")
	ups, err := NewDNF(f, Options{}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ups = Clean("dnf", ups)
	if len(ups) != 2 || ups[1].PackageName != "openssl-libs" || ups[1].Severity != protocol.SevImportant ||
		ups[1].CurrentVersion != "1:1.0.2k-25.el7_9" || !slices.Equal(ups[1].CVEIDs, []string{"CVE-2023-3817"}) {
		t.Fatalf("%+v", ups)
	}
}

func TestDNFScanExitCodesAndFailures(t *testing.T) {
	el9 := readFixture(t, "dnf/check-update-el9.txt")
	tests := []struct {
		name      string
		bins      []string
		answers   map[string]Result
		updates   int
		calls     int
		errSubstr string
	}{
		{name: "exit 0: up to date, nothing else asked", bins: []string{"dnf"},
			answers: map[string]Result{"dnf check-update": {Stdout: []byte("Last metadata expiration check: 0:01:00 ago.\n")}}, calls: 1},
		{name: "exit 1: error", bins: []string{"dnf"}, answers: map[string]Result{"dnf check-update": {ExitCode: 1,
			Stderr: []byte("Error: Failed to download metadata for repo 'appstream': Cannot download repomd.xml\n")}},
			calls: 1, errSubstr: "Cannot download repomd.xml"},
		{name: "exit 100 but nothing readable", bins: []string{"dnf"}, answers: map[string]Result{"dnf check-update": {ExitCode: 100,
			Stdout: []byte("something new\n")}}, calls: 1, errSubstr: "no package line was readable"},
		{name: "updateinfo fails: updates kept, error reported", bins: []string{"dnf"}, answers: map[string]Result{
			"dnf check-update":                         {ExitCode: 100, Stdout: el9},
			"dnf updateinfo list --updates":            {ExitCode: 1, Stderr: []byte("Error: updateinfo broke\n")},
			"dnf updateinfo list --updates --with-cve": {ExitCode: 1, Stderr: []byte("Error: updateinfo broke\n")},
			rpmQAKey: {Stdout: readFixture(t, "dnf/rpm-qa-el9.txt")}}, updates: 13, calls: 4, errSubstr: "severities and CVEs may be missing"},
		{name: "no front end", bins: nil, calls: 0, errSubstr: "not present"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := dnfFake(tc.answers, tc.bins...)
			ups, err := NewDNF(f, Options{}).Scan(context.Background())
			if len(ups) != tc.updates || len(f.Calls()) != tc.calls {
				t.Errorf("%d updates, calls %q", len(ups), f.Calls())
			}
			if tc.errSubstr == "" && err != nil || tc.errSubstr != "" && (err == nil || !strings.Contains(err.Error(), tc.errSubstr)) {
				t.Errorf("err %v, want one containing %q", err, tc.errSubstr)
			}
		})
	}
}

func TestParseDNFTransaction(t *testing.T) {
	tests := []struct {
		fixture string
		want    []string // "action name arch from→to"
		nothing bool
	}{
		{fixture: "dnf/upgrade-assumeno-el9.txt", want: []string{
			"upgrade grub2-tools x86_64 →1:2.06-70.el9_3.2",
			"remove grub2-tools-extra x86_64 1:2.06-70.el9_3.1→",
			"upgrade openssl x86_64 →1:3.0.7-25.el9_3",
			"upgrade openssl-libs x86_64 →1:3.0.7-25.el9_3",
			"upgrade python3-dnf-plugin-post-transaction-actions noarch →4.3.0-11.el9_3",
			"install openssl-fips-provider x86_64 →3.0.7-2.el9",
			"remove compat-openssl11 x86_64 →1:1.1.1k-4.el9_0",
		}},
		{fixture: "dnf/upgrade-assumeno-fedora41.txt", want: []string{
			"upgrade curl x86_64 8.9.1-2.fc41→8.9.1-3.fc41",
			"upgrade libcurl x86_64 8.9.1-2.fc41→8.9.1-3.fc41",
			"upgrade qemu-img x86_64 2:9.1.1-2.fc41→2:9.1.2-1.fc41",
			"install libnghttp3 x86_64 →1.6.0-1.fc41",
			"remove libnghttp2-compat x86_64 →1.62.1-1.fc41",
		}},
		{fixture: "dnf/upgrade-assumeno-fedora40.txt", want: []string{
			"upgrade PackageKit x86_64 1.2.8-3.fc40→1.2.8-4.fc40",
			"upgrade unbound-libs x86_64 1.21.1-1.fc40→1.22.0-8.fc40",
			"install python3-jinja2 noarch →3.1.4-4.fc40",
			"remove python3-jinja2-compat noarch 3.1.4-2.fc40→",
		}},
		{fixture: "dnf/upgrade-assumeno-el7-yum.txt", want: []string{
			"upgrade openssl x86_64 →1:1.0.2k-26.el7_9",
			"upgrade openssl-libs x86_64 →1:1.0.2k-26.el7_9",
		}},
		{fixture: "dnf/upgrade-assumeno-nothing.txt", nothing: true},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			tx, err := parseDNFTransaction(readFixture(t, tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range tx.Changes {
				got = append(got, fmt.Sprintf("%s %s %s %s→%s", c.Action, c.Name, c.Arch, c.FromEVR, c.EVR))
			}
			if !slices.Equal(got, tc.want) || tx.NothingToDo != tc.nothing || tx.Table == tc.nothing {
				t.Fatalf("got %q (table %v, nothing %v)\nwant %q", got, tx.Table, tx.NothingToDo, tc.want)
			}
		})
	}
	// dnf 5 on a wide terminal: "NEW <- OLD" in one cell.
	tx, err := parseDNFTransaction([]byte("Upgrading:\n qemu-img  x86_64  2:9.1.2-1.fc41       <- 2:9.1.1-2.fc41  updates <- fedora  22.9 MiB\n"))
	if err != nil || len(tx.Changes) != 1 || tx.Changes[0].FromEVR != "2:9.1.1-2.fc41" || tx.Changes[0].Repo != "updates" {
		t.Fatalf("%+v %v", tx, err)
	}
}

func TestDNFItemProblem(t *testing.T) {
	tests := []struct {
		name, version string
		ok            bool
	}{
		{"openssl", "1:3.0.7-25.el9_3", true},
		{"NetworkManager", "1:1.44.0-4.el9_3", true},
		{"python3.11", "3.11.5-1.el9_3", true},
		{"libstdc++", "11.4.1-2.1.el9", true},
		{"perl-Net_SSLeay", "1.92-2.el9", true},
		{"kernel", "", true},
		{"vim-minimal", "2:9.1.866-1.fc41", true},
		{"foo", "1.0^git1-1", true},
		{"foo", "1.0~rc1-1", true},
		{"-y", "1-1", false},
		{"--setopt=tsflags=noscripts", "", false},
		{"openssl", "--nogpgcheck", false},
		{"open*", "1-1", false},
		{"openssl", "1-1 2-2", false},
		{"openssl", "1-1;id", false},
		{"openssl", "$(id)", false},
		{"openssl", "1-1-1", false},
		{".hidden", "1-1", false},
		{"openssl", "1-1\n", false},
		{"", "1-1", false},
		{"a/b", "1-1", false},
	}
	for _, tc := range tests {
		why := dnfItemProblem(tc.name, tc.version)
		if (why == "") != tc.ok {
			t.Errorf("dnfItemProblem(%q, %q) = %q, want ok=%v", tc.name, tc.version, why, tc.ok)
		}
	}
}

func TestDNFInstallDryRun(t *testing.T) {
	const key = "dnf upgrade --assumeno openssl-1:3.0.7-25.el9_3 openssl-libs-1:3.0.7-25.el9_3 grub2-tools"
	f := dnfFake(map[string]Result{
		key:      {ExitCode: 1, Stdout: readFixture(t, "dnf/upgrade-assumeno-el9.txt")},
		rpmQAKey: {Stdout: readFixture(t, "dnf/rpm-qa-el9.txt")},
	}, "dnf")
	items := []protocol.InstallItem{
		{UpdateID: "a", PackageType: "dnf", PackageName: "openssl", Version: "1:3.0.7-25.el9_3"},
		{UpdateID: "b", PackageType: "dnf", PackageName: "openssl-libs", Version: "1:3.0.7-25.el9_3"},
		{UpdateID: "c", PackageType: "dnf", PackageName: "grub2-tools"},
		{UpdateID: "d", PackageType: "dnf", PackageName: "openssl", Version: "1:3.0.7-25.el9_3 --nogpgcheck"},
	}
	res, err := NewDNF(f, Options{}).Install(context.Background(), items, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{key, rpmQAKey}; !slices.Equal(f.Calls(), want) {
		t.Fatalf("calls %q, want %q", f.Calls(), want)
	}
	if len(res.Changes) != 7 {
		t.Fatalf("changes %+v", res.Changes)
	}
	var extras []string
	for _, e := range res.Extras {
		extras = append(extras, e.Action+" "+e.PackageName+" "+e.FromVersion+"→"+e.ToVersion)
	}
	want := []string{"remove grub2-tools-extra 1:2.06-70.el9_3.1→", "upgrade python3-dnf-plugin-post-transaction-actions 4.3.0-10.el9→4.3.0-11.el9_3",
		"install openssl-fips-provider →3.0.7-2.el9", "remove compat-openssl11 1:1.1.1k-4.el9_0→"}
	if !slices.Equal(extras, want) {
		t.Fatalf("extras %q\nwant   %q", extras, want)
	}
	if res.Changes[2].FromVersion != "1:3.0.7-24.el9" {
		t.Errorf("from-version from rpm: %+v", res.Changes[2])
	}
	if len(res.Results) != 1 || res.Results[0].UpdateID != "d" {
		t.Errorf("results %+v", res.Results)
	}
}

func TestDNFInstallDryRunFailure(t *testing.T) {
	const key = "dnf5 upgrade --assumeno openssl-9.9.9-1.el9"
	f := dnfFake(map[string]Result{key: {ExitCode: 1, Stderr: readFixture(t, "dnf/upgrade-assumeno-nomatch.stderr")}}, "dnf5")
	res, err := NewDNF(f, Options{}).Install(context.Background(), []protocol.InstallItem{
		{UpdateID: "a", PackageName: "openssl", Version: "9.9.9-1.el9"}}, true)
	if err == nil || !strings.Contains(err.Error(), "No packages marked for upgrade") {
		t.Fatalf("err %v", err)
	}
	if len(res.Results) != 1 || res.Results[0].Status != "failed" || res.ExitCode != 1 {
		t.Fatalf("%+v", res)
	}
	// Nothing to do is a plan (an empty one), not a failure.
	f = dnfFake(map[string]Result{"dnf5 upgrade --assumeno openssl-1:3.0.7-25.el9_3": {Stdout: readFixture(t, "dnf/upgrade-assumeno-nothing.txt")}}, "dnf5")
	res, err = NewDNF(f, Options{}).Install(context.Background(), []protocol.InstallItem{
		{UpdateID: "a", PackageName: "openssl", Version: "1:3.0.7-25.el9_3"}}, true)
	if err != nil || len(res.Changes) != 0 || len(res.Results) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestDNFInstall(t *testing.T) {
	const key = "dnf -y upgrade openssl-1:3.0.7-25.el9_3 kernel-core-5.14.0-362.18.1.el9_3 curl-7.76.1-26.el9_3.2"
	after := "openssl\tx86_64\t1\t3.0.7-25.el9_3\n" +
		"kernel-core\tx86_64\t0\t5.14.0-362.18.1.el9_3\nkernel-core\tx86_64\t0\t5.14.0-362.8.1.el9_3\n" +
		"curl\tx86_64\t0\t7.76.1-26.el9_3\n"
	tests := []struct {
		name   string
		bins   []string
		exit   int
		nr     map[string]Result
		reboot bool
	}{
		{name: "needs-restarting binary says reboot", bins: []string{"dnf", "needs-restarting"}, exit: 1,
			nr: map[string]Result{"needs-restarting -r": {ExitCode: 1, Stdout: readFixture(t, "dnf/needs-restarting-reboot.txt")}}, reboot: true},
		{name: "dnf plugin says no reboot", bins: []string{"dnf"},
			nr: map[string]Result{"dnf needs-restarting -r": {Stdout: readFixture(t, "dnf/needs-restarting-none.txt")}}},
		{name: "plugin missing: exit 1 is not a reboot", bins: []string{"dnf"},
			nr: map[string]Result{"dnf needs-restarting -r": {ExitCode: 1, Stderr: []byte("No such command: needs-restarting.\n")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			answers := map[string]Result{
				key:      {ExitCode: tc.exit, Stdout: []byte("Upgrading:\n...\nComplete!\n"), Stderr: []byte("Error: Transaction test error:\n  file /usr/bin/curl conflicts\n")},
				rpmQAKey: {Stdout: []byte(after)},
			}
			for k, v := range tc.nr {
				answers[k] = v
			}
			f := dnfFake(answers, tc.bins...)
			res, err := NewDNF(f, Options{}).Install(context.Background(), []protocol.InstallItem{
				{UpdateID: "ssl", PackageName: "openssl", Version: "1:3.0.7-25.el9_3"},
				{UpdateID: "kern", PackageName: "kernel-core", Version: "5.14.0-362.18.1.el9_3"},
				{UpdateID: "curl", PackageName: "curl", Version: "7.76.1-26.el9_3.2"},
			}, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Calls()) != 3 || f.Calls()[0] != key || f.Calls()[1] != rpmQAKey {
				t.Fatalf("calls %q", f.Calls())
			}
			got := map[string]string{}
			for _, r := range res.Results {
				got[r.UpdateID] = r.Status + " " + r.InstalledVersion
			}
			want := map[string]string{"ssl": "installed 1:3.0.7-25.el9_3", "kern": "installed 5.14.0-362.18.1.el9_3",
				"curl": "failed 7.76.1-26.el9_3"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("results %v, want %v", got, want)
			}
			if res.RebootRequired != tc.reboot || res.ExitCode != tc.exit {
				t.Errorf("reboot %v exit %d", res.RebootRequired, res.ExitCode)
			}
		})
	}
}

func TestDNFInstallRefusesHostileItems(t *testing.T) {
	f := dnfFake(map[string]Result{}, "dnf")
	res, err := NewDNF(f, Options{}).Install(context.Background(), []protocol.InstallItem{
		{UpdateID: "1", PackageName: "--setopt=gpgcheck=0"},
		{UpdateID: "2", PackageName: "openssl", Version: "1-1 --nogpgcheck"},
		{UpdateID: "3", PackageName: "*"},
		{UpdateID: "4", PackageName: "openssl", Version: "`id`"},
		{UpdateID: "5", PackageType: "apt", PackageName: "openssl"},
	}, false)
	if err != nil || len(f.Calls()) != 0 || len(res.Results) != 5 {
		t.Fatalf("err %v calls %q results %+v", err, f.Calls(), res.Results)
	}
	for _, r := range res.Results {
		if r.Status != "failed" || !strings.HasPrefix(r.Message, "refused") {
			t.Errorf("%+v", r)
		}
	}
}

func FuzzParseDNFCheckUpdate(f *testing.F) {
	for _, fx := range []string{"check-update-el9.txt", "check-upgrade-fedora41.txt", "check-update-el7-yum.txt",
		"real-dnf4-check-update.txt", "real-dnf4-check-update-refresh.txt"} {
		f.Add(readFixture(f, "dnf/"+fx))
	}
	f.Add([]byte("a.noarch\n  1-1\n  repo extra\nObsoleting Packages\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		pkgs, err := parseDNFCheckUpdate(in)
		if err != nil && !errors.Is(err, errToolOutput) {
			t.Fatalf("error %v does not wrap errToolOutput", err)
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Arch == "" || !rpmLooksLikeEVR(p.EVR) || p.Repo == "" {
				t.Fatalf("bad package %+v", p)
			}
		}
		dnfUpdates(pkgs, nil, nil)
	})
}

func FuzzParseDNFUpdateinfo(f *testing.F) {
	for _, fx := range []string{"updateinfo-list-el9.txt", "updateinfo-list-cve-el9.txt", "advisory-list-fedora41.txt", "advisory-list-cve-fedora41.txt",
		"real-dnf4-updateinfo-list.txt", "real-dnf4-updateinfo-list-cve.txt"} {
		f.Add(readFixture(f, "dnf/"+fx))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		advs, err := parseDNFUpdateinfo(in)
		if err != nil && !errors.Is(err, errToolOutput) {
			t.Fatalf("error %v does not wrap errToolOutput", err)
		}
		for _, a := range advs {
			if a.ID == "" || a.Name == "" || a.EVR == "" {
				t.Fatalf("bad advisory %+v", a)
			}
			dnfSeverity(a)
		}
		dnfUpdates([]dnfPkg{{Name: "a", Arch: "x86_64", EVR: "1-1"}}, advs, nil)
	})
}

func FuzzParseDNFTransaction(f *testing.F) {
	for _, fx := range []string{"upgrade-assumeno-el9.txt", "upgrade-assumeno-fedora41.txt", "upgrade-assumeno-fedora40.txt", "upgrade-assumeno-el7-yum.txt",
		"real-dnf4-upgrade-assumeno.txt", "real-dnf4-upgrade-assumeno-nothing.txt"} {
		f.Add(readFixture(f, "dnf/"+fx))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tx, err := parseDNFTransaction(in)
		if err != nil && !errors.Is(err, errToolOutput) {
			t.Fatalf("error %v does not wrap errToolOutput", err)
		}
		for _, c := range tx.Changes {
			if c.Name == "" || (c.Action != "upgrade" && c.Action != "install" && c.Action != "remove") {
				t.Fatalf("bad change %+v", c)
			}
		}
		dnfChanges(tx.Changes, []protocol.InstallItem{{PackageName: "curl"}})
	})
}

func FuzzParseRPMQuery(f *testing.F) {
	f.Add(readFixture(f, "dnf/rpm-qa-el9.txt"))
	f.Add(readFixture(f, "dnf/real-rpm418-qa.txt"))
	f.Add([]byte("a\tb\tc\n\t\t\t\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := parseRPMQuery(in)
		if err != nil && !errors.Is(err, errToolOutput) {
			t.Fatalf("error %v does not wrap errToolOutput", err)
		}
		for k := range m {
			m.current(k, "")
		}
	})
}

func FuzzRPMVerCmp(f *testing.F) {
	f.Add("1.0~rc1^git", "1.0.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		if x, y := rpmvercmp(a, b), rpmvercmp(b, a); x != -y {
			t.Fatalf("rpmvercmp(%q,%q)=%d but reversed %d", a, b, x, y)
		}
		rpmCompareEVR(a, b)
	})
}

func TestNeedsRestartingSaysReboot(t *testing.T) {
	tests := []struct {
		exit int
		out  []byte
		want bool
	}{
		{1, []byte("Reboot is required to fully utilize these updates."), true},
		{1, []byte("Reboot is required to ensure that your system benefits from these updates."), true},
		{0, []byte("Reboot should not be necessary."), false},
		{1, []byte("No such command: needs-restarting."), false},
		{1, bytes.Repeat([]byte{0}, 100), false},
	}
	for _, tc := range tests {
		if got := needsRestartingSaysReboot(Result{ExitCode: tc.exit, Stdout: tc.out}); got != tc.want {
			t.Errorf("%d %q: %v", tc.exit, tc.out, got)
		}
	}
}

// The real-dnf4-* fixtures were captured from dnf 4.14.0 (Debian 12) against
// a scratch installroot and a local createrepo_c repository (see
// testdata/dnf/README.md): exit codes and stderr are as dnf gave them.
func TestDNFScanRealDNF4(t *testing.T) {
	for _, refresh := range []bool{false, true} {
		t.Run(fmt.Sprint("refresh=", refresh), func(t *testing.T) {
			cu, fx := "dnf check-update", "dnf/real-dnf4-check-update.txt"
			if refresh {
				cu, fx = "dnf check-update --refresh", "dnf/real-dnf4-check-update-refresh.txt"
			}
			f := dnfFake(map[string]Result{
				cu:                              {ExitCode: 100, Stdout: readFixture(t, fx)},
				"dnf updateinfo list --updates": {Stdout: readFixture(t, "dnf/real-dnf4-updateinfo-list.txt")},
				"dnf updateinfo list --updates --with-cve": {Stdout: readFixture(t, "dnf/real-dnf4-updateinfo-list-cve.txt")},
				rpmQAKey: {Stdout: readFixture(t, "dnf/real-rpm418-qa.txt")},
			}, "dnf")
			ups, err := NewDNF(f, Options{RefreshLists: refresh}).Scan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := []string{cu, "dnf updateinfo list --updates", "dnf updateinfo list --updates --with-cve", rpmQAKey}
			if !slices.Equal(f.Calls(), want) {
				t.Fatalf("calls %q\nwant  %q", f.Calls(), want)
			}
			ups = Clean("dnf", ups)
			if len(ups) != 3 {
				t.Fatalf("%d updates: %+v", len(ups), ups)
			}
			tests := []struct {
				name, cur, avail, sev, advisories string
				cves                              []string
			}{
				{"rfhello", "1.0-1", "1.1-1", protocol.SevImportant, "RFSA-2024:0001", []string{"CVE-2024-12345"}},
				{"rfutil-with-a-rather-long-package-name", "2:3.0-1", "2:3.1-1", protocol.SevUnknown, "RFBA-2024:0002", []string{}},
				{"rfwrap-an-exceedingly-long-package-name-that-dnf-has-to-wrap-in-its-table", "0.9-1", "1.0~rc1-1",
					protocol.SevUnknown, "", []string{}},
			}
			for _, tc := range tests {
				i := slices.IndexFunc(ups, func(u protocol.Update) bool { return u.PackageName == tc.name })
				if i < 0 {
					t.Errorf("no update for %s", tc.name)
					continue
				}
				u := ups[i]
				if u.CurrentVersion != tc.cur || u.AvailableVersion != tc.avail || u.Severity != tc.sev ||
					u.Metadata["advisories"] != tc.advisories || !slices.Equal(u.CVEIDs, tc.cves) {
					t.Errorf("%s: got %s → %s %s %q %q\nwant %s → %s %s %q %q", tc.name, u.CurrentVersion, u.AvailableVersion,
						u.Severity, u.Metadata["advisories"], u.CVEIDs, tc.cur, tc.avail, tc.sev, tc.advisories, tc.cves)
				}
			}
		})
	}
}

func TestParseRealDNF4(t *testing.T) {
	for _, fx := range []string{"dnf/real-dnf4-check-update.txt", "dnf/real-dnf4-check-update-refresh.txt"} {
		pkgs, err := parseDNFCheckUpdate(readFixture(t, fx))
		want := []dnfPkg{
			{Name: "rfhello", Arch: "noarch", EVR: "1.1-1", Repo: "rflocal"},
			{Name: "rfutil-with-a-rather-long-package-name", Arch: "noarch", EVR: "2:3.1-1", Repo: "rflocal"},
			{Name: "rfwrap-an-exceedingly-long-package-name-that-dnf-has-to-wrap-in-its-table", Arch: "noarch", EVR: "1.0~rc1-1", Repo: "rflocal"},
		}
		if err != nil || !slices.Equal(pkgs, want) {
			t.Errorf("%s: %+v, %v\nwant %+v", fx, pkgs, err, want)
		}
	}
	advs, err := parseDNFUpdateinfo(readFixture(t, "dnf/real-dnf4-updateinfo-list.txt"))
	want := []dnfAdvisory{
		{ID: "RFSA-2024:0001", Type: "security", Severity: "Important", Name: "rfhello", EVR: "1.1-1", Arch: "noarch"},
		{ID: "RFBA-2024:0002", Type: "bugfix", Name: "rfutil-with-a-rather-long-package-name", EVR: "2:3.1-1", Arch: "noarch"},
	}
	if err != nil || !slices.Equal(advs, want) {
		t.Errorf("updateinfo: %+v, %v\nwant %+v", advs, err, want)
	}
	if got := dnfSeverity(advs[0]); got != protocol.SevImportant {
		t.Errorf("severity %q", got)
	}
	advs, err = parseDNFUpdateinfo(readFixture(t, "dnf/real-dnf4-updateinfo-list-cve.txt"))
	want = []dnfAdvisory{{ID: "CVE-2024-12345", Type: "security", Severity: "Important", Name: "rfhello", EVR: "1.1-1", Arch: "noarch"}}
	if err != nil || !slices.Equal(advs, want) {
		t.Errorf("updateinfo --with-cve: %+v, %v\nwant %+v", advs, err, want)
	}
	tx, err := parseDNFTransaction(readFixture(t, "dnf/real-dnf4-upgrade-assumeno-nothing.txt"))
	if err != nil || !tx.NothingToDo || tx.Table || len(tx.Changes) != 0 {
		t.Errorf("nothing to do: %+v, %v", tx, err)
	}
	m, err := parseRPMQuery(readFixture(t, "dnf/real-rpm418-qa.txt"))
	if err != nil || m.current("rfhello", "noarch") != "1.0-1" || m.current("rfutil-with-a-rather-long-package-name", "noarch") != "2:3.0-1" {
		t.Errorf("rpm -qa: %+v, %v", m, err)
	}
}

func TestDNFInstallDryRunRealDNF4(t *testing.T) {
	const key = "dnf upgrade --assumeno rfhello-1.1-1 rfutil-with-a-rather-long-package-name-2:3.1-1 " +
		"rfwrap-an-exceedingly-long-package-name-that-dnf-has-to-wrap-in-its-table-1.0~rc1-1"
	f := dnfFake(map[string]Result{
		key: {ExitCode: 1, Stdout: readFixture(t, "dnf/real-dnf4-upgrade-assumeno.txt"),
			Stderr: readFixture(t, "dnf/real-dnf4-upgrade-assumeno.stderr")},
		rpmQAKey: {Stdout: readFixture(t, "dnf/real-rpm418-qa.txt")},
	}, "dnf")
	items := []protocol.InstallItem{
		{UpdateID: "a", PackageType: "dnf", PackageName: "rfhello", Version: "1.1-1"},
		{UpdateID: "b", PackageType: "dnf", PackageName: "rfutil-with-a-rather-long-package-name", Version: "2:3.1-1"},
		{UpdateID: "c", PackageType: "dnf", PackageName: "rfwrap-an-exceedingly-long-package-name-that-dnf-has-to-wrap-in-its-table", Version: "1.0~rc1-1"},
	}
	res, err := NewDNF(f, Options{}).Install(context.Background(), items, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{key, rpmQAKey}; !slices.Equal(f.Calls(), want) {
		t.Fatalf("calls %q, want %q", f.Calls(), want)
	}
	var changes []string
	for _, c := range res.Changes {
		changes = append(changes, c.Action+" "+c.PackageName+" "+c.FromVersion+"→"+c.ToVersion)
	}
	want := []string{"upgrade rfhello 1.0-1→1.1-1", "upgrade rfutil-with-a-rather-long-package-name 2:3.0-1→2:3.1-1",
		"upgrade rfwrap-an-exceedingly-long-package-name-that-dnf-has-to-wrap-in-its-table 0.9-1→1.0~rc1-1"}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes %q\nwant    %q", changes, want)
	}
	if len(res.Extras) != 0 || len(res.Results) != 0 || res.ExitCode != 1 {
		t.Errorf("extras %+v results %+v exit %d", res.Extras, res.Results, res.ExitCode)
	}
}
