package main

import (
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/redflaghq/redflag/internal/agent"
)

func TestApplyServiceUser(t *testing.T) {
	o := agent.ServiceOptions{Executable: "/x", ConfigPath: "/c/config.json", StateDir: "/s"}
	if err := applyServiceUser(&o, "", io.Discard); err != nil || o.User != "" {
		t.Fatalf("no --user: %v, %+v", err, o)
	}
	if err := applyServiceUser(&o, "no-such-user-rf", io.Discard); err == nil || !strings.Contains(err.Error(), "--user no-such-user-rf") {
		t.Fatalf("an unknown user: %v", err)
	}
	if err := applyServiceUser(&o, "root", io.Discard); err != nil || o.User != "" {
		t.Fatalf("--user root is root: %v, %+v", err, o)
	}

	// As root, with a real unprivileged account: the state and config go
	// to it, and the unit runs as it.
	if os.Geteuid() != 0 {
		t.Skip("handing files to another account needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no nobody account")
	}
	dir := t.TempDir()
	o = agent.ServiceOptions{Executable: filepath.Join(dir, "bin", "redflag-agent"), ConfigPath: filepath.Join(dir, "etc", "config.json"),
		StateDir: filepath.Join(dir, "state")}
	for _, d := range []string{"bin", "etc", "state/sub"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{o.ConfigPath, filepath.Join(o.StateDir, "sub", "f")} {
		if err := os.WriteFile(f, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var warn strings.Builder
	if err := applyServiceUser(&o, "nobody", &warn); err != nil {
		t.Fatal(err)
	}
	if o.User != "nobody" || o.Group == "" {
		t.Errorf("account %q:%q", o.User, o.Group)
	}
	uid, _ := strconv.Atoi(u.Uid)
	for _, p := range []string{o.ConfigPath, filepath.Dir(o.ConfigPath), o.StateDir, filepath.Join(o.StateDir, "sub", "f")} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := int(fi.Sys().(*syscall.Stat_t).Uid); got != uid {
			t.Errorf("%s is owned by %d, want nobody (%d)", p, got, uid)
		}
	}
	if !strings.Contains(warn.String(), "self-upgrades will fail") {
		t.Errorf("no warning about the root-owned binary directory: %q", warn.String())
	}
}
