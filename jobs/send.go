package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/groupcommit"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/pending"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// API is what the workers need of 1MSG; *onemsg.Client implements it.
type API interface {
	SendTemplate(ctx context.Context, req onemsg.SendTemplateRequest) (*onemsg.SendResult, error)
	Messages(ctx context.Context, q onemsg.MessagesQuery) (*onemsg.History, error)
	HookInfo(ctx context.Context, messageID string) ([]onemsg.Hook, error)
	Status(ctx context.Context) (*onemsg.ChannelStatus, error)
}

// Limiter paces sends (golang.org/x/time/rate.Limiter implements it).
type Limiter interface {
	Wait(ctx context.Context) error
}

// SendWorker sends one notification's template: the data path of
// docs/architecture.md and the decision table of docs/failures.md.
type SendWorker struct {
	river.WorkerDefaults[SendArgs]

	pool      *pgxpool.Pool
	schema    string
	ledger    *ledger.Ledger
	channels  channelSet
	sendTTL   int    // messageSendTtlSeconds; 0 = Meta's default
	health    Health // nil: refusals are never channel-wide
	firstPoll time.Duration
	sendFor   time.Duration
	timeout   time.Duration
	logger    *slog.Logger

	starts  *groupcommit.Writer[int64, *ledger.Notification]
	accepts *groupcommit.Writer[acceptance, error]

	// afterSend, when set by a test, runs between 1MSG's answer and the
	// transaction that records it; an error returned aborts the attempt
	// there, as a crash at that instant would.
	afterSend func(ctx context.Context) error

	gate  *sendsFirst    // polls wait while a send is starting
	sends *pending.Sends // this process's sends from request to recorded answer
}

// NextRetry keeps pauses short after an unexpected error (the database
// went away, mostly): 1s doubling to a minute, not River's default that
// reaches 81s at the third error. A customer's message should follow the
// database back within a minute.
func (w *SendWorker) NextRetry(job *river.Job[SendArgs]) time.Time {
	return time.Now().Add(jitter(backoff(len(job.Errors), time.Second, time.Minute)))
}

// Timeout bounds one attempt: reconciliation, the send and the writes.
func (w *SendWorker) Timeout(*river.Job[SendArgs]) time.Duration { return w.timeout }

// How long a queued (sent:false + jobId) message may take to show up in the
// history before the row is held as in_doubt.
const queuedGrace = 10 * time.Minute

// pairWait is how long a send refused by Meta's pair rate limit (131056)
// waits: a little over the 6s Meta allows between two messages to a user.
const pairWait = 7 * time.Second

// reconcileWindow widens the history search before the recorded intent, for
// clock skew between us and 1MSG.
const reconcileWindow = 2 * time.Minute

