package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Pruned counts what Prune deleted.
type Pruned struct {
	Notifications int64 // with their outbox rows and events
	Orphans       int64 // held webhook statuses nobody adopted
}

// Prune deletes final notifications (FinalStatuses) last changed before olderThan, with
// their outbox rows and events, and held webhook statuses received before
// orphansBefore. It works in batches of batch rows, each its own short
// transaction, so it never holds locks long or bloats one transaction; it
// stops early when ctx ends. Rows still moving (queued, sending, in_doubt,
// sent) are kept whatever their age.
func Prune(ctx context.Context, pool *pgxpool.Pool, olderThan, orphansBefore time.Time, batch int) (Pruned, error) {
	var p Pruned
	for ctx.Err() == nil {
		// event_created_at never follows updated_at, so bounding it too
		// changes nothing but lets the scan use its index (status and
		// updated_at have none: updates stay HOT, sql/011_lean_ledger.sql).
		tag, err := pool.Exec(ctx, `WITH doomed AS (
				SELECT id, outbox_id FROM notification
				WHERE event_created_at < $2 AND status = ANY($1) AND updated_at < $2
				ORDER BY event_created_at LIMIT $3
				FOR UPDATE SKIP LOCKED
			), events AS (
				DELETE FROM notification_event WHERE notification_id IN (SELECT id FROM doomed)
			), outbox AS (
				DELETE FROM outbox WHERE id IN (SELECT outbox_id FROM doomed)
			)
			DELETE FROM notification WHERE id IN (SELECT id FROM doomed)`, Strings(FinalStatuses()), olderThan, batch)
		if err != nil {
			return p, fmt.Errorf("prune notifications: %w", err)
		}
		p.Notifications += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			break
		}
	}
	for ctx.Err() == nil {
		tag, err := pool.Exec(ctx, `DELETE FROM webhook_orphan WHERE id IN (
			SELECT id FROM webhook_orphan WHERE received_at < $1 ORDER BY received_at LIMIT $2)`, orphansBefore, batch)
		if err != nil {
			return p, fmt.Errorf("prune held webhook statuses: %w", err)
		}
		p.Orphans += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			break
		}
	}
	return p, ctx.Err()
}
