package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/childproc"
	"github.com/cancelnotify/cancelnotify/internal/webhook"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// idleWindow is how long the daemon's idle cost is measured.
const idleWindow = 10 * time.Second

// runner holds one run's processes, connections and figures.
type runner struct {
	cfg Config
	rep *Report

	admin  *pgxpool.Pool // setup and teardown only, never inside a measured window
	mon    *monitor
	logDir string

	sandbox, daemon *childproc.Proc
	sb              *sandbox.Control

	idle            Rates
	omsRows         int // rows of phaseOMS used so far
	writerWALPerRow float64
	writerRateAlone float64
	maxOthers       int
}

// Run runs the benchmark Config describes. It returns the report even when
// a phase fails, with the figures measured until then and Complete false;
// the error says what failed. Missed targets are not errors: they are in
// Report.Targets.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, rep: &Report{Version: ReportVersion, StartedAt: time.Now().UTC(), Settings: settingsOf(cfg)}}
	err := r.run(ctx)
	if postgresWentAway(err) {
		err = fmt.Errorf("%w (Postgres restarted or went away during the run; run the bench again)", err)
	}
	if terr := r.teardown(err == nil); err == nil {
		err = terr
	}
	r.rep.Seconds = round(time.Since(r.rep.StartedAt).Seconds(), 1)
	r.rep.Targets = Evaluate(r.rep)
	return r.rep, err
}

func (r *runner) run(ctx context.Context) error {
	if err := r.setup(ctx); err != nil {
		return err
	}
	if r.cfg.Ceiling {
		if err := r.ceiling(ctx); err != nil {
			return err
		}
	}
	if r.cfg.OMSCost {
		stopped, err := r.omsCost(ctx, "daemon stopped")
		if err != nil {
			return err
		}
		r.rep.OMSCost = &OMSCostResult{Stopped: stopped}
		if _, err := r.admin.Exec(ctx, "TRUNCATE "+r.table("outbox")); err != nil {
			return fmt.Errorf("empty the outbox after the OMS cost: %w", err)
		}
	}
	if r.cfg.Burst > 0 {
		if err := r.baseline(ctx); err != nil {
			return err
		}
	}
	if err := r.startChildren(ctx); err != nil {
		return err
	}
	if err := r.warmUp(ctx); err != nil {
		return err
	}
	if err := r.measureIdle(ctx); err != nil {
		return err
	}
	if r.cfg.OMSCost {
		omsBefore := r.omsRows
		working, err := r.omsCost(ctx, "daemon working")
		if err != nil {
			return err
		}
		r.rep.OMSCost.Working = working
		if _, ok, err := r.settle(ctx, phaseOMS, working.OutboxRows); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("OMS cost: the %d rows written with the daemon working did not settle (rows %d…)", working.OutboxRows, omsBefore))
		}
	}
	if r.cfg.PacedFor > 0 {
		if err := r.paced(ctx); err != nil {
			return err
		}
	}
	if r.cfg.Burst > 0 {
		if err := r.burst(ctx); err != nil {
			return err
		}
	}
	if r.cfg.AfterBurst > 0 && r.cfg.PacedFor > 0 {
		if err := r.afterBurst(ctx); err != nil {
			return err
		}
	}
	r.rep.Complete = (r.rep.Paced == nil || r.rep.Paced.Settled) && (r.rep.Burst == nil || r.rep.Burst.Complete) &&
		(r.rep.AfterBurst == nil || r.rep.AfterBurst.Settled)
	return nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Out, "bench: "+format+"\n", args...)
}

func (r *runner) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
}

func (r *runner) table(name string) string {
	return pgx.Identifier{r.cfg.Schema, name}.Sanitize()
}

