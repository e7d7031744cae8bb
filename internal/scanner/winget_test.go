package scanner

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestParseWinget(t *testing.T) {
	tests := []struct {
		fixture string
		want    []wingetRow
	}{
		{"winget/upgrade_1.2.txt", []wingetRow{
			{Name: "Signal", ID: "OpenWhisperSystems.Signal", Version: "5.27.1", Available: "5.29.0", Source: "winget"},
			{Name: "Microsoft Edge", ID: "Microsoft.Edge", Version: "97.0.1072.62", Available: "97.0.1072.69", Source: "winget"},
			{Name: "Microsoft Edge WebView2 Runtime", ID: "Microsoft.EdgeWebView2Runtime", Version: "97.0.1072.62", Available: "97.0.1072.69", Source: "winget"},
			{Name: "Postman", ID: "Postman.Postman", Version: "9.8.3", Available: "9.9.3", Source: "winget"},
		}},
		{"winget/upgrade_truncated.txt", []wingetRow{
			{Name: "Microsoft Visual Studio Community 2022 (", ID: "Microsoft.VisualStudio.2022.Community.Pre", Version: "17.9.0", Available: "17.10.0", Source: "winget", NameTruncated: true, IDTruncated: true},
			{Name: "Microsoft Visual C++ 2015-2022 Redistrib", ID: "Microsoft.VCRedist.2015+.x64", Version: "14.38.33130.0", Available: "14.40.33810.0", Source: "winget", NameTruncated: true},
			{Name: "PowerShell 7-x64", ID: "Microsoft.PowerShell", Version: "7.4.1.0", Available: "7.4.2.0", Source: "winget"},
			{Name: "Git", ID: "Git.Git", Version: "2.44.0", Available: "2.45.0", Source: "winget"},
			{Name: "Zoom Workplace (64-bit)", ID: "Zoom.Zoom", Version: "Unknown", Available: "6.0.11.39959", Source: "winget"},
			{Name: "Python Launcher", ID: "Python.Launcher", Version: "< 3.12.3", Available: "3.12.3", Source: "winget"},
		}},
		{"winget/upgrade_old_dots.txt", []wingetRow{
			// winget before 1.3 cut with "...": a name may end so, an Id may not
			{Name: "Microsoft Visual Studio Community 2022...", ID: "Microsoft.VisualStudio.2022.Community.P", Version: "17.9.0", Available: "17.10.0", Source: "winget", IDTruncated: true},
			{Name: "Microsoft Visual C++ 2015-2022 Redistr...", ID: "Microsoft.VCRedist.2015+.x64", Version: "14.38.33130.0", Available: "14.40.33810.0", Source: "winget"},
			{Name: "PowerShell 7-x64", ID: "Microsoft.PowerShell", Version: "7.4.1.0", Available: "7.4.2.0", Source: "winget"},
			{Name: "Git", ID: "Git.Git", Version: "2.44.0", Available: "2.45.0", Source: "winget"},
		}},
		{"winget/upgrade_explicit.txt", []wingetRow{
			{Name: "Mozilla Firefox (x64 en-US)", ID: "Mozilla.Firefox", Version: "124.0.2", Available: "125.0.3", Source: "winget"},
			{Name: "7-Zip 23.01 (x64)", ID: "7zip.7zip", Version: "23.01", Available: "24.05", Source: "winget"},
			{Name: "Microsoft Teams", ID: "Microsoft.Teams", Version: "1.5.00.28361", Available: "1.6.00.6754", Source: "winget", Explicit: true},
			{Name: "Teams Machine-Wide Installer", ID: "Microsoft.Teams", Version: "1.5.0.4689", Available: "1.6.00.6754", Source: "winget", Explicit: true},
		}},
		{"winget/upgrade_only_explicit.txt", []wingetRow{
			{Name: "Discord", ID: "Discord.Discord", Version: "1.0.9242", Available: "1.0.9243", Source: "winget", Explicit: true},
		}},
		{"winget/upgrade_cjk.txt", []wingetRow{
			{Name: "腾讯QQ", ID: "Tencent.QQ.NT", Version: "9.9.9.22868", Available: "9.9.10.23873", Source: "winget"},
			{Name: "网易云音乐", ID: "NetEase.CloudMusic", Version: "2.10.11.201538", Available: "3.0.1.203083", Source: "winget"},
			{Name: "カカオトーク", ID: "Kakao.KakaoTalk", Version: "4.1.0.3724", Available: "4.1.1.3749", Source: "winget"},
			{Name: "A very long application name that does n", ID: "Vendor.VeryLongApplicationNameThatDoesNot", Version: "1.0.0", Available: "1.1.0", Source: "winget", NameTruncated: true, IDTruncated: true},
		}},
		{"winget/upgrade_de.txt", []wingetRow{
			{Name: "Notepad++ (64-bit x64)", ID: "Notepad++.Notepad++", Version: "8.6.4", Available: "8.6.5", Source: "winget"},
			{Name: "VLC media player", ID: "VideoLAN.VLC", Version: "3.0.18", Available: "3.0.20", Source: "winget"},
		}},
		{"winget/upgrade_msstore.txt", []wingetRow{
			{Name: "Windows Terminal", ID: "9N0DX20HK701", Version: "1.19.10573.0", Available: "1.20.11271.0", Source: "msstore"},
			{Name: "Microsoft Edge", ID: "Microsoft.Edge", Version: "124.0.2478.80", Available: "125.0.2535.51", Source: "winget"},
		}},
		{"winget/upgrade_misaligned.txt", []wingetRow{
			{Name: "Star Player ⭐ Deluxe", ID: "Stars.Player", Version: "2.0.1", Available: "2.1.0", Source: "winget"},
			{Name: "Git", ID: "Git.Git", Version: "2.44.0", Available: "2.45.0", Source: "winget"},
		}},
		{"winget/upgrade_none.txt", nil},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got := parseWinget(mgrFixture(t, tt.fixture))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	// prose around tables is never a row
	for _, in := range []string{
		"Name Id Version Available Source\n----------------------------------\n3 upgrades available.\n",
		"Name Id Version Available Source\n----------------------------------\n1 package(s) have version numbers that cannot be determined. Use --include-unknown to see all results.\n",
		"Name Id Version Available Source\n----------------------------------\n1 package(s) are pinned and need to be explicitly upgraded.\n",
		"Name Id\n----------\nfoo bar\n",
	} {
		if got := parseWinget([]byte(in)); len(got) != 0 {
			t.Errorf("parseWinget(%q) = %+v", in, got)
		}
	}
}

func TestParseWingetFound(t *testing.T) {
	tests := []struct {
		in, prefix, want string
	}{
		{string(mgrFixture(t, "winget/show_visualstudio.txt")), "Microsoft.VisualStudio.2022.Community.Pre", "Microsoft.VisualStudio.2022.Community.Preview.LongEdition"},
		{string(mgrFixture(t, "winget/show_visualstudio.txt")), "Other.Prefix", ""},
		{string(mgrFixture(t, "winget/show_multiple.txt")), "Vendor.VeryLong", ""},
		{"Gefunden Git [Git.Git]\r\nVersion: 2.45.0\r\n", "Git.G", "Git.Git"},
		{"Found A [X.Y1]\nFound B [X.Y2]\n", "X.Y", ""},
	}
	for _, tt := range tests {
		got, ok := parseWingetFound([]byte(tt.in), tt.prefix)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("parseWingetFound(%.40q, %q) = %q, %v; want %q", tt.in, tt.prefix, got, ok, tt.want)
		}
	}
}

