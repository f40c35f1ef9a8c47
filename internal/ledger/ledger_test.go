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

func TestUpgradedBy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cur, next ledger.Status
		want      bool
	}{
		{ledger.StatusSending, ledger.StatusSent, true},
		{ledger.StatusSent, ledger.StatusDelivered, true},
		{ledger.StatusDelivered, ledger.StatusRead, true},
		{ledger.StatusRead, ledger.StatusDelivered, false},
		{ledger.StatusRead, ledger.StatusFailed, false},
		{ledger.StatusDelivered, ledger.StatusDelivered, false},
		{ledger.StatusFailed, ledger.StatusDelivered, true},
		{ledger.StatusDelivered, ledger.StatusFailed, false},
		{ledger.StatusExpired, ledger.StatusDelivered, true},
		{ledger.StatusExpired, ledger.StatusFailed, true},
		{ledger.StatusFailed, ledger.StatusExpired, false},
		{ledger.StatusSent, ledger.StatusExpired, true},
		{ledger.StatusRejected, ledger.StatusSent, false},
		{ledger.StatusSkipped, ledger.StatusRead, false},
		{ledger.StatusInDoubt, ledger.StatusSent, true},
	}
	for _, tt := range tests {
		if got := tt.cur.UpgradedBy(tt.next); got != tt.want {
			t.Errorf("%s.UpgradedBy(%s) = %v, want %v", tt.cur, tt.next, got, tt.want)
		}
	}
}