// setup recreates the schema, migrates it and describes the machine.
func (r *runner) setup(ctx context.Context) error {
	pool, err := cnsql.Open(ctx, withAppName(r.cfg.DatabaseURL, appPrefix+"-setup"), r.cfg.Schema, 2)
	if err != nil {
		return err
	}
	r.admin = pool
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{r.cfg.Schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop the bench schema %s: %w", r.cfg.Schema, err)
	}
	if _, err := cnsql.Migrate(ctx, pool, r.cfg.Schema, nil); err != nil {
		return fmt.Errorf("migrate the bench schema %s: %w", r.cfg.Schema, err)
	}
	if r.mon, err = connectMonitor(ctx, r.cfg.DatabaseURL, r.cfg.Schema); err != nil {
		return err
	}
	if r.rep.Machine, err = describeMachine(ctx, r.mon.conn); err != nil {
		return err
	}
	if r.logDir, err = os.MkdirTemp("", "cancelnotify-bench-"); err != nil {
		return fmt.Errorf("create a directory for the logs: %w", err)
	}
	m := r.rep.Machine
	r.logf("%d cores (%s), %s, %s; schema %s recreated; logs in %s", m.Cores, m.CPU, m.Postgres, m.Go, r.cfg.Schema, r.logDir)
	if load, err := strconv.ParseFloat(strings.Fields(m.LoadAverage + " 0")[0], 64); err == nil && load >= 0.5 {
		r.logf("warning: load average %s at start: something else is busy on this machine and every figure will show it", m.LoadAverage)
		r.note("load average %s at start: the machine was not idle", m.LoadAverage)
	}
	return nil
}

// ceiling measures single-row INSERT … COMMIT into a copy of the outbox
// without its NOTIFY trigger (LIKE copies no triggers): what this Postgres
// can commit, with nothing else running.
func (r *runner) ceiling(ctx context.Context) error {
	c := r.cfg
	table := r.table("bench_ceiling")
	if _, err := r.admin.Exec(ctx, "CREATE TABLE "+table+" (LIKE "+r.table("outbox")+" INCLUDING ALL)"); err != nil {
		return fmt.Errorf("create the ceiling's scratch table: %w", err)
	}
	conns, err := connectN(ctx, c.DatabaseURL, appPrefix+"-ceiling", c.CeilingConns)
	if err != nil {
		return err
	}
	r.logf("ceiling: single-row INSERT…COMMIT from %d connections for %s", c.CeilingConns, c.CeilingFor)
	start := time.Now()
	res, err := writeAsFastAsPossible(ctx, conns, table, phaseBurst, phaseBurst.limit, start.Add(c.CeilingFor))
	elapsed := time.Since(start)
	closeAll(conns)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	r.rep.Ceiling = &CeilingResult{Connections: c.CeilingConns, Seconds: round(elapsed.Seconds(), 2), Rows: res.Rows, RowsPerSec: rate(res.Rows, elapsed)}
	r.logf("ceiling: %s rows/s", num(r.rep.Ceiling.RowsPerSec))
	if _, err := r.admin.Exec(ctx, "DROP TABLE "+table); err != nil {
		return fmt.Errorf("drop the ceiling's scratch table: %w", err)
	}
	return nil
}

// checkpoint starts a measured window from a fresh checkpoint, so that
// each phase pays the same full-page images for the pages it touches first
// rather than whatever the last timed checkpoint left.
func (r *runner) checkpoint(ctx context.Context) error {
	if _, err := r.admin.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("CHECKPOINT (needs a superuser or pg_checkpoint): %w", err)
	}
	return nil
}

// baseline inserts the burst's rows with no daemon running: their WAL is
// the writers' share, taken out of the daemon's, and their commit rate is
// the OMS's without the daemon. The rows are then truncated away.
func (r *runner) baseline(ctx context.Context) error {
	conns, err := connectN(ctx, r.cfg.DatabaseURL, appPrefix+"-oms", r.cfg.Writers)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	if err := r.checkpoint(ctx); err != nil {
		return err
	}
	r.logf("baseline: %d cancellations from %d writers, no daemon running", r.cfg.Burst, r.cfg.Writers)
	before, err := r.mon.counters(ctx)
	if err != nil {
		return err
	}
	res, err := writeAsFastAsPossible(ctx, conns, r.table("outbox"), phaseBurst, r.cfg.Burst, time.Time{})
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	after, err := r.mon.counters(ctx)
	if err != nil {
		return err
	}
	r.writerWALPerRow = round(float64(after.WAL-before.WAL)/float64(res.Rows), 1)
	r.writerRateAlone = res.rate()
	r.logf("baseline: %s rows/s, %s WAL bytes per row", num(r.writerRateAlone), num(r.writerWALPerRow))
	if _, err := r.admin.Exec(ctx, "TRUNCATE "+r.table("outbox")); err != nil {
		return fmt.Errorf("empty the outbox after the baseline: %w", err)
	}
	return nil
}

