package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

func pricing(category, model, typ string, billable bool) *ledger.Pricing {
	return &ledger.Pricing{Category: category, Model: model, Type: typ, Billable: &billable}
}

// The first report with pricing sets it, from whichever source; later
// reports with other pricing or none never change it; the report view and
// the NOTIFY payload show it.
func TestPricingFirstWins(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()
	utility := pricing("utility", "PMP", "regular", true)
	service := pricing("service", "PMP", "free_customer_service", false)

	tests := []struct {
		name    string
		reports []ledger.Report // after "sent" by the API, which has no pricing
		want    *ledger.Pricing
		// whether a status change came after the pricing, so that its
		// announcement carries it
		announced bool
	}{
		{"webhook first", []ledger.Report{
			{Status: "sent", Source: ledger.SourceWebhook, Pricing: utility},
			{Status: "delivered", Source: ledger.SourcePoll, Pricing: service},
			{Status: "read", Source: ledger.SourceWebhook},
		}, utility, true},
		{"poll first", []ledger.Report{
			{Status: "delivered", Source: ledger.SourceWebhook},
			{Status: "delivered", Source: ledger.SourcePoll, Pricing: service},
			{Status: "read", Source: ledger.SourceWebhook, Pricing: utility},
		}, service, true},
		{"duplicate carries it, not applied", []ledger.Report{
			{Status: "read", Source: ledger.SourceWebhook},
			{Status: "sent", Source: ledger.SourcePoll, Pricing: utility},
		}, utility, false},
		{"none ever", []ledger.Report{
			{Status: "delivered", Source: ledger.SourceWebhook},
			{Status: "read", Source: ledger.SourceWebhook},
		}, nil, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outboxID := int64(100 + i)
			if _, err := pool.Exec(ctx, "INSERT INTO outbox (id, event_id, payload) OVERRIDING SYSTEM VALUE VALUES ($1, $2, '{}')",
				outboxID, fmt.Sprintf("order-%d-cancelled", outboxID)); err != nil {
				t.Fatal(err)
			}
			n := create(t, pool, l, outboxID, ledger.StatusSending)
			wamid := fmt.Sprintf("wamid.price%d", i)
			apply(t, pool, l, ledger.Report{NotificationID: n.ID, Wamid: wamid, Status: "sent", Source: ledger.SourceAPI})

			listen := listenStatus(t, pool, schema)
			for _, r := range tt.reports {
				r.Wamid = wamid
				apply(t, pool, l, r)
			}
			got, err := ledger.Get(ctx, pool, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !samePricing(got.Pricing, tt.want) {
				t.Fatalf("pricing %+v, want %+v", got.Pricing, tt.want)
			}
			var category, model, typ *string
			var billable *bool
			if err := pool.QueryRow(ctx, `SELECT pricing_category, pricing_model, pricing_type, billable
				FROM notification_report WHERE event_id = $1`, n.EventID).Scan(&category, &model, &typ, &billable); err != nil {
				t.Fatal(err)
			}
			var fromView *ledger.Pricing
			if category != nil || billable != nil {
				fromView = &ledger.Pricing{Category: *category, Model: *model, Type: *typ, Billable: billable}
			}
			if !samePricing(fromView, tt.want) {
				t.Errorf("notification_report shows %+v, want %+v", fromView, tt.want)
			}
			// The last announcement of a change carries the pricing known then.
			last := listen()
			if tt.announced && (last.PricingCategory != tt.want.Category || last.PricingModel != tt.want.Model ||
				last.PricingType != tt.want.Type || last.Billable == nil || *last.Billable != *tt.want.Billable) {
				t.Errorf("NOTIFY payload %+v lacks pricing %+v", last, tt.want)
			}
		})
	}
}

// A status pushed before its wamid was recorded keeps its pricing while it
// waits in webhook_orphan.
func TestPricingOfHeldStatus(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()
	n := create(t, pool, l, 1, ledger.StatusSending)
	utility := pricing("utility", "PMP", "regular", true)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		held := []ledger.Report{{Wamid: "wamid.early", Status: "sent", Source: ledger.SourceWebhook, Pricing: utility}}
		res, err := l.Apply(ctx, tx, held)
		if err != nil {
			return err
		}
		return l.Hold(ctx, tx, res.Unknown)
	})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, pool, l, ledger.Report{NotificationID: n.ID, Wamid: "wamid.early", Status: "sent", Source: ledger.SourceAPI})
	got, err := ledger.Get(ctx, pool, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !samePricing(got.Pricing, utility) {
		t.Fatalf("pricing %+v after adopting the held status, want %+v", got.Pricing, utility)
	}
}