// Work implements river.Worker.
func (w *SendWorker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	// The job's channel, as the relay chose it; the row is checked below.
	ch, err := w.channels.get(job.Args.Channel)
	if err != nil {
		w.logger.Warn("cannot send", "notification_id", job.Args.NotificationID, "error", err)
		return snoozeUnknownChannel()
	}
	// A held channel keeps the job waiting before it touches the row.
	trial, err := w.admit(ctx, job, ch.Name)
	if err != nil {
		return err
	}
	var sent bool
	var sendErr error
	if trial {
		defer func() { w.endTrial(context.WithoutCancel(ctx), ch.Name, job.ID, sent, sendErr) }()
	}
	span := trace.SpanFromContext(ctx) // otelriver's, when traces are on
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("cancelnotify.notification_id", job.Args.NotificationID))
	}
	// The channel's rate comes before the intent: a job waiting here has
	// changed nothing, so a crash or shutdown while it waits leaves a
	// queued row, not one to reconcile.
	if err := ch.Limiter.Wait(ctx); err != nil {
		return err
	}
	started := w.gate.begin()
	defer started()
	// The common case, a queued row, records its intent in a transaction
	// shared with the other workers starting now (group commit).
	n, err := w.starts.Do(ctx, job.Args.NotificationID)
	if err != nil {
		return err
	}
	if n == nil {
		var done bool
		n, done, err = w.begin(ctx, job) // names the span's event
		if err != nil || done {
			return err
		}
	} else {
		spanEvent(ctx, n)
	}
	log := w.logger.With("event_id", n.EventID, "notification_id", n.ID, "attempt", n.Attempts, "channel", n.Channel)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("cancelnotify.attempt", n.Attempts))
	}
	if n.Channel != ch.Name {
		// The row is the authority; the job's copy only chose the rate.
		if ch, err = w.channels.get(n.Channel); err != nil {
			log.Warn("cannot send", "error", err)
			if err := w.requeue(ctx, n, "channel not configured", err); err != nil {
				return err
			}
			return snoozeUnknownChannel()
		}
	}
	started()
	// Until this attempt's outcome is committed (or abandoned), a webhook
	// status for a wamid not recorded yet waits for it (internal/pending).
	defer w.sends.Begin()()
	res, err := ch.API.SendTemplate(ctx, w.request(ch, n))
	if req, again, ferr := w.fallBack(ctx, ch, n, err); ferr != nil {
		return ferr
	} else if again {
		res, err = ch.API.SendTemplate(ctx, req)
	}
	sent, sendErr = true, err
	if w.afterSend != nil {
		if herr := w.afterSend(ctx); herr != nil {
			return herr
		}
	}
	// Whatever 1MSG said must be recorded even if the job's context ends
	// now (shutdown, timeout): losing an accepted wamid forces a reconcile.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()

	var apiErr *onemsg.Error
	if span.IsRecording() {
		span.SetAttributes(sendOutcome(res, err)...)
	}
	switch {
	case err == nil && res.Queued():
		log.Info("1MSG queued the send", "onemsg_job_id", res.JobID)
		return w.hold(rctx, job, n, res.JobID)
	case err == nil:
		return w.accepted(rctx, job, n.ID, res.ID, ledger.Report{Detail: mustJSON(res)})
	case errors.As(err, &apiErr):
		switch apiErr.Kind {
		case onemsg.KindRejected:
			if w.channelWide(rctx, ch, apiErr) {
				return w.holdChannel(rctx, ch.Name, n, apiErr)
			}
			log.Warn("1MSG refused the message", "error", apiErr.Message, "code", apiErr.CodeString())
			if err := w.fail(rctx, n.ID, apiErr); err != nil {
				return err
			}
			return river.JobCancel(apiErr)
		case onemsg.KindThrottled:
			if err := w.requeue(rctx, n, "throttled by 1MSG", apiErr); err != nil {
				return err
			}
			wait := apiErr.RetryAfter
			switch {
			case wait > 0:
			case apiErr.Code == onemsg.CodePairRateLimit:
				// Meta's pair limit: one message per recipient every 6s.
				wait = pairWait
			default:
				wait = backoff(snoozes(job.Metadata), time.Second, time.Minute)
			}
			return river.JobSnooze(jitter(wait))
		case onemsg.KindNotSent:
			if err := w.requeue(rctx, n, "1MSG unreachable", apiErr); err != nil {
				return err
			}
			return river.JobSnooze(jitter(backoff(snoozes(job.Metadata), time.Second, time.Minute)))
		}
	}
	// Unknown outcome: the row stays `sending`; the next run reconciles
	// with 1MSG's history before anything is sent again.
	log.Warn("1MSG send outcome unknown; will reconcile before any resend", "error", err)
	if ctx.Err() != nil {
		return ctx.Err() // shutdown: River puts the job back without using an attempt
	}
	return river.JobSnooze(jitter(backoff(snoozes(job.Metadata), time.Second, time.Minute)))
}

// spanEvent names n's event on the job's span (the args carry only the
// notification id).
func spanEvent(ctx context.Context, n *ledger.Notification) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("cancelnotify.event_id", n.EventID))
	}
}