// startChildren starts the sandbox and the daemon and registers the
// daemon's webhook with the sandbox.
func (r *runner) startChildren(ctx context.Context) error {
	c := r.cfg
	// One channel for both, whatever ONEMSG_* the caller's environment has.
	channel := map[string]string{
		"ONEMSG_CHANNEL_ID": sandbox.DefaultChannel, "ONEMSG_TOKEN": sandbox.DefaultToken, "ONEMSG_TOKEN_FILE": "",
		"ONEMSG_TEMPLATE": sandbox.DefaultTemplate, "ONEMSG_NAMESPACE": sandbox.DefaultNamespace, "ONEMSG_LANGUAGE": sandbox.DefaultLanguage,
	}
	sbArgs := []string{"--latency", c.SandboxLatency.String(), "--delivered-after", c.DeliveredAfter.String(),
		"--read-after", c.ReadAfter.String(), "--log-level", "warn"}
	var base string
	var err error
	r.sandbox, base, err = startSandbox(ctx, c.Binary, sbArgs, childEnv(channel), filepath.Join(r.logDir, "sandbox.log"))
	if err != nil {
		return err
	}
	r.sb = sandbox.NewControl(base, nil)

	hookAddr, err := childproc.FreeAddr()
	if err != nil {
		return err
	}
	adminAddr, err := childproc.FreeAddr()
	if err != nil {
		return err
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	hookSecret := hex.EncodeToString(secret)
	if c.NoWebhooks {
		hookSecret = "" // statuses by hookInfo polling only
	}
	env := map[string]string{
		"DATABASE_URL":                  withAppName(c.DatabaseURL, appPrefix+"-daemon"),
		"CANCELNOTIFY_SCHEMA":           c.Schema,
		"ONEMSG_API_URL":                base,
		"CANCELNOTIFY_WEBHOOK_ADDR":     hookAddr,
		"CANCELNOTIFY_WEBHOOK_SECRET":   hookSecret,
		"CANCELNOTIFY_ADMIN_ADDR":       adminAddr,
		"CANCELNOTIFY_ADMIN_USER":       "",
		"CANCELNOTIFY_ADMIN_PASSWORD":   "",
		"CANCELNOTIFY_PPROF":            "on", // profile the daemon during the run
		"CANCELNOTIFY_RATE":             "0",  // measure the daemon, not Meta's limit
		"CANCELNOTIFY_PAIR_INTERVAL":    "0",
		"CANCELNOTIFY_TRACK_FIRST_POLL": c.TrackFirstPoll.String(),
		"CANCELNOTIFY_CALLBACK_URL":     "",
		"CANCELNOTIFY_LOG_FORMAT":       "json",
		"CANCELNOTIFY_LOG_LEVEL":        c.DaemonLogLevel,
		"CANCELNOTIFY_SHUTDOWN_TIMEOUT": "10s",
	}
	for k, v := range channel {
		env[k] = v
	}
	if c.SendWorkers > 0 {
		env["CANCELNOTIFY_SEND_WORKERS"] = strconv.Itoa(c.SendWorkers)
	}
	if c.DBMaxConns > 0 {
		env["CANCELNOTIFY_DB_MAX_CONNS"] = strconv.Itoa(c.DBMaxConns)
	}
	for _, kv := range c.DaemonEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	r.daemon, err = childproc.Start(childproc.Spec{Name: "daemon", Bin: c.Binary, Args: []string{"run"},
		Env: childEnv(env), LogPath: filepath.Join(r.logDir, "daemon.log")})
	if err != nil {
		return err
	}
	r.rep.Daemon.PID = r.daemon.Pid()
	r.rep.Daemon.AdminAddr = adminAddr
	// The daemon opens its listeners once River and the relay run.
	if err := childproc.WaitListening(ctx, adminAddr, 30*time.Second, r.daemon.Running); err != nil {
		return fmt.Errorf("the daemon's admin listener: %w; see %s", err, r.daemon.LogPath())
	}
	if c.NoWebhooks {
		r.logf("sandbox at %s (pid %d); daemon pid %d without webhooks (polling hookInfo), admin and pprof on %s", base, r.sandbox.Pid(), r.daemon.Pid(), adminAddr)
		return nil
	}
	if err := childproc.WaitListening(ctx, hookAddr, 30*time.Second, r.daemon.Running); err != nil {
		return fmt.Errorf("the daemon's webhook listener: %w; see %s", err, r.daemon.LogPath())
	}
	if err := registerWebhook(ctx, base, "http://"+hookAddr+webhook.PathPrefix+hookSecret); err != nil {
		return err
	}
	r.logf("sandbox at %s (pid %d); daemon pid %d, webhook on %s, admin and pprof on %s", base, r.sandbox.Pid(), r.daemon.Pid(), hookAddr, adminAddr)
	return nil
}

// warmUp sends a few messages end to end before anything is measured.
func (r *runner) warmUp(ctx context.Context) error {
	conns, err := connectN(ctx, r.cfg.DatabaseURL, appPrefix+"-oms", 2)
	if err != nil {
		return err
	}
	_, err = writeAsFastAsPossible(ctx, conns, r.table("outbox"), phaseWarmUp, warmUpRows, time.Time{})
	closeAll(conns)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if _, ok, err := r.settle(ctx, phaseWarmUp, warmUpRows); err != nil || !ok {
		return errors.Join(err, r.daemon.Running(), errors.New("warm-up: the first messages did not settle; see the daemon's log in "+r.logDir))
	}
	return nil
}

// measureIdle measures what the daemon costs with nothing to do, after
// the warm-up's statistics have been flushed.
func (r *runner) measureIdle(ctx context.Context) error {
	r.logf("idle: %s for statistics to settle, then %s with nothing to do", statsFlushWait, idleWindow)
	if err := sleep(ctx, statsFlushWait); err != nil {
		return err
	}
	before, err := r.mon.counters(ctx)
	if err != nil {
		return err
	}
	if err := sleep(ctx, idleWindow); err != nil {
		return err
	}
	after, err := r.mon.counters(ctx)
	if err != nil {
		return err
	}
	r.idle = IdleRates(before, after)
	r.rep.Idle = &r.idle
	// The daemon alone writes a leader lease every few seconds; more means
	// another client writes to this Postgres and the costs will include it.
	if r.idle.WriteTxsPerSec > 2 {
		r.note("idle: %s write transactions/s with the daemon idle: something else writes to this Postgres, and the cost figures include it", num(r.idle.WriteTxsPerSec))
	}
	r.logf("idle: %s commits/s, %s write tx/s, %s WAL bytes/s", num(r.idle.CommitsPerSec), num(r.idle.WriteTxsPerSec), num(r.idle.WALBytesPerSec))
	return nil
}

// window is one measured phase: the readings around it.
type window struct {
	before, after     Counters
	sbBefore, sbAfter SandboxCounters
	cpuBefore         cpuSample
	doneAt            time.Time
	otherCPU          float64 // share of the machine used by other processes
}

// open starts a measured window. Every connection of the phase must be
// open already: a backend's start-up is a transaction too.
func (r *runner) open(ctx context.Context) (*window, error) {
	if err := r.checkpoint(ctx); err != nil {
		return nil, err
	}
	w := &window{cpuBefore: sampleCPU()}
	var err error
	if w.sbBefore, err = counters(ctx, r.sb); err != nil {
		return nil, err
	}
	if w.before, err = r.mon.counters(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// close ends a window once its messages settled: it waits for Postgres to
// publish every backend's counters, then reads them.
func (r *runner) close(ctx context.Context, w *window) error {
	w.doneAt = time.Now()
	w.otherCPU = otherShare(w.cpuBefore, sampleCPU(), r.ours())
	if err := sleep(ctx, statsFlushWait); err != nil {
		return err
	}
	var err error
	if w.after, err = r.mon.counters(ctx); err != nil {
		return err
	}
	w.sbAfter, err = counters(ctx, r.sb)
	return err
}

// ours are the bench's own process and its children.
func (r *runner) ours() map[int]bool {
	m := map[int]bool{os.Getpid(): true}
	for _, c := range []*childproc.Proc{r.sandbox, r.daemon} {
		if c != nil {
			m[c.Pid()] = true
		}
	}
	return m
}

// checkQuiet notes a phase that shared the machine with other work.
func (r *runner) checkQuiet(name string, w *window) {
	if w.otherCPU >= 0.05 {
		r.note("%s: other processes used %.0f%% of the machine's CPU during the phase: its figures are not this daemon's alone", name, 100*w.otherCPU)
	}
}

func (r *runner) cost(w *window, notifications int, writerTxs int) *Cost {
	c := ComputeCost(CostInput{
		Notifications: notifications, Before: w.before, After: w.after,
		WriterTxs: int64(writerTxs), WriterWALPerRow: r.writerWALPerRow,
		Idle: r.idle, Tail: w.after.At.Sub(w.doneAt), Busy: w.doneAt.Sub(w.before.At),
		SandboxBefore: w.sbBefore, SandboxAfter: w.sbAfter,
	})
	return &c
}

// paced commits PacedRate rows per second for PacedFor and measures the
// latency of each from its COMMIT.
func (r *runner) paced(ctx context.Context) error {
	res, err := r.pacedPhase(ctx, "paced", phasePaced, 0)
	r.rep.Paced = res
	return err
}

// afterBurst commits AfterBurst rows as fast as the writers can, then the
// paced phase's rows: the latency of a send while a burst's messages are
// sent and their statuses tracked.
func (r *runner) afterBurst(ctx context.Context) error {
	res, err := r.pacedPhase(ctx, "after-burst", phaseAfter, r.cfg.AfterBurst)
	r.rep.AfterBurst = res
	return err
}

// pacedPhase commits surge rows as fast as possible (none if 0), then
// PacedRate rows of p per second for PacedFor, and measures the latency of
// each paced row from its COMMIT.
func (r *runner) pacedPhase(ctx context.Context, name string, p phase, surge int) (*PacedResult, error) {
	c := r.cfg
	conns, err := connectN(ctx, c.DatabaseURL, appPrefix+"-oms", pacedWriters)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	var surgeConns []*pgx.Conn
	if surge > 0 {
		if surgeConns, err = connectN(ctx, c.DatabaseURL, appPrefix+"-oms", c.Writers); err != nil {
			return nil, err
		}
		defer closeAll(surgeConns)
	}
	w, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	if surge > 0 {
		r.logf("%s: %d cancellations from %d writers, then %s/s for %s", name, surge, c.Writers, num(c.PacedRate), c.PacedFor)
		sw, err := writeAsFastAsPossible(ctx, surgeConns, r.table("outbox"), phaseSurge, surge, time.Time{})
		closeAll(surgeConns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r.logf("%s: burst committed in %.1f s; pacing starts once it is sent, while its statuses are tracked", name, sw.Last.Sub(sw.First).Seconds())
		if err := r.waitSent(ctx, phaseSurge, surge); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else {
		r.logf("%s: %s cancellations/s for %s", name, num(c.PacedRate), c.PacedFor)
	}
	writes, err := writePaced(ctx, conns, r.table("outbox"), p, c.PacedRate, c.PacedFor)
	closeAll(conns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	n := writes.Result.Rows
	pr, settled, err := r.settle(ctx, p, n)
	if err != nil {
		return nil, err
	}
	if surge > 0 {
		sr, ok, err := r.settle(ctx, phaseSurge, surge)
		if err != nil {
			return nil, err
		}
		settled = settled && ok
		pr.Settled += sr.Settled
	}
	if err := r.close(ctx, w); err != nil {
		return nil, err
	}

	reqs, err := r.sb.Requests(ctx)
	if err != nil {
		return nil, err
	}
	sentAt, err := r.mon.sentAt(ctx, p)
	if err != nil {
		return nil, err
	}
	statuses, err := r.mon.statuses(ctx, p)
	if err != nil {
		return nil, err
	}
	res := &PacedResult{
		Rate: c.PacedRate, Seconds: c.PacedFor.Seconds(), Rows: n, BurstBefore: surge,
		AchievedRate:   rate(n-1, writes.Result.Last.Sub(writes.Result.First)), // n commits span n-1 intervals
		Settled:        settled,
		ToSendTemplate: Between(writes.Committed, arrivals(reqs, p)),
		ToSentAt:       Between(writes.Committed, sentAt),
		OMSTransaction: Summarize(writes.TxTime),
		OtherCPU:       w.otherCPU,
		Cost:           r.cost(w, n+surge, n+surge),
		Statuses:       statuses,
	}
	r.checkQuiet(name, w)
	if !settled {
		r.note("%s: only %d of %d messages settled within %s", name, pr.Settled, n+surge, c.Timeout)
	}
	r.logf("%s: commit → sendTemplate p50 %s ms, p99 %s ms; %s commits per notification",
		name, num(res.ToSendTemplate.P50), num(res.ToSendTemplate.P99), num(res.Cost.CommitsPerNotification))
	return res, nil
}

// burst commits Burst rows as fast as the writers can and measures how
// fast the daemon sends them and what they cost.
func (r *runner) burst(ctx context.Context) error {
	c := r.cfg
	conns, err := connectN(ctx, c.DatabaseURL, appPrefix+"-oms", c.Writers)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	w, err := r.open(ctx)
	if err != nil {
		return err
	}
	r.logf("burst: %d cancellations from %d writers", c.Burst, c.Writers)
	writes, err := writeAsFastAsPossible(ctx, conns, r.table("outbox"), phaseBurst, c.Burst, time.Time{})
	closeAll(conns)
	if err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	r.logf("burst: committed in %.1f s (%s rows/s)", writes.Last.Sub(writes.First).Seconds(), num(writes.rate()))
	pr, settled, err := r.settle(ctx, phaseBurst, writes.Rows)
	if err != nil {
		return err
	}
	if err := r.close(ctx, w); err != nil {
		return err
	}
	statuses, err := r.mon.statuses(ctx, phaseBurst)
	if err != nil {
		return err
	}
	res := &BurstResult{
		Rows: writes.Rows, Writers: c.Writers,
		WriterRate: writes.rate(), WriterRateAlone: r.writerRateAlone,
		WriteSeconds: round(writes.Last.Sub(writes.First).Seconds(), 2),
		Sent:         pr.Sent, Settled: pr.Settled, Complete: settled && pr.Sent == writes.Rows,
		WriterWALPerRow: r.writerWALPerRow,
		OtherCPU:        w.otherCPU,
		Cost:            r.cost(w, writes.Rows, writes.Rows),
		Statuses:        statuses,
	}
	if pr.LastSent != nil {
		d := pr.LastSent.Sub(writes.First)
		res.ToSentSeconds, res.SentPerSec = round(d.Seconds(), 2), rate(pr.Sent, d)
	}
	if pr.LastDone != nil && pr.Settled > 0 {
		d := pr.LastDone.Sub(writes.First)
		res.ToFinalSeconds, res.FinalPerSec = round(d.Seconds(), 2), rate(pr.Settled, d)
	}
	r.rep.Burst = res
	r.checkQuiet("burst", w)
	if !settled {
		r.note("burst: only %d of %d messages settled within %s", pr.Settled, writes.Rows, c.Timeout)
	}
	r.logf("burst: %s notifications/s to sent, %s to final; %s commits per notification",
		num(res.SentPerSec), num(res.FinalPerSec), num(res.Cost.CommitsPerNotification))
	return nil
}

// waitSent waits until every row of p (n of them) has its wamid.
func (r *runner) waitSent(ctx context.Context, p phase, n int) error {
	deadline := time.Now().Add(r.cfg.Timeout)
	for {
		pr, err := r.mon.progress(ctx, p)
		if err != nil {
			return err
		}
		if pr.Sent >= n {
			return nil
		}
		if err := r.daemon.Running(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of the %d %s rows were sent within %s", pr.Sent, n, p.name, r.cfg.Timeout)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// settle waits until every row of p (n of them) is in a settled status and
// River has no unfinished job, or Timeout passes (ok false).
func (r *runner) settle(ctx context.Context, p phase, n int) (pr progress, ok bool, err error) {
	deadline := time.Now().Add(r.cfg.Timeout)
	lastShown := time.Time{}
	for {
		if pr, err = r.mon.progress(ctx, p); err != nil {
			return pr, false, err
		}
		r.maxOthers = max(r.maxOthers, pr.Others)
		done := pr.Settled >= n && pr.JobsLeft == 0
		if r.cfg.Live || done || time.Since(lastShown) >= 5*time.Second {
			r.show(p, n, pr, done)
			lastShown = time.Now()
		}
		if done {
			return pr, true, nil
		}
		if err := r.daemon.Running(); err != nil {
			return pr, false, err
		}
		if time.Now().After(deadline) {
			return pr, false, nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return pr, false, err
		}
	}
}

func (r *runner) show(p phase, n int, pr progress, done bool) {
	line := fmt.Sprintf("%s: %d committed · %d relayed · %d sent · %d final · %d River jobs left",
		p.name, n, pr.Rows, pr.Sent, pr.Settled, pr.JobsLeft)
	switch {
	case r.cfg.Live && done:
		fmt.Fprintf(r.cfg.Out, "\rbench: %s\033[K\n", line)
	case r.cfg.Live:
		fmt.Fprintf(r.cfg.Out, "\rbench: %s\033[K", line)
	default:
		r.logf("%s", line)
	}
}

// teardown stops the processes, reads the daemon's peak RSS first, and
// drops the schema unless asked to keep it.
func (r *runner) teardown(ok bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if r.daemon != nil {
		if rss, err := peakRSS(r.daemon.Pid()); err == nil {
			r.rep.Daemon.PeakRSSBytes = rss
		} else if r.daemon.Running() == nil {
			r.note("daemon peak RSS unknown: %v", err)
		}
		errs = append(errs, r.daemon.Stop(15*time.Second))
		r.rep.Daemon.Warnings, r.rep.Daemon.Errors = logLevels(r.daemon.LogPath())
		if r.rep.Daemon.Errors > 0 {
			r.note("the daemon logged %d errors and %d warnings; see %s", r.rep.Daemon.Errors, r.rep.Daemon.Warnings, r.daemon.LogPath())
		}
	}
	if r.sandbox != nil {
		errs = append(errs, r.sandbox.Stop(5*time.Second))
	}
	if r.maxOthers > 0 {
		r.note("up to %d other sessions were active on this Postgres during the run: they shared the cores and the WAL, and in this database the commit counts", r.maxOthers)
	}
	r.mon.close()
	if r.admin != nil {
		if !r.cfg.Keep {
			if _, err := r.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{r.cfg.Schema}.Sanitize()+" CASCADE"); err != nil {
				errs = append(errs, fmt.Errorf("drop the bench schema %s: %w", r.cfg.Schema, err))
			}
		}
		r.admin.Close()
	}
	if r.logDir != "" {
		if ok && !r.cfg.Keep && r.rep.Daemon.Errors == 0 {
			_ = os.RemoveAll(r.logDir)
		} else {
			r.note("logs of the sandbox and the daemon kept in %s", r.logDir)
		}
	}
	return errors.Join(errs...)
}

// postgresWentAway reports whether err is Postgres shutting down or
// refusing connections, which another process may cause mid-run.
func postgresWentAway(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57P") // admin shutdown, crash shutdown, cannot connect now
	}
	return err != nil && (strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "unexpected EOF"))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// redactEnv hides the values of settings that may hold a password or a
// secret: the report is meant to be shared.
func redactEnv(kvs []string) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		out[i] = kv
		for _, secret := range []string{"URL", "SECRET", "TOKEN", "PASSWORD"} {
			if strings.Contains(strings.ToUpper(k), secret) {
				out[i] = k + "=(hidden)"
			}
		}
	}
	return out
}

// settingsOf records the run's knobs in the report.
func settingsOf(c Config) Settings {
	daemonSetting := func(n int, env string) string {
		switch {
		case n > 0:
			return strconv.Itoa(n)
		case os.Getenv(env) != "":
			return os.Getenv(env) + " (" + env + ")"
		}
		return "daemon default"
	}
	s := Settings{
		Schema: c.Schema, SandboxLatency: c.SandboxLatency.String(),
		DeliveredAfter: c.DeliveredAfter.String(), ReadAfter: c.ReadAfter.String(), TrackFirstPoll: c.TrackFirstPoll.String(),
		Writers: c.Writers, Burst: c.Burst, PacedRate: c.PacedRate, PacedFor: c.PacedFor.String(),
		AfterBurst: c.AfterBurst, Webhooks: !c.NoWebhooks,
		SendWorkers:     daemonSetting(c.SendWorkers, "CANCELNOTIFY_SEND_WORKERS"),
		DBMaxConns:      daemonSetting(c.DBMaxConns, "CANCELNOTIFY_DB_MAX_CONNS"),
		DaemonOverrides: strings.Join(redactEnv(c.DaemonEnv), " "),
	}
	if c.Ceiling {
		s.CeilingConns = c.CeilingConns
	}
	return s
}
