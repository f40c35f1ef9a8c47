package sql_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/outbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := dbtest.NewSchemaName("cnmig")
	pool, err := cnsql.Open(ctx, dbtest.URL(), schema, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbtest.Drop(t, schema) })
	t.Cleanup(pool.Close)

	err = cnsql.Check(ctx, pool, schema)
	if !errors.Is(err, cnsql.ErrNotMigrated) || !strings.Contains(err.Error(), "cancelnotify migrate") {
		t.Fatalf("Check before migrate = %v; want ErrNotMigrated naming the command", err)
	}

	// Two migrators at once: the advisory lock makes one wait; both succeed
	// and exactly one applies the versions.
	var wg sync.WaitGroup
	results := make([]*cnsql.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { results[i], errs[i] = cnsql.Migrate(ctx, pool, schema, nil) })
	}
	wg.Wait()
	applied := 0
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		if results[i].Version != cnsql.Latest() {
			t.Errorf("migrator %d ended at version %d, want %d", i, results[i].Version, cnsql.Latest())
		}
		applied += len(results[i].Applied)
	}
	if applied != len(cnsql.Migrations()) {
		t.Errorf("applied %d versions in total, want %d (each once)", applied, len(cnsql.Migrations()))
	}
	if err := cnsql.Check(ctx, pool, schema); err != nil {
		t.Fatalf("Check after migrate: %v", err)
	}

	again, err := cnsql.Migrate(ctx, pool, schema, nil)
	if err != nil || len(again.Applied) != 0 || len(again.RiverApplied) != 0 {
		t.Fatalf("third migrate: %+v, %v; want nothing applied", again, err)
	}

	// A database ahead of the binary is refused with advice.
	if _, err := pool.Exec(ctx, "INSERT INTO cancelnotify_migration (version, name) VALUES (999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if err := cnsql.Check(ctx, pool, schema); err == nil || !strings.Contains(err.Error(), "upgrade cancelnotify") {
		t.Fatalf("Check with a newer schema = %v; want advice to upgrade", err)
	}
}

func TestCheckOutdated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.New(t)
	if _, err := pool.Exec(ctx, "DELETE FROM cancelnotify_migration WHERE version = $1", cnsql.Latest()); err != nil {
		t.Fatal(err)
	}
	schema := pool.Config().ConnConfig.RuntimeParams["search_path"]
	err := cnsql.Check(ctx, pool, schema)
	if !errors.Is(err, cnsql.ErrNotMigrated) || !strings.Contains(err.Error(), "lacks migration") {
		t.Fatalf("Check = %v; want the missing version named", err)
	}
}

