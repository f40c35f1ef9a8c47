// Package redrive holds the actions an on-call operator takes on
// notifications: re-driving failed or expired ones, and settling those held
// in_doubt. Every action is one transaction that changes the row, appends
// an `operator` event to its history and enqueues the River job that
// carries it out, so an action is never half done.
package redrive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
	"github.com/cancelnotify/cancelnotify/jobs"
)

// JobInserter inserts River jobs in the caller's transaction;
// *river.Client[pgx.Tx] implements it (an insert-only client will do).
type JobInserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Operator acts on notifications.
type Operator struct {
	Pool   *pgxpool.Pool
	Jobs   JobInserter
	Ledger *ledger.Ledger
	// Who is recorded in each event's detail (e.g. the Unix user).
	Who string
}

// ErrNotAllowed is wrapped when a notification is not in a status the
// action applies to.
var ErrNotAllowed = errors.New("not allowed in this status")

// Outcome is what an action did to one event.
type Outcome struct {
	EventID string
	From    ledger.Status
	To      ledger.Status
	Err     error // nil when done
}

// Retry re-drives failed or expired notifications (ledger.RetryableStatuses): each goes back to
// queued with a new send job. The old wamid, error and times move to the
// history (the row describes the new attempt); the history itself stays.
func (o *Operator) Retry(ctx context.Context, eventIDs []string) []Outcome {
	out := make([]Outcome, 0, len(eventIDs))
	for _, id := range eventIDs {
		out = append(out, o.act(ctx, id, func(tx pgx.Tx, n *ledger.Notification) (ledger.Status, error) {
			if !n.Status.Retryable() {
				return "", fmt.Errorf("%w: %s is %s; only failed or expired notifications can be retried", ErrNotAllowed, id, n.Status)
			}
			return ledger.StatusQueued, o.requeue(ctx, tx, n, "retry by operator")
		}))
	}
	return out
}

// Filter selects notifications by status, error code and when they last changed.
type Filter = ledger.Filter

// Find returns the event ids of the notifications f selects, oldest first.
func Find(ctx context.Context, db ledger.DB, f Filter) ([]string, error) {
	return ledger.FindEventIDs(ctx, db, f)
}

// Resolution settles an in_doubt notification.
type Resolution struct {
	SentAs  string // the operator found the message in 1MSG: its wamid
	Resend  bool   // the operator is sure it did not go out
	Abandon bool   // give up: the row fails without a resend
}

// Resolve settles one in_doubt notification.
func (o *Operator) Resolve(ctx context.Context, eventID string, r Resolution) Outcome {
	chosen := 0
	for _, b := range []bool{r.SentAs != "", r.Resend, r.Abandon} {
		if b {
			chosen++
		}
	}
	if chosen != 1 {
		return Outcome{EventID: eventID, Err: errors.New("choose exactly one of --sent WAMID, --resend or --abandon")}
	}
	return o.act(ctx, eventID, func(tx pgx.Tx, n *ledger.Notification) (ledger.Status, error) {
		if n.Status != ledger.StatusInDoubt {
			return "", fmt.Errorf("%w: %s is %s; resolve settles in_doubt notifications only", ErrNotAllowed, eventID, n.Status)
		}
		switch {
		case r.SentAs != "":
			track, err := o.Jobs.InsertTx(ctx, tx, jobs.TrackArgs{NotificationID: n.ID, Wamid: r.SentAs, EventID: n.EventID}, jobs.TrackOne(traced(n)))
			if err != nil {
				return "", err
			}
			res, err := o.Ledger.Apply(ctx, tx, []ledger.Report{{NotificationID: n.ID, Wamid: r.SentAs,
				Status: string(ledger.StatusSent), Source: ledger.SourceOperator, TrackJobID: track.Job.ID,
				Detail: detail(map[string]any{"reason": "operator confirmed the message was sent", "by": o.Who})}})
			if err != nil {
				return "", err
			}
			if len(res.Changes) == 0 {
				return "", fmt.Errorf("%s was not changed", eventID)
			}
			return ledger.StatusSent, nil
		case r.Resend:
			return ledger.StatusQueued, o.requeue(ctx, tx, n, "operator: not sent, send again")
		default:
			return ledger.StatusFailed, o.Ledger.Move(ctx, tx, n, ledger.Move{To: ledger.StatusFailed, Source: ledger.SourceOperator,
				ErrorCode: "abandoned", Error: "abandoned by an operator: whether 1MSG sent it is unknown, and it will not be resent",
				Detail: map[string]any{"by": o.Who}})
		}
	})
}

// requeue puts n back in the queue with a new send job.
func (o *Operator) requeue(ctx context.Context, tx pgx.Tx, n *ledger.Notification, reason string) error {
	redrives, err := ledger.CountEvents(ctx, tx, n.ID, ledger.SourceOperator, ledger.StatusQueued)
	if err != nil {
		return err
	}
	if err := o.Ledger.Move(ctx, tx, n, ledger.Move{To: ledger.StatusQueued, Source: ledger.SourceOperator, Reason: reason,
		Reset: true, Detail: map[string]any{"by": o.Who}}); err != nil {
		return err
	}
	_, err = o.Jobs.InsertTx(ctx, tx, jobs.SendArgsOf(n, redrives+1), traced(n))
	return err
}

// act runs fn on the locked notification of eventID in one transaction.
func (o *Operator) act(ctx context.Context, eventID string, fn func(pgx.Tx, *ledger.Notification) (ledger.Status, error)) Outcome {
	out := Outcome{EventID: eventID}
	out.Err = pgx.BeginFunc(ctx, o.Pool, func(tx pgx.Tx) error {
		n, err := ledger.LockByEventID(ctx, tx, eventID)
		if errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("no notification for event_id %q (check the id; a row not relayed yet has none)", eventID)
		}
		if err != nil {
			return err
		}
		out.From = n.Status
		out.To, err = fn(tx, n)
		return err
	})
	return out
}

func detail(m map[string]any) []byte {
	b, _ := json.Marshal(m)
	return b
}

// traced keeps a re-driven notification's jobs in its trace.
func traced(n *ledger.Notification) *river.InsertOpts {
	if md := tracing.Metadata(n.TraceParent); md != nil {
		return &river.InsertOpts{Metadata: md}
	}
	return nil
}
