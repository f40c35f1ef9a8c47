// Package groupcommit groups concurrent writes into shared transactions: group
// commit in the application. Callers that arrive while a transaction is in
// flight wait and go together into the next one, so under load many
// writes cost one commit, and an idle system commits each write at once.
//
// Postgres serializes the commits of every transaction that issued NOTIFY
// (a database-wide lock held through the WAL flush), and cancelnotify
// announces every status change. Batching is what keeps that lock, and the
// commit rate, independent of the message rate. The webhook receiver and
// the send worker use it.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Func writes items in tx and returns one result per item, in order. An
// error rolls the whole transaction back; the Writer then retries each item
// in a transaction of its own, so one bad item cannot fail the others.
type Func[T, R any] func(ctx context.Context, tx pgx.Tx, items []T) ([]R, error)

// Writer batches calls of Func.
type Writer[T, R any] struct {
	pool     *pgxpool.Pool
	fn       Func[T, R]
	max      int
	inflight int // batches allowed at once
	linger   time.Duration
	timeout  time.Duration

	mu      sync.Mutex
	pending []*call[T, R]
	running int

	batches, items atomic.Int64
}

type call[T, R any] struct {
	item T
	res  R
	err  error
	done chan struct{}
	lead chan struct{} // this caller should run the next batch
}

// Options tune a Writer.
type Options struct {
	MaxBatch int           // most items per transaction; default 500
	InFlight int           // transactions at once; default 2, so one fills while one commits
	Timeout  time.Duration // one transaction's timeout; default 30s
	// Linger lets a transaction wait this long for more items before it
	// starts, for writers whose callers can afford it (a webhook answer);
	// 0 starts at once, which is what a waiting send needs.
	Linger time.Duration
}

// New returns a Writer that runs fn on pool.
func New[T, R any](pool *pgxpool.Pool, fn Func[T, R], o Options) *Writer[T, R] {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.InFlight <= 0 {
		o.InFlight = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return &Writer[T, R]{pool: pool, fn: fn, max: o.MaxBatch, inflight: o.InFlight, linger: o.Linger, timeout: o.Timeout}
}

// Stats returns how many transactions wrote how many items so far.
func (w *Writer[T, R]) Stats() (batches, items int64) { return w.batches.Load(), w.items.Load() }

// Do writes item, together with whatever else is waiting, and returns its
// result once the transaction holding it committed (or failed). If ctx ends
// before the item was taken into a transaction, Do returns ctx.Err() and
// the item is not written; once taken, Do waits for the outcome, which is
// what the caller must know.
func (w *Writer[T, R]) Do(ctx context.Context, item T) (R, error) {
	c := &call[T, R]{item: item, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	w.mu.Lock()
	w.pending = append(w.pending, c)
	if w.running < w.inflight {
		w.running++
		w.mu.Unlock()
		w.runBatches()
	} else {
		w.mu.Unlock()
	}
	for {
		select {
		case <-c.done:
			return c.res, c.err
		case <-c.lead:
			w.runBatches()
		case <-ctx.Done():
			if w.withdraw(c) {
				var zero R
				return zero, ctx.Err()
			}
			<-c.done
			return c.res, c.err
		}
	}
}

// withdraw removes c if no batch took it yet. A turn handed to c goes to
// the next waiting caller, so that no turn is lost.
func (w *Writer[T, R]) withdraw(c *call[T, R]) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, p := range w.pending {
		if p != c {
			continue
		}
		w.pending = append(w.pending[:i], w.pending[i+1:]...)
		select {
		case <-c.lead:
			w.passTurn()
		default:
		}
		return true
	}
	return false
}

// passTurn gives the running turn to the first waiting caller, or ends it.
// w.mu is held.
func (w *Writer[T, R]) passTurn() {
	if len(w.pending) == 0 {
		w.running--
		return
	}
	select {
	case w.pending[0].lead <- struct{}{}:
	default: // it holds a turn already; this one ends
		w.running--
	}
}

// runBatches runs one batch, then hands the turn to a waiting caller, or
// gives it up when nobody waits. The running count stays with the turn.
func (w *Writer[T, R]) runBatches() {
	if w.linger > 0 {
		w.mu.Lock()
		short := len(w.pending) < w.max
		w.mu.Unlock()
		if short {
			time.Sleep(w.linger)
		}
	}
	w.mu.Lock()
	n := min(len(w.pending), w.max)
	batch := append([]*call[T, R](nil), w.pending[:n]...)
	w.pending = w.pending[n:]
	w.mu.Unlock()

	if len(batch) > 0 {
		w.run(batch)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.passTurn()
}

func (w *Writer[T, R]) run(batch []*call[T, R]) {
	items := make([]T, len(batch))
	for i, c := range batch {
		items[i] = c.item
	}
	res, err := w.write(items)
	if err == nil {
		for i, c := range batch {
			c.res = res[i]
			close(c.done)
		}
		return
	}
	if len(batch) == 1 {
		batch[0].err = err
		close(batch[0].done)
		return
	}
	// Isolate the failure: each item alone.
	for _, c := range batch {
		r, err := w.write([]T{c.item})
		if err == nil {
			c.res = r[0]
		}
		c.err = err
		close(c.done)
	}
}

func (w *Writer[T, R]) write(items []T) ([]R, error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	var res []R
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var err error
		res, err = w.fn(ctx, tx, items)
		if err == nil && len(res) != len(items) {
			err = fmt.Errorf("batch: %d results for %d items", len(res), len(items))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	w.batches.Add(1)
	w.items.Add(int64(len(items)))
	return res, nil
}
