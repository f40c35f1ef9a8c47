package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/childproc"
	"github.com/cancelnotify/cancelnotify/internal/textcut"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// runner holds one run's parts.
type runner struct {
	cfg    Config
	out    io.Writer // progress lines
	start  time.Time
	logDir string
	db     db
	chans  []channel // the default channel first
	daemon *supervisor

	pgRestarts atomic.Int64
	sbStats    *SandboxSummary            // all channels together, read at the end
	sbByChan   map[string]*SandboxSummary // by channel name
	mu         sync.Mutex                 // serializes progress lines
}

// Run carries out a chaos run and returns its accounting. An error means
// the run itself could not be carried out (no Postgres, no binary, the
// sandbox died); a daemon that misbehaves is a report that did not pass.
// Progress lines go to progress.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if cfg.PGRestarts > 0 && len(cfg.PGRestartCmd) == 0 {
		argv, err := defaultPGRestart()
		if err != nil {
			return nil, err
		}
		cfg.PGRestartCmd = argv
	}
	if _, err := os.Stat(cfg.Bin); err != nil {
		return nil, fmt.Errorf("--bin %s: %w (run make build)", cfg.Bin, err)
	}
	r := &runner{cfg: cfg, out: progress, start: time.Now(), chans: runChannels(cfg.SecondShare)}
	return r.run(ctx)
}

func (r *runner) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "[%6s] %s\n", time.Since(r.start).Round(time.Second), fmt.Sprintf(format, args...))
}

func (r *runner) run(ctx context.Context) (rep *Report, err error) {
	// A sandbox that dies ends the run: without it nothing can be counted.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	if err := r.makeLogDir(); err != nil {
		return nil, err
	}
	defer func() {
		// Logs are kept when they are needed to understand a failure.
		if r.cfg.Keep || r.cfg.LogDir != "" || err != nil || (rep != nil && !rep.Passed) {
			r.logf("logs kept in %s", r.logDir)
			return
		}
		os.RemoveAll(r.logDir)
		if rep != nil {
			rep.Run.LogDir = ""
		}
	}()

	pool, err := openPool(ctx, r.cfg.DatabaseURL, int32(r.cfg.Writers)+4)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		return nil, fmt.Errorf("connect to Postgres (--database-url): %w", err)
	}
	r.db = db{pool: pool, schema: newSchemaName()}
	defer func() {
		if r.cfg.Keep {
			r.logf("schema %s kept (--keep)", r.db.schema)
			return
		}
		if derr := r.db.dropSchema(context.WithoutCancel(ctx)); derr != nil {
			r.logf("%v", derr)
		}
	}()

	env, err := r.setUp(ctx, cancel)
	if err != nil {
		return nil, err
	}
	r.daemon = &supervisor{bin: r.cfg.Bin, env: env.daemon, logDir: r.logDir, addr: env.hookAddr,
		grace: 20 * time.Second, progress: r.logf}
	defer func() {
		if code := r.daemon.stop(); code > 0 {
			r.logf("the last daemon incarnation exited with code %d on SIGTERM", code)
		}
	}()
	if err := r.daemon.start(ctx); err != nil {
		return nil, err
	}
	if err := r.daemon.waitReady(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("first daemon start: %w", err)
	}
	r.logf("daemon up (log %s)", filepath.Join(r.logDir, "daemon-01.log"))

	facts, err := r.chaos(ctx)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return nil, err
	}

	rep = Account(*facts)
	rep.Run = RunInfo{Schema: r.db.schema, Seed: r.cfg.Seed, Rows: r.cfg.Rows, Writers: r.cfg.Writers,
		Kills: r.cfg.Kills, PGRestarts: r.cfg.PGRestarts, Faults: describeFaults(r.cfg.Faults, r.cfg.FailShare),
		SecondShare: r.cfg.SecondShare, LogDir: r.logDir, Sandbox: r.sbStats, SandboxByChannel: r.sbByChan}
	if !rep.Passed {
		rep.Evidence = r.evidence(rep)
	}
	return rep, nil
}

func (r *runner) makeLogDir() error {
	if r.cfg.LogDir != "" {
		r.logDir = r.cfg.LogDir
		return os.MkdirAll(r.logDir, 0o755)
	}
	dir, err := os.MkdirTemp("", "cnchaos-")
	if err != nil {
		return fmt.Errorf("create the log directory: %w", err)
	}
	r.logDir = dir
	return nil
}