var wingetScanArgv = []string{"winget", "upgrade", "--include-unknown", "--accept-source-agreements", "--disable-interactivity"}

func TestWingetScan(t *testing.T) {
	paths := map[string]string{"winget": `C:\Users\a\AppData\Local\Microsoft\WindowsApps\winget.exe`}
	t.Run("cut id recovered with winget show", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "winget/upgrade_truncated.txt")}, wingetScanArgv...)
		r.on(Result{Stdout: mgrFixture(t, "winget/show_visualstudio.txt")},
			"winget", "show", "--id", "Microsoft.VisualStudio.2022.Community.Pre", "--accept-source-agreements", "--disable-interactivity")
		ups, err := NewWinget(r, Options{}).Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := []protocol.Update{
			{PackageType: "winget", PackageName: "Microsoft.VisualStudio.2022.Community.Preview.LongEdition", CurrentVersion: "17.9.0", AvailableVersion: "17.10.0",
				Source: "winget", Severity: "unknown", CVEIDs: []string{}, Metadata: map[string]string{"name": "Microsoft Visual Studio Community 2022 (", "name_truncated": "true"}},
			{PackageType: "winget", PackageName: "Microsoft.VCRedist.2015+.x64", CurrentVersion: "14.38.33130.0", AvailableVersion: "14.40.33810.0",
				Source: "winget", Severity: "unknown", CVEIDs: []string{}, Metadata: map[string]string{"name": "Microsoft Visual C++ 2015-2022 Redistrib", "name_truncated": "true"}},
			{PackageType: "winget", PackageName: "Microsoft.PowerShell", CurrentVersion: "7.4.1.0", AvailableVersion: "7.4.2.0",
				Source: "winget", Severity: "unknown", CVEIDs: []string{}, Metadata: map[string]string{"name": "PowerShell 7-x64"}},
			{PackageType: "winget", PackageName: "Git.Git", CurrentVersion: "2.44.0", AvailableVersion: "2.45.0",
				Source: "winget", Severity: "unknown", CVEIDs: []string{}, Metadata: map[string]string{"name": "Git"}},
			{PackageType: "winget", PackageName: "Zoom.Zoom", CurrentVersion: "Unknown", AvailableVersion: "6.0.11.39959",
				Source: "winget", Severity: "unknown", CVEIDs: []string{}, Metadata: map[string]string{"name": "Zoom Workplace (64-bit)"}},
			{PackageType: "winget", PackageName: "Python.Launcher", CurrentVersion: "< 3.12.3", AvailableVersion: "3.12.3",
				Source: "winget", Severity: "unknown", CVEIDs: []string{}, Metadata: map[string]string{"name": "Python Launcher"}},
		}
		if !reflect.DeepEqual(ups, want) {
			t.Errorf("got %+v\nwant %+v", ups, want)
		}
		r.wantArgv(t, wingetScanArgv,
			argv("winget", "show", "--id", "Microsoft.VisualStudio.2022.Community.Pre", "--accept-source-agreements", "--disable-interactivity"))
	})
	t.Run("cut id not recovered", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "winget/upgrade_cjk.txt")}, wingetScanArgv...)
		r.on(Result{ExitCode: -1978335211, Stdout: mgrFixture(t, "winget/show_multiple.txt")},
			"winget", "show", "--id", "Vendor.VeryLongApplicationNameThatDoesNot", "--accept-source-agreements", "--disable-interactivity")
		ups, err := NewWinget(r, Options{}).Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last := ups[len(ups)-1]
		if len(ups) != 4 || last.PackageName != "Vendor.VeryLongApplicationNameThatDoesNot…" || last.Metadata["id_truncated"] != "true" {
			t.Errorf("got %+v", ups)
		}
		// and such an id is refused at install time
		if err := wingetCheckItem(protocol.InstallItem{PackageName: last.PackageName}); err == nil {
			t.Error("a cut id was accepted for install")
		}
	})
	t.Run("explicit targeting", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "winget/upgrade_only_explicit.txt")}, wingetScanArgv...)
		ups, err := NewWinget(r, Options{}).Scan(context.Background())
		if err != nil || len(ups) != 1 || ups[0].Metadata["explicit_targeting"] != "true" {
			t.Fatalf("ups %+v err %v", ups, err)
		}
	})
	t.Run("nothing to upgrade", func(t *testing.T) {
		for _, code := range []int{0, int(wingetNoApplicationsFound), -1978335212} {
			r := newMgrArgv(paths)
			r.on(Result{ExitCode: code, Stdout: mgrFixture(t, "winget/upgrade_none.txt")}, wingetScanArgv...)
			ups, err := NewWinget(r, Options{}).Scan(context.Background())
			if err != nil || len(ups) != 0 {
				t.Fatalf("exit %d: ups %+v err %v", code, ups, err)
			}
		}
	})
	t.Run("source agreement failure", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{ExitCode: 0x8A15000F, Stdout: []byte("Failed when searching source: winget\r\nAn unexpected error occurred while executing the command:\r\n0x8a15000f : Data required by the source is missing\r\n")}, wingetScanArgv...)
		_, err := NewWinget(r, Options{}).Scan(context.Background())
		if err == nil || !strings.Contains(err.Error(), "winget upgrade exited 0x8A15000F: An unexpected error occurred while executing the command: — 0x8a15000f : Data required by the source is missing") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("absent", func(t *testing.T) {
		if _, err := NewWinget(newMgrArgv(nil), Options{}).Scan(context.Background()); err != ErrUnavailable {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWingetInstall(t *testing.T) {
	paths := map[string]string{"winget": "winget.exe"}
	items := []protocol.InstallItem{
		{UpdateID: "git", PackageType: "winget", PackageName: "Git.Git", Version: "2.45.0"},
		{UpdateID: "vs", PackageType: "winget", PackageName: "Microsoft.VisualStudio.2022.Community", Version: "17.10.0"},
		{UpdateID: "zoom", PackageType: "winget", PackageName: "Zoom.Zoom", Version: "6.0.11.39959"},
		{UpdateID: "git2", PackageType: "winget", PackageName: "Git.Git", Version: "2.45.0"},
		{UpdateID: "bad1", PackageType: "winget", PackageName: "Git.Git&calc"},
		{UpdateID: "bad2", PackageType: "winget", PackageName: "--id"},
		{UpdateID: "bad3", PackageType: "winget", PackageName: "Vendor.Cut…"},
	}
	t.Run("upgrade", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: []byte("Found Git [Git.Git] Version 2.45.0\r\nSuccessfully installed\r\n")}, append([]string{"winget"}, wingetInstallArgs("Git.Git")...)...)
		r.on(Result{ExitCode: int(wingetRebootToFinish), Stdout: []byte("Restart your PC to finish installation.\r\n")},
			append([]string{"winget"}, wingetInstallArgs("Microsoft.VisualStudio.2022.Community")...)...)
		r.on(Result{ExitCode: -1978335189, Stdout: []byte("No applicable update found.\r\n")}, append([]string{"winget"}, wingetInstallArgs("Zoom.Zoom")...)...)
		res, err := NewWinget(r, Options{}).Install(context.Background(), items, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "git", "installed", "2.45.0", "")
		wantResult(t, rs, "git2", "installed", "2.45.0", "")
		wantResult(t, rs, "vs", "installed", "17.10.0", "Windows must restart")
		wantResult(t, rs, "zoom", "failed", "", "no applicable update")
		wantResult(t, rs, "bad1", "failed", "", "shell metacharacters")
		wantResult(t, rs, "bad2", "failed", "", "starts with '-'")
		wantResult(t, rs, "bad3", "failed", "", "not a valid package id")
		if !res.RebootRequired || res.ExitCode != int(wingetRebootToFinish) {
			t.Errorf("result %+v", res)
		}
		r.wantArgv(t,
			argv("winget", "upgrade", "--id", "Git.Git", "--exact", "--silent", "--accept-package-agreements", "--accept-source-agreements", "--disable-interactivity", "--include-unknown"),
			argv("winget", "upgrade", "--id", "Microsoft.VisualStudio.2022.Community", "--exact", "--silent", "--accept-package-agreements", "--accept-source-agreements", "--disable-interactivity", "--include-unknown"),
			argv("winget", "upgrade", "--id", "Zoom.Zoom", "--exact", "--silent", "--accept-package-agreements", "--accept-source-agreements", "--disable-interactivity", "--include-unknown"))
	})
	t.Run("cancelled", func(t *testing.T) {
		r := newMgrArgv(paths)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := NewWinget(r, Options{}).Install(ctx, items[:3], false)
		if err == nil {
			t.Fatal("no error")
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "git", "failed", "", "did not finish")
		wantResult(t, rs, "vs", "failed", "", "not attempted")
		wantResult(t, rs, "zoom", "failed", "", "not attempted")
	})
	t.Run("dry run reports the request only", func(t *testing.T) {
		r := newMgrArgv(paths)
		res, err := NewWinget(r, Options{}).Install(context.Background(), items, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changes) != 3 || len(res.Extras) != 0 || len(res.Results) != 3 {
			t.Errorf("result %+v", res)
		}
		r.wantArgv(t)
	})
}

