package agent

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var defaultServiceOptions = ServiceOptions{Executable: "/usr/local/bin/redflag-agent", ConfigPath: "/etc/redflag/agent/config.json",
	StateDir: "/var/lib/redflag/agent"}

// unitValues returns the values of key in a systemd unit, in order.
func unitValues(unit, key string) []string {
	var out []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	unit, err := SystemdUnit(defaultServiceOptions)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ExecStart":             `"/usr/local/bin/redflag-agent" "run" "--config" "/etc/redflag/agent/config.json" "--state-dir" "/var/lib/redflag/agent"`,
		"Restart":               "on-failure",
		"RestartSec":            "5s",
		"StartLimitIntervalSec": "0",
		"ProtectSystem":         "strict",
		"ProtectHome":           "read-only",
		"PrivateTmp":            "yes",
		"NoNewPrivileges":       "no",
		"KillMode":              "mixed",
		"WantedBy":              "multi-user.target",
		"After":                 "network-online.target",
	}
	for k, v := range want {
		if got := unitValues(unit, k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, got, v)
		}
	}
	rw := unitValues(unit, "ReadWritePaths")
	if len(rw) != 1 {
		t.Fatalf("ReadWritePaths lines: %q", rw)
	}
	paths := strings.Fields(rw[0])
	for _, p := range []string{"/etc", "/usr", "/var", "/opt", "/run", "-/boot", "-/lib"} {
		found := false
		for _, q := range paths {
			found = found || q == p
		}
		if !found {
			t.Errorf("ReadWritePaths %q lacks %s", rw[0], p)
		}
	}
	// The defaults lie in /etc, /var and /usr: nothing extra is listed.
	if len(paths) != len(systemdReadWritePaths) {
		t.Errorf("ReadWritePaths %q lists more than the package-manager paths", rw[0])
	}
	for _, k := range []string{"UMask", "RestrictSUIDSGID", "ProtectKernelModules", "PrivateDevices", "User", "SystemCallArchitectures"} {
		if v := unitValues(unit, k); len(v) > 0 {
			t.Errorf("the unit sets %s=%s, which breaks package installs", k, v)
		}
	}
	if strings.Contains(unit, "{{") || strings.Contains(unit, "}}") {
		t.Error("the unit holds template markers; kardianos would expand them")
	}

	// Custom locations: quoted, escaped, and writable.
	o := ServiceOptions{Executable: "/srv/red flag/bin/redflag-agent", ConfigPath: "/srv/red flag/etc/config.json",
		StateDir: "/data/100%$state"}
	unit, err = SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	exec := unitValues(unit, "ExecStart")
	if len(exec) != 1 || exec[0] != `"/srv/red flag/bin/redflag-agent" "run" "--config" "/srv/red flag/etc/config.json" "--state-dir" "/data/100%%$$state"` {
		t.Errorf("ExecStart = %q", exec)
	}
	rw = unitValues(unit, "ReadWritePaths")
	if !strings.Contains(rw[0], `"/srv/red flag/etc"`) || !strings.Contains(rw[0], `"/srv/red flag/bin"`) || !strings.Contains(rw[0], `"/data/100%%$state"`) {
		t.Errorf("ReadWritePaths %q lacks the custom config, binary or state directory", rw[0])
	}

	for _, bad := range []ServiceOptions{
		{Executable: "redflag-agent", ConfigPath: "/c", StateDir: "/s"},
		{Executable: "/x", ConfigPath: "config.json", StateDir: "/s"},
		{Executable: "/x", ConfigPath: "/c", StateDir: ""},
		{Executable: "/x/{{.Path}}", ConfigPath: "/c", StateDir: "/s"},
		{Executable: "/x", ConfigPath: "/c\nExecStartPre=/bin/evil", StateDir: "/s"},
	} {
		if _, err := SystemdUnit(bad); err == nil {
			t.Errorf("SystemdUnit(%+v) accepted unusable paths", bad)
		}
	}
}

