// Package jobs holds cancelnotify's River jobs: the send job that turns a
// queued notification into one WhatsApp template message, and the track job
// that follows the message until WhatsApp reports a final status. It also
// builds the River client that works them.
//
// Every hand-off is one Postgres transaction: the send job records its
// intent before calling 1MSG and records the answer, the track job and its
// own completion (JobCompleteTx) together, so a crash at any point leaves a
// state the next attempt can finish without a second message.
package jobs

import (
	"encoding/json"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// Queues.
const (
	QueueSend = "cancelnotify_send"
	// QueueTrack is where track jobs go since their args became ids
	// (TrackArgs.IDs). A daemon of an older version reads only the forms it
	// knows and would complete a job of ids without following its messages,
	// so such jobs go to a queue only newer daemons work: during a rolling
	// restart they wait for those, never for an old one.
	QueueTrack = "cancelnotify_track_ids"
	// QueueTrackBefore is the queue of the track jobs older daemons insert
	// and inserted; every daemon works it too.
	QueueTrackBefore = "cancelnotify_track"
)

// allStates makes a unique key hold for the whole life of the job row, so a
// second insert for the same notification is skipped even after the first
// job finished or was cancelled.
var allStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
	rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// SendArgs asks for one notification to be sent. Its fields are few on
// purpose: River indexes every key and value of a job's args (a GIN index)
// and writes those entries again at each of the job's three writes; see
// SendArgsOf.
type SendArgs struct {
	// NotificationID is the row to send; its event id is on the row (the
	// args carried it too until each of the job's writes was found to pay
	// 70 bytes of WAL for it; older jobs still have it, and nothing reads it).
	NotificationID int64 `json:"notification_id"`
	// Channel names the notification's channel, so the job can wait for
	// the channel's send rate before it touches the row; "" is the
	// default channel.
	Channel string `json:"channel,omitempty"`
	// Redrive counts operator re-drives of a failed or expired row.
	Redrive int `json:"redrive,omitempty"`
}

// SendArgsOf returns the args of n's send job, the redrive-th re-drive
// (0: the relay's first job).
func SendArgsOf(n *ledger.Notification, redrive int) SendArgs {
	a := SendArgs{NotificationID: n.ID, Redrive: redrive}
	if n.Channel != ledger.DefaultChannel {
		a.Channel = n.Channel
	}
	return a
}

// Kind implements river.JobArgs.
func (SendArgs) Kind() string { return "cancelnotify_send" }

// InsertOpts implements river.JobArgsWithInsertOpts. A send job has no
// River unique key: the relay inserts it in the transaction that creates
// the notification (unique per outbox row), a re-drive in the transaction
// that moves the row back to queued, and a second job for one row could not
// send twice anyway: the worker sends only a row it moved from queued to
// sending under the row's lock. The key cost each message a unique index
// entry at every write of its job (350 bytes of WAL).
func (SendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSend, MaxAttempts: sendMaxAttempts}
}

// TrackArgs asks for accepted messages to be followed to a final status.
// The send worker records acceptances in shared transactions (group
// commit), and each such transaction inserts one track job for all the
// messages it recorded (IDs): one River job per batch instead of one per
// message, so following a message costs the database a fraction of a job
// (README, "How messages are followed"). The job names the rows only: each
// row records its wamid and, as track_job_id, the job that follows it, so
// a re-driven row (new wamid, new track job) is no longer this job's. A
// job for one message (NotificationID, Wamid, EventID) is what a rescued
// send job and an operator's `resolve --sent-as` insert.
type TrackArgs struct {
	IDs []int64 `json:"ids,omitempty"`
	// Messages is the batch form before IDs: each message with its wamid,
	// which cost every write of the job two GIN index entries per message
	// (a wamid is 60 bytes). Jobs enqueued by older versions still have it.
	Messages       []TrackedMessage `json:"messages,omitempty"`
	NotificationID int64            `json:"notification_id,omitempty"`
	Wamid          string           `json:"wamid,omitempty" river:"unique"`
	EventID        string           `json:"event_id,omitempty"`
}

// TrackedMessage is one message of a track job. Wamid is "" for the
// messages of IDs: the row has it.
type TrackedMessage struct {
	NotificationID int64  `json:"notification_id"`
	Wamid          string `json:"wamid"`
}

// messages returns the messages the job follows, whichever form it has.
func (a TrackArgs) messages() []TrackedMessage {
	var out []TrackedMessage
	if a.NotificationID != 0 {
		out = append(out, TrackedMessage{NotificationID: a.NotificationID, Wamid: a.Wamid})
	}
	for _, id := range a.IDs {
		out = append(out, TrackedMessage{NotificationID: id})
	}
	return append(out, a.Messages...)
}

// Kind implements river.JobArgs.
func (TrackArgs) Kind() string { return "cancelnotify_track" }

// InsertOpts implements river.JobArgsWithInsertOpts. A batch's job needs
// no unique key: the transaction that inserts it is the one that records
// its messages' wamids, so it cannot happen twice. A job for one message
// is unique by wamid (TrackOne).
func (TrackArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueTrack, MaxAttempts: trackMaxAttempts}
}

// TrackOne returns the insert options of a job that follows one message:
// unique by its wamid, so inserting it again is a no-op.
func TrackOne(opts *river.InsertOpts) *river.InsertOpts {
	if opts == nil {
		opts = &river.InsertOpts{}
	}
	opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: allStates}
	return opts
}

const (
	// Attempts are consumed only by unexpected errors (database trouble,
	// bugs): 1MSG outages and throttling snooze, which costs no attempt.
	// With pauses capped at a minute (NextRetry), 100 attempts ride out
	// about an hour and a half of database trouble.
	sendMaxAttempts  = 100
	trackMaxAttempts = 100
)

// snoozes returns how often a job was snoozed so far (River counts them in
// the job's metadata).
func snoozes(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	return m.Snoozes
}

// backoff doubles from base per snooze up to max.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// mustJSON encodes v for an event's detail; encoding our own types cannot
// fail, and a detail is not worth failing a job over.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
