package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

func TestQueries(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()
	statuses := []ledger.Status{ledger.StatusFailed, ledger.StatusFailed, ledger.StatusRead, ledger.StatusQueued}
	var ns []*ledger.Notification
	for i, st := range statuses {
		id := int64(i + 1)
		if _, err := pool.Exec(ctx, "INSERT INTO outbox (id, event_id, payload) OVERRIDING SYSTEM VALUE VALUES ($1, $2, '{}')",
			id, fmt.Sprintf("order-%d-cancelled", id)); err != nil {
			t.Fatal(err)
		}
		ns = append(ns, create(t, pool, l, id, st))
	}

	counts, err := ledger.CountByStatus(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != len(ledger.Statuses) || counts[ledger.StatusFailed] != 2 || counts[ledger.StatusRead] != 1 ||
		counts[ledger.StatusQueued] != 1 || counts[ledger.StatusSent] != 0 {
		t.Errorf("CountByStatus = %v", counts)
	}

	tests := []struct {
		f    ledger.Filter
		want int
	}{
		{ledger.Filter{}, 4},
		{ledger.Filter{Statuses: ledger.RetryableStatuses()}, 2},
		{ledger.Filter{Statuses: []ledger.Status{ledger.StatusRead}}, 1},
		{ledger.Filter{Statuses: ledger.RetryableStatuses(), Limit: 1}, 1},
	}
	for _, tt := range tests {
		ids, err := ledger.FindEventIDs(ctx, pool, tt.f)
		if err != nil || len(ids) != tt.want {
			t.Errorf("FindEventIDs(%+v) = %v, %v; want %d ids", tt.f, ids, err, tt.want)
		}
	}

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		n, err := ledger.LockByEventID(ctx, tx, "order-3-cancelled")
		if err != nil || n.ID != ns[2].ID {
			t.Errorf("LockByEventID = %+v, %v; want notification %d", n, err, ns[2].ID)
		}
		if _, err := ledger.LockByEventID(ctx, tx, "order-99-cancelled"); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("LockByEventID(unknown) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if n, err := ledger.CountEvents(ctx, pool, ns[0].ID, ledger.SourceDaemon, ledger.StatusFailed); err != nil || n != 1 {
		t.Errorf("CountEvents = %d, %v; want the one event create recorded", n, err)
	}
	keys, err := ledger.EventKeys(ctx, pool, []int64{ns[0].ID, ns[1].ID}, ledger.SourceDaemon)
	if err != nil || len(keys[ns[0].ID]) != 1 || !keys[ns[0].ID][ledger.EventKey{Status: "failed"}] {
		t.Errorf("EventKeys = %v, %v", keys, err)
	}
	got, err := ledger.GetMany(ctx, pool, []int64{ns[0].ID, ns[2].ID, -1})
	if err != nil || len(got) != 2 || got[ns[0].ID].EventID != ns[0].EventID || got[ns[2].ID].EventID != ns[2].EventID {
		t.Errorf("GetMany = %v, %v; want the two rows that exist", got, err)
	}

	apply(t, pool, l, ledger.Report{NotificationID: ns[3].ID, Wamid: "wamid.q1", Status: "sent", Source: ledger.SourceAPI})
	claimed, err := ledger.ClaimedWamids(ctx, pool, []string{"wamid.q1", "wamid.other"})
	if err != nil || len(claimed) != 1 || !claimed["wamid.q1"] {
		t.Errorf("ClaimedWamids = %v, %v; want only wamid.q1", claimed, err)
	}

	rows, err := ledger.ReadReport(ctx, pool)
	if err != nil || len(rows) != 4 || rows[3].Wamid != "wamid.q1" || rows[3].Status != "sent" || rows[0].OrderNumber != "1" {
		t.Errorf("ReadReport = %+v, %v", rows, err)
	}
}

// Jobs finds a notification's River jobs in every form of args that
// names it: a send job's notification_id, a track job's ids, and the
// messages of a track job enqueued before ids; never another row's.
func TestJobs(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	const id = 42
	var want []int64
	for _, c := range []struct {
		kind, args string
		mine       bool
	}{
		{"cancelnotify_send", `{"notification_id": 42}`, true},
		{"cancelnotify_track", `{"ids": [7, 42, 99]}`, true},
		{"cancelnotify_track", `{"messages": [{"notification_id": 42, "wamid": "wamid.A"}]}`, true},
		{"cancelnotify_track", `{"notification_id": 42, "wamid": "wamid.B"}`, true},
		{"cancelnotify_send", `{"notification_id": 420}`, false},
		{"cancelnotify_track", `{"ids": [4, 2, 142]}`, false},
		{"other_kind", `{"notification_id": 42}`, false},
	} {
		var jobID int64
		if err := pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, queue, state, max_attempts, priority, scheduled_at)
			VALUES ($1, $2, 'track', 'scheduled', 25, 1, now()) RETURNING id`, c.kind, c.args).Scan(&jobID); err != nil {
			t.Fatal(err)
		}
		if c.mine {
			want = append(want, jobID)
		}
	}
	jobs, err := ledger.Jobs(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, j := range jobs {
		got = append(got, j.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Jobs(%d) = %v, want %v", id, got, want)
	}
}
