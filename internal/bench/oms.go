package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// phase names a set of rows. Its base keeps the rows of every phase apart:
// row i of a phase has the order number and phone suffix firstNumber+base+i,
// so a sandbox request (which carries the order number) and a ledger row
// (which carries the event id) lead back to the same row. Phones are unique
// per row, so Meta's per-recipient pacing never applies.
type phase struct {
	name   string
	base   int
	limit  int // most rows, so that no two phases share a number
	offset int // first row written through this value (see from)
}

// firstNumber keeps every number eight digits long: +49 151 1xxxxxxx is a
// valid German mobile number.
const firstNumber = 10_000_000

var (
	phaseWarmUp = phase{name: "warmup", base: 0, limit: 100_000}
	phasePaced  = phase{name: "paced", base: 100_000, limit: 900_000}
	phaseBurst  = phase{name: "burst", base: 1_000_000, limit: 70_000_000}
	phaseOMS    = phase{name: "oms", base: 71_000_000, limit: 5_000_000}
	phaseSurge  = phase{name: "surge", base: 76_000_000, limit: 5_000_000}
	phaseAfter  = phase{name: "after", base: 81_000_000, limit: 900_000}
)

// from returns p with its rows numbered from i: writers that fill one
// phase in several slices give each slice its own rows.
func (p phase) from(i int) phase { p.offset = i; return p }

func (p phase) number(i int) int         { return firstNumber + p.base + p.offset + i }
func (p phase) eventID(i int) string     { return "bench-" + p.name + "-" + strconv.Itoa(p.offset+i) }
func (p phase) eventPattern() string     { return "bench-" + p.name + "-%" }
func (p phase) orderNumber(i int) string { return strconv.Itoa(p.number(i)) }

// index returns the row of p whose order number is order.
func (p phase) index(order string) (int, bool) {
	n, err := strconv.Atoi(order)
	i := n - firstNumber - p.base
	if err != nil || i < 0 || i >= p.limit {
		return 0, false
	}
	return i, true
}

// payload is row i's outbox payload: the README's example, made unique.
func (p phase) payload(i int) string {
	n := p.number(i)
	return fmt.Sprintf(`{"phone": "+49 151 %d", "customer_name": "Alexey", "order_number": "%d", `+
		`"product_name": "Wireless headphones", "next_step": "Payment will be refunded within 3–5 business days to the card used for the order"}`, n, n)
}

// insertSQL is the OMS's statement from the README ("How the OMS inserts a
// row"), into table (schema-qualified).
func insertSQL(table string) string {
	return "INSERT INTO " + table + " (event_id, payload) VALUES ($1, $2::jsonb) ON CONFLICT (event_id) DO NOTHING"
}

// commitRow commits one row in its own transaction, as an OMS cancelling
// one order does, and returns when COMMIT has returned.
func commitRow(ctx context.Context, conn *pgx.Conn, sql, eventID, payload string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin OMS transaction: %w", err)
	}
	if _, err := tx.Exec(ctx, sql, eventID, payload); err != nil {
		_ = tx.Rollback(ctx)
		return fmt.Errorf("insert %s: %w", eventID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit %s: %w", eventID, err)
	}
	return nil
}

// withAppName returns dsn with application_name set, so the bench's and the
// daemon's sessions can be told from others in pg_stat_activity.
func withAppName(dsn, name string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn) + " application_name=" + name
}

// connectN opens n connections, the OMS's, with application_name name.
func connectN(ctx context.Context, dsn, name string, n int) ([]*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(withAppName(dsn, name))
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	conns := make([]*pgx.Conn, 0, n)
	for range n {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("connect writer %d of %d: %w", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// closeAll closes conns. A backend flushes its statistics when it exits,
// so closing the writers makes their commits visible in pg_stat_database.
func closeAll(conns []*pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range conns {
		_ = c.Close(ctx)
	}
}

// writeResult is what a set of writers did.
type writeResult struct {
	Rows        int
	First, Last time.Time // first and last COMMIT returned
}

func (w writeResult) rate() float64 { return rate(w.Rows, w.Last.Sub(w.First)) }

// commitTimes records when each row's COMMIT returned, safely from many
// goroutines.
type commitTimes struct {
	mu    sync.Mutex
	first time.Time
	last  time.Time
	n     int
}

func (c *commitTimes) add(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 || t.Before(c.first) {
		c.first = t
	}
	if t.After(c.last) {
		c.last = t
	}
	c.n++
}

func (c *commitTimes) result() writeResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return writeResult{Rows: c.n, First: c.first, Last: c.last}
}

// writeAsFastAsPossible commits rows 0…n-1 of p into table from every
// connection at once, one row per transaction, until all are committed or,
// when until is set, until then (n is then a cap).
func writeAsFastAsPossible(ctx context.Context, conns []*pgx.Conn, table string, p phase, n int, until time.Time) (writeResult, error) {
	sql := insertSQL(table)
	var next atomic.Int64
	var times commitTimes
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for w, conn := range conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil || (!until.IsZero() && time.Now().After(until)) {
					return
				}
				if err := commitRow(ctx, conn, sql, p.eventID(i), p.payload(i)); err != nil {
					errs[w] = err
					return
				}
				times.add(time.Now())
			}
		})
	}
	wg.Wait()
	return times.result(), errors.Join(errs...)
}

// pacedWrites is what the paced writers recorded, per row.
type pacedWrites struct {
	Committed map[string]time.Time // event id → when COMMIT returned
	TxTime    []time.Duration      // BEGIN → COMMIT returned, per row
	Result    writeResult
}

// writePaced commits rate rows per second for d, one row per transaction.
// A dispatcher releases row i at start + i/rate, and whichever connection
// is free commits it, so one slow commit does not delay the next rows.
func writePaced(ctx context.Context, conns []*pgx.Conn, table string, p phase, ratePerSec float64, d time.Duration) (pacedWrites, error) {
	n := int(ratePerSec * d.Seconds())
	sql := insertSQL(table)
	out := pacedWrites{Committed: make(map[string]time.Time, n), TxTime: make([]time.Duration, 0, n)}
	var mu sync.Mutex
	var times commitTimes
	rows := make(chan int, n)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for w, conn := range conns {
		wg.Go(func() {
			for i := range rows {
				start := time.Now()
				if err := commitRow(ctx, conn, sql, p.eventID(i), p.payload(i)); err != nil {
					errs[w] = err
					cancel()
					return
				}
				end := time.Now()
				times.add(end)
				mu.Lock()
				out.Committed[p.eventID(i)] = end
				out.TxTime = append(out.TxTime, end.Sub(start))
				mu.Unlock()
			}
		})
	}

	start := time.Now()
	interval := float64(time.Second) / ratePerSec
dispatch:
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(float64(i) * interval))); wait > 0 {
			select {
			case <-ctx.Done():
				break dispatch
			case <-time.After(wait):
			}
		}
		rows <- i
	}
	close(rows)
	wg.Wait()
	out.Result = times.result()
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	return out, ctx.Err()
}
