package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LockByEventID reads the notification of an outbox event and locks its row
// until tx ends; ErrNotFound when the event has none (yet).
func LockByEventID(ctx context.Context, tx pgx.Tx, eventID string) (*Notification, error) {
	return getOne(ctx, tx, "SELECT "+notificationColumns+
		" FROM notification WHERE outbox_id = (SELECT id FROM outbox WHERE event_id = $1) FOR UPDATE", eventID)
}

// CountByStatus counts notifications by status; every status of Statuses is
// present, zero when no row has it.
func CountByStatus(ctx context.Context, db DB) (map[Status]int64, error) {
	out := make(map[Status]int64, len(Statuses))
	for _, st := range Statuses {
		out[st] = 0
	}
	rows, err := db.Query(ctx, "SELECT status, count(*) FROM notification GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("count notifications by status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[Status(st)] = n
	}
	return out, rows.Err()
}

// StatusAndChannel is a key of CountByStatusAndChannel.
type StatusAndChannel struct {
	Status  Status
	Channel string
}

// CountByStatusAndChannel counts notifications by status and channel; only
// pairs that have rows are in the map.
func CountByStatusAndChannel(ctx context.Context, db DB) (map[StatusAndChannel]int64, error) {
	rows, err := db.Query(ctx, "SELECT status, channel, count(*) FROM notification GROUP BY status, channel")
	if err != nil {
		return nil, fmt.Errorf("count notifications by status and channel: %w", err)
	}
	defer rows.Close()
	out := map[StatusAndChannel]int64{}
	for rows.Next() {
		var st, ch string
		var n int64
		if err := rows.Scan(&st, &ch, &n); err != nil {
			return nil, err
		}
		out[StatusAndChannel{Status(st), ch}] = n
	}
	return out, rows.Err()
}

// Filter selects notifications by status and by when they last changed.
type Filter struct {
	Statuses   []Status      // any of these; none: every status
	ErrorCodes []string      // error_code is one of these (e.g. "http_401", "132015"); none: any
	Since      time.Duration // changed within this long; 0: any time
	Limit      int           // default 1000
}

// FindEventIDs returns the event ids of the notifications f selects, oldest
// change first.
func FindEventIDs(ctx context.Context, db DB, f Filter) ([]string, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var since *time.Time
	if f.Since > 0 {
		t := time.Now().Add(-f.Since)
		since = &t
	}
	rows, err := db.Query(ctx, `SELECT event_id FROM notification
		WHERE (cardinality($1::text[]) = 0 OR status = ANY($1)) AND ($2::timestamptz IS NULL OR updated_at >= $2)
			AND (cardinality($4::text[]) = 0 OR error_code = ANY($4))
		ORDER BY updated_at, id LIMIT $3`, Strings(f.Statuses), since, f.Limit, append([]string{}, f.ErrorCodes...))
	if err != nil {
		return nil, fmt.Errorf("find notifications: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// CountEvents counts the events of a notification from source with status.
func CountEvents(ctx context.Context, db DB, notificationID int64, source Source, status Status) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM notification_event
		WHERE notification_id = $1 AND source = $2 AND status = $3`, notificationID, string(source), string(status)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count the events of notification %d: %w", notificationID, err)
	}
	return n, nil
}

// EventKey identifies a reported status by its status and the second it
// occurred at, the way a poll repeats it.
type EventKey struct {
	Status string
	At     int64 // Unix seconds; 0 when the report had no time
}

// EventKeys returns, per notification, the (status, time) of the events
// source recorded for it, so a poll that repeats the whole history records
// each entry once.
func EventKeys(ctx context.Context, db DB, notificationIDs []int64, source Source) (map[int64]map[EventKey]bool, error) {
	rows, err := db.Query(ctx, `SELECT notification_id, status, coalesce(extract(epoch FROM occurred_at)::bigint, 0)
		FROM notification_event WHERE notification_id = ANY($1) AND source = $2`, notificationIDs, string(source))
	if err != nil {
		return nil, fmt.Errorf("read the events of %d notifications: %w", len(notificationIDs), err)
	}
	defer rows.Close()
	out := map[int64]map[EventKey]bool{}
	for rows.Next() {
		var id int64
		var k EventKey
		if err := rows.Scan(&id, &k.Status, &k.At); err != nil {
			return nil, err
		}
		if out[id] == nil {
			out[id] = map[EventKey]bool{}
		}
		out[id][k] = true
	}
	return out, rows.Err()
}

// ClaimedWamids returns those of wamids some notification has recorded.
func ClaimedWamids(ctx context.Context, db DB, wamids []string) (map[string]bool, error) {
	rows, err := db.Query(ctx, "SELECT wamid FROM notification WHERE wamid = ANY($1)", wamids)
	if err != nil {
		return nil, fmt.Errorf("look up wamids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// ReportRow is a row of the view notification_report, as far as the demo
// shows it.
type ReportRow struct {
	EventID, OrderNumber, Status, Wamid, Error string
}

// ReadReport reads notification_report, oldest cancellation first.
func ReadReport(ctx context.Context, db DB) ([]ReportRow, error) {
	rows, err := db.Query(ctx, `SELECT event_id, coalesce(order_number, ''), status, coalesce(wamid, ''), coalesce(error, '')
		FROM notification_report ORDER BY cancelled_at, event_id`)
	if err != nil {
		return nil, fmt.Errorf("read notification_report: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReportRow, error) {
		var x ReportRow
		err := r.Scan(&x.EventID, &x.OrderNumber, &x.Status, &x.Wamid, &x.Error)
		return x, err
	})
}
