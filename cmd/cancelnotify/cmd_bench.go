package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cancelnotify/cancelnotify/internal/bench"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// cmdBench runs the benchmark (package bench; README.md, "Benchmark") and
// prints its table; the same figures go to --json.
func cmdBench(ctx context.Context, e *env, args []string) error {
	def := bench.Defaults()
	fs := newFlagSet(e, "bench")
	s := newSettings(fs, e.getenv)
	dbURL := s.add("DATABASE_URL", "database-url", DefaultDatabaseURL, "the Postgres to measure")
	schema := s.add("", "schema", def.Schema, "throwaway schema, dropped and recreated; its name must contain \"bench\"")
	keep := s.addBool("", "keep", false, "keep the schema and the child processes' logs after the run")
	jsonPath := s.add("", "json", "bench.json", "write the figures as JSON to this file (\"\" = none)")
	latency := s.add("", "latency", def.SandboxLatency.String(), "sandbox sendTemplate latency")
	delivered := s.add("", "delivered-after", def.DeliveredAfter.String(), "sandbox: delivered this long after acceptance")
	read := s.add("", "read-after", def.ReadAfter.String(), "sandbox: read this long after acceptance")
	firstPoll := s.add("", "track-first-poll", def.TrackFirstPoll.String(), "daemon's first hookInfo poll, short so every track job runs inside the run")
	skipCeiling := s.addBool("", "skip-ceiling", false, "skip the INSERT…COMMIT ceiling")
	ceilConns := s.add("", "ceiling-conns", strconv.Itoa(def.CeilingConns), "connections of the ceiling")
	ceilFor := s.add("", "ceiling-for", def.CeilingFor.String(), "duration of the ceiling")
	burst := s.add("", "burst", strconv.Itoa(def.Burst), "cancellations of the burst (0 = skip the burst)")
	writers := s.add("", "writers", strconv.Itoa(def.Writers), "OMS connections committing the burst")
	pacedRate := s.add("", "paced-rate", strconv.FormatFloat(def.PacedRate, 'g', -1, 64), "cancellations per second of the paced phase")
	pacedFor := s.add("", "paced-for", def.PacedFor.String(), "duration of the paced phase (0s = skip)")
	afterBurst := s.add("", "after-burst", strconv.Itoa(def.AfterBurst), "cancellations committed at once before a second paced phase (0 = skip it)")
	noWebhooks := s.addBool("", "no-webhooks", false, "run the daemon without a webhook: every status by hookInfo polling")
	skipOMS := s.addBool("", "skip-oms-cost", false, "skip the OMS cost (outbox against a trigger-less copy)")
	omsRounds := s.add("", "oms-rounds", strconv.Itoa(def.OMSRounds), "OMS cost: rounds of one outbox slice and one copy slice")
	omsSlice := s.add("", "oms-slice", def.OMSSlice.String(), "OMS cost: duration of one slice")
	sendWorkers := s.add("", "send-workers", "", "daemon's CANCELNOTIFY_SEND_WORKERS (empty: environment or default)")
	maxConns := s.add("", "db-max-conns", "", "daemon's CANCELNOTIFY_DB_MAX_CONNS (empty: environment or default)")
	daemonEnv := s.add("", "daemon-env", "", "more daemon settings, space-separated KEY=VALUE")
	daemonLog := s.add("", "daemon-log-level", def.DaemonLogLevel, "daemon's log level")
	timeout := s.add("", "timeout", def.Timeout.String(), "give up on a phase whose messages have not settled after this long")
	shared := s.addBool("", "shared-rate", false, "instead: the shared-rate harness (several daemons, one channel rate, a kill, two channels)")
	sharedDaemons := s.add("", "shared-daemons", "3", "shared-rate: daemon processes")
	sharedRate := s.add("", "shared-rate-limit", "20", "shared-rate: the channel's rate, messages/s for all daemons together")
	sharedMessages := s.add("", "shared-messages", "300", "shared-rate: messages per phase")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q: bench takes only flags", fs.Args())
	}

	if s.boolean(shared) {
		sc := bench.SharedConfig{DatabaseURL: s.databaseURL(dbURL), Schema: schema.raw + "_shared",
			Daemons: s.integer(sharedDaemons, 2, 10), Rate: s.float(sharedRate, 1, 1000), Messages: s.integer(sharedMessages, 10, 100000), Out: e.stdout}
		if err := s.err(); err != nil {
			return err
		}
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the cancelnotify binary to run the daemons: %w", err)
		}
		sc.Binary = bin
		return bench.RunShared(ctx, sc)
	}
	cfg := def
	cfg.DatabaseURL = s.databaseURL(dbURL)
	cfg.Schema = schema.raw
	if err := cnsql.ValidateSchemaName(cfg.Schema); err != nil {
		s.fail("--schema: %v", err)
	}
	cfg.Keep = s.boolean(keep)
	cfg.SandboxLatency = s.duration(latency)
	cfg.DeliveredAfter = s.duration(delivered)
	cfg.ReadAfter = s.duration(read)
	cfg.TrackFirstPoll = s.duration(firstPoll)
	cfg.Ceiling = !s.boolean(skipCeiling)
	cfg.CeilingConns = s.integer(ceilConns, 1, 64)
	cfg.CeilingFor = s.duration(ceilFor)
	cfg.Burst = s.integer(burst, 0, 1_000_000)
	cfg.Writers = s.integer(writers, 1, 64)
	cfg.PacedRate = s.float(pacedRate, 0.1, 10_000)
	cfg.PacedFor = s.duration(pacedFor)
	cfg.AfterBurst = s.integer(afterBurst, 0, 1_000_000)
	cfg.NoWebhooks = s.boolean(noWebhooks)
	cfg.OMSCost = !s.boolean(skipOMS)
	cfg.OMSRounds = s.integer(omsRounds, 1, 100)
	cfg.OMSSlice = s.duration(omsSlice)
	if strings.TrimSpace(sendWorkers.raw) != "" {
		cfg.SendWorkers = s.integer(sendWorkers, 1, 10_000)
	}
	if strings.TrimSpace(maxConns.raw) != "" {
		cfg.DBMaxConns = s.integer(maxConns, 4, 1000)
	}
	cfg.DaemonEnv = strings.Fields(daemonEnv.raw)
	cfg.DaemonLogLevel = daemonLog.raw
	cfg.Timeout = s.duration(timeout)
	if err := s.err(); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the cancelnotify binary to run the sandbox and the daemon: %w", err)
	}
	cfg.Binary = bin
	cfg.Out, cfg.Live = e.stdout, isTerminal(e.stdout)
	if err := cfg.Validate(); err != nil {
		return usageError("%v", err)
	}

	rep, err := bench.Run(ctx, cfg)
	if rep == nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	if terr := rep.WriteTable(e.stdout); terr != nil && err == nil {
		err = terr
	}
	if path := strings.TrimSpace(jsonPath.raw); path != "" {
		if jerr := rep.WriteJSON(path); jerr != nil && err == nil {
			err = jerr
		} else if jerr == nil {
			fmt.Fprintf(e.stdout, "\nfigures written to %s\n", path)
		}
	}
	return err
}