func samePricing(a, b *ledger.Pricing) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Category == b.Category && a.Model == b.Model && a.Type == b.Type &&
		(a.Billable == nil) == (b.Billable == nil) && (a.Billable == nil || *a.Billable == *b.Billable)
}

// listenStatus starts listening on the status channel for schema's changes and returns a
// function that waits for what arrived and returns the last announcement.
func listenStatus(t *testing.T, pool *pgxpool.Pool, schema string) func() ledger.Announcement {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(ctx, "UNLISTEN *")
		conn.Release()
	})
	if _, err := conn.Exec(ctx, "LISTEN "+ledger.StatusChannel); err != nil {
		t.Fatal(err)
	}
	announcer := ledger.NewAnnouncer(ledger.AnnouncerConfig{Pool: pool, Schema: schema})
	return func() ledger.Announcement {
		t.Helper()
		// What the ledger queued, NOTIFYed now as the daemon's announcer would.
		for {
			n, err := announcer.Announce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		var last ledger.Announcement
		wait := 5 * time.Second // the first one; the rest were sent with it
		for {
			wctx, cancel := context.WithTimeout(ctx, wait)
			n, err := conn.Conn().WaitForNotification(wctx)
			cancel()
			if err != nil {
				if last.EventID == "" {
					t.Fatalf("no announcement: %v", err)
				}
				return last
			}
			if !strings.Contains(n.Payload, `"schema":"`+schema+`"`) {
				continue // another test's schema in the same database
			}
			for _, line := range strings.Split(n.Payload, "\n") { // one change per line
				var a ledger.Announcement
				if err := json.Unmarshal([]byte(line), &a); err != nil {
					t.Fatalf("%v: %s", err, line)
				}
				if a.Schema != schema {
					continue // another test's: the channel is shared by every schema
				}
				last, wait = a, 300*time.Millisecond
			}
		}
	}
}

// The announcement of a rejected or skipped row names the order and the
// customer like any other, and says why.
func TestAnnouncementOfRowsNeverSent(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()
	listen := listenStatus(t, pool, schema)
	for i, st := range []ledger.Status{ledger.StatusRejected, ledger.StatusSkipped} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := l.Create(ctx, tx, []ledger.New{{OutboxID: int64(i + 1), EventID: "order-10482-" + string(st), EventCreatedAt: time.Now(),
				Template: "order_cancelled", Language: "en", Status: st, ErrorCode: "invalid_phone", Error: "payload.phone is not valid",
				OrderNumber: "10482", CustomerName: "Alexey"}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		a := listen()
		if a.Status != st || a.OrderNumber != "10482" || a.CustomerName != "Alexey" || a.ErrorCode != "invalid_phone" || a.Error == "" {
			t.Errorf("announcement of a %s row: %+v; want its order number, customer name and error", st, a)
		}
	}
}

// A re-drive is a new message with a price of its own: the old pricing
// moves to the history.
func TestRetryForgetsPricing(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()
	n := create(t, pool, l, 1, ledger.StatusSending)
	apply(t, pool, l,
		ledger.Report{NotificationID: n.ID, Wamid: "wamid.old", Status: "sent", Source: ledger.SourceAPI},
		ledger.Report{Wamid: "wamid.old", Status: "failed", Source: ledger.SourcePoll, ErrorCode: "131026", Error: "Message undeliverable",
			Pricing: pricing("utility", "PMP", "regular", false)})
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		locked, err := ledger.Lock(ctx, tx, n.ID)
		if err != nil {
			return err
		}
		return l.Move(ctx, tx, locked, ledger.Move{To: ledger.StatusQueued, Source: ledger.SourceOperator, Reset: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ledger.Get(ctx, pool, n.ID)
	if err != nil || got.Pricing != nil || got.Wamid != "" {
		t.Fatalf("after the re-drive: pricing %+v wamid %q (%v); want both forgotten", got.Pricing, got.Wamid, err)
	}
	evs, _ := ledger.Events(ctx, pool, n.ID)
	var d struct {
		Previous ledger.Pricing `json:"previous_pricing"`
	}
	if err := json.Unmarshal(evs[len(evs)-1].Detail, &d); err != nil || d.Previous.Category != "utility" {
		t.Errorf("the re-drive's event %s does not keep the old pricing", evs[len(evs)-1].Detail)
	}
}