// TestSystemdUnitUser: install-service --user redflag (the install script)
// runs the agent as redflag, sudo still usable, in the same sandbox.
func TestSystemdUnitUser(t *testing.T) {
	o := defaultServiceOptions
	o.Executable = "/usr/local/lib/redflag/redflag-agent"
	o.User, o.Group = "redflag", "redflag"
	unit, err := SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	root, err := SystemdUnit(defaultServiceOptions)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"User": "redflag", "Group": "redflag", "NoNewPrivileges": "no", "ProtectSystem": "strict",
		"ExecStart": `"/usr/local/lib/redflag/redflag-agent" "run" "--config" "/etc/redflag/agent/config.json" "--state-dir" "/var/lib/redflag/agent"`} {
		if got := unitValues(unit, k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, got, v)
		}
	}
	// The package managers run as root through sudo inside this unit's
	// mount namespace: they need the same writable paths.
	if a, b := unitValues(unit, "ReadWritePaths"), unitValues(root, "ReadWritePaths"); len(a) != 1 || a[0] != b[0] {
		t.Errorf("ReadWritePaths %q, want the root unit's %q", a, b)
	}
	if v := unitValues(unit, "SupplementaryGroups"); len(v) != 0 {
		t.Errorf("SupplementaryGroups=%q without a docker group", v)
	}
	o.SupplementaryGroups = []string{"docker"}
	unit, err = SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	if v := unitValues(unit, "SupplementaryGroups"); len(v) != 1 || v[0] != "docker" {
		t.Errorf("SupplementaryGroups = %q, want docker", v)
	}
	for _, bad := range []ServiceOptions{
		{User: "red flag"}, {User: "root\nExecStartPre=/bin/evil"}, {User: "-x"}, {User: "1abc"},
		{Group: "redflag"}, {User: "redflag", SupplementaryGroups: []string{"docker wheel"}},
	} {
		bad.Executable, bad.ConfigPath, bad.StateDir = o.Executable, o.ConfigPath, o.StateDir
		if _, err := SystemdUnit(bad); err == nil {
			t.Errorf("SystemdUnit accepted the account %q/%q/%q", bad.User, bad.Group, bad.SupplementaryGroups)
		}
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit when the
// machine has it (no systemd needs to run).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "redflag-agent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit, err := SystemdUnit(ServiceOptions{Executable: bin, ConfigPath: filepath.Join(dir, "config.json"), StateDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ServiceNameLinux+".service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", "--man=no", path).CombinedOutput()
	text := string(out)
	// Without a running systemd, verify may complain about the missing
	// manager or unrelated units; only complaints about our unit count.
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, ServiceNameLinux+".service") && (strings.Contains(line, "Unknown") || strings.Contains(line, "Invalid") ||
			strings.Contains(line, "Failed to parse") || strings.Contains(line, "bad")) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	if err != nil {
		t.Logf("systemd-analyze verify exited with %v (fine without a running systemd):\n%s", err, text)
	}
}