// begin locks the row and decides what this run does. It returns done when
// the job is finished (already sent, final, held, or just reconciled).
// Otherwise the row is `sending` with this attempt's intent committed.
func (w *SendWorker) begin(ctx context.Context, job *river.Job[SendArgs]) (*ledger.Notification, bool, error) {
	for {
		tx, err := w.pool.Begin(ctx)
		if err != nil {
			return nil, false, err
		}
		n, err := ledger.Lock(ctx, tx, job.Args.NotificationID)
		if err != nil {
			tx.Rollback(ctx) //nolint:errcheck
			return nil, false, err
		}
		spanEvent(ctx, n)
		switch {
		case n.Wamid != "":
			// Accepted before (a rescued job, or a reconcile that adopted the
			// id): only make sure it is tracked.
			err := w.complete(ctx, tx, job, n)
			return nil, true, err
		case n.Status.Final() || n.Status == ledger.StatusInDoubt || n.Status == ledger.StatusSent:
			err := w.complete(ctx, tx, job, n)
			return nil, true, err
		case n.Status == ledger.StatusSending:
			tx.Rollback(ctx) //nolint:errcheck
			// The previous attempt's outcome is unknown. Reconcile outside any
			// transaction: 1MSG calls must not hold row locks.
			decided, err := w.reconcile(ctx, job, n)
			if err != nil || decided {
				return nil, true, err
			}
			continue // provably absent and moved back to queued: send again
		case w.sendFor > 0 && time.Since(n.EventCreatedAt) > w.sendFor:
			err := w.ledger.Move(ctx, tx, n, ledger.Move{To: ledger.StatusFailed, ErrorCode: "not_sent_in_time",
				Error: w.notSentInTime(n)})
			if err == nil {
				_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			}
			if err == nil {
				err = tx.Commit(ctx)
			}
			tx.Rollback(ctx) //nolint:errcheck
			return nil, true, err
		}
		// queued: record the intent before the call.
		if err := w.ledger.Move(ctx, tx, n, ledger.Move{To: ledger.StatusSending, Attempt: true}); err != nil {
			tx.Rollback(ctx) //nolint:errcheck
			return nil, false, err
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, false, err
		}
		return n, false, nil
	}
}

func lastError(n *ledger.Notification) string {
	if n.Error == "" {
		return "none recorded"
	}
	return n.Error
}

// complete finishes the job in tx, making sure an accepted message has a
// track job, and commits.
func (w *SendWorker) complete(ctx context.Context, tx pgx.Tx, job *river.Job[SendArgs], n *ledger.Notification) error {
	defer tx.Rollback(ctx) //nolint:errcheck
	if n.Wamid != "" && !n.Status.Final() {
		if err := w.insertTrack(ctx, tx, n.ID, n.Wamid, n.EventID); err != nil {
			return err
		}
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete send job: %w", err)
	}
	return tx.Commit(ctx)
}

func (w *SendWorker) insertTrack(ctx context.Context, tx pgx.Tx, id int64, wamid, eventID string) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("insert track job: %w", err)
	}
	_, err = client.InsertTx(ctx, tx, TrackArgs{NotificationID: id, Wamid: wamid, EventID: eventID},
		TrackOne(&river.InsertOpts{ScheduledAt: time.Now().Add(w.firstPoll), Metadata: tracing.Metadata(tracing.TraceParent(ctx))}))
	if err != nil {
		return fmt.Errorf("insert track job: %w", err)
	}
	return nil
}

// acceptance is one accepted message waiting to be recorded.
type acceptance struct {
	ctx    context.Context // the job's: JobCompleteTx needs its River client
	job    *river.Job[SendArgs]
	id     int64
	wamid  string
	detail []byte
}

// accepted records the wamid, status sent, the track job and the job's
// completion in one transaction, shared with other workers' acceptances.
func (w *SendWorker) accepted(ctx context.Context, job *river.Job[SendArgs], id int64, wamid string, r ledger.Report) error {
	res, err := w.accepts.Do(ctx, acceptance{ctx: ctx, job: job, id: id, wamid: wamid, detail: r.Detail})
	if err != nil {
		return err
	}
	return res
}

// trackBatch is the most messages one track job follows: its hookInfo
// polls run together, so a wake-up stays well within the job's timeout.
const trackBatch = 100

