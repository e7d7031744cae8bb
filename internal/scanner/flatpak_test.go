package scanner

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestParseFlatpakRows(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		n        int
		want     [][]string
		unparsed int
	}{
		{name: "remote-ls, a runtime without AppStream version", in: mgrFixture(t, "flatpak/remote_ls_updates_system.txt"), n: 6, want: [][]string{
			{"org.freedesktop.Platform", "x86_64", "23.08", "flathub", "3f1d9c1a7b2e", "23.08.18"},
			{"org.freedesktop.Platform.GL.default", "x86_64", "23.08", "flathub", "8e2a55c0d1f4", "24.0.7"},
			{"org.freedesktop.Platform.GL.default", "x86_64", "23.08-extra", "flathub", "1c9b0e4f2a77", "24.0.7"},
			{"org.gnome.Platform", "x86_64", "46", "flathub", "ab12cd34ef56", ""},
			{"org.mozilla.firefox", "x86_64", "stable", "flathub", "0a1b2c3d4e5f", "126.0"},
			{"org.videolan.VLC", "x86_64", "stable", "flathub", "9f8e7d6c5b4a", "3.0.20"},
		}},
		{name: "list", in: mgrFixture(t, "flatpak/list_user.txt"), n: 4, want: [][]string{
			{"com.spotify.Client", "x86_64", "stable", "1.2.31.1205.g4d59ad7c"},
			{"org.mozilla.firefox", "x86_64", "stable", "125.0.3"},
		}},
		{name: "empty", in: []byte("\n"), n: 6},
		{name: "fancy table is not ours", in: []byte("Application ID       Branch Version\norg.gnome.Maps  stable  46.1\n"), n: 6, unparsed: 2},
		{name: "too many cells", in: []byte("a.b\tx86_64\tstable\to\tc\tv\textra\n"), n: 6, unparsed: 1},
		{name: "bad ref", in: []byte("../etc\tx86_64\tstable\n-org.x.y\tx86_64\tstable\norg.x.y\tx 86\tstable\n"), n: 6, unparsed: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unparsed := parseFlatpakRows(tt.in, tt.n)
			if !reflect.DeepEqual(got, tt.want) || unparsed != tt.unparsed {
				t.Errorf("got %q (%d unparsed), want %q (%d)", got, unparsed, tt.want, tt.unparsed)
			}
		})
	}
}