func TestLaunchdPlist(t *testing.T) {
	o := ServiceOptions{Executable: "/usr/local/bin/redflag-agent", ConfigPath: "/Library/Application Support/RedFlag/agent/config.json",
		StateDir: "/Library/Application Support/RedFlag/agent/<state>&"}
	plist, err := LaunchdPlist(o)
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed XML whose dict pairs keys with values.
	type value struct {
		XMLName xml.Name
		Text    string   `xml:",chardata"`
		Strings []string `xml:"string"`
	}
	var doc struct {
		Dict struct {
			Items []value `xml:",any"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal([]byte(plist), &doc); err != nil {
		t.Fatalf("the plist is not XML: %v\n%s", err, plist)
	}
	got := map[string]value{}
	items := doc.Dict.Items
	for i := 0; i+1 < len(items); i += 2 {
		if items[i].XMLName.Local != "key" {
			t.Fatalf("dict item %d is %s, not a key", i, items[i].XMLName.Local)
		}
		got[items[i].Text] = items[i+1]
	}
	if v := got["Label"]; v.Text != "com.redflag.agent" {
		t.Errorf("Label = %q", v.Text)
	}
	if v := got["KeepAlive"]; v.XMLName.Local != "true" {
		t.Errorf("KeepAlive = %s", v.XMLName.Local)
	}
	if v := got["RunAtLoad"]; v.XMLName.Local != "true" {
		t.Errorf("RunAtLoad = %s", v.XMLName.Local)
	}
	wantArgs := []string{o.Executable, "run", "--config", o.ConfigPath, "--state-dir", o.StateDir}
	if args := got["ProgramArguments"].Strings; strings.Join(args, "|") != strings.Join(wantArgs, "|") {
		t.Errorf("ProgramArguments = %q, want %q", args, wantArgs)
	}
	if v := got["StandardErrorPath"]; v.Text != DarwinLogFile {
		t.Errorf("StandardErrorPath = %q", v.Text)
	}
	if strings.Contains(plist, "{{") {
		t.Error("the plist holds template markers")
	}
}

func TestServiceConfig(t *testing.T) {
	for _, goos := range []string{"linux", "windows", "darwin"} {
		c, err := serviceConfig(defaultServiceOptions, goos)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != ServiceName(goos) || c.Executable != defaultServiceOptions.Executable || c.Arguments[0] != "run" {
			t.Errorf("%s: config %+v", goos, c)
		}
		switch goos {
		case "linux":
			if s, _ := c.Option["SystemdScript"].(string); !strings.Contains(s, "ProtectSystem=strict") {
				t.Error("linux: the custom unit is not used")
			}
		case "darwin":
			if s, _ := c.Option["LaunchdConfig"].(string); !strings.Contains(s, "com.redflag.agent") || c.Name != "com.redflag.agent" {
				t.Error("darwin: the custom plist or the label is not used")
			}
		case "windows":
			if c.Option["OnFailure"] != "restart" || c.Option["StartType"] != "automatic" {
				t.Errorf("windows: recovery options %v", c.Option)
			}
		}
	}
}

func TestServiceProgram(t *testing.T) {
	// Stopped by the service manager: no exit, Run's error is kept.
	var mu sync.Mutex
	var exits []int
	exit := func(code int) { mu.Lock(); exits = append(exits, code); mu.Unlock() }
	p := &serviceProgram{run: func(ctx context.Context) error { <-ctx.Done(); return nil }, exit: exit, log: discardLogger()}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err != nil {
		t.Fatal(err)
	}
	// The agent ends on its own asking for a restart: the process exits 75.
	p2 := &serviceProgram{run: func(ctx context.Context) error { return ErrRestartRequested }, exit: exit, log: discardLogger()}
	if err := p2.Start(nil); err != nil {
		t.Fatal(err)
	}
	<-p2.done
	// An error: a failure exit, so the manager restarts it too.
	p3 := &serviceProgram{run: func(ctx context.Context) error { return errors.New("boom") }, exit: exit, log: discardLogger()}
	_ = p3.Start(nil)
	<-p3.done
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(exits)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exits) != 2 || exits[0]+exits[1] != ExitRestart+1 {
		t.Errorf("exits %v, want %d and 1 (and none for the managed stop)", exits, ExitRestart)
	}
	if ExitCode(nil) != 0 || ExitCode(ErrRestartRequested) != ExitRestart || ExitCode(errors.New("x")) != 1 {
		t.Error("ExitCode maps wrongly")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestSupportedManager(t *testing.T) {
	for _, c := range []struct {
		goos, platform string
		ok             bool
	}{
		{"linux", "linux-systemd", true},
		{"linux", "linux-openrc", false},
		{"linux", "unix-systemv", false},
		{"windows", "windows-service", true},
		{"darwin", "darwin-launchd", true},
		{"freebsd", "freebsd", true},
	} {
		if err := supportedManager(c.goos, c.platform); (err == nil) != c.ok {
			t.Errorf("supportedManager(%s, %s) = %v", c.goos, c.platform, err)
		}
	}
}
