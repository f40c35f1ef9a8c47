package ledger_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// Whatever a row holds, its announcement is valid JSON within
// MaxAnnouncementBytes, which Postgres's NOTIFY accepts; short ones are
// sent whole.
func TestAnnouncementJSONIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.New(t)
	tests := []struct {
		name          string
		eventID, text string
		wamid         string
		truncated     bool
	}{
		{"ordinary", "order-10482-cancelled", "Alexey", "wamid.HBgL", false},
		{"long event id", strings.Repeat("x", 7800), "Alexey", "", true},
		{"angle brackets", strings.Repeat("<", 1300), strings.Repeat("<&>", 400), "", false},
		{"control characters", strings.Repeat("\x1b", 1400), strings.Repeat("\x01", 1400), "", true},
		{"invalid UTF-8", strings.Repeat("\xff", 3000), "\xc3", "", true},
		{"everything long", strings.Repeat("é", 3000), strings.Repeat("\"", 3000), strings.Repeat("w", 3000), true},
		{"line separators", strings.Repeat("\u2028", 2000), strings.Repeat("\u2029", 2000), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ledger.Change{
				Notification: &ledger.Notification{ID: 7, EventID: tt.eventID, Params: []string{tt.text, tt.text, "p", "n"},
					Phone: "79001234567", Error: tt.text, ErrorCode: "code", Wamid: tt.wamid},
				To: ledger.StatusRejected, Source: ledger.SourceDaemon, At: time.Now(),
			}
			b := c.AnnouncementJSON("cancelnotify")
			var a ledger.Announcement
			if err := json.Unmarshal(b, &a); err != nil || len(b) > ledger.MaxAnnouncementBytes {
				t.Fatalf("%d bytes, %v", len(b), err)
			}
			if a.Truncated != tt.truncated || a.NotificationID != 7 || a.Status != ledger.StatusRejected {
				t.Errorf("truncated %v, notification %d, status %s; want truncated %v, 7, rejected", a.Truncated, a.NotificationID, a.Status, tt.truncated)
			}
			if !tt.truncated && a.EventID != tt.eventID {
				t.Errorf("event_id changed although it fits: %.40q", a.EventID)
			}
			if _, err := pool.Exec(ctx, "SELECT pg_notify('cancelnotify_test', $1)", string(b)); err != nil {
				t.Errorf("Postgres refused the announcement: %v", err)
			}
		})
	}
}