func flatpakFake(t *testing.T, user bool) *mgrArgv {
	r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
	r.on(Result{Stdout: mgrFixture(t, "flatpak/remote_ls_updates_system.txt")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
	r.on(Result{Stdout: mgrFixture(t, "flatpak/list_system.txt")}, "flatpak", "list", "--system", flatpakListColumns)
	if user {
		r.on(Result{Stdout: mgrFixture(t, "flatpak/remote_ls_updates_user.txt")}, "flatpak", "remote-ls", "--updates", "--user", flatpakRemoteColumns)
		r.on(Result{Stdout: mgrFixture(t, "flatpak/list_user.txt")}, "flatpak", "list", "--user", flatpakListColumns)
	}
	return r
}

func TestFlatpakScan(t *testing.T) {
	type up struct{ name, from, to, source, inst string }
	tests := []struct {
		name     string
		user     bool
		want     []up
		wantArgv [][]string
	}{
		{
			name: "system installation",
			want: []up{
				{"org.freedesktop.Platform/x86_64/23.08", "23.08.17", "23.08.18", "flathub", "system"},
				{"org.freedesktop.Platform.GL.default/x86_64/23.08", "24.0.5", "24.0.7", "flathub", "system"},
				{"org.freedesktop.Platform.GL.default/x86_64/23.08-extra", "24.0.5", "24.0.7", "flathub", "system"},
				{"org.gnome.Platform/x86_64/46", "", "", "flathub", "system"},
				{"org.mozilla.firefox/x86_64/stable", "125.0.3", "126.0", "flathub", "system"},
				{"org.videolan.VLC/x86_64/stable", "3.0.18", "3.0.20", "flathub", "system"},
			},
			wantArgv: [][]string{
				{"flatpak", "remote-ls", "--updates", "--system", "--columns=application,arch,branch,origin,commit,version"},
				{"flatpak", "list", "--system", "--columns=application,arch,branch,version"},
			},
		},
		{
			name: "system and user installations",
			user: true,
			want: []up{
				{"org.freedesktop.Platform/x86_64/23.08", "23.08.17", "23.08.18", "flathub", "system"},
				{"org.freedesktop.Platform.GL.default/x86_64/23.08", "24.0.5", "24.0.7", "flathub", "system"},
				{"org.freedesktop.Platform.GL.default/x86_64/23.08-extra", "24.0.5", "24.0.7", "flathub", "system"},
				{"org.gnome.Platform/x86_64/46", "", "", "flathub", "system"},
				{"org.mozilla.firefox/x86_64/stable", "125.0.3", "126.0", "flathub", "system,user"},
				{"org.videolan.VLC/x86_64/stable", "3.0.18", "3.0.20", "flathub", "system"},
				{"com.spotify.Client/x86_64/stable", "1.2.31.1205.g4d59ad7c", "1.2.37.701.ge66eb7bc", "flathub", "user"},
			},
			wantArgv: [][]string{
				{"flatpak", "remote-ls", "--updates", "--system", "--columns=application,arch,branch,origin,commit,version"},
				{"flatpak", "list", "--system", "--columns=application,arch,branch,version"},
				{"flatpak", "remote-ls", "--updates", "--user", "--columns=application,arch,branch,origin,commit,version"},
				{"flatpak", "list", "--user", "--columns=application,arch,branch,version"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := flatpakFake(t, tt.user)
			ups, err := NewFlatpak(r, Options{FlatpakUser: tt.user}).Scan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []up
			for _, u := range ups {
				got = append(got, up{u.PackageName, u.CurrentVersion, u.AvailableVersion, u.Source, u.Metadata["installation"]})
				if u.PackageType != "flatpak" || u.Severity != "unknown" || u.Metadata["application"] == "" || len(u.Metadata["commit"]) != 12 {
					t.Errorf("update %+v", u)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			r.wantArgv(t, tt.wantArgv...)
		})
	}

	t.Run("nothing pending", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		ups, err := NewFlatpak(r, Options{}).Scan(context.Background())
		if err != nil || len(ups) != 0 {
			t.Fatalf("ups %+v err %v", ups, err)
		}
		r.wantArgv(t, argv("flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns))
	})
	t.Run("flatpak older than 1.2", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "flatpak/old_flatpak_stderr.txt")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		_, err := NewFlatpak(r, Options{}).Scan(context.Background())
		if err == nil || !strings.Contains(err.Error(), "exited 1: error: Unknown option --columns") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: []byte("Ref Origin\nsomething odd\n")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		_, err := NewFlatpak(r, Options{}).Scan(context.Background())
		if err == nil || !strings.Contains(err.Error(), "unrecognised output") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("absent", func(t *testing.T) {
		if _, err := NewFlatpak(newMgrArgv(nil), Options{}).Scan(context.Background()); err != ErrUnavailable {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFlatpakInstall(t *testing.T) {
	items := []protocol.InstallItem{
		{UpdateID: "ff", PackageType: "flatpak", PackageName: "org.mozilla.firefox/x86_64/stable", Version: "126.0"},
		{UpdateID: "vlc", PackageType: "flatpak", PackageName: "org.videolan.VLC/x86_64/stable", Version: "3.0.20"},
		{UpdateID: "bad1", PackageType: "flatpak", PackageName: "org.mozilla.firefox/x86_64/stable;id"},
		{UpdateID: "bad2", PackageType: "flatpak", PackageName: "../../etc/passwd"},
		{UpdateID: "bad3", PackageType: "flatpak", PackageName: "--installation=evil"},
	}
	refused := func(t *testing.T, rs map[string]protocol.InstallItemResult) {
		t.Helper()
		wantResult(t, rs, "bad1", "failed", "", "shell metacharacters")
		wantResult(t, rs, "bad2", "failed", "", "not a valid flatpak ref")
		wantResult(t, rs, "bad3", "failed", "", "starts with '-'")
	}
	t.Run("update and verify", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, "flatpak/update_firefox.txt")},
			"flatpak", "update", "-y", "--noninteractive", "--system", "--", "org.mozilla.firefox/x86_64/stable", "org.videolan.VLC/x86_64/stable")
		r.on(Result{Stdout: mgrFixture(t, "flatpak/remote_ls_updates_after.txt")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		r.on(Result{Stdout: mgrFixture(t, "flatpak/list_system.txt")}, "flatpak", "list", "--system", flatpakListColumns)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), items, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "ff", "installed", "126.0", "")
		wantResult(t, rs, "vlc", "failed", "", "flatpak update exited 0 but org.videolan.VLC/x86_64/stable still has an update pending (to 3.0.20)")
		refused(t, rs)
		r.wantArgv(t,
			argv("flatpak", "update", "-y", "--noninteractive", "--system", "--", "org.mozilla.firefox/x86_64/stable", "org.videolan.VLC/x86_64/stable"),
			argv("flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns),
			argv("flatpak", "list", "--system", flatpakListColumns))
		if !strings.Contains(res.Output, "Updating app/org.mozilla.firefox/x86_64/stable") {
			t.Errorf("output %q", res.Output)
		}
	})
	t.Run("user installation too: no --system", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, "flatpak/update_nothing.txt")}, "flatpak", "update", "-y", "--noninteractive", "--", "org.mozilla.firefox")
		r.on(Result{}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		r.on(Result{Stdout: mgrFixture(t, "flatpak/remote_ls_updates_user.txt")}, "flatpak", "remote-ls", "--updates", "--user", flatpakRemoteColumns)
		r.on(Result{Stdout: mgrFixture(t, "flatpak/list_user.txt")}, "flatpak", "list", "--user", flatpakListColumns)
		res, err := NewFlatpak(r, Options{FlatpakUser: true}).Install(context.Background(),
			[]protocol.InstallItem{{UpdateID: "ff", PackageName: "org.mozilla.firefox"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "ff", "failed", "", "org.mozilla.firefox/x86_64/stable still has an update pending")
	})
	t.Run("flatpak fails", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "flatpak/update_not_installed_stderr.txt")},
			"flatpak", "update", "-y", "--noninteractive", "--system", "--", "org.example.Missing/x86_64/stable")
		res, err := NewFlatpak(r, Options{}).Install(context.Background(),
			[]protocol.InstallItem{{UpdateID: "m", PackageName: "org.example.Missing/x86_64/stable"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "m", "failed", "", "flatpak update exited 1: error: org.example.Missing/x86_64/stable not installed")
		if res.ExitCode != 1 {
			t.Errorf("exit %d", res.ExitCode)
		}
	})
	t.Run("verification fails: judged by the exit code", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, "flatpak/update_firefox.txt")}, "flatpak", "update", "-y", "--noninteractive", "--system", "--", "org.mozilla.firefox/x86_64/stable")
		r.on(Result{ExitCode: 1, Stderr: []byte("error: Unable to load summary from remote flathub: Could not resolve hostname\n")},
			"flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), items[:1], false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "ff", "installed", "126.0", "not verified")
	})
	t.Run("dry run reports the request only", func(t *testing.T) {
		// Their runtime (a branch with no update pending) is no extra.
		r := flatpakFake(t, false)
		for _, it := range items[:2] {
			r.on(Result{Stdout: []byte("org.freedesktop.Platform/x86_64/24.08\n")}, "flatpak", "info", "--system", "--show-runtime", "--", it.PackageName)
		}
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), items, true)
		if err != nil {
			t.Fatal(err)
		}
		want := []protocol.PackageChange{
			{PackageType: "flatpak", PackageName: "org.mozilla.firefox/x86_64/stable", Action: "upgrade", ToVersion: "126.0"},
			{PackageType: "flatpak", PackageName: "org.videolan.VLC/x86_64/stable", Action: "upgrade", ToVersion: "3.0.20"},
		}
		if !reflect.DeepEqual(res.Changes, want) || len(res.Extras) != 0 {
			t.Errorf("changes %+v", res.Changes)
		}
		refused(t, resultsByID(res.Results))
		r.wantArgv(t,
			argv("flatpak", "info", "--system", "--show-runtime", "--", "org.mozilla.firefox/x86_64/stable"),
			argv("flatpak", "info", "--system", "--show-runtime", "--", "org.videolan.VLC/x86_64/stable"),
			argv("flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns),
			argv("flatpak", "list", "--system", flatpakListColumns))
	})
}

