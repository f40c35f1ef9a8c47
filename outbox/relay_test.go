package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/outbox"
)

func newRelay(t testing.TB, pool *pgxpool.Pool, schema string, batch int) *outbox.Relay {
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

	// spans records, per relay, when each Drain that relayed rows ran.
	type span struct{ from, to time.Time }
	var wg sync.WaitGroup
	done := make(chan struct{})
	counts := make([]int, len(relays))
	spans := make([][]span, len(relays))
	for i, r := range relays {
		wg.Go(func() {
			for {
				from := time.Now()
				n, err := r.Drain(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if n > 0 {
					spans[i] = append(spans[i], span{from, time.Now()})
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
		(SELECT count(DISTINCT args->>'notification_id') FROM river_job WHERE kind = 'cancelnotify_send'),
		(SELECT count(*) FROM outbox WHERE relayed_at IS NULL)`).
		Scan(&notifications, &distinctOutbox, &jobs, &distinctJobs, &unrelayed)
	if err != nil {
		t.Fatal(err)
	}
	if notifications != rows || distinctOutbox != rows || jobs != rows || distinctJobs != rows || unrelayed != 0 {
		t.Errorf("notifications %d (distinct %d), send jobs %d (distinct %d), unrelayed %d; want %d each and 0 unrelayed",
			notifications, distinctOutbox, jobs, distinctJobs, unrelayed, rows)
	}
	// The relays shared the work, and two of them were relaying at the same
	// moment: SKIP LOCKED let them, rather than one waiting for the other.
	overlap := false
	for i := range spans {
		if counts[i] == 0 {
			t.Errorf("relay %d relayed nothing (rows per relay: %v)", i, counts)
		}
		for j := i + 1; j < len(spans); j++ {
			for _, a := range spans[i] {
				for _, b := range spans[j] {
					overlap = overlap || (a.from.Before(b.to) && b.from.Before(a.to))
				}
			}
		}
	}
	if !overlap {
		t.Errorf("no two relays relayed at the same time (rows per relay: %v)", counts)
	}
}

// A relay skips the rows another relay has locked and relays the rest; the
// locked rows follow once the other transaction ends.
func TestRelaySkipsLockedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	insertRows(t, pool, 1, 10)
	r := newRelay(t, pool, schema, 500)

	other, err := pool.Begin(ctx) // another relay, mid-batch
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx) //nolint:errcheck
	if _, err := other.Exec(ctx, "SELECT id FROM outbox ORDER BY id LIMIT 4 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	drained := make(chan int, 1)
	go func() {
		n, err := r.Drain(ctx)
		if err != nil {
			t.Error(err)
		}
		drained <- n
	}()
	select {
	case n := <-drained:
		if n != 6 {
			t.Errorf("relayed %d rows beside the 4 locked ones, want 6", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay waited for the other transaction's locks instead of skipping them")
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Drain(ctx); err != nil || n != 4 {
		t.Errorf("after the lock: Drain = %d, %v; want the 4 skipped rows", n, err)
	}
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

// notificationOf returns the status, code and error recorded for event id.
func notificationOf(t testing.TB, pool *pgxpool.Pool, eventID string) (status, code, reason string, jobs int) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT n.status, coalesce(n.error_code, ''), coalesce(n.error, ''),
			(SELECT count(*) FROM river_job j WHERE j.kind = 'cancelnotify_send' AND (j.args->>'notification_id')::bigint = n.id)
		FROM notification n JOIN outbox o ON o.id = n.outbox_id WHERE o.event_id = $1`, eventID).Scan(&status, &code, &reason, &jobs)
	if err != nil {
		t.Fatalf("notification of %.40q: %v", eventID, err)
	}
	return status, code, reason, jobs
}

func insertRow(t testing.TB, pool *pgxpool.Pool, eventID, customer string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO outbox (event_id, payload) VALUES ($1, jsonb_build_object(
		'phone', '+49 151 23456789', 'customer_name', $2::text, 'order_number', 1, 'product_name', 'P', 'next_step', 'Refund soon'))`,
		eventID, customer)
	if err != nil {
		t.Fatal(err)
	}
}

// Rows whose event_id or texts are long enough to push a status
// announcement past Postgres's 8000-byte NOTIFY limit settle (rejected, or
// queued with announcements cut short) and never stop the rows behind them.
func TestLongRowsSettleAndDoNotBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	r := newRelay(t, pool, schema, 500)
	// Announcements are LISTENed to, as an OMS or CRM would.
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN cancelnotify_status"); err != nil {
		t.Fatal(err)
	}

	long := strings.Repeat("x", 7800)
	angles := strings.Repeat("<", 1300)
	escapes := strings.Repeat(`"\<`, 300) // quotes and backslashes are escaped in JSON
	insertRow(t, pool, long, "Alexey")
	insertRow(t, pool, "after-long", "Maria")
	insertRow(t, pool, angles, "Ivan")
	insertRow(t, pool, strings.Repeat("é", outbox.MaxEventIDBytes/2), escapes) // longest accepted event_id
	insertRow(t, pool, "after-all", "Olga")

	n, err := r.Drain(ctx)
	if err != nil || n != 5 {
		t.Fatalf("Drain = %d, %v; want 5 rows and no error", n, err)
	}
	for _, id := range []string{long, angles} {
		if st, code, reason, jobs := notificationOf(t, pool, id); st != "rejected" || code != "event_id_too_long" || jobs != 0 ||
			!strings.Contains(reason, fmt.Sprint(outbox.MaxEventIDBytes)) {
			t.Errorf("event_id of %d bytes: %s %s %q, %d jobs; want rejected event_id_too_long naming the limit, no job", len(id), st, code, reason, jobs)
		}
	}
	for _, id := range []string{"after-long", "after-all", strings.Repeat("é", outbox.MaxEventIDBytes/2)} {
		if st, _, reason, jobs := notificationOf(t, pool, id); st != "queued" || jobs != 1 {
			t.Errorf("%.20q: %s (%s), %d send jobs; want queued with one job", id, st, reason, jobs)
		}
	}
	// Every change was announced, each within the limit, by the announcer
	// the daemon runs.
	if _, err := ledger.NewAnnouncer(ledger.AnnouncerConfig{Pool: pool, Schema: schema}).Announce(ctx); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 5; {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		note, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("announcement %d of 5: %v", got+1, err)
		}
		for _, line := range strings.Split(note.Payload, "\n") { // one change per line
			var a ledger.Announcement
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatalf("announcement line of %d bytes is not JSON: %v", len(line), err)
			}
			if a.Schema != schema {
				continue // another test's: the channel is shared by every schema
			}
			got++
			if len(line) > ledger.MaxAnnouncementBytes {
				t.Errorf("announcement of %d bytes, want at most %d", len(line), ledger.MaxAnnouncementBytes)
			}
		}
	}
}

// A row that makes its batch fail for a reason nobody foresaw is found row
// by row and rejected with the database's reason; a row that cannot even be
// rejected stays unrelayed and is reported, and the others go on.
func TestPoisonedRowIsIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	r := newRelay(t, pool, schema, 500)
	// Stand-ins for the unforeseen: a trigger refusing a queued notification
	// for one event, and any notification at all for another.
	_, err := pool.Exec(ctx, `CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.event_id = 'poison-queued' AND NEW.status = 'queued' THEN RAISE EXCEPTION 'refused queued row'; END IF;
			IF NEW.event_id = 'poison-any' THEN RAISE EXCEPTION 'refused any row'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER poison BEFORE INSERT ON notification FOR EACH ROW EXECUTE FUNCTION poison()`)
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, pool, 1, 3)
	insertRow(t, pool, "poison-queued", "A")
	insertRow(t, pool, "poison-any", "B")
	insertRows(t, pool, 4, 3)

	n, err := r.Drain(ctx)
	if !errors.Is(err, outbox.ErrRowStuck) || n != 8 {
		t.Fatalf("Drain = %d, %v; want 8 rows looked at and ErrRowStuck for one", n, err)
	}
	for i := 1; i <= 6; i++ {
		if st, _, _, jobs := notificationOf(t, pool, fmt.Sprintf("order-%d-cancelled", i)); st != "queued" || jobs != 1 {
			t.Errorf("order-%d: %s with %d jobs; want queued with one", i, st, jobs)
		}
	}
	if st, code, reason, _ := notificationOf(t, pool, "poison-queued"); st != "rejected" || code != "relay_failed" || !strings.Contains(reason, "refused queued row") {
		t.Errorf("poison-queued: %s %s %q; want rejected relay_failed with the database's reason", st, code, reason)
	}
	var unrelayed []string
	rows, _ := pool.Query(ctx, "SELECT event_id FROM outbox WHERE relayed_at IS NULL")
	unrelayed, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(unrelayed) != 1 || unrelayed[0] != "poison-any" {
		t.Errorf("unrelayed rows %v (%v); want only poison-any", unrelayed, err)
	}
	// It is not silently dropped: every later drain reports it.
	if _, err := r.Drain(ctx); !errors.Is(err, outbox.ErrRowStuck) {
		t.Errorf("second Drain: %v; want ErrRowStuck again", err)
	}
}
