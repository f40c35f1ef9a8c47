package outbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/outbox"
)

func TestRows(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()

	if b, err := outbox.ReadBacklog(ctx, pool); err != nil || b.Rows != 0 || b.Oldest != 0 {
		t.Fatalf("empty outbox: backlog %+v, %v", b, err)
	}
	for _, id := range []string{"order-1-cancelled", "order-2-cancelled", "order-1-cancelled"} {
		if err := outbox.Insert(ctx, pool, id, []byte(`{"phone":"+79001234567"}`)); err != nil {
			t.Fatal(err) // the repeated id is ignored, as the README's ON CONFLICT does
		}
	}
	if _, err := pool.Exec(ctx, "UPDATE outbox SET created_at = now() - interval '1 minute' WHERE event_id = 'order-1-cancelled'"); err != nil {
		t.Fatal(err)
	}
	b, err := outbox.ReadBacklog(ctx, pool)
	if err != nil || b.Rows != 2 || b.Oldest.Seconds() < 59 {
		t.Fatalf("backlog %+v, %v; want 2 rows, the oldest a minute old", b, err)
	}
	r, err := outbox.Lookup(ctx, pool, "order-2-cancelled")
	if err != nil || r.EventType != "order.cancelled" || r.RelayedAt != nil || r.ID == 0 {
		t.Fatalf("Lookup = %+v, %v", r, err)
	}
	if _, err := outbox.Lookup(ctx, pool, "order-3-cancelled"); !errors.Is(err, outbox.ErrNoRow) {
		t.Fatalf("Lookup(unknown) = %v, want ErrNoRow", err)
	}
}