// runEnv is what setUp prepared for the daemon.
type runEnv struct {
	daemon   []string // the daemon's environment
	hookAddr string
}

// setUp migrates the schema, starts the sandbox with the faults injected
// and registers the daemon's webhook with it.
func (r *runner) setUp(ctx context.Context, cancel context.CancelCauseFunc) (*runEnv, error) {
	sbAddr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	hookAddr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	// The admin listener's default port may be taken by another daemon on
	// this machine; the run's daemon must not depend on it being free.
	adminAddr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	vars := map[string]string{
		"DATABASE_URL":        r.cfg.DatabaseURL,
		"CANCELNOTIFY_SCHEMA": r.db.schema,
		"ONEMSG_API_URL":      "http://" + sbAddr,
		"ONEMSG_CHANNEL_ID":   r.chans[0].ID,
		"ONEMSG_TOKEN":        r.chans[0].token,
		"ONEMSG_TEMPLATE":     r.chans[0].Template,
		"ONEMSG_NAMESPACE":    r.chans[0].Namespace,
		// A short call timeout shortens River's rescue of jobs a killed
		// daemon left running (it is sized from it), so the run settles in
		// minutes; the slowest injected answer is far below it.
		"ONEMSG_TIMEOUT":                "5s",
		"CANCELNOTIFY_WEBHOOK_ADDR":     hookAddr,
		"CANCELNOTIFY_ADMIN_ADDR":       adminAddr,
		"CANCELNOTIFY_WEBHOOK_SECRET":   hex.EncodeToString(secret),
		"CANCELNOTIFY_RATE":             strconv.FormatFloat(r.cfg.Rate, 'f', -1, 64),
		"CANCELNOTIFY_TRACK_FIRST_POLL": "2s",
		"CANCELNOTIFY_SHUTDOWN_TIMEOUT": "10s",
		"CANCELNOTIFY_LOG_FORMAT":       "text",
		"CANCELNOTIFY_LOG_LEVEL":        "info",
	}
	if len(r.chans) > 1 {
		// The sandbox serves the file's channels and the daemon sends
		// through them: both read the same file, as in README.md.
		path, err := writeChannelsFile(r.logDir, r.chans, r.cfg.Rate)
		if err != nil {
			return nil, err
		}
		vars["CANCELNOTIFY_CHANNELS_FILE"] = path
	}
	env := childEnv(vars)

	r.logf("schema %s: migrating", r.db.schema)
	if err := childproc.Run(ctx, "cancelnotify migrate", r.cfg.Bin, []string{"migrate"}, env, filepath.Join(r.logDir, "migrate.log")); err != nil {
		return nil, err
	}

	sbProc, err := childproc.Start(childproc.Spec{Name: "sandbox", Bin: r.cfg.Bin, Args: []string{"sandbox", "--addr", sbAddr,
		"--seed", strconv.FormatUint(r.cfg.Seed%(1<<62), 10),
		"--fail-rate", strconv.FormatFloat(r.cfg.FailShare, 'f', -1, 64)}, Env: env, LogPath: filepath.Join(r.logDir, "sandbox.log")})
	if err != nil {
		return nil, err
	}
	stopping := make(chan struct{})
	go func() {
		select {
		case <-sbProc.Done():
			cancel(fmt.Errorf("the sandbox process exited (code %d) before the run ended; log %s",
				sbProc.ExitCode(), sbProc.LogPath()))
		case <-stopping:
		}
	}()
	context.AfterFunc(ctx, func() {
		// The sandbox outlives every daemon incarnation; it stops last,
		// after the facts were read from it.
		close(stopping)
		_ = sbProc.Stop(5 * time.Second)
	})
	// Messages of a 10,000-row run are a few MB of JSON: allow the time.
	ctl := sandbox.NewControl("http://"+sbAddr, &http.Client{Timeout: time.Minute})
	if err := ctl.WaitReady(ctx, 15*time.Second); err != nil {
		return nil, err
	}
	// Each channel has its own faults: every one gets the run's.
	names := make([]string, len(r.chans))
	for i := range r.chans {
		c := &r.chans[i]
		c.sb = ctl.Channel(c.ID)
		if err := c.sb.SetFaults(ctx, r.cfg.Faults); err != nil {
			return nil, fmt.Errorf("inject the sandbox's faults on channel %s (%s): %w", c.Name, c.ID, err)
		}
		names[i] = fmt.Sprintf("%s (%s)", c.Name, c.ID)
	}
	r.logf("sandbox up at http://%s serving channels %s with faults: %s", sbAddr, strings.Join(names, ", "),
		describeFaults(r.cfg.Faults, r.cfg.FailShare))

	if err := childproc.Run(ctx, "cancelnotify webhook register", r.cfg.Bin, []string{"webhook", "register", "http://" + hookAddr},
		env, filepath.Join(r.logDir, "webhook-register.log")); err != nil {
		return nil, err
	}
	return &runEnv{daemon: env, hookAddr: hookAddr}, nil
}

