package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// QueueMaintenance runs housekeeping jobs.
const QueueMaintenance = "cancelnotify_maintenance"

// RetentionArgs asks for old, final rows to be deleted. It runs hourly as a
// River periodic job on the elected leader.
type RetentionArgs struct{}

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return "cancelnotify_retention" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}}
}

// RetentionWorker deletes final notifications (with their outbox rows and
// events) older than the retention period, in small batches.
type RetentionWorker struct {
	river.WorkerDefaults[RetentionArgs]

	pool      *pgxpool.Pool
	retention time.Duration
	logger    *slog.Logger
}

// Timeout lets a big first run work through a backlog; what is left waits
// for the next hour.
func (w *RetentionWorker) Timeout(*river.Job[RetentionArgs]) time.Duration { return 10 * time.Minute }

// Work implements river.Worker.
func (w *RetentionWorker) Work(ctx context.Context, job *river.Job[RetentionArgs]) error {
	now := time.Now()
	// A status held for a wamid is adopted within moments when the wamid is
	// ours; after a day it belongs to another system on the channel.
	p, err := ledger.Prune(ctx, w.pool, now.Add(-w.retention), now.Add(-24*time.Hour), 1000)
	if p.Notifications > 0 || p.Orphans > 0 {
		w.logger.Info("retention: deleted old final notifications", "notifications", p.Notifications,
			"held_webhook_statuses", p.Orphans, "older_than", w.retention)
	}
	if ctx.Err() != nil {
		return nil // timeout: the rest waits for the next run
	}
	return err
}