func TestWingetJudge(t *testing.T) {
	it := protocol.InstallItem{UpdateID: "x", PackageName: "A.B", Version: "2"}
	tests := []struct {
		exit   int
		status string
		reboot bool
		msg    string
	}{
		{0, "installed", false, ""},
		{int(wingetRebootInitiated), "installed", true, "restart"},
		{int(wingetRebootToInstall), "failed", true, "restarted first"},
		{int(wingetNoApplicationsFound), "failed", false, "no installed package with id A.B"},
		{-1978334975, "failed", false, "winget upgrade exited 0x8A150101"},
	}
	for _, tt := range tests {
		r, reboot := wingetJudge(it, Result{ExitCode: tt.exit})
		if r.Status != tt.status || reboot != tt.reboot || !strings.Contains(r.Message, tt.msg) {
			t.Errorf("exit %d: %+v reboot=%v", tt.exit, r, reboot)
		}
	}
}

func FuzzParseWinget(f *testing.F) {
	mgrSeed(f, "winget")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range parseWinget(b) {
			if r.Name == "" || r.ID == "" || r.Version == "" || r.Available == "" || strings.ContainsAny(r.ID, " \t") {
				t.Fatalf("bad row %+v", r)
			}
		}
		if id, ok := parseWingetFound(b, "A"); ok && !strings.HasPrefix(id, "A") {
			t.Fatalf("found %q", id)
		}
	})
}
