package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Config is one run. Start from Defaults: a zero Burst or PacedFor skips
// that phase.
type Config struct {
	DatabaseURL string
	// Schema is created for the run and dropped after it (unless Keep), so
	// its name must contain "bench".
	Schema string
	Keep   bool
	// Binary is the cancelnotify executable that runs the sandbox and the
	// daemon; normally the one running the bench.
	Binary string

	// The sandbox: sendTemplate latency, and when it reports delivered and
	// read after accepting a message (pushed to the daemon's webhook).
	SandboxLatency            time.Duration
	DeliveredAfter, ReadAfter time.Duration
	// TrackFirstPoll is the daemon's first hookInfo poll. Production waits
	// 60 s with webhooks on; the bench shortens it so every track job runs,
	// finds its status final and completes inside the measured window.
	TrackFirstPoll time.Duration

	Ceiling      bool
	CeilingConns int
	CeilingFor   time.Duration

	Burst   int // cancellations; 0 skips the baseline and burst phases
	Writers int // OMS connections of the burst and the baseline

	PacedRate float64       // cancellations per second
	PacedFor  time.Duration // 0 skips the paced phase
	// AfterBurst rows are committed as fast as the writers can; once they
	// are sent, a second paced phase (PacedRate for PacedFor) runs: the
	// latency of a send while the burst's statuses are tracked. 0 (or a
	// zero PacedFor) skips it.
	AfterBurst int

	// OMSCost measures the OMS's single-row commit rate into the outbox
	// against a copy of it without the trigger, in OMSRounds alternating
	// slices of OMSSlice each, with the daemon stopped and working.
	OMSCost   bool
	OMSRounds int
	OMSSlice  time.Duration

	// NoWebhooks runs the daemon without a webhook: every status comes
	// from hookInfo polls.
	NoWebhooks bool

	// SendWorkers and DBMaxConns, when positive, set the daemon's
	// CANCELNOTIFY_SEND_WORKERS and CANCELNOTIFY_DB_MAX_CONNS; otherwise
	// the environment's or the daemon's defaults apply.
	SendWorkers int
	DBMaxConns  int
	// DaemonEnv are extra KEY=VALUE settings for the daemon.
	DaemonEnv      []string
	DaemonLogLevel string

	// Timeout bounds the wait for a phase's messages to settle; a phase
	// that does not is reported incomplete.
	Timeout time.Duration

	// Out receives progress lines; Live redraws one line (a terminal).
	Out  io.Writer
	Live bool
}

// Defaults returns the README's run: 16 connections for 5 s, the OMS cost
// in 3 rounds of 2 s slices, 20,000 burst cancellations, 80/s for 60 s
// before and after a 10,000-row burst, a 50 ms sandbox.
func Defaults() Config {
	return Config{
		Schema:         "cancelnotify_bench",
		SandboxLatency: 50 * time.Millisecond,
		DeliveredAfter: 200 * time.Millisecond,
		ReadAfter:      500 * time.Millisecond,
		TrackFirstPoll: 2 * time.Second,
		Ceiling:        true,
		CeilingConns:   16,
		CeilingFor:     5 * time.Second,
		Burst:          20_000,
		Writers:        16,
		PacedRate:      80,
		PacedFor:       60 * time.Second,
		AfterBurst:     10_000,
		OMSCost:        true,
		OMSRounds:      3,
		OMSSlice:       2 * time.Second,
		DaemonLogLevel: "info",
		Timeout:        3 * time.Minute,
		Out:            io.Discard,
	}
}

// Validate reports every unusable setting at once.
func (c Config) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DatabaseURL == "" {
		fail("no database URL")
	}
	if !strings.Contains(c.Schema, "bench") {
		fail("schema %q: the bench drops its schema, so the name must contain \"bench\"", c.Schema)
	}
	if c.Binary == "" {
		fail("no cancelnotify binary to run the sandbox and the daemon")
	}
	if c.Ceiling && (c.CeilingConns < 1 || c.CeilingFor <= 0) {
		fail("the ceiling needs at least one connection and a duration")
	}
	if c.Burst < 0 || c.Burst > phaseBurst.limit {
		fail("burst %d: use 0 (skip) to %d", c.Burst, phaseBurst.limit)
	}
	if c.Burst > 0 && c.Writers < 1 {
		fail("the burst needs at least one writer")
	}
	if c.PacedFor > 0 {
		n := int(c.PacedRate * c.PacedFor.Seconds())
		if c.PacedRate <= 0 || n < 1 || n > phasePaced.limit {
			fail("paced %g/s for %s is %d rows: use 1 to %d", c.PacedRate, c.PacedFor, n, phasePaced.limit)
		}
	}
	if c.AfterBurst < 0 || c.AfterBurst > phaseSurge.limit {
		fail("after-burst %d: use 0 (skip) to %d", c.AfterBurst, phaseSurge.limit)
	}
	if c.OMSCost && (c.OMSRounds < 1 || c.OMSSlice <= 0 || c.Writers < 1) {
		fail("the OMS cost needs at least one round, a slice duration and a writer")
	}
	if c.Timeout <= 0 {
		fail("the settle timeout must be positive")
	}
	for _, kv := range c.DaemonEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			fail("daemon setting %q is not KEY=VALUE", kv)
		}
	}
	return errors.Join(errs...)
}

// pacedWriters is how many connections the paced phase commits from; at
// 80/s one would do, a few keep a slow commit from delaying the next row.
const pacedWriters = 4

// warmUpRows are sent before anything is measured, so that connections,
// prepared statements and River's queues are warm.
const warmUpRows = 50