func FuzzParseFlatpak(f *testing.F) {
	mgrSeed(f, "flatpak")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range []int{4, 6} {
			rows, unparsed := parseFlatpakRows(b, n)
			if unparsed < 0 {
				t.Fatal("negative count")
			}
			for _, r := range rows {
				if len(r) != n || flatpakRefRule.check(flatpakRef(r)) != nil {
					t.Fatalf("bad row %q", r)
				}
			}
		}
		if rt, err := parseFlatpakRuntime(b); err == nil && rt != "" && (strings.Count(rt, "/") != 2 || flatpakRefRule.check(rt) != nil) {
			t.Fatalf("bad runtime %q", rt)
		}
		for _, c := range parseFlatpakUpdateOutput(b) {
			if c.Action == "" || strings.Count(c.PackageName, "/") != 2 || flatpakRefRule.check(c.PackageName) != nil {
				t.Fatalf("bad change %+v", c)
			}
		}
	})
}

// TestFlatpakRealOutput runs the parser, the scan and the installer on
// output captured from flatpak 1.14.10 (Debian 12) in a scratch installation
// (testdata/flatpak/README.md says how): org.example.App (appdata version
// 1.0, then 2.0) and its runtime org.example.Platform (no version), both
// from a local remote named "example".
func TestFlatpakRealOutput(t *testing.T) {
	const (
		real      = "flatpak/real-flatpak1.14-"
		appCommit = "4616de31bf2e"
		rtCommit  = "3cbae20af2af"
	)
	t.Run("parse", func(t *testing.T) {
		tests := []struct {
			file string
			n    int
			want [][]string
		}{
			{"remote-ls-updates-system.txt", 6, [][]string{
				{"org.example.App", "x86_64", "stable", "example", appCommit, "2.0"},
				{"org.example.Platform", "x86_64", "1", "example", rtCommit, ""},
			}},
			// Before the installation has fetched the remote's AppStream
			// data (flatpak install does not; flatpak update --appstream
			// does) the version column is empty, and the cell is chomped.
			{"remote-ls-updates-system-noappstream.txt", 6, [][]string{
				{"org.example.App", "x86_64", "stable", "example", appCommit, ""},
				{"org.example.Platform", "x86_64", "1", "example", rtCommit, ""},
			}},
			{"remote-ls-updates-user.txt", 6, [][]string{
				{"org.example.App", "x86_64", "stable", "example", appCommit, "2.0"},
			}},
			{"remote-ls-updates-user-noappstream.txt", 6, [][]string{
				{"org.example.App", "x86_64", "stable", "example", appCommit, ""},
			}},
			{"remote-ls-updates-none.txt", 6, nil},
			{"list-system.txt", 4, [][]string{
				{"org.example.App", "x86_64", "stable", "1.0"},
				{"org.example.Platform", "x86_64", "1", ""},
			}},
			{"list-user.txt", 4, [][]string{
				{"org.example.App", "x86_64", "stable", "1.0"},
			}},
			{"list-system-after.txt", 4, [][]string{
				{"org.example.App", "x86_64", "stable", "2.0"},
				{"org.example.Platform", "x86_64", "1", ""},
			}},
		}
		for _, tt := range tests {
			t.Run(tt.file, func(t *testing.T) {
				got, unparsed := parseFlatpakRows(mgrFixture(t, real+tt.file), tt.n)
				if !reflect.DeepEqual(got, tt.want) || unparsed != 0 {
					t.Errorf("got %q (%d unparsed), want %q", got, unparsed, tt.want)
				}
			})
		}
	})

	fake := func(t *testing.T, user, appstream bool) *mgrArgv {
		suffix := ".txt"
		if !appstream {
			suffix = "-noappstream.txt"
		}
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-system"+suffix)}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		r.on(Result{Stdout: mgrFixture(t, real+"list-system.txt")}, "flatpak", "list", "--system", flatpakListColumns)
		if user {
			r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-user"+suffix)}, "flatpak", "remote-ls", "--updates", "--user", flatpakRemoteColumns)
			r.on(Result{Stdout: mgrFixture(t, real+"list-user.txt")}, "flatpak", "list", "--user", flatpakListColumns)
		}
		return r
	}
	type up struct{ name, from, to, source, commit, inst string }
	scans := []struct {
		name            string
		user, appstream bool
		want            []up
	}{
		{"system", false, true, []up{
			{"org.example.App/x86_64/stable", "1.0", "2.0", "example", appCommit, "system"},
			{"org.example.Platform/x86_64/1", "", "", "example", rtCommit, "system"},
		}},
		{"system, no AppStream data yet", false, false, []up{
			{"org.example.App/x86_64/stable", "1.0", "", "example", appCommit, "system"},
			{"org.example.Platform/x86_64/1", "", "", "example", rtCommit, "system"},
		}},
		{"system and user", true, true, []up{
			{"org.example.App/x86_64/stable", "1.0", "2.0", "example", appCommit, "system,user"},
			{"org.example.Platform/x86_64/1", "", "", "example", rtCommit, "system"},
		}},
	}
	for _, tt := range scans {
		t.Run("scan "+tt.name, func(t *testing.T) {
			ups, err := NewFlatpak(fake(t, tt.user, tt.appstream), Options{FlatpakUser: tt.user}).Scan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []up
			for _, u := range ups {
				got = append(got, up{u.PackageName, u.CurrentVersion, u.AvailableVersion, u.Source, u.Metadata["commit"], u.Metadata["installation"]})
				if u.PackageType != "flatpak" || u.Severity != "unknown" {
					t.Errorf("update %+v", u)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}

	t.Run("scan, nothing pending", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-none.txt")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		ups, err := NewFlatpak(r, Options{}).Scan(context.Background())
		if err != nil || len(ups) != 0 {
			t.Fatalf("ups %+v err %v", ups, err)
		}
	})

	// Updating the app also updated its runtime (flatpak update pulls in
	// the dependencies' updates), so nothing is pending afterwards.
	t.Run("install", func(t *testing.T) {
		ref := "org.example.App/x86_64/stable"
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"update-app.txt")}, "flatpak", "update", "-y", "--noninteractive", "--system", "--", ref)
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-none.txt")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(),
			[]protocol.InstallItem{{UpdateID: "app", PackageType: "flatpak", PackageName: ref, Version: "2.0"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "app", "installed", "2.0", "")
		if !strings.Contains(res.Output, "Updating app/org.example.App/x86_64/stable") ||
			!strings.Contains(res.Output, "Updating runtime/org.example.Platform/x86_64/1") {
			t.Errorf("output %q", res.Output)
		}
	})
	t.Run("install, user installation too", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"update-user-and-system.txt")}, "flatpak", "update", "-y", "--noninteractive", "--", "org.example.App")
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-none.txt")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-none.txt")}, "flatpak", "remote-ls", "--updates", "--user", flatpakRemoteColumns)
		res, err := NewFlatpak(r, Options{FlatpakUser: true}).Install(context.Background(),
			[]protocol.InstallItem{{UpdateID: "app", PackageType: "flatpak", PackageName: "org.example.App"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "app", "installed", "", "")
	})
	t.Run("install, nothing to do", func(t *testing.T) {
		ref := "org.example.App/x86_64/stable"
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"update-nothing.txt")}, "flatpak", "update", "-y", "--noninteractive", "--system", "--", ref)
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-none.txt")}, "flatpak", "remote-ls", "--updates", "--system", flatpakRemoteColumns)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(),
			[]protocol.InstallItem{{UpdateID: "app", PackageType: "flatpak", PackageName: ref}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "app", "installed", "", "")
		if !strings.Contains(res.Output, "Nothing to do.") {
			t.Errorf("output %q", res.Output)
		}
	})
	t.Run("install, not installed", func(t *testing.T) {
		ref := "org.example.Missing/x86_64/stable"
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, real+"update-not-installed-stderr.txt")},
			"flatpak", "update", "-y", "--noninteractive", "--system", "--", ref)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(),
			[]protocol.InstallItem{{UpdateID: "m", PackageType: "flatpak", PackageName: ref}}, false)
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, resultsByID(res.Results), "m", "failed", "", "flatpak update exited 1: error: org.example.Missing/x86_64/stable not installed")
	})
}

