package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/groupcommit"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// TrackWorker follows accepted messages until WhatsApp reports delivered,
// read or failed, or the tracking deadline passes (expired). A job follows
// the messages of one acceptance batch (TrackArgs). Webhooks usually bring
// the statuses first; then the job finds every row final and completes
// without calling 1MSG. Otherwise it polls hookInfo for the messages still
// open, records what it learnt in one transaction, and sleeps with growing
// pauses (JobSnooze costs no attempt) until none is open.
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
	// polls bounds the hookInfo calls in flight across all track jobs
	// (Config.TrackWorkers).
	polls   chan struct{}
	applies *groupcommit.Writer[[]*tracked, *ledger.Notification]
	gate    *sendsFirst // sends go first
	// pollRate paces hookInfo calls across all track jobs (Config.PollRate);
	// nil: unpaced.
	pollRate *rate.Limiter
}

// NextRetry: as for sends, errors are the database's; retry soon.
func (w *TrackWorker) NextRetry(job *river.Job[TrackArgs]) time.Time {
	return time.Now().Add(jitter(backoff(len(job.Errors), time.Second, time.Minute)))
}

// Timeout bounds one wake-up: the reads, the polls and the write.
func (w *TrackWorker) Timeout(*river.Job[TrackArgs]) time.Duration { return w.timeout }

// tracked is one message of a job that is still open.
type tracked struct {
	TrackedMessage
	job   int64 // the track job's id
	n     *ledger.Notification
	hooks []onemsg.Hook // nil when the poll failed or did not run
}

// Work implements river.Worker.
func (w *TrackWorker) Work(ctx context.Context, job *river.Job[TrackArgs]) error {
	msgs := job.Args.messages()
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("cancelnotify.messages", len(msgs)))
		if len(msgs) == 1 {
			span.SetAttributes(attribute.Int64("cancelnotify.notification_id", msgs[0].NotificationID))
			if msgs[0].Wamid != "" {
				span.SetAttributes(attribute.String("cancelnotify.wamid", msgs[0].Wamid))
			}
		}
	}
	open, expired, err := w.open(ctx, job.ID, msgs)
	if err != nil {
		return err
	}
	if len(expired) > 0 {
		if err := w.expire(ctx, expired); err != nil {
			return err
		}
	}
	if len(open) == 0 {
		return nil
	}
	w.poll(ctx, open)
	still, err := w.apply(ctx, open)
	if err != nil {
		return err
	}
	if still == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutdown or timeout: what was learnt is recorded
	}
	return river.JobSnooze(w.nextPoll(job, w.deadline(still)))
}

// open reads the job's rows and returns the messages still to follow, and
// those whose tracking deadline passed. A row deleted by retention, final,
// or no longer this job's message (re-driven) is done.
func (w *TrackWorker) open(ctx context.Context, jobID int64, msgs []TrackedMessage) (open []*tracked, expired []*ledger.Notification, err error) {
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.NotificationID
	}
	rows, err := ledger.GetMany(ctx, w.pool, ids)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	for _, m := range msgs {
		n := rows[m.NotificationID]
		switch {
		case n == nil || done(n, m, jobID):
		case now.After(w.deadline(n)):
			expired = append(expired, n)
		default:
			open = append(open, &tracked{TrackedMessage: m, job: jobID, n: n})
		}
	}
	return open, expired, nil
}

// poll asks hookInfo about every open message, at most cap(w.polls) calls
// at once across all jobs. A failed call leaves its message for the next
// wake-up; polls not started when ctx ends are skipped.
func (w *TrackWorker) poll(ctx context.Context, open []*tracked) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, t := range open {
		w.gate.yield(ctx)
		if w.pollRate != nil && w.pollRate.Wait(ctx) != nil {
			return // ctx ended: the rest wait for the next wake-up
		}
		select {
		case w.polls <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-w.polls; wg.Done() }()
			ch, err := w.channels.get(t.n.Channel)
			if err != nil {
				w.logger.Warn("cannot poll the status", "event_id", t.n.EventID, "error", err)
				return
			}
			if t.hooks, err = ch.API.HookInfo(ctx, t.n.Wamid); err != nil && ctx.Err() == nil {
				w.logger.Warn("hookInfo failed; will poll again", "event_id", t.n.EventID, "wamid", t.n.Wamid, "error", err)
			}
		}()
	}
}

