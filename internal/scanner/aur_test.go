package scanner

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redflaghq/redflag/internal/protocol"
)

func TestAURScan(t *testing.T) {
	both := map[string]string{"paru": "/usr/bin/paru", "yay": "/usr/bin/yay", "pacman": "/usr/bin/pacman"}
	yayOnly := map[string]string{"yay": "/usr/bin/yay", "pacman": "/usr/bin/pacman"}
	tests := []struct {
		name     string
		paths    map[string]string
		key      string
		answer   Result
		want     []string
		wantErr  string
		wantArgv []string
	}{
		{
			name: "paru preferred", paths: both, key: "paru -Qua",
			answer:   Result{Stdout: mgrFixture(t, "aur/paru_qua.txt")},
			want:     []string{"google-chrome 124.0.6367.201-1->125.0.6422.60-1 aur", "visual-studio-code-bin 1.89.0-1->1.89.1-1 aur", "yay-bin 12.3.5-1->12.4.2-1 aur"},
			wantArgv: []string{"paru", "-Qua"},
		},
		{
			name: "yay, ignored skipped, warnings on stderr", paths: yayOnly, key: "yay -Qua",
			answer:   Result{Stdout: mgrFixture(t, "aur/yay_qua.txt"), Stderr: mgrFixture(t, "aur/yay_qua_stderr.txt")},
			want:     []string{"google-chrome 124.0.6367.201-1->125.0.6422.60-1 aur", "zoom 6.0.2-1->6.0.11-1 aur"},
			wantArgv: []string{"yay", "-Qua"},
		},
		{name: "nothing to upgrade", paths: yayOnly, key: "yay -Qua", answer: Result{ExitCode: 1}, wantArgv: []string{"yay", "-Qua"}},
		{
			name: "aur unreachable", paths: both, key: "paru -Qua",
			answer:  Result{ExitCode: 1, Stderr: []byte("error: failed to get current aur packages: error sending request for url (https://aur.archlinux.org/rpc/?v=5)\n")},
			wantErr: "paru -Qua exited 1: error: failed to get current aur packages",
		},
		{name: "no helper", paths: map[string]string{"pacman": "/usr/bin/pacman"}, wantErr: ErrUnavailable.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newMgrArgv(tt.paths)
			if tt.key != "" {
				r.Answers[tt.key] = tt.answer
			}
			a := NewAUR(r, Options{})
			if a.Name() != "aur" {
				t.Fatalf("Name = %q", a.Name())
			}
			ups, err := a.Scan(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.wantErr == ErrUnavailable.Error() && (!errors.Is(err, ErrUnavailable) || a.Available(context.Background())) {
					t.Errorf("want ErrUnavailable and not available, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range ups {
				got = append(got, u.PackageName+" "+u.CurrentVersion+"->"+u.AvailableVersion+" "+u.Source)
				if u.PackageType != "aur" || u.Severity != protocol.SevUnknown || u.Metadata["checked_with"] != tt.wantArgv[0]+" -Qua" {
					t.Errorf("update %+v", u)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("updates = %q, want %q", got, tt.want)
			}
			r.wantArgv(t, tt.wantArgv)
		})
	}
}

func TestAURInstall(t *testing.T) {
	paths := map[string]string{"paru": "/usr/bin/paru", "pacman": "/usr/bin/pacman"}
	items := []protocol.InstallItem{
		{UpdateID: "c", PackageType: "aur", PackageName: "google-chrome", Version: "125.0.6422.60-1"},
		{UpdateID: "z", PackageType: "aur", PackageName: "zoom", Version: "6.0.11-1"},
		{UpdateID: "bad", PackageType: "aur", PackageName: "-Syu"},
	}
	user := func() int { return 1000 }
	root := func() int { return 0 }

	t.Run("as root nothing runs", func(t *testing.T) {
		for _, dry := range []bool{false, true} {
			r := newMgrArgv(paths)
			a := NewAUR(r, Options{})
			a.euid = root
			res, err := a.Install(context.Background(), items, dry)
			if err != nil {
				t.Fatal(err)
			}
			rs := resultsByID(res.Results)
			wantResult(t, rs, "c", "failed", "", "paru refuses to build and install AUR packages as root")
			wantResult(t, rs, "z", "failed", "", "makepkg must not run as root")
			wantResult(t, rs, "bad", "failed", "", "starts with '-'")
			if dry != (len(res.Changes) == 2) {
				t.Errorf("dry=%v changes=%+v", dry, res.Changes)
			}
			r.wantArgv(t)
		}
	})

	t.Run("install", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.onSeq([]Result{{Stdout: mgrFixture(t, "aur/query_before.txt")}, {Stdout: mgrFixture(t, "aur/query_after.txt")}},
			"pacman", "-Q", "--", "google-chrome", "zoom")
		r.on(Result{Stdout: mgrFixture(t, "aur/paru_install.txt")}, "paru", "-S", "--noconfirm", "--needed", "google-chrome", "zoom")
		a := NewAUR(r, Options{})
		a.euid = user
		res, err := a.Install(context.Background(), items, false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "c", "installed", "125.0.6422.60-1", "")
		wantResult(t, rs, "z", "failed", "", "paru left zoom at 6.0.2-1: it built no newer version")
		wantResult(t, rs, "bad", "failed", "", "starts with '-'")
		r.wantArgv(t,
			argv("pacman", "-Q", "--", "google-chrome", "zoom"),
			argv("paru", "-S", "--noconfirm", "--needed", "google-chrome", "zoom"),
			argv("pacman", "-Q", "--", "google-chrome", "zoom"))
	})

	t.Run("helper refuses root on its own", func(t *testing.T) {
		r := newMgrArgv(paths)
		r.on(Result{Stdout: mgrFixture(t, "aur/query_before.txt")}, "pacman", "-Q", "--", "zoom")
		r.on(Result{ExitCode: 1, Stderr: mgrFixture(t, "aur/paru_root_stderr.txt")}, "paru", "-S", "--noconfirm", "--needed", "zoom")
		a := NewAUR(r, Options{})
		a.euid = user // e.g. run through sudo with a changed euid check
		res, err := a.Install(context.Background(), items[1:], false)
		if err != nil {
			t.Fatal(err)
		}
		rs := resultsByID(res.Results)
		wantResult(t, rs, "z", "failed", "", "paru refuses to build and install AUR packages as root")
		wantResult(t, rs, "bad", "failed", "", "starts with '-'")
	})

	t.Run("dry run reports the request only", func(t *testing.T) {
		r := newMgrArgv(map[string]string{"yay": "/usr/bin/yay"})
		a := NewAUR(r, Options{})
		a.euid = user
		res, err := a.Install(context.Background(), items, true)
		if err != nil {
			t.Fatal(err)
		}
		want := []protocol.PackageChange{
			{PackageType: "aur", PackageName: "google-chrome", Action: "upgrade", ToVersion: "125.0.6422.60-1"},
			{PackageType: "aur", PackageName: "zoom", Action: "upgrade", ToVersion: "6.0.11-1"},
		}
		if !reflect.DeepEqual(res.Changes, want) || len(res.Extras) != 0 || len(res.Results) != 1 {
			t.Errorf("result = %+v", res)
		}
		r.wantArgv(t)
	})
}
