package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// Prune deletes only what is old and final, with its outbox row and events.
func TestPrune(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()

	type row struct {
		status ledger.Status
		age    time.Duration
		gone   bool
	}
	rows := []row{
		{ledger.StatusRead, 100 * 24 * time.Hour, true},
		{ledger.StatusFailed, 100 * 24 * time.Hour, true},
		{ledger.StatusRejected, 91 * 24 * time.Hour, true},
		{ledger.StatusRead, 10 * 24 * time.Hour, false},
		{ledger.StatusSent, 100 * 24 * time.Hour, false},     // still being tracked
		{ledger.StatusInDoubt, 100 * 24 * time.Hour, false},  // waiting for an operator
		{ledger.StatusQueued, 100 * 24 * time.Hour, false},   // waiting to be sent
		{ledger.StatusDelivered, 89 * 24 * time.Hour, false}, // not old enough
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		if _, err := pool.Exec(ctx, "INSERT INTO outbox (id, event_id, payload) OVERRIDING SYSTEM VALUE VALUES ($1, $2, '{}')", i+1, "e"+itoa(i)); err != nil {
			t.Fatal(err)
		}
		n := create(t, pool, l, int64(i+1), r.status)
		ids[i] = n.ID
		if _, err := pool.Exec(ctx, "UPDATE notification SET updated_at = now() - $2::interval, event_created_at = now() - $2::interval WHERE id = $1", n.ID, r.age); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO webhook_orphan (wamid, status, received_at) VALUES
		('wamid.old', 'delivered', now() - interval '2 days'), ('wamid.new', 'delivered', now())`); err != nil {
		t.Fatal(err)
	}

	// A batch smaller than the work, to cross batch boundaries.
	p, err := ledger.Prune(ctx, pool, time.Now().Add(-90*24*time.Hour), time.Now().Add(-24*time.Hour), 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Notifications != 3 || p.Orphans != 1 {
		t.Errorf("pruned %+v, want 3 notifications and 1 orphan", p)
	}
	for i, r := range rows {
		var n, o, e int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM notification WHERE id = $1), (SELECT count(*) FROM outbox WHERE id = $2),
			(SELECT count(*) FROM notification_event WHERE notification_id = $1)`, ids[i], i+1).Scan(&n, &o, &e); err != nil {
			t.Fatal(err)
		}
		if gone := n == 0 && o == 0 && e == 0; gone != r.gone || (!r.gone && (n != 1 || o != 1 || e == 0)) {
			t.Errorf("row %d (%s, %s old): notification %d, outbox %d, events %d; want gone=%v", i, r.status, r.age, n, o, e, r.gone)
		}
	}
	var orphans []string
	rs, _ := pool.Query(ctx, "SELECT wamid FROM webhook_orphan")
	for rs.Next() {
		var w string
		_ = rs.Scan(&w)
		orphans = append(orphans, w)
	}
	if len(orphans) != 1 || orphans[0] != "wamid.new" {
		t.Errorf("orphans left %v, want [wamid.new]", orphans)
	}
}

func itoa(i int) string { return string(rune('a' + i)) }
