package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/redflaghq/redflag/internal/agent"
)

// maxServiceLog is the size past which the Windows service log is rotated
// (to agent.log.1) when the agent starts.
const maxServiceLog = 10 << 20

// serviceLogOutput is where `run` logs: stderr, except for a Windows
// service, which has no usable stderr and logs to <state-dir>/agent.log.
// (systemd sends stderr to the journal, launchd to its log file.)
func serviceLogOutput(stderr io.Writer, stateDir string, interactive bool) (io.Writer, func()) {
	if interactive || runtime.GOOS != "windows" {
		return stderr, func() {}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return stderr, func() {}
	}
	path := filepath.Join(stateDir, "agent.log")
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxServiceLog {
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return stderr, func() {}
	}
	return f, func() { f.Close() }
}

func cmdInstallService(args []string, stdout, stderr io.Writer) int {
	var c commonFlags
	var runAs string
	fs := newFlagSet("install-service", stderr, &c)
	fs.StringVar(&runAs, "user", "", "Linux: the account the service runs as (the install script passes redflag; "+
		"it reaches root through sudo and /etc/sudoers.d/redflag-agent); default root")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if msg := needAdmin(); msg != "" {
		fmt.Fprintf(stderr, "redflag-agent install-service: %s\n", msg)
		return 1
	}
	o, err := serviceOptions(c)
	if err != nil {
		fmt.Fprintf(stderr, "redflag-agent install-service: %v\n", err)
		return 1
	}
	if _, err := agent.LoadConfig(o.ConfigPath); err != nil {
		fmt.Fprintf(stderr, "redflag-agent install-service: the service would not start: %v\n", err)
		return 1
	}
	st, err := agent.OpenState(o.StateDir, time.Now(), agent.DefaultExecutedRetention)
	if err != nil {
		fmt.Fprintf(stderr, "redflag-agent install-service: %v\n", err)
		return 1
	}
	st.Close()
	if err := applyServiceUser(&o, runAs, stderr); err != nil {
		fmt.Fprintf(stderr, "redflag-agent install-service: %v\n", err)
		return 1
	}
	log, _ := newLogger(stderr, "text", "info")
	if err := agent.InstallService(o, log); err != nil {
		fmt.Fprintf(stderr, "redflag-agent install-service: %v\n", err)
		return 1
	}
	as := "root"
	if o.User != "" {
		as = o.User
	}
	if runtime.GOOS == "windows" {
		as = "LocalSystem"
	}
	fmt.Fprintf(stdout, "The %s service is installed and started; it runs %s as %s.\n", agent.ServiceName(runtime.GOOS), o.Executable, as)
	return 0
}

func cmdUninstallService(args []string, stdout, stderr io.Writer) int {
	var c commonFlags
	fs := newFlagSet("uninstall-service", stderr, &c)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if msg := needAdmin(); msg != "" {
		fmt.Fprintf(stderr, "redflag-agent uninstall-service: %s\n", msg)
		return 1
	}
	log, _ := newLogger(stderr, "text", "info")
	if err := agent.UninstallService(log); err != nil {
		fmt.Fprintf(stderr, "redflag-agent uninstall-service: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "The %s service is stopped and removed; the config and state directory stay.\n", agent.ServiceName(runtime.GOOS))
	return 0
}

// serviceOptions makes the paths absolute: the service runs with another
// working directory.
func serviceOptions(c commonFlags) (agent.ServiceOptions, error) {
	exe, err := os.Executable()
	if err != nil {
		return agent.ServiceOptions{}, fmt.Errorf("cannot find this binary: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	cfg, err := filepath.Abs(c.config)
	if err != nil {
		return agent.ServiceOptions{}, err
	}
	st, err := filepath.Abs(c.stateDir)
	if err != nil {
		return agent.ServiceOptions{}, err
	}
	return agent.ServiceOptions{Executable: exe, ConfigPath: cfg, StateDir: st}, nil
}
