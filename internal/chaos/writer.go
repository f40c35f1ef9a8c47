package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// oms writes the planned cancellations the way an OMS does: one
// transaction per cancellation, the outbox row inserted in it, some
// transactions rolled back. It survives a Postgres restart by retrying,
// and never assumes the outcome of a COMMIT it got no answer to.
type oms struct {
	pool    *pgxpool.Pool
	outbox  string // the schema-qualified table
	writers int
	// interval paces row i to start no earlier than i*interval after the
	// start, so the writing lasts about WriteFor.
	interval time.Duration

	written atomic.Int64 // rows resolved, for progress lines
}

// errUnknownCommit wraps a COMMIT that failed without saying whether the
// transaction committed (the connection went away while it ran).
type errUnknownCommit struct{ err error }

func (e *errUnknownCommit) Error() string { return "COMMIT outcome unknown: " + e.err.Error() }
func (e *errUnknownCommit) Unwrap() error { return e.err }

// errAlreadyThere says a retried INSERT found the row: an earlier attempt
// whose COMMIT outcome was unknown had committed it after all.
var errAlreadyThere = errors.New("the row is already in the outbox")

// run writes every row with the configured number of concurrent writers
// and returns what each writer learnt, in plan order. Rows still unresolved
// when ctx ends are reported as such.
func (o *oms) run(ctx context.Context, rows []PlannedRow, seed uint64) []WriteResult {
	results := make([]WriteResult, len(rows))
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.writers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(rows) {
					return
				}
				_ = sleep(ctx, time.Until(start.Add(time.Duration(i)*o.interval)))
				results[i] = o.write(ctx, rows[i], rng)
				o.written.Add(1)
			}
		})
	}
	wg.Wait()
	return results
}

// write carries one planned transaction to a known outcome.
func (o *oms) write(ctx context.Context, row PlannedRow, rng *rand.Rand) WriteResult {
	res := WriteResult{Row: row}
	pause := 50 * time.Millisecond
	for {
		if ctx.Err() != nil {
			res.Outcome = OutcomeUnresolved
			return res
		}
		res.Attempts++
		err := o.try(ctx, row, rng)
		var unknown *errUnknownCommit
		switch {
		case err == nil && row.Kind == KindRollback:
			res.Outcome = OutcomeRolledBack
			return res
		case err == nil:
			res.Outcome = OutcomeCommitted
			return res
		case errors.Is(err, errAlreadyThere):
			res.Outcome = OutcomeFoundAfterUnknown
			return res
		case errors.As(err, &unknown):
			res.UnknownCommits++
			found, lerr := o.lookup(ctx, row.EventID)
			if lerr != nil {
				res.Outcome = OutcomeUnresolved
				return res
			}
			if found {
				res.Outcome = OutcomeFoundAfterUnknown
				return res
			}
			// Not committed: the OMS retries its cancellation, with the
			// same event_id, so at most one row can ever exist.
		}
		// Any other error (Postgres restarting, connection refused) happened
		// before COMMIT was sent, so nothing was committed: retry.
		_ = sleep(ctx, pause)
		pause = min(2*pause, 2*time.Second)
	}
}

// try runs the transaction once. For a rollback row it succeeds once the
// INSERT ran and the transaction was abandoned; a ROLLBACK that fails
// because the connection died is still a rollback.
func (o *oms) try(ctx context.Context, row PlannedRow, rng *rand.Rand) error {
	tx, err := o.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after COMMIT

	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO `+o.outbox+` (event_id, payload) VALUES ($1, $2)
		ON CONFLICT (event_id) DO NOTHING RETURNING id`, row.EventID, string(row.Payload)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return errAlreadyThere
	}
	if err != nil {
		return fmt.Errorf("insert %s: %w", row.EventID, err)
	}
	// The OMS's own work in the same transaction: a moment in which a
	// Postgres restart finds the transaction open.
	if err := sleep(ctx, time.Duration(rng.IntN(3000))*time.Microsecond); err != nil {
		return err
	}
	if row.Kind == KindRollback {
		_ = tx.Rollback(ctx)
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		return &errUnknownCommit{err}
	}
	return nil
}

// lookup says whether the row is in the outbox, retrying until Postgres
// answers: only an answer resolves an unknown COMMIT.
func (o *oms) lookup(ctx context.Context, eventID string) (bool, error) {
	var found bool
	err := retry(ctx, "look up "+eventID+" after an unknown COMMIT", 2*time.Minute, func(ctx context.Context) error {
		return o.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+o.outbox+` WHERE event_id = $1)`, eventID).Scan(&found)
	})
	return found, err
}
