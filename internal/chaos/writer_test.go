package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
)

// TestWritersSurviveLostConnections terminates the writers' connections
// over and over (only theirs: they carry their own application_name) and
// checks that what the writers believe committed is exactly what the
// outbox holds, and that no rolled-back row is in it. A terminated
// backend is what a Postgres restart does to every session, without
// restarting the server other tests use.
func TestWritersSurviveLostConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, schema := dbtest.New(t)

	app := dbtest.NewSchemaName("cnchaos_writer_test")
	cfg, err := pgxpool.ParseConfig(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	killer := dbtest.Pool(t, 2)

	rows := PlanRows(7, 200, 0.10, 0.01, 0.3)
	w := &oms{pool: pool, outbox: pgx.Identifier{schema, "outbox"}.Sanitize(), writers: 8,
		interval: time.Second / time.Duration(len(rows))}

	stop := make(chan struct{})
	terminated := make(chan int)
	// The killer stops after maxKills sessions, so that on a loaded machine
	// the writers still finish instead of losing every connection forever.
	const maxKills = 30
	go func() {
		n := 0
		defer func() { terminated <- n }()
		for n < maxKills {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			var k int
			_ = killer.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&k)
			n += k
		}
	}()
	writes := w.run(ctx, rows, 7)
	close(stop)
	if n := <-terminated; n == 0 {
		t.Fatal("no writer session was terminated: the test proved nothing")
	}

	outbox, err := db{pool: killer, schema: schema}.outboxRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := Account(Facts{Writes: writes, Outbox: outbox})
	for _, name := range []string{"committed rows = rows the writers believe committed", "rolled-back rows sent"} {
		if c := r.check(name); !c.OK {
			t.Errorf("%s: got %s; lost %v, unbelieved %v, rolled back in the outbox %v",
				name, c.Got, r.LostCommits, r.UnbelievedRows, r.RolledBackSent)
		}
	}
	if r.OutboxRows != 200 {
		t.Errorf("outbox has %d rows, want the 200 planned commits", r.OutboxRows)
	}
	// The terminations hit transactions in flight: some writes had to be
	// attempted again, and the accounting above held anyway.
	if r.WriteAttempts <= r.Transactions {
		t.Errorf("%d attempts for %d transactions: no write was retried, so no termination hit one (%d unknown COMMITs)",
			r.WriteAttempts, r.Transactions, r.UnknownCommits)
	}
}
