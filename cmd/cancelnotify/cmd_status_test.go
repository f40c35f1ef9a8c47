package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// `status 10482` finds every notification of order 10482, as
// `status order-10482-cancelled` finds one event; the cost is shown.
func TestStatusByOrderNumber(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	billable := true
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var news []ledger.New
		for _, r := range []struct {
			event, order string
			status       ledger.Status
		}{
			{"order-10482-cancelled", "10482", ledger.StatusQueued},
			{"order-10482-cancelled-again", "10482", ledger.StatusRejected},
			{"order-999-cancelled", "999", ledger.StatusQueued},
		} {
			var outboxID int64
			if err := tx.QueryRow(ctx, "INSERT INTO outbox (event_id, payload) VALUES ($1, '{}') RETURNING id", r.event).Scan(&outboxID); err != nil {
				return err
			}
			n := ledger.New{OutboxID: outboxID, EventID: r.event, EventCreatedAt: time.Now(), Phone: "79001234567",
				Template: "order_cancelled", Language: "en", Status: r.status, OrderNumber: r.order, CustomerName: "Alexey"}
			if r.status == ledger.StatusQueued {
				n.Params = []string{"Alexey", r.order, "Headphones", "Refund in 3 days"}
			} else {
				n.ErrorCode, n.Error = "invalid_phone", "payload.phone is not valid"
			}
			news = append(news, n)
		}
		created, err := l.Create(ctx, tx, news)
		if err != nil {
			return err
		}
		_, err = l.Apply(ctx, tx, []ledger.Report{
			{NotificationID: created[0].ID, Wamid: "wamid.A", Status: "sent", Source: ledger.SourceAPI},
			{Wamid: "wamid.A", Status: "delivered", Source: ledger.SourcePoll,
				Pricing: &ledger.Pricing{Category: "utility", Model: "PMP", Type: "regular", Billable: &billable}},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": dbtest.URL(), "CANCELNOTIFY_SCHEMA": schema}

	code, out, stderr := run(t, vars, "status", "10482")
	if code != 0 {
		t.Fatalf("status 10482: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"order-10482-cancelled (", "order-10482-cancelled-again (", "2 events match",
		"utility · PMP · regular · billable", "invalid_phone"} {
		if !strings.Contains(out, want) {
			t.Errorf("status 10482 lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "order-999") {
		t.Errorf("status 10482 shows another order:\n%s", out)
	}
	// Newest first.
	if strings.Index(out, "order-10482-cancelled-again") > strings.Index(out, "order-10482-cancelled (") {
		t.Errorf("not newest first:\n%s", out)
	}

	code, out, _ = run(t, vars, "status", "10482", "--json")
	var many []eventView
	if err := json.Unmarshal([]byte(out), &many); code != 0 || err != nil || len(many) != 2 {
		t.Fatalf("status 10482 --json: exit %d, %v, %d events:\n%s", code, err, len(many), out)
	}
	if n := many[1].Notification; n.Pricing == nil || n.Pricing.Category != "utility" || n.OrderNumber() != "10482" {
		t.Errorf("JSON notification %+v lacks its pricing or order", n)
	}
	if n := many[0].Notification; n.OrderNumber() != "10482" || n.CustomerName() != "Alexey" {
		t.Errorf("rejected row lost its order number or customer: %+v", n)
	}

	code, out, _ = run(t, vars, "status", "order-999-cancelled", "--json")
	var one eventView
	if err := json.Unmarshal([]byte(out), &one); code != 0 || err != nil || one.EventID != "order-999-cancelled" {
		t.Fatalf("status EVENT_ID --json is no longer one object: exit %d, %v:\n%s", code, err, out)
	}

	code, _, stderr = run(t, vars, "status", "55555")
	if code == 0 || !strings.Contains(stderr, `no event has event_id or order number "55555"`) {
		t.Errorf("status of an unknown order: exit %d, %s", code, stderr)
	}
}
