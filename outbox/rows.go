package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// ErrNoRow is returned by Lookup for an event id the outbox does not have.
var ErrNoRow = errors.New("no outbox row has this event_id")

// Row is an outbox row without its payload.
type Row struct {
	ID        int64
	EventID   string
	EventType string
	CreatedAt time.Time
	RelayedAt *time.Time // nil until the relay took it
}

// Lookup reads the outbox row of eventID; ErrNoRow when there is none.
func Lookup(ctx context.Context, db ledger.DB, eventID string) (*Row, error) {
	r := Row{EventID: eventID}
	err := db.QueryRow(ctx, "SELECT id, event_type, created_at, relayed_at FROM outbox WHERE event_id = $1", eventID).
		Scan(&r.ID, &r.EventType, &r.CreatedAt, &r.RelayedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%q: %w", eventID, ErrNoRow)
	}
	if err != nil {
		return nil, fmt.Errorf("read the outbox row %q: %w", eventID, err)
	}
	return &r, nil
}

// Backlog is what the relay has not taken yet.
type Backlog struct {
	Rows   int64
	Oldest time.Duration // age of the oldest such row; 0 when none
}

// ReadBacklog reads the outbox rows not relayed yet.
func ReadBacklog(ctx context.Context, db ledger.DB) (Backlog, error) {
	var b Backlog
	var seconds float64
	if err := db.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
		FROM outbox WHERE relayed_at IS NULL`).Scan(&b.Rows, &seconds); err != nil {
		return b, fmt.Errorf("count unrelayed outbox rows: %w", err)
	}
	b.Oldest = time.Duration(max(seconds, 0) * float64(time.Second))
	return b, nil
}

// Insert writes one cancellation the way the OMS does (README: "How the OMS
// inserts a row"), for the demo and tests; a repeated eventID is ignored.
func Insert(ctx context.Context, db ledger.DB, eventID string, payload []byte) error {
	if _, err := db.Exec(ctx, "INSERT INTO outbox (event_id, payload) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING", eventID, payload); err != nil {
		return fmt.Errorf("insert outbox row %q: %w", eventID, err)
	}
	return nil
}
