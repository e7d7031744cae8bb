// Command redflag-fleetsim is RedFlag's fleet simulator: N virtual agents
// registering, checking in at a given rate and answering signed commands,
// for benchmarks and reliability tests. The work is in internal/fleetsim;
// this file only wires signals and the process to it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redflaghq/redflag/internal/fleetsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := fleetsim.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
