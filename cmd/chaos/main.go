// Command chaos is the chaos run (README.md, "The chaos run"; `make chaos`,
// `make chaos-small`): concurrent OMS-like writers insert cancellations while
// the daemon is SIGKILLed and restarted, Postgres restarts and the 1MSG
// sandbox injects faults; then it prints one accounting table.
//
// main only wires: flags into chaos.Config, the table or JSON out, and the
// exit code: 0 every must holds, 1 a must failed, 2 the run could not be
// carried out (bad flags, no Postgres, no binary).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cancelnotify/cancelnotify/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	cfg := chaos.DefaultConfig()
	if u := os.Getenv("DATABASE_URL"); u != "" {
		cfg.DatabaseURL = u
	}
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.StringVar(&cfg.Bin, "bin", cfg.Bin, "path to the cancelnotify binary (make build)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "Postgres to run against (default $DATABASE_URL)")
	fs.IntVar(&cfg.Rows, "rows", cfg.Rows, "committed cancellations to write")
	fs.IntVar(&cfg.Writers, "writers", cfg.Writers, "concurrent OMS-like writers")
	fs.IntVar(&cfg.Kills, "kills", cfg.Kills, "daemon SIGKILLs at random moments")
	fs.IntVar(&cfg.PGRestarts, "pg-restarts", cfg.PGRestarts, "Postgres restarts while writing")
	fs.Float64Var(&cfg.RollbackShare, "rollback-share", cfg.RollbackShare, "share of OMS transactions rolled back")
	fs.Float64Var(&cfg.InvalidShare, "invalid-share", cfg.InvalidShare, "share of committed rows with an invalid payload")
	fs.Float64Var(&cfg.SecondShare, "second-channel-share", cfg.SecondShare, "share of valid rows sent through the second channel "+chaos.SecondChannel+" (0 = the default channel only)")
	fs.Float64Var(&cfg.FailShare, "fail-share", cfg.FailShare, "share of accepted messages WhatsApp reports failed")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "the daemon's CANCELNOTIFY_RATE, messages/s (0 = unlimited)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed of the plan, the faults and the sandbox (0 = time-based; printed)")
	fs.DurationVar(&cfg.WriteFor, "write-for", cfg.WriteFor, "spread the inserts over this long")
	fs.DurationVar(&cfg.After, "after", cfg.After, "keep killing the daemon this long after the writers are done")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "how long to wait for quiescence after the last fault")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the schema and the logs")
	fs.StringVar(&cfg.LogDir, "log-dir", "", "write the daemon and sandbox logs here (default: a temporary directory, removed when the run passes)")
	pgCmd := fs.String("pg-restart-cmd", "", "command that restarts Postgres (default: pg_ctlcluster --skip-systemctl-redirect VERSION main restart)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of the table")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chaos: unexpected arguments %q: it takes only flags\n", fs.Args())
		return 2
	}
	cfg.PGRestartCmd = strings.Fields(*pgCmd)

	rep, err := chaos.Run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: the run could not be carried out: %v\n", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
		fmt.Fprintln(os.Stderr, chaos.Verdict(rep))
	} else {
		err = chaos.Render(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: print the report: %v\n", err)
		return 2
	}
	if !rep.Passed {
		return 1
	}
	return 0
}
