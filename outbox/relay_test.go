package outbox_test

import (
	"context"
	"fmt"
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

func newRelay(t *testing.T, pool *pgxpool.Pool, schema string, batch int) *outbox.Relay {
	t.Helper()
	// An insert-only River client: the relay inserts jobs, nothing works them here.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return outbox.NewRelay(outbox.RelayConfig{Pool: pool, Schema: schema, Jobs: client, Template: "order_cancelled", BatchSize: batch})
}

func insertRows(t *testing.T, pool *pgxpool.Pool, from, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO outbox (event_id, payload)
		SELECT 'order-' || i || '-cancelled', jsonb_build_object('phone', '+49 151 ' || (10000000 + i), 'customer_name', 'C' || i,
			'order_number', i, 'product_name', 'P', 'next_step', 'Refund soon')
		FROM generate_series($1::int, $2::int) i`, from, from+n-1)
	if err != nil {
		t.Fatal(err)
	}
}

// Relays running at once never relay a row twice: each row gets exactly one
// notification and one send job.
func TestConcurrentRelaysRelayOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	const rows = 3000
	relays := []*outbox.Relay{newRelay(t, pool, schema, 50), newRelay(t, pool, schema, 50), newRelay(t, pool, schema, 50)}

	var wg sync.WaitGroup
	done := make(chan struct{})
	counts := make([]int, len(relays))
	for i, r := range relays {
		wg.Go(func() {
			for {
				n, err := r.Drain(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				counts[i] += n
				select {
				case <-done:
					if n == 0 {
						return
					}
				default:
				}
			}
		})
	}
	// Rows arrive while the relays drain, as they would from an OMS.
	for i := 0; i < rows; i += 300 {
		insertRows(t, pool, i, 300)
	}
	close(done)
	wg.Wait()

	var notifications, distinctOutbox, jobs, distinctJobs, unrelayed int
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM notification), (SELECT count(DISTINCT outbox_id) FROM notification),
		(SELECT count(*) FROM river_job WHERE kind = 'cancelnotify_send'),
		(SELECT count(DISTINCT args->>'outbox_id') FROM river_job WHERE kind = 'cancelnotify_send'),
		(SELECT count(*) FROM outbox WHERE relayed_at IS NULL)`).
		Scan(&notifications, &distinctOutbox, &jobs, &distinctJobs, &unrelayed)
	if err != nil {
		t.Fatal(err)
	}
	if notifications != rows || distinctOutbox != rows || jobs != rows || distinctJobs != rows || unrelayed != 0 {
		t.Errorf("notifications %d (distinct %d), send jobs %d (distinct %d), unrelayed %d; want %d each and 0 unrelayed",
			notifications, distinctOutbox, jobs, distinctJobs, unrelayed, rows)
	}
	t.Logf("rows relayed per relay: %v", counts)
}

// Run wakes on the trigger's NOTIFY, not only on its poll.
func TestRelayWakesOnNotify(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	r := outbox.NewRelay(outbox.RelayConfig{Pool: pool, Schema: schema, Jobs: client, Template: "t", PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }()
	for !r.Listening() {
		time.Sleep(10 * time.Millisecond)
	}
	insertRows(t, pool, 1, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM notification").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("row not relayed within 5s although the poll interval is 1h: NOTIFY did not wake the relay")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A rolled-back OMS transaction leaves nothing to relay.
func TestRolledBackRowsAreNeverRelayed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	r := newRelay(t, pool, schema, 500)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO outbox (event_id, payload) VALUES ('x', '{}')"); err != nil {
			return err
		}
		return fmt.Errorf("OMS rolls back")
	})
	if err == nil {
		t.Fatal("expected the rollback")
	}
	if n, err := r.Drain(ctx); err != nil || n != 0 {
		t.Fatalf("Drain = %d, %v; want 0", n, err)
	}
}
