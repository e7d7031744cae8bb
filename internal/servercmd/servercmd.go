// Package servercmd holds the redflag-server subcommands besides serving:
// backup (an online copy of the SQLite store), migrate-store (SQLite to
// PostgreSQL and back) and healthcheck (the container's health probe).
// cmd/redflag-server only dispatches to them.
package servercmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Exit codes of every subcommand.
const (
	ExitOK      = 0
	ExitFailure = 1 // the work failed: the message says why
	ExitUsage   = 2 // the command line is wrong
)

// Func runs one subcommand and returns its exit code. Messages are plain
// sentences on stderr; results go to stdout.
type Func func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int

// Lookup returns the subcommand called name, or nil.
func Lookup(name string) Func {
	switch name {
	case "backup":
		return Backup
	case "migrate-store":
		return MigrateStore
	case "healthcheck":
		return Healthcheck
	}
	return nil
}

// Names lists the subcommands.
func Names() []string { return []string{"backup", "migrate-store", "healthcheck"} }

// newFlagSet makes a flag set for subcommand name whose usage starts with
// synopsis.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("redflag-server "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: redflag-server %s %s\n\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and turns -h into ExitOK and a bad flag into
// ExitUsage (the flag package has printed the reason and the usage).
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see -h)\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
	}
	return 0, true
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// redact hides the password of a database URL.
func redact(raw string) string {
	if strings.HasPrefix(raw, "sqlite://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
