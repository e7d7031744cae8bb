package fleetsim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/redflaghq/redflag/internal/version"
)

// EnvToken is read when --token is not given, to keep the token out of the
// process list.
const EnvToken = "REDFLAG_FLEETSIM_TOKEN"

const cliUsage = `usage: redflag-fleetsim --server URL --token REGTOKEN [flags]

Registers --agents virtual agents with the registration token (it needs a
seat for each), checks them in round-robin at --rate check-ins per second
for --duration, answers their signed commands like redflag-agent does, and
prints the achieved rate, latency percentiles, errors by kind, and commands
delivered, completed and duplicated. It talks only to --server and stops by
itself. For load runs start the server with REDFLAG_AGENT_RATE_LIMIT=0, or
the per-agent limit (60 requests a minute) answers 429.

Exit status: 0, 1 when a command was delivered twice or failed signature
verification (or no agent could register), 2 for bad flags.

flags:
`

// ParseArgs reads the command line of redflag-fleetsim. getenv supplies
// EnvToken when --token is absent.
func ParseArgs(args []string, getenv func(string) string, stderr io.Writer) (cfg Config, asJSON bool, showVersion bool, err error) {
	fs := flag.NewFlagSet("redflag-fleetsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, cliUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.ServerURL, "server", "", "the RedFlag server URL (the only address contacted)")
	fs.StringVar(&cfg.RegistrationToken, "token", "", "registration token with a seat per agent (or env "+EnvToken+")")
	fs.IntVar(&cfg.Agents, "agents", 100, "number of virtual agents")
	fs.Float64Var(&cfg.Rate, "rate", 0, "check-ins per second over the whole fleet; 0 = as fast as possible")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to check in")
	fs.IntVar(&cfg.Concurrency, "concurrency", DefaultConcurrency, "requests in flight at most")
	fs.IntVar(&cfg.Wait, "wait", 0, "long-poll seconds per check-in (?wait=, at most 60); 0 polls")
	fs.BoolVar(&cfg.Answer, "answer", true, "answer commands: verify the signature with the keys from registration, then report a result")
	fs.StringVar(&cfg.Seed, "seed", "", "derive the machine ids from this text (same seed = same machines re-registered); default random")
	fs.StringVar(&cfg.HostnamePrefix, "hostname-prefix", "fleetsim", "agent hostnames are PREFIX-000001 …")
	fs.BoolVar(&asJSON, "json", false, "print the reports as JSON")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err = fs.Parse(args); err != nil {
		return cfg, false, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.RegistrationToken == "" && getenv != nil {
		cfg.RegistrationToken = getenv(EnvToken)
	}
	if showVersion {
		return cfg, asJSON, true, nil
	}
	if cfg.ServerURL == "" {
		return cfg, false, false, errors.New("--server is required")
	}
	err = cfg.normalise()
	return cfg, asJSON, false, err
}

// Main runs redflag-fleetsim and returns its exit status. Progress goes to
// stderr, the reports to stdout.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, asJSON, showVersion, err := ParseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "redflag-fleetsim:", err)
		return 2
	}
	if showVersion {
		fmt.Fprintln(stdout, version.String("redflag-fleetsim"))
		return 0
	}
	cfg.Progress = stderr
	sim, err := New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "redflag-fleetsim:", err)
		return 2
	}
	fmt.Fprintf(stderr, "redflag-fleetsim: registering %d agents with %s\n", cfg.Agents, cfg.ServerURL)
	reg, err := sim.Register(ctx)
	if !asJSON {
		reg.Print(stdout)
	}
	if err != nil {
		if asJSON {
			_ = json.NewEncoder(stdout).Encode(map[string]any{"registration": reg})
		}
		fmt.Fprintln(stderr, "redflag-fleetsim:", err)
		return 1
	}
	fmt.Fprintf(stderr, "redflag-fleetsim: checking in for %s\n", cfg.Duration)
	rep, err := sim.Run(ctx)
	if rep == nil {
		fmt.Fprintln(stderr, "redflag-fleetsim:", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"registration": reg, "run": rep})
	} else {
		rep.Print(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "redflag-fleetsim: interrupted:", err)
		return 1
	}
	if rep.Duplicates > 0 || rep.Refused > 0 {
		fmt.Fprintf(stderr, "redflag-fleetsim: FAILED: %d duplicate deliveries, %d commands refused\n", rep.Duplicates, rep.Refused)
		return 1
	}
	return 0
}
