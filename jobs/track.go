package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// TrackWorker follows an accepted message until WhatsApp reports delivered,
// read or failed, or the tracking deadline passes (expired). Webhooks
// usually bring the statuses first; then the job finds the row final and
// completes without calling 1MSG. Otherwise it polls hookInfo with growing
// pauses (JobSnooze costs no attempt).
type TrackWorker struct {
	river.WorkerDefaults[TrackArgs]

	pool     *pgxpool.Pool
	ledger   *ledger.Ledger
	channels channelSet
	trackFor time.Duration
	pollBase time.Duration
	pollMax  time.Duration
	timeout  time.Duration
	logger   *slog.Logger
}

// NextRetry: as for sends, errors are the database's; retry soon.
func (w *TrackWorker) NextRetry(job *river.Job[TrackArgs]) time.Time {
	return time.Now().Add(jitter(backoff(len(job.Errors), time.Second, time.Minute)))
}

// Timeout bounds one poll.
func (w *TrackWorker) Timeout(*river.Job[TrackArgs]) time.Duration { return w.timeout }

// Work implements river.Worker.
func (w *TrackWorker) Work(ctx context.Context, job *river.Job[TrackArgs]) error {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Int64("cancelnotify.notification_id", job.Args.NotificationID),
			attribute.String("cancelnotify.event_id", job.Args.EventID), attribute.String("cancelnotify.wamid", job.Args.Wamid))
	}
	n, err := ledger.Get(ctx, w.pool, job.Args.NotificationID)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil // deleted by retention
	}
	if err != nil {
		return err
	}
	if done(n, job.Args.Wamid) {
		return nil
	}
	deadline := w.deadline(n)
	if time.Now().After(deadline) {
		return w.expire(ctx, n)
	}

	ch, err := w.channels.get(n.Channel)
	if err != nil {
		w.logger.Warn("cannot poll the status", "event_id", n.EventID, "error", err)
		return snoozeUnknownChannel()
	}
	hooks, err := ch.API.HookInfo(ctx, job.Args.Wamid)
	if err != nil {
		var apiErr *onemsg.Error
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.As(err, &apiErr) {
			w.logger.Warn("hookInfo failed; will poll again", "event_id", n.EventID, "wamid", job.Args.Wamid, "error", err)
			return river.JobSnooze(w.nextPoll(job, deadline))
		}
		return err
	}
	n, err = w.apply(ctx, n, hooks)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil // deleted by retention meanwhile
	}
	if err != nil {
		return err
	}
	if done(n, job.Args.Wamid) {
		return nil
	}
	return river.JobSnooze(w.nextPoll(job, deadline))
}

// done reports whether tracking wamid has nothing left to do.
func done(n *ledger.Notification, wamid string) bool {
	return n.Wamid != wamid || n.Status.Final() || n.Status == ledger.StatusInDoubt
}

func (w *TrackWorker) deadline(n *ledger.Notification) time.Time {
	start := n.CreatedAt
	if n.SentAt != nil {
		start = *n.SentAt
	}
	return start.Add(w.trackFor)
}

// nextPoll doubles the pause per poll up to pollMax, and never sleeps past
// the deadline by more than a moment.
func (w *TrackWorker) nextPoll(job *river.Job[TrackArgs], deadline time.Time) time.Duration {
	d := jitter(backoff(snoozes(job.Metadata)+1, w.pollBase, w.pollMax))
	if left := time.Until(deadline) + time.Second; left < d {
		d = max(left, time.Second)
	}
	return d
}

