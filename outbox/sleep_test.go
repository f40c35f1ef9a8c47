package outbox_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/outbox"
)

// runRelay starts a relay whose fallback poll never comes, so only the
// trigger and the sleep lock can bring it rows.
func runRelay(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	r := outbox.NewRelay(outbox.RelayConfig{Pool: pool, Schema: schema, Jobs: client, Template: "t", PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls query until it returns true or the deadline passes.
func waitFor(t *testing.T, pool *pgxpool.Pool, what, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		if err := pool.QueryRow(context.Background(), query, args...).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sleepLock is true when the relay's sleep lock of schema is in pg_locks
// with granted = $2.
const sleepLock = `SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid
	AND objid = (hashtext($3) & 4294967295)::oid AND objsubid = 2 AND mode = 'ExclusiveLock' AND granted = $2)`

// A row committed while the relay goes to sleep is relayed: the OMS
// transaction inserted without a NOTIFY (no relay slept), and the relay's
// sleep lock waits for it to end, then drains again.
func TestRowCommittedWhileRelayGoesToSleep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)

	oms, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer oms.Rollback(ctx) //nolint:errcheck
	if _, err := oms.Exec(ctx, `INSERT INTO outbox (event_id, payload) VALUES ('order-1-cancelled',
		'{"phone": "+49 151 10000001", "customer_name": "A", "order_number": 1, "product_name": "P", "next_step": "N"}')`); err != nil {
		t.Fatal(err)
	}
	var noShare bool
	if err := oms.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
		AND mode = 'ShareLock' AND granted)`).Scan(&noShare); err != nil {
		t.Fatal(err)
	}
	if noShare {
		t.Fatal("the OMS transaction holds no shared sleep lock: with no relay running the trigger should have taken it instead of NOTIFYing")
	}

	runRelay(t, pool, schema)
	waitFor(t, pool, "relay waiting for the sleep lock behind the open OMS transaction", sleepLock, outbox.SleepLockClass, false, schema)
	if err := oms.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pool, "row committed while the relay went to sleep relayed", "SELECT count(*) = 1 FROM notification")
	waitFor(t, pool, "relay asleep holding the lock", sleepLock, outbox.SleepLockClass, true, schema)
}

// Asleep, the relay is woken by the trigger's NOTIFY at once.
func TestSleepingRelayWakesOnInsert(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	runRelay(t, pool, schema)
	for i := range 3 {
		waitFor(t, pool, "relay asleep", sleepLock, outbox.SleepLockClass, true, schema)
		insertRows(t, pool, i, 1)
		waitFor(t, pool, "row relayed", "SELECT count(*) = $1 FROM notification", i+1)
	}
}

// With no relay running the trigger NOTIFYs nothing: the OMS's commit
// does not take Postgres's notification lock.
func TestNoNotifyWithoutRelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{outbox.Channel(schema)}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	insertRows(t, pool, 1, 5)
	// A marker sent after the inserts: it must be the first notification.
	if _, err := pool.Exec(ctx, "SELECT pg_notify($1, 'marker')", outbox.Channel(schema)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.Conn().WaitForNotification(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Payload != "marker" {
		t.Fatalf("first notification %q: the inserts NOTIFYed although no relay was asleep", n.Payload)
	}
}

// Two relays: one sleeps holding the lock, the other without it; the
// NOTIFYs the holder causes wake both, and each row is relayed once.
func TestTwoRelaysShareTheSleepLock(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	runRelay(t, pool, schema)
	runRelay(t, pool, schema)
	for i := range 5 {
		waitFor(t, pool, "a relay asleep holding the lock", sleepLock, outbox.SleepLockClass, true, schema)
		insertRows(t, pool, i*10, 10)
		waitFor(t, pool, "rows relayed", "SELECT count(*) = $1 FROM notification", (i+1)*10)
	}
	waitFor(t, pool, "each row relayed once", "SELECT count(DISTINCT outbox_id) = 50 AND count(*) = 50 FROM notification")
}

// The relay's transactions share the LISTEN connection with the sleep
// lock's short lock_timeout, but not that timeout: a drain that waits on a
// lock longer than it still commits, with no error.
func TestRelayDrainWaitsPastTheSleepLockTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	var log bytes.Buffer
	var mu sync.Mutex
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	r := outbox.NewRelay(outbox.RelayConfig{Pool: pool, Schema: schema, Jobs: client, Template: "t", PollInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &log, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, pool, "relay asleep", sleepLock, outbox.SleepLockClass, true, schema)

	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx) //nolint:errcheck
	if _, err := blocker.Exec(ctx, "LOCK TABLE notification IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	insertRows(t, pool, 1, 1)
	waitFor(t, pool, "relay's drain waiting on the notification table for well over 50 ms",
		`SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.relation = 'notification'::regclass AND NOT l.granted AND now() - a.query_start > interval '200 ms')`)
	if err := blocker.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pool, "row relayed", "SELECT count(*) = 1 FROM notification")
	mu.Lock()
	defer mu.Unlock()
	if log.Len() > 0 {
		t.Errorf("the relay logged problems:\n%s", log.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
