package scanner

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestParseSnapTable(t *testing.T) {
	tests := []struct {
		fixture string
		input   string
		want    []map[string]string
		wantErr string
	}{
		{fixture: "snap/refresh_list_2.61.txt", want: []map[string]string{
			{"Name": "core22", "Version": "20240408", "Rev": "1380", "Size": "77MB", "Publisher": "canonical**", "Notes": "base"},
			{"Name": "firefox", "Version": "125.0.2-1", "Rev": "4173", "Size": "278MB", "Publisher": "mozilla**", "Notes": "-"},
			{"Name": "lxd", "Version": "5.21.1-2d13beb", "Rev": "28463", "Size": "108MB", "Publisher": "canonical**", "Notes": "-"},
			{"Name": "snapd", "Version": "2.62", "Rev": "21465", "Size": "39MB", "Publisher": "canonical**", "Notes": "snapd"},
		}},
		{fixture: "snap/refresh_list_unicode.txt", want: []map[string]string{
			{"Name": "code", "Version": "dc96b837", "Rev": "159", "Size": "318MB", "Publisher": "vscode✓", "Notes": "classic"},
			{"Name": "gnome-42-2204", "Version": "0+git.510a601", "Rev": "176", "Size": "519MB", "Publisher": "canonical✓", "Notes": "-"},
			{"Name": "spotify", "Version": "1.2.31.1205.g4d59ad7c", "Rev": "76", "Size": "180MB", "Publisher": "spotify✓", "Notes": "-"},
			{"Name": "telegram-desktop", "Version": "4.16.8", "Rev": "5752", "Size": "73MB", "Publisher": "telegram.desktop✪", "Notes": "-"},
		}},
		{fixture: "snap/refresh_list_2.30.txt", want: []map[string]string{
			{"Name": "core", "Version": "16-2.30", "Rev": "3748", "Developer": "canonical", "Notes": "core"},
			{"Name": "vlc", "Version": "3.0.0", "Rev": "158", "Developer": "videolan", "Notes": "-"},
		}},
		{input: ""},
		{input: "All snaps up to date.\n"},
		{
			// colour codes stripped from a forced-colour table: the row no
			// longer lines up and is split on whitespace
			input: "Name  Version  Rev  Size  Publisher     Notes\nfirefox  125.0  4173  278MB  \x1b[32mmozilla✓\x1b[0m  -\n",
			want:  []map[string]string{{"Name": "firefox", "Version": "125.0", "Rev": "4173", "Size": "278MB", "Publisher": "mozilla✓", "Notes": "-"}},
		},
		{input: "error: cannot communicate with server\n", wantErr: "unrecognised table header"},
		{input: "Name   Version  Rev\na b c d e f g\n", wantErr: "none lined up"},
	}
	for _, tt := range tests {
		name := tt.fixture
		if name == "" {
			name = tt.input
		}
		t.Run(name, func(t *testing.T) {
			in := []byte(tt.input)
			if tt.fixture != "" {
				in = mgrFixture(t, tt.fixture)
			}
			got, err := parseSnapTable(in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestParseSnapRefreshed(t *testing.T) {
	tests := []struct {
		fixture string
		want    map[string]string
	}{
		{"snap/refresh_output.txt", map[string]string{"firefox": "125.0.3-1", "lxd": "5.21.1-2d13beb"}},
		{"snap/refresh_output_2.30.txt", map[string]string{"vlc": "3.0.0"}},
		{"snap/refresh_kernel.txt", map[string]string{"pc-kernel": "6.8.0-31.31"}},
		{"snap/up_to_date_stderr.txt", map[string]string{}},
	}
	for _, tt := range tests {
		if got := parseSnapRefreshed(mgrFixture(t, tt.fixture)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.fixture, got, tt.want)
		}
	}
}

func TestSnapSize(t *testing.T) {
	for in, want := range map[string]int64{"77MB": 77e6, "1GB": 1e9, "512kB": 512e3, "9B": 9, "": 0, "-": 0, "1.5MB": 0, "99999999999999999999MB": 0} {
		if got := snapSize(in); got != want {
			t.Errorf("snapSize(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSnapScan(t *testing.T) {
	paths := map[string]string{"snap": "/usr/bin/snap"}
	t.Run("updates with installed versions", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "snap/refresh_list_2.61.txt")}, "snap", "refresh", "--list")
		r.on(Result{Stdout: mgrFixture(t, "snap/list.txt")}, "snap", "list")
		ups, err := NewSnap(r, Options{}).Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := []protocol.Update{
			{PackageType: "snap", PackageName: "core22", CurrentVersion: "20240111", AvailableVersion: "20240408", Severity: "unknown",
				Source: "latest/stable", CVEIDs: []string{}, SizeBytes: 77e6,
				Metadata: map[string]string{"rev": "1380", "size": "77MB", "publisher": "canonical**", "notes": "base", "installed_rev": "1122"}},
			{PackageType: "snap", PackageName: "firefox", CurrentVersion: "124.0.2-1", AvailableVersion: "125.0.2-1", Severity: "unknown",
				Source: "latest/stable", CVEIDs: []string{}, SizeBytes: 278e6,
				Metadata: map[string]string{"rev": "4173", "size": "278MB", "publisher": "mozilla**", "notes": "-", "installed_rev": "4090"}},
			{PackageType: "snap", PackageName: "lxd", CurrentVersion: "5.21.0-eb655b9", AvailableVersion: "5.21.1-2d13beb", Severity: "unknown",
				Source: "5.21/stable", CVEIDs: []string{}, SizeBytes: 108e6,
				Metadata: map[string]string{"rev": "28463", "size": "108MB", "publisher": "canonical**", "notes": "-", "installed_rev": "28373"}},
			{PackageType: "snap", PackageName: "snapd", CurrentVersion: "2.61.3", AvailableVersion: "2.62", Severity: "unknown",
				Source: "latest/stable", CVEIDs: []string{}, SizeBytes: 39e6,
				Metadata: map[string]string{"rev": "21465", "size": "39MB", "publisher": "canonical**", "notes": "snapd", "installed_rev": "21184"}},
		}
		if !reflect.DeepEqual(ups, want) {
			t.Errorf("got %+v\nwant %+v", ups, want)
		}
		r.wantArgv(t, argv("snap", "refresh", "--list"), argv("snap", "list"))
	})
	t.Run("up to date", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stderr: mgrFixture(t, "snap/up_to_date_stderr.txt")}, "snap", "refresh", "--list")
		ups, err := NewSnap(r, Options{}).Scan(context.Background())
		if err != nil || len(ups) != 0 {
			t.Fatalf("ups = %+v, err = %v", ups, err)
		}
		r.wantArgv(t, argv("snap", "refresh", "--list"))
	})
	t.Run("snapd not running", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "snap/no_snapd_stderr.txt")}, "snap", "refresh", "--list")
		_, err := NewSnap(r, Options{}).Scan(context.Background())
		if err == nil || !strings.Contains(err.Error(), "snap refresh --list exited 1: error: cannot communicate with server") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("absent", func(t *testing.T) {
		s := NewSnap(newMgrArgv(nil), Options{})
		if _, err := s.Scan(context.Background()); err != ErrUnavailable || s.Available(context.Background()) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSnapInstall(t *testing.T) {
	paths := map[string]string{"snap": "/usr/bin/snap"}
	items := []protocol.InstallItem{
		{UpdateID: "f", PackageType: "snap", PackageName: "firefox", Version: "125.0.3-1"},
		{UpdateID: "l", PackageType: "snap", PackageName: "lxd", Version: "5.21.1-2d13beb"},
		{UpdateID: "c", PackageType: "snap", PackageName: "core22", Version: "20240111"},
		{UpdateID: "s", PackageType: "snap", PackageName: "snapd", Version: "2.62"},
		{UpdateID: "x1", PackageType: "snap", PackageName: "Firefox"},
		{UpdateID: "x2", PackageType: "snap", PackageName: "--classic"},
		{UpdateID: "x3", PackageType: "snap", PackageName: "vlc", Version: "3.0 beta"},
	}
	t.Run("refresh", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "snap/refresh_output.txt")}, "snap", "refresh", "firefox", "lxd", "core22", "snapd")
		r.on(Result{Stdout: mgrFixture(t, "snap/list.txt")}, "snap", "list", "firefox", "lxd", "core22", "snapd")
		res, err := NewSnap(r, Options{}).Install(context.Background(), items, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "f", "installed", "125.0.3-1", "")
		wantResult(t, rs, "l", "installed", "5.21.1-2d13beb", "")
		wantResult(t, rs, "c", "installed", "20240111", "already at this version")
		wantResult(t, rs, "s", "failed", "", "snap did not refresh snapd: it is still at 2.61.3")
		wantResult(t, rs, "x1", "failed", "", "not a valid snap name")
		wantResult(t, rs, "x2", "failed", "", "starts with '-'")
		wantResult(t, rs, "x3", "failed", "", "whitespace")
		if res.RebootRequired || res.ExitCode != 0 {
			t.Errorf("result = %+v", res)
		}
		r.wantArgv(t, argv("snap", "refresh", "firefox", "lxd", "core22", "snapd"), argv("snap", "list", "firefox", "lxd", "core22", "snapd"))
	})
	t.Run("kernel needs a restart", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "snap/refresh_kernel.txt")}, "snap", "refresh", "pc-kernel")
		res, err := NewSnap(r, Options{}).Install(context.Background(), []protocol.InstallItem{{UpdateID: "k", PackageName: "pc-kernel"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "k", "installed", "6.8.0-31.31", "")
		if !res.RebootRequired {
			t.Error("reboot not reported")
		}
	})
	t.Run("not installed", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "snap/refresh_not_installed_stderr.txt")}, "snap", "refresh", "nosuchsnap")
		res, err := NewSnap(r, Options{}).Install(context.Background(), []protocol.InstallItem{{UpdateID: "n", PackageName: "nosuchsnap"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "n", "failed", "", `snap refresh exited 1: error: cannot refresh "nosuchsnap": snap "nosuchsnap" is not installed`)
		if res.ExitCode != 1 || !strings.Contains(res.Output, "$ snap refresh nosuchsnap (exit 1)") {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("dry run reports the request only", func(t *testing.T) {
		r := newMgrArgv(paths)
		res, err := NewSnap(r, Options{}).Install(context.Background(), items[:2], true)
		if err != nil {
			t.Fatal(err)
		}
		want := []protocol.PackageChange{
			{PackageType: "snap", PackageName: "firefox", Action: "upgrade", ToVersion: "125.0.3-1"},
			{PackageType: "snap", PackageName: "lxd", Action: "upgrade", ToVersion: "5.21.1-2d13beb"},
		}
		if !reflect.DeepEqual(res.Changes, want) || len(res.Extras) != 0 || len(res.Results) != 0 {
			t.Errorf("result = %+v", res)
		}
		r.wantArgv(t)
	})
}

func FuzzParseSnap(f *testing.F) {
	mgrSeed(f, "snap")
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := parseSnapTable(b)
		if err == nil {
			for _, r := range rows {
				if r["Name"] == "" {
					t.Fatalf("row without a name: %v", r)
				}
			}
		}
		for name, v := range parseSnapRefreshed(b) {
			if name == "" || v == "" {
				t.Fatalf("refreshed %q %q", name, v)
			}
		}
	})
}
