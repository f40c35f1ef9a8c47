package redrive_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/redrive"
)

type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	l    *ledger.Ledger
	op   *redrive.Operator
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool, schema := dbtest.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	l := &ledger.Ledger{Schema: schema}
	return &fixture{t: t, pool: pool, l: l, op: &redrive.Operator{Pool: pool, Jobs: client, Ledger: l, Who: "test"}}
}

// row creates an outbox row and its notification, brought to status.
func (f *fixture) row(i int, status ledger.Status) string {
	f.t.Helper()
	ctx := context.Background()
	eventID := fmt.Sprintf("order-%d-cancelled", i)
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		var outboxID int64
		if err := tx.QueryRow(ctx, "INSERT INTO outbox (event_id, payload) VALUES ($1, '{}') RETURNING id", eventID).Scan(&outboxID); err != nil {
			return err
		}
		ns, err := f.l.Create(ctx, tx, []ledger.New{{OutboxID: outboxID, EventID: eventID, EventCreatedAt: time.Now(),
			Phone: "79001234567", Template: "t", Language: "en", Params: []string{"A", fmt.Sprint(i), "P", "N"}, Status: ledger.StatusSending}})
		if err != nil {
			return err
		}
		n := ns[0]
		switch status {
		case ledger.StatusInDoubt:
			return f.l.Move(ctx, tx, n, ledger.Move{To: ledger.StatusInDoubt, ErrorCode: "outcome_unknown", Error: "history disabled"})
		case ledger.StatusSending:
			return nil
		}
		reports := []ledger.Report{{NotificationID: n.ID, Wamid: fmt.Sprintf("wamid.%d", i), Status: "sent", Source: ledger.SourceAPI}}
		if status != ledger.StatusSent {
			reports = append(reports, ledger.Report{NotificationID: n.ID, Status: string(status), Source: ledger.SourceWebhook, ErrorCode: "131026", Error: "Message undeliverable"})
		}
		_, err = f.l.Apply(ctx, tx, reports)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return eventID
}

