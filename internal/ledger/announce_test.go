package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// Many changes go out in few NOTIFYs, one change per line, each payload
// within Postgres's limit, and the changes of each notification in order.
func TestAnnouncerBatches(t *testing.T) {
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

	const rows = 60
	ids := make([]int64, rows)
	for i := range rows {
		ids[i] = create(t, pool, l, int64(i+1), ledger.StatusSending).ID
	}
	var reports []ledger.Report
	for i, id := range ids {
		reports = append(reports, ledger.Report{NotificationID: id, Wamid: fmt.Sprintf("wamid.b%d", i), Status: "sent", Source: ledger.SourceAPI})
	}
	apply(t, pool, l, reports...)

	var queued int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM status_announcement").Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 2*rows {
		t.Fatalf("%d changes queued, want %d (sending and sent per row)", queued, 2*rows)
	}
	a := ledger.NewAnnouncer(ledger.AnnouncerConfig{Pool: pool, Schema: schema})
	n, err := a.Announce(ctx)
	if err != nil || n != 2*rows {
		t.Fatalf("Announce = %d, %v; want %d", n, err, 2*rows)
	}
	if n, err := a.Announce(ctx); err != nil || n != 0 {
		t.Fatalf("second Announce = %d, %v; want nothing left", n, err)
	}

	seen := map[string][]string{}
	lines, notifies := 0, 0
	for lines < 2*rows {
		nt, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("after %d changes: %v", lines, err)
		}
		if !strings.Contains(nt.Payload, `"schema":"`+schema+`"`) {
			continue // another test's
		}
		notifies++
		if len(nt.Payload) > ledger.MaxNotifyPayload {
			t.Errorf("payload of %d bytes", len(nt.Payload))
		}
		for _, line := range strings.Split(nt.Payload, "\n") {
			var c ledger.Announcement
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			seen[c.EventID] = append(seen[c.EventID], string(c.Status))
			lines++
		}
	}
	if notifies >= rows/2 {
		t.Errorf("%d changes took %d NOTIFYs: not batched", lines, notifies)
	}
	for ev, st := range seen {
		if strings.Join(st, ",") != "sending,sent" {
			t.Errorf("%s announced %v, want sending then sent", ev, st)
		}
	}
	if len(seen) != rows {
		t.Errorf("%d notifications announced, want %d", len(seen), rows)
	}
}

func TestPack(t *testing.T) {
	t.Parallel()
	big := `{"notification_id":1,"event_id":"e","status":"failed","error":"` + strings.Repeat("x", 9000) + `"}`
	tests := []struct {
		name    string
		changes []string
		limit   int
		want    []string
	}{
		{"one", []string{`{"a":1}`}, 100, []string{`{"a":1}`}},
		{"joined", []string{`{"a":1}`, `{"a":2}`}, 100, []string{"{\"a\":1}\n{\"a\":2}"}},
		{"split at the limit", []string{`{"a":1}`, `{"a":2}`, `{"a":3}`}, 15, []string{"{\"a\":1}\n{\"a\":2}", `{"a":3}`}},
		{"oversized shrunk", []string{big}, ledger.MaxNotifyPayload,
			[]string{`{"event_id":"e","notification_id":1,"status":"failed","truncated":true}`}},
		{"none", nil, 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ledger.Pack(tt.changes, tt.limit)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("Pack = %q, want %q", got, tt.want)
			}
		})
	}
}
