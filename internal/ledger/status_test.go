package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

func TestStatusSets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status           ledger.Status
		final, retryable bool
	}{
		{ledger.StatusQueued, false, false},
		{ledger.StatusSending, false, false},
		{ledger.StatusInDoubt, false, false},
		{ledger.StatusSent, false, false},
		{ledger.StatusDelivered, true, false},
		{ledger.StatusRead, true, false},
		{ledger.StatusFailed, true, true},
		{ledger.StatusRejected, true, false},
		{ledger.StatusSkipped, true, false},
		{ledger.StatusExpired, true, true},
	}
	if len(tests) != len(ledger.Statuses) {
		t.Fatalf("the table has %d statuses, ledger.Statuses %d: add the new one here", len(tests), len(ledger.Statuses))
	}
	for _, tt := range tests {
		if got := tt.status.Final(); got != tt.final {
			t.Errorf("%s.Final() = %v, want %v", tt.status, got, tt.final)
		}
		if got := tt.status.Retryable(); got != tt.retryable {
			t.Errorf("%s.Retryable() = %v, want %v", tt.status, got, tt.retryable)
		}
		if !tt.status.Valid() {
			t.Errorf("%s.Valid() = false", tt.status)
		}
	}
	for _, s := range ledger.RetryableStatuses() {
		if !s.Final() {
			t.Errorf("retryable %s is not final: a retry could race a send still in flight", s)
		}
	}
}

// The SQL spells the status sets too: the CHECK constraint of
// notification.status and the view's final column. Each status goes
// through a real row, so the SQL and Go cannot drift apart.
func TestStatusSetsMatchSQL(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()
	for i, st := range ledger.Statuses {
		id := int64(i + 1)
		if _, err := pool.Exec(ctx, "INSERT INTO outbox (id, event_id, payload) OVERRIDING SYSTEM VALUE VALUES ($1, $2, '{}')",
			id, fmt.Sprintf("order-%d-cancelled", id)); err != nil {
			t.Fatal(err)
		}
		create(t, pool, l, id, st) // the CHECK constraint admits every Go status
	}
	if _, err := pool.Exec(ctx, "UPDATE notification SET status = 'bogus' WHERE id = (SELECT min(id) FROM notification)"); err == nil {
		t.Error("the CHECK constraint admitted status 'bogus'")
	}
	rows, err := pool.Query(ctx, "SELECT status FROM notification_report WHERE final ORDER BY status")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := ledger.Strings(ledger.FinalStatuses())
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("notification_report.final holds for %v; ledger.FinalStatuses is %v", got, want)
	}
}