func (f *fixture) get(eventID string) *ledger.Notification {
	f.t.Helper()
	n, err := ledger.GetByEventID(context.Background(), f.pool, eventID)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// sendJobs returns the redrive numbers of the send jobs of eventID.
func (f *fixture) sendJobs(eventID string) []int {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT coalesce((args->>'redrive')::int, 0) FROM river_job
		WHERE kind = 'cancelnotify_send' AND (args->>'notification_id')::bigint = (SELECT id FROM notification WHERE event_id = $1) ORDER BY id`, eventID)
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// Retry changes failed and expired rows, and nothing else.
func TestRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	failed := f.row(1, ledger.StatusFailed)
	expired := f.row(2, ledger.StatusExpired)
	read := f.row(3, ledger.StatusRead)
	sending := f.row(4, ledger.StatusSending)
	ctx := context.Background()

	out := f.op.Retry(ctx, []string{failed, expired, read, sending, "order-404-cancelled"})
	for i, want := range []error{nil, nil, redrive.ErrNotAllowed, redrive.ErrNotAllowed, nil} {
		got := out[i].Err
		switch {
		case want == nil && i < 2 && got != nil:
			t.Errorf("%s: %v", out[i].EventID, got)
		case want != nil && !errors.Is(got, want):
			t.Errorf("%s: err %v, want %v", out[i].EventID, got, want)
		}
	}
	if out[4].Err == nil {
		t.Error("unknown event id: no error")
	}
	for _, id := range []string{failed, expired} {
		n := f.get(id)
		if n.Status != ledger.StatusQueued || n.Wamid != "" || n.Error != "" || n.SentAt != nil || n.FailedAt != nil {
			t.Errorf("%s after retry: %+v; want queued with the old message forgotten", id, n)
		}
		if got := f.sendJobs(id); !slices.Equal(got, []int{1}) {
			t.Errorf("%s: send jobs %v, want one re-drive", id, got)
		}
		evs, _ := ledger.Events(ctx, f.pool, n.ID)
		last := evs[len(evs)-1]
		if last.Source != ledger.SourceOperator || last.Status != "queued" || len(evs) < 3 {
			t.Errorf("%s: history %+v; want the old events kept and an operator event last", id, evs)
		}
	}
	if n := f.get(read); n.Status != ledger.StatusRead || n.Wamid != "wamid.3" {
		t.Errorf("read row changed: %+v", n)
	}
	if n := f.get(sending); n.Status != ledger.StatusSending {
		t.Errorf("sending row changed: %+v", n)
	}

	// It fails again and is retried again: a second, distinct job.
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		n, err := ledger.Lock(ctx, tx, f.get(failed).ID)
		if err != nil {
			return err
		}
		return f.l.Move(ctx, tx, n, ledger.Move{To: ledger.StatusFailed, ErrorCode: "131026", Error: "again"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := f.op.Retry(ctx, []string{failed}); out[0].Err != nil {
		t.Fatal(out[0].Err)
	}
	if got := f.sendJobs(failed); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("send jobs %v after two retries, want [1 2]", got)
	}
}

func TestFind(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.row(1, ledger.StatusFailed)
	f.row(2, ledger.StatusRead)
	old := f.row(3, ledger.StatusFailed)
	if _, err := f.pool.Exec(context.Background(), "UPDATE notification SET updated_at = now() - interval '3 hours' WHERE event_id = $1", old); err != nil {
		t.Fatal(err)
	}
	got, err := redrive.Find(context.Background(), f.pool, redrive.Filter{Statuses: []ledger.Status{ledger.StatusFailed}, Since: 2 * time.Hour})
	if err != nil || !slices.Equal(got, []string{a}) {
		t.Errorf("Find = %v, %v; want only the recent failed row", got, err)
	}
	all, _ := redrive.Find(context.Background(), f.pool, redrive.Filter{})
	if len(all) != 3 {
		t.Errorf("Find with no filter = %v", all)
	}
}

// --error-code: only the failed rows whose error_code is listed.
func TestFindByErrorCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	codes := map[string]string{}
	for i, code := range []string{"http_401", "131026", "132015", "http_401"} {
		id := f.row(i+1, ledger.StatusFailed)
		codes[id] = code
		if _, err := f.pool.Exec(ctx, "UPDATE notification SET error_code = $2 WHERE event_id = $1", id, code); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		codes []string
		want  int
	}{
		{[]string{"http_401"}, 2}, {[]string{"http_401", "132015"}, 3}, {[]string{"131026"}, 1}, {[]string{"368"}, 0}, {nil, 4},
	}
	for _, tt := range tests {
		got, err := redrive.Find(ctx, f.pool, redrive.Filter{Statuses: []ledger.Status{ledger.StatusFailed}, ErrorCodes: tt.codes})
		if err != nil || len(got) != tt.want {
			t.Errorf("codes %v: %v, %v; want %d rows", tt.codes, got, err, tt.want)
		}
		for _, id := range got {
			if len(tt.codes) > 0 && !slices.Contains(tt.codes, codes[id]) {
				t.Errorf("codes %v: found %s with code %s", tt.codes, id, codes[id])
			}
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sent := f.row(1, ledger.StatusInDoubt)
	resend := f.row(2, ledger.StatusInDoubt)
	abandon := f.row(3, ledger.StatusInDoubt)
	read := f.row(4, ledger.StatusRead)

	if o := f.op.Resolve(ctx, sent, redrive.Resolution{SentAs: "wamid.found"}); o.Err != nil || o.To != ledger.StatusSent {
		t.Errorf("--sent: %+v", o)
	}
	if n := f.get(sent); n.Status != ledger.StatusSent || n.Wamid != "wamid.found" {
		t.Errorf("--sent row: %+v", n)
	}
	var tracks int
	_ = f.pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'cancelnotify_track' AND args->>'wamid' = 'wamid.found'").Scan(&tracks)
	if tracks != 1 {
		t.Errorf("%d track jobs for the confirmed wamid, want 1", tracks)
	}

	if o := f.op.Resolve(ctx, resend, redrive.Resolution{Resend: true}); o.Err != nil || o.To != ledger.StatusQueued {
		t.Errorf("--resend: %+v", o)
	}
	if got := f.sendJobs(resend); !slices.Equal(got, []int{1}) {
		t.Errorf("--resend: send jobs %v", got)
	}

	if o := f.op.Resolve(ctx, abandon, redrive.Resolution{Abandon: true}); o.Err != nil {
		t.Errorf("--abandon: %+v", o)
	}
	if n := f.get(abandon); n.Status != ledger.StatusFailed || n.ErrorCode != "abandoned" {
		t.Errorf("--abandon row: %+v", n)
	}
	if got := f.sendJobs(abandon); len(got) != 0 {
		t.Errorf("--abandon enqueued sends %v", got)
	}

	if o := f.op.Resolve(ctx, read, redrive.Resolution{Resend: true}); !errors.Is(o.Err, redrive.ErrNotAllowed) {
		t.Errorf("resolve on a read row: %v", o.Err)
	}
	if o := f.op.Resolve(ctx, resend, redrive.Resolution{Resend: true, Abandon: true}); o.Err == nil {
		t.Error("two resolutions at once accepted")
	}
	if n := f.get(read); n.Status != ledger.StatusRead {
		t.Errorf("read row changed to %s", n.Status)
	}
}