// TestFlatpakRuntimeExtras: the dry run reports the pending update of a
// requested app's runtime as an extra, from output captured from flatpak
// 1.14.10 (testdata/flatpak/README.md, "flatpak info").
func TestFlatpakRuntimeExtras(t *testing.T) {
	const (
		real = "flatpak/real-flatpak1.14-"
		app  = "org.example.App/x86_64/stable"
		rt   = "org.example.Platform/x86_64/1"
	)
	info := func(inst, ref string) []string { return argv("flatpak", "info", inst, "--show-runtime", "--", ref) }
	remoteLs := func(inst string) []string {
		return argv("flatpak", "remote-ls", "--updates", inst, flatpakRemoteColumns)
	}
	list := func(inst string) []string { return argv("flatpak", "list", inst, flatpakListColumns) }
	fake := func(t *testing.T, remoteLsFile string) *mgrArgv {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"info-show-runtime-app.txt")}, info("--system", app)...)
		r.on(Result{Stdout: mgrFixture(t, real+remoteLsFile)}, remoteLs("--system")...)
		r.on(Result{Stdout: mgrFixture(t, real+"list-system.txt")}, list("--system")...)
		return r
	}
	item := protocol.InstallItem{UpdateID: "app", PackageType: "flatpak", PackageName: app, Version: "2.0"}

	t.Run("parse", func(t *testing.T) {
		if got, err := parseFlatpakRuntime(mgrFixture(t, real+"info-show-runtime-app.txt")); got != rt || err != nil {
			t.Errorf("app: %q %v", got, err)
		}
		if got, err := parseFlatpakRuntime(mgrFixture(t, real+"info-show-runtime-none.txt")); got != "" || err != nil {
			t.Errorf("none: %q %v", got, err)
		}
		for _, bad := range []string{"", "org.example.Platform\n", "a.b/x86_64/1\nc.d/x86_64/1\n", "org.example.Platform/x86_64/1;id\n"} {
			if got, err := parseFlatpakRuntime([]byte(bad)); err == nil {
				t.Errorf("%q: got %q, want an error", bad, got)
			}
		}
		want := []protocol.PackageChange{
			{PackageType: "flatpak", PackageName: rt, Action: "upgrade"},
			{PackageType: "flatpak", PackageName: app, Action: "upgrade"},
		}
		if got := parseFlatpakUpdateOutput(mgrFixture(t, real+"update-app.txt")); !reflect.DeepEqual(got, want) {
			t.Errorf("update output: %+v", got)
		}
		if got := parseFlatpakUpdateOutput(mgrFixture(t, real+"update-nothing.txt")); len(got) != 0 {
			t.Errorf("nothing: %+v", got)
		}
	})
	t.Run("runtime update pending: one extra", func(t *testing.T) {
		r := fake(t, "info-remote-ls-updates-system.txt")
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), []protocol.InstallItem{item}, true)
		if err != nil {
			t.Fatal(err)
		}
		extra := protocol.PackageChange{PackageType: "flatpak", PackageName: rt, Action: "upgrade", ToVersion: "532b3688daf4"}
		if !reflect.DeepEqual(res.Extras, []protocol.PackageChange{extra}) {
			t.Errorf("extras %+v", res.Extras)
		}
		want := []protocol.PackageChange{{PackageType: "flatpak", PackageName: app, Action: "upgrade", ToVersion: "2.0"}, extra}
		if !reflect.DeepEqual(res.Changes, want) || len(res.Results) != 0 {
			t.Errorf("changes %+v results %+v", res.Changes, res.Results)
		}
		r.wantArgv(t, info("--system", app), remoteLs("--system"), list("--system"))
	})
	t.Run("runtime requested too: no extra", func(t *testing.T) {
		r := fake(t, "info-remote-ls-updates-system.txt")
		r.on(Result{Stdout: mgrFixture(t, real+"info-show-runtime-app.txt")}, info("--system", "org.example.Platform")...)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(),
			[]protocol.InstallItem{item, {UpdateID: "rt", PackageType: "flatpak", PackageName: "org.example.Platform"}}, true)
		if err != nil || len(res.Extras) != 0 || len(res.Changes) != 2 {
			t.Fatalf("extras %+v changes %+v err %v", res.Extras, res.Changes, err)
		}
		r.wantArgv(t, info("--system", app), info("--system", "org.example.Platform"))
	})
	t.Run("no runtime update pending: no extras", func(t *testing.T) {
		r := fake(t, "info-remote-ls-updates-system-apponly.txt")
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), []protocol.InstallItem{item}, true)
		if err != nil || len(res.Extras) != 0 || len(res.Changes) != 1 {
			t.Fatalf("extras %+v changes %+v err %v", res.Extras, res.Changes, err)
		}
	})
	t.Run("user installation: not installed there is no failure", func(t *testing.T) {
		r := fake(t, "info-remote-ls-updates-system.txt")
		r.on(Result{ExitCode: 1, Stderr: []byte("error: org.example.App/x86_64/stable not installed\n")}, info("--user", app)...)
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-none.txt")}, remoteLs("--user")...)
		res, err := NewFlatpak(r, Options{FlatpakUser: true}).Install(context.Background(), []protocol.InstallItem{item}, true)
		if err != nil || len(res.Extras) != 1 || res.Extras[0].PackageName != rt {
			t.Fatalf("extras %+v err %v", res.Extras, err)
		}
	})
	t.Run("flatpak info fails: the dry run fails", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{ExitCode: 1, Stderr: []byte("error: opening repo: Permission denied\n")}, info("--system", app)...)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), []protocol.InstallItem{item}, true)
		if err == nil || !strings.Contains(err.Error(), "cannot tell the runtime of "+app+": flatpak info --system exited 1: error: opening repo: Permission denied") {
			t.Fatalf("err = %v", err)
		}
		if len(res.Extras) != 0 || len(res.Changes) != 0 {
			t.Errorf("extras %+v changes %+v", res.Extras, res.Changes)
		}
		wantResult(t, resultsByID(res.Results), "app", "failed", "", "dry run: cannot tell the runtime")
		r.wantArgv(t, info("--system", app))
	})
	t.Run("not installed anywhere: the dry run fails", func(t *testing.T) {
		ref := "org.example.Missing/x86_64/stable"
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, real+"info-not-installed-stderr.txt")}, info("--system", ref)...)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), []protocol.InstallItem{{UpdateID: "m", PackageName: ref}}, true)
		if err == nil || !strings.Contains(err.Error(), "cannot tell the runtime of "+ref+": not installed in the system installation") {
			t.Fatalf("err = %v", err)
		}
		if len(res.Extras) != 0 || len(res.Changes) != 0 {
			t.Errorf("extras %+v changes %+v", res.Extras, res.Changes)
		}
	})
	t.Run("pending updates cannot be listed: the dry run fails", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"info-show-runtime-app.txt")}, info("--system", app)...)
		r.on(Result{ExitCode: 1, Stderr: []byte("error: Unable to load summary from remote example\n")}, remoteLs("--system")...)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), []protocol.InstallItem{item}, true)
		if err == nil || !strings.Contains(err.Error(), "cannot tell whether the runtimes have updates pending") || len(res.Extras) != 0 {
			t.Fatalf("extras %+v err %v", res.Extras, err)
		}
	})
	t.Run("real install lists the runtime it updated", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"flatpak": "/usr/bin/flatpak"})
		r.on(Result{Stdout: mgrFixture(t, real+"update-app.txt")}, "flatpak", "update", "-y", "--noninteractive", "--system", "--", app)
		r.on(Result{Stdout: mgrFixture(t, real+"remote-ls-updates-none.txt")}, remoteLs("--system")...)
		res, err := NewFlatpak(r, Options{}).Install(context.Background(), []protocol.InstallItem{item}, false)
		if err != nil {
			t.Fatal(err)
		}
		want := []protocol.PackageChange{
			{PackageType: "flatpak", PackageName: app, Action: "upgrade", ToVersion: "2.0"},
			{PackageType: "flatpak", PackageName: rt, Action: "upgrade"},
		}
		if !reflect.DeepEqual(res.Changes, want) || len(res.Extras) != 0 {
			t.Errorf("changes %+v extras %+v", res.Changes, res.Extras)
		}
	})
}