// acceptLinger lets an acceptance transaction wait this long for more
// acceptances before it starts (unless it is full). The send request has
// gone out by then, so no send waits for it; what it buys is fewer, larger
// track jobs. Without it, at 80 messages a second nearly every message got
// a track job of its own, River releases scheduled jobs every 5 s, and each
// release of some 400 jobs slowed the sends of that second (README, "How
// messages are followed"). It delays recording the wamid by as much, and
// widens the window in which a crash leaves a send to reconcile.
const acceptLinger = 50 * time.Millisecond

// recordAccepted is the accepts batch: track jobs for its messages first
// (their ids go on the rows), then the statuses, then each send job's
// completion.
func (w *SendWorker) recordAccepted(ctx context.Context, tx pgx.Tx, items []acceptance) ([]error, error) {
	client, err := river.ClientFromContextSafely[pgx.Tx](items[0].ctx)
	if err != nil {
		return nil, fmt.Errorf("record acceptance: %w", err)
	}
	// One track job per trackBatch messages. They continue the trace of
	// their first send job (it.ctx is the job's); the others' traces end
	// with their send.
	first := time.Now().Add(w.firstPoll)
	var params []river.InsertManyParams
	for chunk := range slices.Chunk(items, trackBatch) {
		ids := make([]int64, len(chunk))
		for i, it := range chunk {
			ids[i] = it.id
		}
		params = append(params, river.InsertManyParams{Args: TrackArgs{IDs: ids},
			InsertOpts: &river.InsertOpts{ScheduledAt: first, Metadata: tracing.Metadata(tracing.TraceParent(chunk[0].ctx))}})
	}
	tracks, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("insert track jobs: %w", err)
	}
	reports := make([]ledger.Report, len(items))
	for i, it := range items {
		reports[i] = ledger.Report{NotificationID: it.id, Wamid: it.wamid, Status: string(ledger.StatusSent),
			Source: ledger.SourceAPI, Detail: it.detail, TrackJobID: tracks[i/trackBatch].Job.ID}
	}
	res, err := w.ledger.Apply(ctx, tx, reports)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(items))
	var done []*rivertype.JobRow
	for i, it := range items {
		n := res.Rows[it.id]
		switch {
		case n == nil:
			errs[i] = fmt.Errorf("notification %d: %w", it.id, ledger.ErrNotFound)
			continue
		case n.Wamid != it.wamid:
			// Cannot happen while the job is the row's only sender; refuse to
			// complete rather than lose track of either message.
			errs[i] = fmt.Errorf("notification %d already has wamid %s; 1MSG answered %s", it.id, n.Wamid, it.wamid)
			continue
		}
		done = append(done, it.job.JobRow)
		w.logger.Info("sent", "event_id", n.EventID, "wamid", it.wamid, "notification_id", it.id)
	}
	if err := completeTx(ctx, tx, client, w.schema, done); err != nil {
		return nil, err
	}
	return errs, nil
}

// startAttempts is the starts batch.
func (w *SendWorker) startAttempts(ctx context.Context, tx pgx.Tx, ids []int64) ([]*ledger.Notification, error) {
	var after time.Time
	if w.sendFor > 0 {
		after = time.Now().Add(-w.sendFor)
	}
	moved, err := w.ledger.StartAttempts(ctx, tx, ids, after)
	if err != nil {
		return nil, err
	}
	out := make([]*ledger.Notification, len(ids))
	for i, id := range ids {
		out[i] = moved[id]
	}
	return out, nil
}

// fail records a permanent refusal.
func (w *SendWorker) fail(ctx context.Context, id int64, e *onemsg.Error) error {
	return w.inTx(ctx, func(tx pgx.Tx) error {
		_, err := w.ledger.Apply(ctx, tx, []ledger.Report{{
			NotificationID: id, Status: string(ledger.StatusFailed), Source: ledger.SourceAPI,
			ErrorCode: e.CodeString(), Error: e.Message,
			Detail: mustJSON(map[string]any{"http_status": e.HTTPStatus, "code": e.Code, "error": e.Message}),
		}})
		return err
	})
}