// chaos writes the rows while the faults happen, waits for quiescence and
// collects the facts.
func (r *runner) chaos(ctx context.Context) (*Facts, error) {
	rows := PlanRows(r.cfg.Seed, r.cfg.Rows, r.cfg.RollbackShare, r.cfg.InvalidShare, r.cfg.SecondShare)
	actions := PlanActions(r.cfg.Seed, r.cfg.Kills, r.cfg.PGRestarts, r.cfg.WriteFor, r.cfg.After)
	w := &oms{pool: r.db.pool, outbox: r.db.table("outbox"), writers: r.cfg.Writers,
		interval: r.cfg.WriteFor / time.Duration(len(rows))}
	r.logf("writing %d transactions with %d writers over %s; %d faults planned", len(rows), r.cfg.Writers, r.cfg.WriteFor, len(actions))

	start := time.Now()
	// The writers give up only if Postgres stays away far longer than a
	// restart takes; what they could not resolve is reported.
	writeCtx, stopWriters := context.WithTimeout(ctx, r.cfg.WriteFor+r.cfg.Timeout)
	defer stopWriters()
	var writes []WriteResult
	var writing time.Duration
	writersDone := make(chan struct{})
	go func() {
		defer close(writersDone)
		writes = w.run(writeCtx, rows, r.cfg.Seed)
		writing = time.Since(start)
		r.logf("writers done in %s", writing.Round(100*time.Millisecond))
	}()
	actionsDone := make(chan error, 1)
	go func() { actionsDone <- r.runActions(ctx, start, actions) }()

	quiesced, err := r.awaitQuiescence(ctx, w, len(rows), writersDone, actionsDone)
	if err != nil {
		return nil, err
	}
	<-writersDone
	return r.collect(ctx, writes, writing, quiesced)
}

// runActions injects the planned faults one after the other, so a daemon
// restart never overlaps the Postgres restart.
func (r *runner) runActions(ctx context.Context, start time.Time, actions []Action) error {
	restarts := 0
	for _, a := range actions {
		if err := sleep(ctx, time.Until(start.Add(a.At))); err != nil {
			return err
		}
		switch a.Kind {
		case ActionKillDaemon:
			// Kill a daemon that is doing its job, not one still starting.
			if err := r.daemon.waitReady(ctx, time.Minute); err != nil {
				r.logf("kill skipped: %v", err)
				continue
			}
			killed, err := r.daemon.kill()
			if err != nil {
				return err
			}
			if killed {
				r.logf("daemon SIGKILLed; restarting it in %s", a.Pause.Round(time.Millisecond))
			}
			if err := sleep(ctx, a.Pause); err != nil {
				return err
			}
			if err := r.daemon.start(ctx); err != nil {
				return err
			}
			if err := r.daemon.waitReady(ctx, time.Minute); err != nil {
				r.logf("%v", err)
			}
		case ActionRestartPostgres:
			restarts++
			r.logf("restarting Postgres: %v", r.cfg.PGRestartCmd)
			took, err := restartPostgres(ctx, r.cfg.PGRestartCmd, r.db.pool, filepath.Join(r.logDir, fmt.Sprintf("pg-restart-%d.log", restarts)))
			if err != nil {
				return err
			}
			r.pgRestarts.Add(1)
			r.logf("Postgres back after %s", took.Round(100*time.Millisecond))
		}
	}
	return nil
}

