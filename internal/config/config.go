// Package config reads the server's configuration from REDFLAG_* variables
// and the flags of the same names (kebab case, without the prefix), flags
// winning (SPEC §2).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// Server is the server's configuration.
type Server struct {
	Listen           string
	DataDir          string
	DatabaseURL      string
	PublicURL        string
	JWTSecret        string
	AdminUser        string
	AdminPassword    string
	TLSCert          string
	TLSKey           string
	AgentBinariesDir string
	AgentRateLimit   int
	CheckInInterval  int
	LogFormat        string
	LogLevel         string
	MetricsToken     string
	JobInterval      int
	// CommandRedeliver is the seconds after which a command handed out
	// but never acknowledged by its agent is offered again.
	CommandRedeliver int
	ShowVersion      bool
}

type option struct {
	name, def, help string
	str             *string
	num             *int
}

// LoadServer parses args over the environment (getenv). Errors are
// sentences a person can act on; flag.ErrHelp is returned for -h.
func LoadServer(args []string, getenv func(string) string, out io.Writer) (Server, error) {
	var c Server
	opts := []option{
		{"listen", ":8080", "listen address", &c.Listen, nil},
		{"data-dir", "./data", "directory for the embedded database, the signing key and generated secrets", &c.DataDir, nil},
		{"database-url", "", "sqlite://PATH or postgres://… (default sqlite://<data dir>/redflag.db)", &c.DatabaseURL, nil},
		{"public-url", "", "URL agents and install scripts use to reach the server (default: derived from the request)", &c.PublicURL, nil},
		{"jwt-secret", "", "HS256 secret for agent tokens, at least 32 bytes (default: generated into the data dir)", &c.JWTSecret, nil},
		{"admin-user", "", "create this first admin at start-up when no account exists", &c.AdminUser, nil},
		{"admin-password", "", "password of the first admin (at least 12 characters)", &c.AdminPassword, nil},
		{"tls-cert", "", "TLS certificate file: serve HTTPS directly", &c.TLSCert, nil},
		{"tls-key", "", "TLS key file", &c.TLSKey, nil},
		{"agent-binaries-dir", "", "where agent binaries for download live, as {os}-{arch}/redflag-agent[.exe] (default: <data dir>/agents when it exists, else the agents directory beside the server binary)", &c.AgentBinariesDir, nil},
		{"agent-rate-limit", "60", "requests per minute one agent may make; 0 turns the limit off", nil, &c.AgentRateLimit},
		{"check-in-interval", "300", "check-in interval in seconds given to newly registered agents", nil, &c.CheckInInterval},
		{"log-format", "text", "text or json", &c.LogFormat, nil},
		{"log-level", "info", "debug, info, warn or error", &c.LogLevel, nil},
		{"metrics-token", "", "when set, /metrics needs it as a bearer token", &c.MetricsToken, nil},
		{"job-interval", "15", "seconds between runs of the background jobs (command expiry and timeouts)", nil, &c.JobInterval},
		{"command-redeliver-seconds", "60", "seconds after which a command handed out but not acknowledged by its agent is offered again", nil, &c.CommandRedeliver},
	}
	fs := flag.NewFlagSet("redflag-server", flag.ContinueOnError)
	fs.SetOutput(out)
	var errs []error
	for _, o := range opts {
		env := "REDFLAG_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
		def := o.def
		if v := getenv(env); v != "" {
			def = v
		}
		help := o.help + " (env " + env + ")"
		if o.str != nil {
			fs.StringVar(o.str, o.name, def, help)
			continue
		}
		n, err := strconv.Atoi(def)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s must be a whole number, got %q", env, def))
		}
		fs.IntVar(o.num, o.name, n, help)
	}
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if c.ShowVersion {
		return c, nil
	}
	return c, c.normalise()
}

func (c *Server) normalise() error {
	if c.DataDir == "" {
		return errors.New("the data directory (REDFLAG_DATA_DIR) cannot be empty")
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.Join(c.DataDir, "redflag.db")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		return fmt.Errorf("REDFLAG_JWT_SECRET is %d bytes long; it must be at least 32 (for example: openssl rand -hex 32)", len(c.JWTSecret))
	}
	if (c.AdminUser == "") != (c.AdminPassword == "") {
		return errors.New("set both REDFLAG_ADMIN_USER and REDFLAG_ADMIN_PASSWORD, or neither")
	}
	if c.AdminPassword != "" && len([]rune(c.AdminPassword)) < 12 {
		return errors.New("REDFLAG_ADMIN_PASSWORD must be at least 12 characters long")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("set both REDFLAG_TLS_CERT and REDFLAG_TLS_KEY, or neither")
	}
	if c.AgentRateLimit < 0 {
		return errors.New("REDFLAG_AGENT_RATE_LIMIT cannot be negative (0 turns it off)")
	}
	if c.CheckInInterval < 10 || c.CheckInInterval > 86400 {
		return errors.New("REDFLAG_CHECK_IN_INTERVAL must be from 10 to 86400 seconds")
	}
	if c.JobInterval < 1 || c.JobInterval > 3600 {
		return errors.New("REDFLAG_JOB_INTERVAL must be from 1 to 3600 seconds")
	}
	if c.CommandRedeliver < 1 || c.CommandRedeliver > 3600 {
		return errors.New("REDFLAG_COMMAND_REDELIVER_SECONDS must be from 1 to 3600 seconds")
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return errors.New("REDFLAG_PUBLIC_URL must start with http:// or https://")
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return nil
}
