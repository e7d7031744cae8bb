package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redflaghq/redflag/internal/agent"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/scanner"
)

// newScannerSet builds every scanner and installer this platform has,
// configured by the agent config's "scanners" section. Not running as root
// (the Linux service account), the package managers run through sudo -n
// (scanner.SudoPrograms).
func newScannerSet(cfg *agent.ScanConfig) *scanner.Set {
	scs, ins := scanner.Default(scanner.Exec{Sudo: true}, cfg.Options())
	return scanner.NewSet(scs, ins, cfg.Options().Timeout, cfg.Breaker(), nil)
}

// cmdScan runs the scanners once, without a server (SPEC §8).
func cmdScan(args []string, stdout, stderr io.Writer) int {
	var c commonFlags
	var format, only string
	fs := newFlagSet("scan", stderr, &c)
	fs.StringVar(&format, "format", "table", "json or table")
	fs.StringVar(&only, "scanner", "", "comma-separated scanners to run (default: all enabled), e.g. apt,dnf")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if format != "json" && format != "table" {
		fmt.Fprintf(stderr, "redflag-agent scan: --format %q: use json or table.\n", format)
		return 2
	}
	cfg, err := agent.LoadScanConfig(c.config)
	if err != nil {
		fmt.Fprintf(stderr, "redflag-agent scan: %v\n", err)
		return 1
	}
	names := cfg.Names()
	if only != "" {
		names = nil
		for _, n := range strings.Split(only, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(protocol.PackageTypes, n) {
				fmt.Fprintf(stderr, "redflag-agent scan: unknown scanner %q; known: %s.\n", n, strings.Join(protocol.PackageTypes, ", "))
				return 2
			}
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	set := newScannerSet(cfg)
	names = slices.DeleteFunc(names, func(n string) bool { return !set.Has(n) })
	res := protocol.ScanResult{Updates: []protocol.Update{}, Errors: []protocol.ScanError{}}
	var ran []string
	for _, o := range set.Scan(ctx, names) {
		if o.Skipped {
			continue
		}
		ran = append(ran, o.Scanner)
		if o.Err != nil {
			res.Errors = append(res.Errors, protocol.ScanError{Scanner: o.Scanner, Message: o.Err.Error()})
			continue
		}
		res.Updates = append(res.Updates, o.Updates...)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "redflag-agent scan: interrupted.")
		return 1
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "redflag-agent scan: %v\n", err)
			return 1
		}
		return 0
	}
	printTable(stdout, res, ran)
	return 0
}

func printTable(w io.Writer, res protocol.ScanResult, ran []string) {
	if len(ran) == 0 {
		fmt.Fprintln(w, "No supported package manager was found on this machine.")
		return
	}
	fmt.Fprintf(w, "Scanned: %s (%s)\n", strings.Join(ran, ", "), time.Now().UTC().Format(time.RFC3339))
	if len(res.Updates) == 0 {
		fmt.Fprintln(w, "No pending updates.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TYPE\tPACKAGE\tCURRENT\tAVAILABLE\tSEVERITY\tSOURCE")
		for _, u := range res.Updates {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.PackageType, u.PackageName, dash(u.CurrentVersion),
				dash(u.AvailableVersion), u.Severity, dash(u.Source))
		}
		tw.Flush()
		fmt.Fprintf(w, "%d pending updates.\n", len(res.Updates))
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "error: %s: %s\n", e.Scanner, e.Message)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