// create makes one queued notification and returns it.
func create(t *testing.T, pool *pgxpool.Pool, l *ledger.Ledger, outboxID int64, status ledger.Status) *ledger.Notification {
	t.Helper()
	ctx := context.Background()
	var out []*ledger.Notification
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		out, err = l.Create(ctx, tx, []ledger.New{{
			OutboxID: outboxID, EventID: fmt.Sprintf("order-%d-cancelled", outboxID), EventCreatedAt: time.Now(),
			Phone: "79001234567", Template: "order_cancelled", Language: "en",
			Params: []string{"Alexey", fmt.Sprint(outboxID), "Wireless headphones", "Refund in 3–5 days"}, Status: status,
		}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func apply(t *testing.T, pool *pgxpool.Pool, l *ledger.Ledger, reports ...ledger.Report) *ledger.ApplyResult {
	t.Helper()
	ctx := context.Background()
	var res *ledger.ApplyResult
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		res, err = l.Apply(ctx, tx, reports)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestApplyNeverDowngrades(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()

	tests := []struct {
		name        string
		statuses    []string // reported after "sent", by webhook
		wantStatus  ledger.Status
		wantApplied []bool
		wantError   string
	}{
		{"in order", []string{"delivered", "read"}, ledger.StatusRead, []bool{true, true}, ""},
		{"read then late delivered", []string{"read", "delivered"}, ledger.StatusRead, []bool{true, false}, ""},
		{"duplicates", []string{"delivered", "delivered", "read", "read"}, ledger.StatusRead, []bool{true, false, true, false}, ""},
		{"delivered after failed (multi-device)", []string{"failed", "delivered"}, ledger.StatusDelivered, []bool{true, true}, ""},
		{"failed after read", []string{"read", "failed"}, ledger.StatusRead, []bool{true, false}, ""},
		{"failed stays with its error", []string{"failed"}, ledger.StatusFailed, []bool{true}, "Message undeliverable"},
		{"viewed is read", []string{"viewed"}, ledger.StatusRead, []bool{true}, ""},
		{"unmapped kept raw", []string{"deleted", "delivered"}, ledger.StatusDelivered, []bool{false, true}, ""},
	}
	for i, tt := range tests {
		n := create(t, pool, l, int64(i+1), ledger.StatusSending)
		wamid := fmt.Sprintf("wamid.test%d", i)
		apply(t, pool, l, ledger.Report{NotificationID: n.ID, Wamid: wamid, Status: "sent", Source: ledger.SourceAPI})
		for _, st := range tt.statuses {
			r := ledger.Report{Wamid: wamid, Status: st, Source: ledger.SourceWebhook}
			if st == "failed" {
				r.ErrorCode, r.Error = "131026", "Message undeliverable"
			}
			apply(t, pool, l, r)
		}
		got, err := ledger.Get(ctx, pool, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tt.wantStatus || got.Wamid != wamid || got.Error != tt.wantError {
			t.Errorf("%s: status %s wamid %s error %q; want %s %s %q", tt.name, got.Status, got.Wamid, got.Error, tt.wantStatus, wamid, tt.wantError)
		}
		events, err := ledger.Events(ctx, pool, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		// created (sending) + sent + one per report, all kept, in order.
		if len(events) != 2+len(tt.statuses) {
			t.Fatalf("%s: %d events, want %d", tt.name, len(events), 2+len(tt.statuses))
		}
		for j, st := range tt.statuses {
			ev := events[2+j]
			wantSt := st
			if st == "viewed" {
				wantSt = "read"
			}
			if ev.Status != wantSt || ev.Applied != tt.wantApplied[j] || ev.Source != ledger.SourceWebhook {
				t.Errorf("%s: event %d = %s applied=%v source=%s; want %s applied=%v webhook", tt.name, j, ev.Status, ev.Applied, ev.Source, wantSt, tt.wantApplied[j])
			}
		}
		if got.Status == ledger.StatusRead && (got.DeliveredAt == nil || got.ReadAt == nil) {
			t.Errorf("%s: read row lacks delivered_at/read_at: %v %v", tt.name, got.DeliveredAt, got.ReadAt)
		}
	}
}

func TestApplyUnknownAndRejected(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()

	rejected := create(t, pool, l, 1, ledger.StatusRejected)
	res := apply(t, pool, l,
		ledger.Report{Wamid: "wamid.nobody", Status: "delivered", Source: ledger.SourceWebhook},
		ledger.Report{NotificationID: rejected.ID, Wamid: "wamid.x", Status: "sent", Source: ledger.SourceAPI},
	)
	if len(res.Unknown) != 1 || res.Unknown[0].Wamid != "wamid.nobody" {
		t.Errorf("unknown = %+v, want the one unknown wamid", res.Unknown)
	}
	if len(res.Changes) != 0 {
		t.Errorf("changes = %d, want none for a rejected row", len(res.Changes))
	}
	got, _ := ledger.Get(ctx, pool, rejected.ID)
	if got.Status != ledger.StatusRejected {
		t.Errorf("rejected row became %s", got.Status)
	}
}

// A LISTEN client gets one notification per status change, not per report.
func TestApplyAnnouncesChanges(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+ledger.StatusChannel); err != nil {
		t.Fatal(err)
	}

	an := ledger.NewAnnouncer(ledger.AnnouncerConfig{Pool: pool, Schema: schema})
	l.Announcer = an
	go an.Run(ctx)

	n := create(t, pool, l, 7, ledger.StatusSending)
	apply(t, pool, l, ledger.Report{NotificationID: n.ID, Wamid: "wamid.l1", Status: "sent", Source: ledger.SourceAPI})
	apply(t, pool, l,
		ledger.Report{Wamid: "wamid.l1", Status: "delivered", Source: ledger.SourceWebhook},
		ledger.Report{Wamid: "wamid.l1", Status: "delivered", Source: ledger.SourceWebhook},
	)
	apply(t, pool, l, ledger.Report{Wamid: "wamid.l1", Status: "read", Source: ledger.SourcePoll})
	apply(t, pool, l, ledger.Report{Wamid: "wamid.l1", Status: "delivered", Source: ledger.SourcePoll})

	var got []string
	var lines []string
	for len(got) < 4 {
		if len(lines) == 0 {
			nt, err := conn.WaitForNotification(ctx)
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			lines = strings.Split(nt.Payload, "\n")
		}
		line := lines[0]
		lines = lines[1:]
		var p struct {
			Schema      string `json:"schema"`
			EventID     string `json:"event_id"`
			OrderNumber string `json:"order_number"`
			Status      string `json:"status"`
			Wamid       string `json:"wamid"`
			At          string `json:"at"`
		}
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatal(err)
		}
		if p.Schema != schema {
			continue // another test's schema
		}
		if p.EventID != "order-7-cancelled" || p.OrderNumber != "7" || p.At == "" {
			t.Errorf("payload %s", line)
		}
		got = append(got, p.Status)
	}
	want := []string{"sending", "sent", "delivered", "read"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notifications %v, want %v", got, want)
	}
	// Nothing more: the duplicate delivered and the late delivered changed
	// nothing. Everything committed has been announced once the queue is
	// empty; a marker NOTIFYed after that arrives after every announcement.
	waitEmpty(t, pool)
	if _, err := pool.Exec(ctx, "SELECT pg_notify($1, 'marker-'||$2)", ledger.StatusChannel, schema); err != nil {
		t.Fatal(err)
	}
	for {
		if len(lines) == 0 {
			nt, err := conn.WaitForNotification(ctx)
			if err != nil {
				t.Fatal(err)
			}
			lines = strings.Split(nt.Payload, "\n")
		}
		line := lines[0]
		lines = lines[1:]
		if line == "marker-"+schema {
			break
		}
		var p struct {
			Schema string `json:"schema"`
		}
		_ = json.Unmarshal([]byte(line), &p)
		if p.Schema == schema {
			t.Errorf("unexpected extra notification %s", line)
		}
	}
}

// waitEmpty waits until every queued status change has been announced.
func waitEmpty(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM status_announcement").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d status changes still not announced after 10s", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A status held while its wamid was being recorded by a concurrent
// transaction (each missed the other's write) is adopted by AdoptHeld.
func TestAdoptHeldSettlesTheRace(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	ctx := context.Background()
	n := create(t, pool, l, 1, ledger.StatusSending)
	// The webhook's transaction held "delivered" for a wamid it did not know…
	if _, err := pool.Exec(ctx, "INSERT INTO webhook_orphan (wamid, status) VALUES ('wamid.race', 'delivered')"); err != nil {
		t.Fatal(err)
	}
	// …while the send transaction, which could not see it yet, recorded the wamid.
	if _, err := pool.Exec(ctx, "UPDATE notification SET wamid = 'wamid.race', status = 'sent', sent_at = now() WHERE id = $1", n.ID); err != nil {
		t.Fatal(err)
	}
	adopted, err := l.AdoptHeld(ctx, pool, time.Minute)
	if err != nil || adopted != 1 {
		t.Fatalf("AdoptHeld = %d, %v; want the one held status", adopted, err)
	}
	got, _ := ledger.Get(ctx, pool, n.ID)
	if got.Status != ledger.StatusDelivered {
		t.Errorf("status %s, want delivered", got.Status)
	}
	if again, err := l.AdoptHeld(ctx, pool, time.Minute); err != nil || again != 0 {
		t.Errorf("second AdoptHeld = %d, %v; want nothing left", again, err)
	}
}

// With ONEMSG_SEND_TTL, a failed or expired status that comes after the
// TTL says Meta dropped the message for it; one that comes earlier does not.
func TestTTLTexts(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema, SendTTL: time.Hour}
	ctx := context.Background()
	sent := time.Now().Add(-2 * time.Hour)
	tests := []struct {
		name, status string
		after        time.Duration // since sent
		wantDropped  bool
	}{
		{"failed after the TTL", "failed", 90 * time.Minute, true},
		{"failed before the TTL", "failed", 10 * time.Minute, false},
		{"expired after the TTL", "expired", 2 * time.Hour, true},
	}
	for i, tt := range tests {
		n := create(t, pool, l, int64(i+1), ledger.StatusSending)
		wamid := fmt.Sprintf("wamid.ttl%d", i)
		apply(t, pool, l, ledger.Report{NotificationID: n.ID, Wamid: wamid, Status: "sent", Source: ledger.SourceAPI, OccurredAt: sent})
		r := ledger.Report{Wamid: wamid, Status: tt.status, Source: ledger.SourcePoll, OccurredAt: sent.Add(tt.after)}
		if tt.status == "failed" {
			r.ErrorCode, r.Error = "131026", "Message undeliverable"
		}
		apply(t, pool, l, r)
		got, err := ledger.Get(ctx, pool, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		dropped := strings.Contains(got.Error, "not delivered within ONEMSG_SEND_TTL (1h0m0s)")
		if string(got.Status) != tt.status || dropped != tt.wantDropped {
			t.Errorf("%s: %s %q; want %s, TTL named: %v", tt.name, got.Status, got.Error, tt.status, tt.wantDropped)
		}
		if tt.status == "failed" && !strings.HasPrefix(got.Error, "Message undeliverable") {
			t.Errorf("%s: error %q lost Meta's text", tt.name, got.Error)
		}
	}
}