func TestSchemaName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"cancelnotify", true}, {"cn_2", true}, {"_x", true},
		{"", false}, {"Cancel", false}, {"a-b", false}, {"1abc", false}, {strings.Repeat("a", 51), false}, {"x; DROP", false},
	} {
		if err := cnsql.ValidateSchemaName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateSchemaName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// While a relay sleeps (holds the sleep lock, outbox.SleepLockClass), the
// OMS's insert wakes a LISTENer on the schema's channel once per statement.
func TestOutboxTriggerNotifies(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pool, schema := dbtest.New(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN "`+schema+`.outbox"`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", outbox.SleepLockClass, schema); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext($2))", outbox.SleepLockClass, schema) //nolint:errcheck
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (event_id, payload) VALUES ('a', '{}'), ('b', 'null')`); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Conn().WaitForNotification(ctx)
	if err != nil || n.Channel != schema+".outbox" {
		t.Fatalf("notification %+v, %v", n, err)
	}
}

// Every table, view and column cancelnotify owns carries a COMMENT, so that
// \d+ explains them to a DBA. River's tables document themselves.
func TestEveryObjectIsCommented(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	rows, err := pool.Query(ctx, `
		SELECT c.relname, NULL::text FROM pg_class c
		WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
		  AND c.relname NOT LIKE 'river\_%' AND obj_description(c.oid, 'pg_class') IS NULL
		UNION ALL
		SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
		WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
		  AND c.relname NOT LIKE 'river\_%' AND a.attnum > 0 AND NOT a.attisdropped
		  AND col_description(c.oid, a.attnum) IS NULL
		ORDER BY 1, 2`, schema)
	if err != nil {
		t.Fatal(err)
	}
	type missing struct {
		Rel    string
		Column *string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[missing])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		if m.Column == nil {
			t.Errorf("%s has no COMMENT ON TABLE/VIEW: add one in a migration", m.Rel)
		} else {
			t.Errorf("%s.%s has no COMMENT ON COLUMN: add one in a migration", m.Rel, *m.Column)
		}
	}
	var objects int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace
		AND relkind IN ('r', 'v') AND relname NOT LIKE 'river\_%'`, schema).Scan(&objects); err != nil || objects < 5 {
		t.Fatalf("found %d cancelnotify tables and views (%v); the query looks in the wrong place", objects, err)
	}
}

// The updates of a message's life (sending, delivered, read) stay HOT only
// while no index of notification names a column they change, status and
// updated_at, not even in a partial index's predicate; announcements write
// no WAL. Adding such an index brings back a write of every index per
// update (README, "What cancelnotify costs your database").
func TestLedgerStaysHOTFriendly(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = 'notification'
			AND (indexdef ~ '\mstatus\M' OR indexdef ~ '\mupdated_at\M')`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Errorf("indexes on notification name status or updated_at: %v", names)
	}
	// Room on the page keeps updates on it (sql/013_room_on_the_page.sql);
	// announcements write no WAL.
	for _, want := range []struct{ rel, options string }{
		{"notification", "fillfactor=30"},
		{"outbox", "fillfactor=50"},
		{"river_job", "fillfactor=30"},
		{"river_job_metadata_index", "fastupdate=off"},
	} {
		var got string
		if err := pool.QueryRow(ctx, `SELECT coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE oid = $1::regclass`,
			want.rel).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want.options {
			t.Errorf("%s has options %q; want %q", want.rel, got, want.options)
		}
	}
	var persistence string
	if err := pool.QueryRow(ctx, `SELECT relpersistence::text FROM pg_class WHERE oid = 'status_announcement'::regclass`).Scan(&persistence); err != nil {
		t.Fatal(err)
	}
	if persistence != "u" {
		t.Errorf("status_announcement persistence %q; want unlogged (u)", persistence)
	}
	// A foreign key on an event locks (and logs a lock of) its notification
	// row at every insert: sql/012_event_no_fk.sql.
	var fks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_constraint
		WHERE contype = 'f' AND conrelid = 'notification_event'::regclass`).Scan(&fks); err != nil {
		t.Fatal(err)
	}
	if fks != 0 {
		t.Errorf("notification_event has %d foreign keys; want none", fks)
	}
}

// Each lookup the daemon, the support page and the report make has its
// index, with the fewest indexes the inserts and the sent update must write
// (sql/013_room_on_the_page.sql). With sequential scans priced out, a plan
// that still reads the whole table means the index cannot serve the query.
func TestLookupsHaveTheirIndexes(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	// cond is what the index condition must name; "" for a partial index
	// read whole, which its predicate keeps small.
	for _, c := range []struct{ name, query, index, cond string }{
		{"pacing", `SELECT max(not_before) FROM notification WHERE reverse(phone) = reverse('4915110000000') AND phone <> '' AND channel = 'default' AND not_before > now() - interval '6 seconds'`, "notification_phone_reversed_idx", "reverse(phone) ="},
		{"last digits", `SELECT id FROM notification WHERE phone <> '' AND reverse(phone) LIKE reverse('4567') || '%'`, "notification_phone_reversed_idx", "reverse(phone) ~>=~"},
		{"wamid", `SELECT id FROM notification WHERE wamid = ANY('{wamid.a,wamid.b}')`, "notification_wamid_idx", "wamid ="},
		{"report, last day", `SELECT * FROM notification_report WHERE cancelled_at >= now() - interval '1 day'`, "notification_event_created_idx", "event_created_at >="},
		{"report, waiting rows", `SELECT * FROM notification_report WHERE cancelled_at >= now() - interval '1 day'`, "outbox_unrelayed_idx", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				t.Fatal(err)
			}
			var plan []map[string]any
			if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+c.query).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			if !searches(plan[0]["Plan"], c.index, c.cond) {
				t.Errorf("no plan node reads %s by %q: %v", c.index, c.cond, plan)
			}
		})
	}
	// Indexes the sent update would write for nothing.
	var extra []string
	rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
		AND indexname IN ('notification_wamid_key', 'notification_phone_idx', 'notification_phone_suffix_idx', 'outbox_created_at_idx')`)
	if err != nil {
		t.Fatal(err)
	}
	if extra, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(extra) > 0 {
		t.Errorf("indexes replaced in schema version 13 are back: %v", extra)
	}
}

// searches tells whether a node of an EXPLAIN (FORMAT JSON) plan reads
// index with an index condition that contains cond.
func searches(node any, index, cond string) bool {
	n, ok := node.(map[string]any)
	if !ok {
		return false
	}
	if got, _ := n["Index Cond"].(string); n["Index Name"] == index && strings.Contains(got, cond) {
		return true
	}
	children, _ := n["Plans"].([]any)
	for _, c := range children {
		if searches(c, index, cond) {
			return true
		}
	}
	return false
}