// requeue moves a row whose send provably did not happen back to queued.
func (w *SendWorker) requeue(ctx context.Context, n *ledger.Notification, reason string, cause error) error {
	err := w.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := ledger.Lock(ctx, tx, n.ID)
		if err != nil {
			return err
		}
		if cur.Status != ledger.StatusSending {
			return nil
		}
		m := ledger.Move{To: ledger.StatusQueued, Reason: reason}
		var e *onemsg.Error
		if errors.As(cause, &e) {
			m.ErrorCode, m.Error = e.CodeString(), e.Message
		} else if cause != nil {
			m.Error = cause.Error()
		}
		return w.ledger.Move(ctx, tx, cur, m)
	})
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// hold keeps a queued send (1MSG's jobId) in `sending` and checks back
// later: 1MSG says not to resend it.
func (w *SendWorker) hold(ctx context.Context, job *river.Job[SendArgs], n *ledger.Notification, jobID string) error {
	err := w.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := ledger.Lock(ctx, tx, n.ID)
		if err != nil {
			return err
		}
		return w.ledger.Move(ctx, tx, cur, ledger.Move{To: ledger.StatusSending, OnemsgJobID: jobID,
			Reason: "1MSG queued the send; waiting for it in the message history"})
	})
	if err != nil {
		return err
	}
	return river.JobSnooze(jitter(10 * time.Second))
}

// reconcile settles a row left `sending` by an attempt whose outcome is
// unknown, using 1MSG's message history (docs/failures.md, "Unknown
// outcome"). It returns decided when the job is finished: the message was
// found (adopted), or the row is held as in_doubt. When the message is
// provably absent it moves the row back to queued and returns decided=false
// so the caller sends again.
func (w *SendWorker) reconcile(ctx context.Context, job *river.Job[SendArgs], n *ledger.Notification) (bool, error) {
	log := w.logger.With("event_id", n.EventID, "notification_id", n.ID, "channel", n.Channel)
	since := n.CreatedAt
	if n.AttemptedAt != nil {
		since = *n.AttemptedAt
	}
	ch, err := w.channels.get(n.Channel)
	if err != nil {
		log.Warn("cannot reconcile yet", "error", err)
		return true, snoozeUnknownChannel()
	}
	h, err := ch.API.Messages(ctx, onemsg.MessagesQuery{ChatID: onemsg.ChatID(n.Phone), MinTime: since.Add(-reconcileWindow), Limit: 100})
	var apiErr *onemsg.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Kind == onemsg.KindRejected && w.health != nil && apiErr.Scope() == onemsg.ScopeChannel:
		// A revoked token refuses the history too: the outcome stays open,
		// the row `sending`, until the channel answers again.
		return true, w.holdUnreconciled(ctx, ch.Name, apiErr)
	case errors.As(err, &apiErr) && apiErr.Kind == onemsg.KindRejected:
		return w.inDoubt(ctx, job, n, "1MSG refused the message history query: "+apiErr.Message)
	case err != nil:
		// 1MSG unreachable: try again later; nothing is sent meanwhile.
		log.Warn("cannot reconcile yet: message history unavailable", "error", err)
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		return true, river.JobSnooze(jitter(backoff(snoozes(job.Metadata), time.Second, time.Minute)))
	case h.Notice != "" && len(h.Messages) == 0:
		return w.inDoubt(ctx, job, n, "1MSG keeps no message history for this channel ("+h.Notice+"), so whether the message went out cannot be checked")
	}

	candidates, err := w.candidates(ctx, n, since, h.Messages)
	if err != nil {
		return true, err
	}
	switch {
	case len(candidates) == 1:
		log.Info("reconciled: 1MSG had accepted the message", "wamid", candidates[0].ID)
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("cancelnotify.outcome", "reconciled_accepted"),
			attribute.String("cancelnotify.wamid", candidates[0].ID))
		return true, w.accepted(ctx, job, n.ID, candidates[0].ID, ledger.Report{
			Detail: mustJSON(map[string]any{"reconciled": true, "history": candidates[0]})})
	case len(candidates) > 1:
		ids := make([]string, len(candidates))
		for i, c := range candidates {
			ids[i] = c.ID
		}
		return w.inDoubt(ctx, job, n, "several unclaimed messages to this phone in 1MSG's history could be this one: "+strings.Join(ids, ", "))
	}
	if n.OnemsgJobID != "" {
		// A queued send may still go out: absence proves nothing yet.
		if n.AttemptedAt != nil && time.Since(*n.AttemptedAt) > queuedGrace {
			return w.inDoubt(ctx, job, n, fmt.Sprintf("1MSG queued the send (job %s) and it has not appeared in the history for %s", n.OnemsgJobID, queuedGrace))
		}
		return true, river.JobSnooze(jitter(30 * time.Second))
	}
	log.Info("reconciled: 1MSG has no such message; sending again")
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("cancelnotify.outcome", "reconciled_absent"))
	return false, w.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := ledger.Lock(ctx, tx, n.ID)
		if err != nil {
			return err
		}
		if cur.Status != ledger.StatusSending {
			return nil
		}
		return w.ledger.Move(ctx, tx, cur, ledger.Move{To: ledger.StatusQueued, Reason: "reconciled: not in 1MSG's message history since the last attempt"})
	})
}

