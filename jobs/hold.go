package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/cancelnotify/cancelnotify/internal/health"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// Health is the channel health the send path consults (README "Channel
// health"); *health.Monitor implements it.
type Health interface {
	Admit(ctx context.Context, channel string, jobID int64) (health.Admission, error)
	Refused(ctx context.Context, channel string, e *onemsg.Error) (time.Duration, error)
	Answered(ctx context.Context, channel string, jobID int64) error
	Release(ctx context.Context, channel string, jobID int64) error
	View(channel string) health.Status
}

// admit asks the channel's health whether job may send. A held channel
// snoozes the job before it touches its row, which stays queued: no
// attempt, no request. A job whose CANCELNOTIFY_SEND_FOR has run out goes
// on, so that begin ends it.
func (w *SendWorker) admit(ctx context.Context, job *river.Job[SendArgs], channel string) (trial bool, err error) {
	if w.health == nil {
		return false, nil
	}
	a, err := w.health.Admit(ctx, channel, job.ID)
	if err != nil {
		return false, err
	}
	if a.Send {
		return a.Trial, nil
	}
	if w.sendFor > 0 {
		left := time.Until(job.CreatedAt.Add(w.sendFor))
		if left <= 0 {
			return false, nil
		}
		a.Wait = min(a.Wait, left+time.Second)
	}
	return false, river.JobSnooze(jitter(a.Wait))
}

// channelWide reports whether a refusal concerns the whole channel. A
// refusal without a Meta code that names nothing the table knows is asked
// about once more: a channel that GET /status calls not connected refuses
// every message, whatever the text said.
func (w *SendWorker) channelWide(ctx context.Context, ch *Channel, e *onemsg.Error) bool {
	if w.health == nil {
		return false
	}
	if e.Scope() == onemsg.ScopeChannel {
		return true
	}
	if e.Code != 0 || e.HTTPStatus != http.StatusOK {
		return false
	}
	st, err := ch.API.Status(ctx)
	return err == nil && !st.OK()
}

// holdChannel handles a channel-wide refusal: the channel is held, the row
// goes back to queued (no failed status, no CRM callback) and the job
// snoozes, which uses no River attempt.
func (w *SendWorker) holdChannel(ctx context.Context, channel string, n *ledger.Notification, e *onemsg.Error) error {
	wait, err := w.health.Refused(ctx, channel, e)
	if err != nil {
		return err
	}
	if err := w.requeue(ctx, n, fmt.Sprintf("held: channel %s refused the send for a reason no single message caused", channel), e); err != nil {
		return err
	}
	return river.JobSnooze(jitter(wait))
}

// holdUnreconciled handles a channel-wide refusal of the history query
// that would settle an unknown outcome: the channel is held and the job
// snoozes, the row stays `sending` and is reconciled once it answers.
func (w *SendWorker) holdUnreconciled(ctx context.Context, channel string, e *onemsg.Error) error {
	wait, err := w.health.Refused(ctx, channel, e)
	if err != nil {
		return err
	}
	return river.JobSnooze(jitter(wait))
}

// endTrial settles the trial send of a probed channel: an answer that
// shows the channel works (accepted, queued, or refused for this message
// alone) resumes it; a channel-wide refusal already held it again; anything
// else (throttled, unreachable, unknown, nothing sent) lets another send try.
func (w *SendWorker) endTrial(ctx context.Context, channel string, jobID int64, sent bool, err error) {
	var e *onemsg.Error
	var rerr error
	switch {
	case sent && err == nil, sent && errors.As(err, &e) && e.Kind == onemsg.KindRejected:
		rerr = w.health.Answered(ctx, channel, jobID)
	default:
		rerr = w.health.Release(ctx, channel, jobID)
	}
	if rerr != nil {
		w.logger.Warn("channel health: settling the trial send failed; another send retries it", "channel", channel, "error", rerr)
	}
}

// notSentInTime is the reason a row ends `failed` after
// CANCELNOTIFY_SEND_FOR: the last error, and whether the channel was held.
func (w *SendWorker) notSentInTime(n *ledger.Notification) string {
	s := fmt.Sprintf("not sent within %s of the cancellation (CANCELNOTIFY_SEND_FOR)", w.sendFor)
	if w.health != nil {
		if st := w.health.View(n.Channel); !st.Healthy() {
			s += fmt.Sprintf(": channel %s was down (%s)", n.Channel, st.Describe())
		}
	}
	return s + "; last error: " + lastError(n)
}

// WakeHeld returns the function that makes up to limit (0: all) held send
// jobs of a channel run now: those snoozed while their row waits queued,
// except rows paced to a later time (per-recipient spacing). It does what
// River's JobRetry does (available, scheduled now) for many jobs in one
// statement.
func WakeHeld(pool *pgxpool.Pool) func(ctx context.Context, channel string, limit int) error {
	return func(ctx context.Context, channel string, limit int) error {
		_, err := pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
			WHERE id IN (
				SELECT j.id FROM river_job j JOIN notification n ON n.id = (j.args->>'notification_id')::bigint
				WHERE j.kind = $1 AND j.state IN ('scheduled', 'available') AND j.scheduled_at > now()
					AND n.status = 'queued' AND n.channel = $2 AND (n.not_before IS NULL OR n.not_before <= now())
				ORDER BY j.id LIMIT nullif($3, 0))
			AND state IN ('scheduled', 'available')`, SendArgs{}.Kind(), channel, limit)
		if err != nil {
			return fmt.Errorf("wake the held sends of channel %s: %w", channel, err)
		}
		return nil
	}
}
