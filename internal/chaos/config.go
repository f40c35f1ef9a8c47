// Package chaos is the chaos run (`make chaos`; README.md, "The chaos run"):
// it proves, on the machine's Postgres, that every cancellation the OMS
// committed reaches a final status and that no customer gets two messages,
// while the daemon is SIGKILLed and restarted, Postgres restarts and the 1MSG
// sandbox misbehaves.
//
// It drives only the built binary (bin/cancelnotify): `migrate`, `sandbox`
// and `run` are separate processes, as in production, so a kill is a real
// kill. OMS-like writers insert the cancellations with pgx. At the end the
// run collects facts (what the writers know, the outbox and ledger, River's
// unfinished jobs, the sandbox's accepted messages) and Account turns them
// into one accounting table with a verdict per "must". cmd/chaos wires it.
package chaos

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// Config is one chaos run.
type Config struct {
	Bin         string // path to the cancelnotify binary
	DatabaseURL string

	Rows          int     // committed cancellations
	Writers       int     // concurrent OMS-like writers
	RollbackShare float64 // share of all transactions deliberately rolled back
	InvalidShare  float64 // share of committed rows with an invalid payload
	// SecondShare is the share of rows with a valid payload that name
	// SecondChannel, a second 1MSG channel the sandbox serves and the
	// daemon reads from its channels file; 0: the default channel only.
	// Default 0.3.
	SecondShare float64
	Kills       int    // daemon SIGKILLs
	PGRestarts  int    // Postgres restarts
	Seed        uint64 // 0: time-based

	// WriteFor spreads the inserts over this long, so kills and the
	// Postgres restart land while the OMS is writing; After is how long
	// kills go on once the writers are done.
	WriteFor time.Duration
	After    time.Duration
	// Timeout bounds the wait for quiescence after the last fault.
	Timeout time.Duration

	// Rate is the daemon's CANCELNOTIFY_RATE (0 = unlimited).
	Rate float64
	// FailShare is the share of accepted messages WhatsApp reports failed.
	FailShare float64
	Faults    sandbox.Faults

	// PGRestartCmd restarts Postgres; empty: pg_ctlcluster for the one
	// cluster under /etc/postgresql.
	PGRestartCmd []string

	Keep   bool   // keep the schema and the logs
	LogDir string // empty: a new temporary directory
}

// DefaultFaults are the ones README.md's "The chaos run" lists: 5% 5xx,
// 5% 429, 2% accepted then the connection dropped, 10% slow answers,
// duplicate and out-of-order acks.
func DefaultFaults() sandbox.Faults {
	return sandbox.Faults{
		Status5xx:      0.05,
		Status429:      0.05,
		RetryAfter:     time.Second,
		AcceptThenDrop: 0.02,
		Slow:           0.10,
		SlowBy:         300 * time.Millisecond,
		DuplicateAcks:  0.10,
		OutOfOrderAcks: 0.10,
	}
}

// DefaultConfig is the full run of `make chaos`.
func DefaultConfig() Config {
	return Config{
		Bin:           "bin/cancelnotify",
		DatabaseURL:   "postgres://postgres@127.0.0.1:5432/postgres",
		Rows:          10_000,
		Writers:       8,
		RollbackShare: 0.10,
		InvalidShare:  0.01,
		SecondShare:   0.3,
		Kills:         5,
		PGRestarts:    1,
		WriteFor:      60 * time.Second,
		After:         20 * time.Second,
		Timeout:       5 * time.Minute,
		Rate:          500,
		FailShare:     0.01,
		Faults:        DefaultFaults(),
	}
}

// Validate reports every bad setting at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Bin == "" {
		bad("--bin: the path to cancelnotify is required (make build writes bin/cancelnotify)")
	}
	if c.DatabaseURL == "" {
		bad("--database-url is required")
	}
	if c.Rows < 1 {
		bad("--rows = %d: at least 1", c.Rows)
	}
	if c.Writers < 1 {
		bad("--writers = %d: at least 1", c.Writers)
	}
	if !(c.RollbackShare >= 0 && c.RollbackShare < 1) {
		bad("--rollback-share = %v: a share in [0,1)", c.RollbackShare)
	}
	if !(c.InvalidShare >= 0 && c.InvalidShare <= 1) {
		bad("--invalid-share = %v: a share in [0,1]", c.InvalidShare)
	}
	if !(c.SecondShare >= 0 && c.SecondShare <= 1) {
		bad("--second-channel-share = %v: a share in [0,1]; 0 runs the default channel only", c.SecondShare)
	}
	if !(c.FailShare >= 0 && c.FailShare <= 1) {
		bad("--fail-share = %v: a share in [0,1]", c.FailShare)
	}
	if c.Kills < 0 || c.PGRestarts < 0 {
		bad("--kills and --pg-restarts cannot be negative")
	}
	if c.WriteFor < time.Second {
		bad("--write-for = %s: at least 1s, so the faults land while the OMS writes", c.WriteFor)
	}
	if c.After < 0 {
		bad("--after = %s cannot be negative", c.After)
	}
	if c.Timeout <= 0 {
		bad("--timeout = %s must be positive", c.Timeout)
	}
	if c.Rate < 0 {
		bad("--rate = %v: 0 (unlimited) or positive", c.Rate)
	}
	if err := c.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// describeFaults is the faults line of the table.
func describeFaults(f sandbox.Faults, failShare float64) string {
	return fmt.Sprintf("5xx %s, 429 %s (Retry-After %s), accept-then-drop %s, slow %s (+%s), duplicate acks %s, out-of-order acks %s; WhatsApp fails %s",
		pct(f.Status5xx), pct(f.Status429), f.RetryAfter, pct(f.AcceptThenDrop), pct(f.Slow), f.SlowBy,
		pct(f.DuplicateAcks), pct(f.OutOfOrderAcks), pct(failShare))
}

// pct writes a share as a percentage, to a tenth: 1-0.3 is 70%, not
// 69.99999999999999%.
func pct(v float64) string { return fmt.Sprintf("%g%%", math.Round(v*1000)/10) }