// awaitQuiescence waits until the writers and the faults are done and then
// until every outbox row is settled and no send or track job has work
// left, or Timeout after the faults ended.
func (r *runner) awaitQuiescence(ctx context.Context, w *oms, total int, writersDone <-chan struct{}, actionsDone <-chan error) (bool, error) {
	var deadline, lastLine time.Time
	sandboxQuiet := false // the sandbox had said all it will at the previous tick
	wDone, aDone := false, false
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-writersDone:
			wDone, writersDone = true, nil
		case err := <-actionsDone:
			if err != nil {
				return false, fmt.Errorf("inject faults: %w", err)
			}
			aDone, actionsDone = true, nil
			r.logf("all faults injected")
		case <-tick.C:
		}
		if wDone && aDone && deadline.IsZero() {
			deadline = time.Now().Add(r.cfg.Timeout)
			r.logf("waiting for quiescence (up to %s)", r.cfg.Timeout)
		}
		p, err := r.db.progress(ctx)
		if time.Since(lastLine) >= 5*time.Second {
			lastLine = time.Now()
			kills, exits, _ := r.daemon.counts()
			if err != nil {
				r.logf("written %d/%d; Postgres not answering: %v", w.written.Load(), total, err)
			} else {
				r.logf("written %d/%d; outbox %d, settled %d, send/track jobs pending %d; kills %d, unexpected exits %d, Postgres restarts %d",
					w.written.Load(), total, p.outbox, p.settled, p.pending, kills, len(exits), r.pgRestarts.Load())
			}
		}
		if err != nil || deadline.IsZero() {
			continue
		}
		if p.settled == p.outbox && p.pending == 0 {
			// Delivered is final, yet a read may still be on its way: wait
			// until WhatsApp has said all it will, then for the ledger to
			// catch up on the next tick.
			done, err := settled(ctx, r.chans)
			if err == nil && done && sandboxQuiet {
				r.logf("quiescent: %d rows settled, no job pending, no status on its way", p.outbox)
				return true, nil
			}
			sandboxQuiet = err == nil && done
		} else {
			sandboxQuiet = false
		}
		if time.Now().After(deadline) {
			r.logf("not quiescent after %s: %d of %d rows settled, %d jobs pending", r.cfg.Timeout, p.settled, p.outbox, p.pending)
			return false, nil
		}
	}
}

// collect reads the final facts from Postgres and the sandbox.
func (r *runner) collect(ctx context.Context, writes []WriteResult, writing time.Duration, quiesced bool) (*Facts, error) {
	f := &Facts{Writes: writes, Writing: writing, Quiesced: quiesced}
	err := retry(ctx, "read the outbox", time.Minute, func(ctx context.Context) (err error) {
		f.Outbox, err = r.db.outboxRows(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = retry(ctx, "read River's jobs", time.Minute, func(ctx context.Context) (err error) {
		f.Pending, err = r.db.pendingJobs(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if f.Messages, err = acceptedMessages(ctx, r.chans); err != nil {
		return nil, fmt.Errorf("read the sandbox's accepted messages: %w", err)
	}
	if f.Requests, err = sentRequests(ctx, r.chans); err != nil {
		return nil, fmt.Errorf("read the sandbox's sendTemplate requests: %w", err)
	}
	r.sbStats, r.sbByChan = &SandboxSummary{}, map[string]*SandboxSummary{}
	for _, c := range r.chans {
		f.Channels = append(f.Channels, c.ChannelInfo)
		st, err := c.sb.Stats(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the sandbox's stats of channel %s: %w", c.Name, err)
		}
		r.sbByChan[c.Name] = summarizeSandbox(st)
		r.sbStats.add(r.sbByChan[c.Name])
	}
	f.Kills, f.Exits, _ = r.daemon.counts()
	f.PGRestart = int(r.pgRestarts.Load())
	f.Wall = time.Since(r.start)
	return f, nil
}

// evidence pulls the daemon's log lines about the rows behind failed
// checks, and the last lines of incarnations that exited by themselves.
func (r *runner) evidence(rep *Report) []string {
	_, exits, logs := r.daemon.counts()
	out := grepLogs(logs, rep.ProblemEventIDs(5), 8)
	for _, e := range exits {
		for _, l := range tailFile(e.Log, 5) {
			out = append(out, filepath.Base(e.Log)+" (last lines): "+textcut.Truncate(l, 300))
		}
	}
	return out
}