// candidates returns the history messages that could be n's: outgoing, to
// its phone, at or after the attempt (less the skew window), carrying its
// order number when the body is given, and not claimed by another row.
func (w *SendWorker) candidates(ctx context.Context, n *ledger.Notification, since time.Time, msgs []onemsg.HistoryMessage) ([]onemsg.HistoryMessage, error) {
	var out []onemsg.HistoryMessage
	var ids []string
	chat := onemsg.ChatID(n.Phone)
	for _, m := range msgs {
		if !m.FromMe || m.ID == "" || (m.ChatID != "" && m.ChatID != chat) {
			continue
		}
		if m.Time != 0 && m.At().Before(since.Add(-reconcileWindow)) {
			continue
		}
		if m.Body != "" && n.OrderNumber() != "" && !strings.Contains(m.Body, n.OrderNumber()) {
			continue
		}
		out = append(out, m)
		ids = append(ids, m.ID)
	}
	if len(out) == 0 {
		return nil, nil
	}
	claimed, err := ledger.ClaimedWamids(ctx, w.pool, ids)
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, m := range out {
		if !claimed[m.ID] {
			kept = append(kept, m)
		}
	}
	return kept, nil
}

// inDoubt holds the row for an operator and cancels the job.
func (w *SendWorker) inDoubt(ctx context.Context, job *river.Job[SendArgs], n *ledger.Notification, reason string) (bool, error) {
	w.logger.Warn("send outcome undecidable; held as in_doubt for an operator", "event_id", n.EventID, "reason", reason)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("cancelnotify.outcome", "in_doubt"))
	err := w.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := ledger.Lock(ctx, tx, n.ID)
		if err != nil {
			return err
		}
		if cur.Status != ledger.StatusSending {
			return nil
		}
		return w.ledger.Move(ctx, tx, cur, ledger.Move{To: ledger.StatusInDoubt, ErrorCode: "outcome_unknown", Error: reason})
	})
	if err != nil {
		return true, err
	}
	return true, river.JobCancel(errors.New("in_doubt: " + reason))
}

func (w *SendWorker) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, w.pool, fn)
}

// sendOutcome describes 1MSG's answer for the send job's span: the outcome
// class of internal/metrics' onemsg_requests_total, and the wamid or code.
func sendOutcome(res *onemsg.SendResult, err error) []attribute.KeyValue {
	var apiErr *onemsg.Error
	switch {
	case err == nil && res.Queued():
		return []attribute.KeyValue{attribute.String("cancelnotify.outcome", "queued_by_1msg")}
	case err == nil:
		return []attribute.KeyValue{attribute.String("cancelnotify.outcome", "ok"), attribute.String("cancelnotify.wamid", res.ID)}
	case errors.As(err, &apiErr):
		return []attribute.KeyValue{attribute.String("cancelnotify.outcome", apiErr.Kind.String()),
			attribute.String("cancelnotify.error_code", apiErr.CodeString())}
	}
	return []attribute.KeyValue{attribute.String("cancelnotify.outcome", onemsg.KindUnknown.String())}
}

// jitter spreads retries of many jobs by ±20%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}
