// Command redflag-agent is the RedFlag agent: `register` enrols this
// machine, `run` is the service loop, `version` prints the build. The work
// is in internal/agent; this file only parses flags and wires it up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redflaghq/redflag/internal/agent"
	"github.com/redflaghq/redflag/internal/version"
)

const usage = `usage: redflag-agent <command> [flags]

commands:
  register   enrol this machine: register --server URL --token TOKEN
  run        the service loop: check in, run signed commands, report back
  scan       list this machine's pending updates, without a server: scan [--format json|table] [--scanner apt,dnf]
  install-service    run the agent as a service (systemd, Windows service, launchd) and start it; needs root
  uninstall-service  stop the service and remove it (the config and state stay)
  version    print the version, commit and build date

Every command takes --config PATH and --state-dir PATH (defaults: %s and %s).
Run "redflag-agent <command> -h" for its flags.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, agent.DefaultConfigPath(), agent.DefaultStateDir())
		return 2
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.String("redflag-agent"))
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprintf(stdout, usage, agent.DefaultConfigPath(), agent.DefaultStateDir())
		return 0
	case "register":
		return cmdRegister(args[1:], stdout, stderr)
	case "run":
		return cmdRun(args[1:], stderr)
	case "scan":
		return cmdScan(args[1:], stdout, stderr)
	case "install-service":
		return cmdInstallService(args[1:], stdout, stderr)
	case "uninstall-service":
		return cmdUninstallService(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "redflag-agent: %q is not a command; run \"redflag-agent help\" to see the commands.\n", args[0])
		return 2
	}
}

// commonFlags are the flags every subcommand takes (SPEC §8).
type commonFlags struct {
	config, stateDir string
}

func newFlagSet(name string, stderr io.Writer, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("redflag-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", agent.DefaultConfigPath(), "the agent config file")
	fs.StringVar(&c.stateDir, "state-dir", agent.DefaultStateDir(), "the agent state directory")
	return fs
}

// parse parses args and refuses positional leftovers; it returns an exit
// code when the command must stop.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

func cmdRegister(args []string, stdout, stderr io.Writer) int {
	var c commonFlags
	var server, token string
	fs := newFlagSet("register", stderr, &c)
	fs.StringVar(&server, "server", "", "the server URL, e.g. https://redflag.example.com (required)")
	fs.StringVar(&token, "token", "", "a registration token from the dashboard or the CLI (required)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if server == "" || token == "" {
		fmt.Fprintln(stderr, "redflag-agent register: --server and --token are required.")
		return 2
	}
	mid, err := agent.MachineID()
	if err != nil {
		fmt.Fprintf(stderr, "redflag-agent register: cannot compute this machine's id: %v\n", err)
		return 1
	}
	// Create the state directory now so a permission problem shows here,
	// not later in the service.
	st, err := agent.OpenState(c.stateDir, time.Now(), agent.DefaultExecutedRetention)
	if err != nil {
		fmt.Fprintf(stderr, "redflag-agent register: %v\n", err)
		return 1
	}
	st.Close()
	if strings.HasPrefix(strings.ToLower(server), "http://") {
		fmt.Fprintln(stderr, "redflag-agent register: warning: the server URL is plain http; the agent's tokens travel unencrypted (commands stay signed).")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()
	cfg, err := agent.Register(ctx, agent.RegisterOptions{ServerURL: server, RegistrationToken: token, ConfigPath: c.config, MachineID: mid})
	if err != nil {
		fmt.Fprintf(stderr, "redflag-agent register: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Registered with %s as agent %s; config written to %s.\nStart the agent with: redflag-agent run\n", cfg.ServerURL, cfg.AgentID, c.config)
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	var c commonFlags
	var level, format string
	fs := newFlagSet("run", stderr, &c)
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&format, "log-format", "text", "text or json")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	interactive := agent.Interactive()
	logw, closeLog := serviceLogOutput(stderr, c.stateDir, interactive)
	defer closeLog()
	log, err := newLogger(logw, format, level)
	if err != nil {
		fmt.Fprintf(stderr, "redflag-agent run: %v\n", err)
		return 2
	}
	// The self-upgrade watchdog hook: the first thing after the flags and
	// the logger, before anything a broken new version could fail at (see
	// agent.UpgradeCheckpoint). It returns true when it put the previous
	// version back: exiting with ExitRestart makes the service manager
	// start it.
	if agent.UpgradeCheckpoint(c.stateDir, version.Version, time.Now(), log) {
		log.Warn("exiting so that the service manager starts the restored version", "exit_code", agent.ExitRestart)
		return agent.ExitRestart
	}
	if crashAfterUpgradeCheckpoint != "" {
		// Test builds only (-ldflags "-X main.crashAfterUpgradeCheckpoint=1"):
		// a new version that fails at start, for the watchdog's test.
		log.Error("this build fails at start on purpose (crashAfterUpgradeCheckpoint)")
		return 1
	}
	cfg, err := agent.LoadConfig(c.config)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w, "path", c.config)
	}
	mid, err := agent.MachineID()
	switch {
	case err != nil:
		log.Warn("cannot compute this machine's id; using the one recorded at registration", "error", err)
		mid = cfg.MachineID
	case mid != cfg.MachineID:
		log.Error("this machine's id differs from the one recorded at registration; the server will refuse the agent (403 machine_mismatch) until an admin rebinds it or the agent is registered again",
			"machine_id", mid, "registered_machine_id", cfg.MachineID)
	}
	st, err := agent.OpenState(c.stateDir, time.Now(), agent.DefaultExecutedRetention)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	defer st.Close()
	updates := agent.NewUpdates(newScannerSet(cfg.Scanners), cfg.Scanners, st, log)
	a, err := agent.New(agent.Options{ConfigPath: c.config, Config: cfg, State: st, MachineID: mid, Logger: log,
		Inventory: agent.CollectInventory, Reboot: agent.SystemReboot, Updates: updates})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	if !interactive {
		// Under systemd, the Windows SCM or launchd: the manager starts
		// and stops the agent; when the agent ends on its own (a restart
		// after a self-upgrade), the process exits with its code.
		err := agent.RunService(a.Run, func(code int) { st.Close(); closeLog(); os.Exit(code) }, log)
		return runExit(log, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	return runExit(log, a.Run(ctx))
}

// crashAfterUpgradeCheckpoint, set at link time in test builds, makes `run`
// fail right after the self-upgrade watchdog hook.
var crashAfterUpgradeCheckpoint string

// runExit logs how the agent ended and returns the exit code.
func runExit(log *slog.Logger, err error) int {
	code := agent.ExitCode(err)
	switch {
	case code == agent.ExitRestart:
		log.Info("exiting for a restart by the service manager (run by hand: start the agent again)", "exit_code", code)
	case err != nil:
		log.Error("the agent stopped with an error", "error", err)
	}
	return code
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
