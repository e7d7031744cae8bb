// Command redflag-server runs the RedFlag API, dashboard and background jobs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redflaghq/redflag/internal/config"
	"github.com/redflaghq/redflag/internal/logging"
	"github.com/redflaghq/redflag/internal/server"
	"github.com/redflaghq/redflag/internal/servercmd"
	"github.com/redflaghq/redflag/internal/version"
)

func main() {
	// Subcommands (backup, migrate-store, healthcheck); otherwise serve.
	if len(os.Args) > 1 {
		if run := servercmd.Lookup(os.Args[1]); run != nil {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := run(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		}
	}
	cfg, err := config.LoadServer(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "redflag-server:", err)
		os.Exit(2)
	}
	if cfg.ShowVersion {
		fmt.Println(version.String("redflag-server"))
		return
	}
	log, err := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redflag-server:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, log); err != nil {
		log.Error("server stopped with an error", "error", err)
		os.Exit(1)
	}
}