// done reports whether job has nothing left to do for m, whose row is n:
// the row is final or in doubt, or it is another message now (a re-drive
// records a new wamid and a new track job).
func done(n *ledger.Notification, m TrackedMessage, job int64) bool {
	mine := n.Wamid == m.Wamid
	if m.Wamid == "" {
		mine = n.Wamid != "" && n.TrackJobID == job
	}
	return !mine || n.Status.Final() || n.Status == ledger.StatusInDoubt
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

// apply records what the polls of open learnt and returns the open
// message whose deadline comes first, judged by the rows as they are then,
// or nil when none is open. The writes of concurrent jobs share one
// transaction, and one such transaction runs at a time (newTrackWorker):
// however many polls come back at once, tracking occupies one database
// connection, and the sends keep the rest (README, "How messages are
// followed"). What was learnt is recorded even if the job's context ends.
func (w *TrackWorker) apply(ctx context.Context, open []*tracked) (*ledger.Notification, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	return w.applies.Do(ctx, open)
}

// applyBatch is the applies batch: for each job's open messages, the
// hookInfo entries not recorded by an earlier poll, in one Apply. hookInfo
// repeats the whole history on every call; webhook duplicates are kept
// because each is a separate delivery by 1MSG.
func (w *TrackWorker) applyBatch(ctx context.Context, tx pgx.Tx, jobs [][]*tracked) ([]*ledger.Notification, error) {
	var ids []int64
	for _, open := range jobs {
		for _, t := range open {
			ids = append(ids, t.NotificationID)
		}
	}
	seen, err := ledger.EventKeys(ctx, tx, ids, ledger.SourcePoll)
	if err != nil {
		return nil, err
	}
	var reports []ledger.Report
	for _, open := range jobs {
		for _, t := range open {
			for _, h := range t.hooks {
				r := HookReport(h)
				r.NotificationID, r.Source = t.NotificationID, ledger.SourcePoll
				status := r.Status
				if st, ok := ledger.MapStatus(r.Status); ok {
					status = string(st)
				}
				key := ledger.EventKey{Status: status, At: unixOrZero(r.OccurredAt)}
				if seen[t.NotificationID] == nil {
					seen[t.NotificationID] = map[ledger.EventKey]bool{}
				}
				if seen[t.NotificationID][key] {
					continue
				}
				seen[t.NotificationID][key] = true
				reports = append(reports, r)
			}
		}
	}
	rows := map[int64]*ledger.Notification{}
	if len(reports) > 0 {
		res, err := w.ledger.Apply(ctx, tx, reports)
		if err != nil {
			return nil, err
		}
		rows = res.Rows
	}
	// Rows nothing was reported on may still have moved (a webhook, another
	// poll) since the job read them.
	var unread []int64
	for _, id := range ids {
		if rows[id] == nil {
			unread = append(unread, id)
		}
	}
	if len(unread) > 0 {
		more, err := ledger.GetMany(ctx, tx, unread)
		if err != nil {
			return nil, err
		}
		maps.Copy(rows, more)
	}
	out := make([]*ledger.Notification, len(jobs))
	for i, open := range jobs {
		for _, t := range open {
			n := rows[t.NotificationID] // nil: deleted by retention meanwhile
			if n == nil || done(n, t.TrackedMessage, t.job) {
				continue
			}
			if out[i] == nil || w.deadline(n).Before(w.deadline(out[i])) {
				out[i] = n
			}
		}
	}
	return out, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// OnChange is what every writer of statuses (the daemon, the operator
// commands) must do in the transaction of a change: when a CRM callback is
// configured, enqueue its delivery. A track job is not stopped when its
// messages turn final: it follows a whole batch, wakes once and completes
// without calling 1MSG when every message is final.
func OnChange(client *river.Client[pgx.Tx], schema string, callbacks bool) ledger.ChangeFunc {
	if !callbacks {
		return nil
	}
	return Callbacks(client, schema)
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

// expire marks messages that reached no final status in time.
func (w *TrackWorker) expire(ctx context.Context, ns []*ledger.Notification) error {
	reports := make([]ledger.Report, len(ns))
	for i, n := range ns {
		reports[i] = ledger.Report{NotificationID: n.ID, Status: string(ledger.StatusExpired), Source: ledger.SourceDaemon,
			Detail: mustJSON(map[string]any{"reason": fmt.Sprintf("no final status within %s (CANCELNOTIFY_TRACK_FOR)", w.trackFor)})}
	}
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		res, err := w.ledger.Apply(ctx, tx, reports)
		if err != nil {
			return err
		}
		for _, c := range res.Changes {
			w.logger.Warn("tracking deadline passed; marked expired", "event_id", c.Notification.EventID, "wamid", c.Notification.Wamid)
		}
		return nil
	})
}