// apply records the hookInfo entries not recorded by an earlier poll and
// returns the row as it is then, read in the same transaction.
// hookInfo repeats the whole history on every call; webhook duplicates are
// kept because each is a separate delivery by 1MSG.
func (w *TrackWorker) apply(ctx context.Context, n *ledger.Notification, hooks []onemsg.Hook) (*ledger.Notification, error) {
	now := n
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		seen, err := ledger.EventKeys(ctx, tx, n.ID, ledger.SourcePoll)
		if err != nil {
			return err
		}
		var reports []ledger.Report
		for _, h := range hooks {
			r := HookReport(h)
			r.NotificationID, r.Source = n.ID, ledger.SourcePoll
			status := r.Status
			if st, ok := ledger.MapStatus(r.Status); ok {
				status = string(st)
			}
			key := ledger.EventKey{Status: status, At: unixOrZero(r.OccurredAt)}
			if seen[key] {
				continue
			}
			seen[key] = true
			reports = append(reports, r)
		}
		if len(reports) == 0 {
			// Nothing new, but a webhook or another poll may have moved the
			// row since it was read.
			now, err = ledger.Get(ctx, tx, n.ID)
			return err
		}
		res, err := w.ledger.Apply(ctx, tx, reports)
		if err != nil {
			return err
		}
		if now = res.Rows[n.ID]; now == nil {
			return fmt.Errorf("notification %d: %w", n.ID, ledger.ErrNotFound)
		}
		return nil
	})
	return now, err
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// StopTracking returns a ledger.ChangeFunc that deletes the pending track
// job of every notification that just reached a final status, in the same
// transaction: a webhook that brought the status saves the job's wake-up.
// A running track job (the one that polled the status itself) is left to
// finish.
func StopTracking(deleter interface {
	JobDeleteManyTx(ctx context.Context, tx pgx.Tx, params *river.JobDeleteManyParams) (*river.JobDeleteManyResult, error)
}) ledger.ChangeFunc {
	return func(ctx context.Context, tx pgx.Tx, changes []ledger.Change) error {
		var ids []int64
		for _, c := range changes {
			if c.To.Final() && c.Notification.TrackJobID != 0 {
				ids = append(ids, c.Notification.TrackJobID)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		_, err := deleter.JobDeleteManyTx(ctx, tx, river.NewJobDeleteManyParams().IDs(ids...).
			States(rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable).First(len(ids)))
		if err != nil {
			return fmt.Errorf("delete finished track jobs: %w", err)
		}
		return nil
	}
}

// OnChange is what every writer of statuses (the daemon, the operator
// commands) must do in the transaction of a change: stop tracking what is
// final and, when a CRM callback is configured, enqueue its delivery.
func OnChange(client *river.Client[pgx.Tx], schema string, callbacks bool) ledger.ChangeFunc {
	fns := []ledger.ChangeFunc{StopTracking(client)}
	if callbacks {
		fns = append(fns, Callbacks(client, schema))
	}
	return ledger.Chain(fns...)
}

// HookReport turns a hookInfo entry (a Meta status object) into a report.
func HookReport(h onemsg.Hook) ledger.Report {
	r := ledger.Report{Wamid: h.ID, Status: h.Status, OccurredAt: h.Timestamp.Time, Detail: h.Raw, Pricing: (*ledger.Pricing)(h.Pricing)}
	if len(h.Errors) > 0 {
		r.ErrorCode = strconv.Itoa(h.Errors[0].Code)
		r.Error = h.Errors[0].Text()
	}
	return r
}

// expire marks a message that reached no final status in time.
func (w *TrackWorker) expire(ctx context.Context, n *ledger.Notification) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		res, err := w.ledger.Apply(ctx, tx, []ledger.Report{{
			NotificationID: n.ID, Status: string(ledger.StatusExpired), Source: ledger.SourceDaemon,
			Detail: mustJSON(map[string]any{"reason": fmt.Sprintf("no final status within %s (CANCELNOTIFY_TRACK_FOR)", w.trackFor)}),
		}})
		if err == nil && len(res.Changes) > 0 {
			w.logger.Warn("tracking deadline passed; marked expired", "event_id", n.EventID, "wamid", n.Wamid)
		}
		return err
	})
}
