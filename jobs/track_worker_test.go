package jobs

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// sent makes a notification that 1MSG accepted, through the send worker,
// and returns it with its track job.
func (b *workerBundle) sent(t *testing.T) (*ledger.Notification, *rivertype.JobRow) {
	t.Helper()
	n := b.notification(t, ledger.New{})
	requireEvent(t, b.work(t, n), river.EventKindJobCompleted)
	n = b.get(t, n.ID)
	requireStatus(t, n, ledger.StatusSent, "")
	return n, requireTracked(t, b, n).JobRow
}

func (b *workerBundle) workTrack(t *testing.T, job *rivertype.JobRow) *rivertest.WorkResult {
	t.Helper()
	res, err := b.track.WorkJob(b.ctx, t, b.tx, job)
	if err != nil {
		t.Fatalf("track job: %v", err)
	}
	return res
}

// waitSandbox waits until the sandbox has reported want for wamid.
func waitSandbox(t *testing.T, sb *sandbox.Server, wamid, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m, ok := sb.Message(wamid); ok && m.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox never reported %s for %s", want, wamid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTrackWorker covers the track worker: a poll that finds the final
// status, the back-off while there is none, the deadline, and a row a
// webhook already settled.
func TestTrackWorker(t *testing.T) {
	t.Parallel()

	t.Run("FinalStatusByPoll", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{}) // delivered and read at once
		n, job := b.sent(t)
		waitSandbox(t, b.sb, n.Wamid, sandbox.StatusRead)

		requireEvent(t, b.workTrack(t, job), river.EventKindJobCompleted)
		got := b.get(t, n.ID)
		requireStatus(t, got, ledger.StatusRead, "")
		if got.DeliveredAt == nil || got.ReadAt == nil {
			t.Errorf("delivered_at %v read_at %v; want both from hookInfo", got.DeliveredAt, got.ReadAt)
		}
		if calls := b.sb.Stats().HookInfoCalls; calls != 1 {
			t.Errorf("%d hookInfo calls, want 1", calls)
		}
		// hookInfo repeats sent; it is recorded once per poll source.
		want := []string{"queued/daemon", "sending/daemon", "sent/api", "sent/poll", "delivered/poll", "read/poll"}
		if ev := b.events(t, n.ID); !reflect.DeepEqual(ev, want) {
			t.Errorf("history %v, want %v", ev, want)
		}
	})

	t.Run("SnoozesWithBackOff", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
			c.DeliveredAfter, c.ReadAfter = time.Hour, time.Hour
		}})
		n, job := b.sent(t)

		// No final status yet: the pause doubles from TrackFirstPoll (5s).
		res := b.workTrack(t, job)
		requireSnoozedFor(t, res, 10*time.Second)
		res = b.workTrack(t, res.Job)
		requireSnoozedFor(t, res, 20*time.Second)
		if res.Job.Attempt != 0 {
			t.Errorf("track job at attempt %d; polling must use none", res.Job.Attempt)
		}
		requireStatus(t, b.get(t, n.ID), ledger.StatusSent, "")
		if calls := b.sb.Stats().HookInfoCalls; calls != 2 {
			t.Errorf("%d hookInfo calls, want 2", calls)
		}
		// hookInfo repeats the whole history; the second poll adds nothing.
		want := []string{"queued/daemon", "sending/daemon", "sent/api", "sent/poll"}
		if ev := b.events(t, n.ID); !reflect.DeepEqual(ev, want) {
			t.Errorf("history %v, want %v", ev, want)
		}
	})

	t.Run("DeadlineExpires", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{
			sandbox: func(c *sandbox.Config) { c.DeliveredAfter, c.ReadAfter = time.Hour, time.Hour },
			config:  func(c *Config) { c.TrackFor = time.Hour },
		})
		n, job := b.sent(t)
		if _, err := b.pool.Exec(b.ctx, "UPDATE notification SET sent_at = now() - interval '2 hours' WHERE id = $1", n.ID); err != nil {
			t.Fatal(err)
		}

		requireEvent(t, b.workTrack(t, job), river.EventKindJobCompleted)
		requireStatus(t, b.get(t, n.ID), ledger.StatusExpired, "")
		if calls := b.sb.Stats().HookInfoCalls; calls != 0 {
			t.Errorf("%d hookInfo calls after the deadline, want 0", calls)
		}
		if ev := b.events(t, n.ID); ev[len(ev)-1] != "expired/daemon" {
			t.Errorf("history %v, want it to end with expired/daemon", ev)
		}
	})

	t.Run("AlreadyFinal", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{})
		n, job := b.sent(t)
		// A webhook brought the final status meanwhile.
		err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.cfg.Ledger.Apply(b.ctx, tx, []ledger.Report{{Wamid: n.Wamid, Status: "read", Source: ledger.SourceWebhook}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		requireEvent(t, b.workTrack(t, job), river.EventKindJobCompleted)
		if calls := b.sb.Stats().HookInfoCalls; calls != 0 {
			t.Errorf("%d hookInfo calls for a final row, want 0", calls)
		}
	})
}

// batch inserts the track job of one acceptance batch of ns, as the send
// worker's acceptance does: the job names the rows, each row names the job.
func (b *workerBundle) batch(t *testing.T, ns ...*ledger.Notification) *rivertype.JobRow {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{Schema: b.schema})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	res, err := client.Insert(b.ctx, TrackArgs{IDs: ids}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(b.ctx, "UPDATE notification SET track_job_id = $1 WHERE id = ANY($2)", res.Job.ID, ids); err != nil {
		t.Fatal(err)
	}
	return res.Job
}

// TestTrackWorkerBatch: one job follows a whole acceptance batch. It polls
// only the messages still open and still its own, sleeps while any is, and
// completes when the last one is final or expired.
func TestTrackWorkerBatch(t *testing.T) {
	t.Parallel()
	b := setupWorkers(t, setupOpts{
		sandbox: func(c *sandbox.Config) { c.DeliveredAfter, c.ReadAfter = time.Hour, time.Hour },
		config:  func(c *Config) { c.TrackFor = time.Hour },
	})
	var ns []*ledger.Notification
	for i := range 4 {
		n := b.notification(t, ledger.New{OutboxID: int64(i + 1), EventID: "order-" + strconv.Itoa(i) + "-cancelled",
			Phone: "7900123456" + strconv.Itoa(i)})
		requireEvent(t, b.work(t, n), river.EventKindJobCompleted)
		ns = append(ns, b.get(t, n.ID))
	}
	// The fourth row is another job's now, as after a re-drive: the batch
	// lists it but must leave it alone.
	job := b.batch(t, ns...)
	if _, err := b.pool.Exec(b.ctx, "UPDATE notification SET track_job_id = $1 WHERE id = $2", ns[3].TrackJobID, ns[3].ID); err != nil {
		t.Fatal(err)
	}
	webhook := func(n *ledger.Notification, status string) {
		t.Helper()
		err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.cfg.Ledger.Apply(b.ctx, tx, []ledger.Report{{Wamid: n.Wamid, Status: status, Source: ledger.SourceWebhook}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	webhook(ns[0], "read") // final before the job first runs
	calls := func() int64 { return b.sb.Stats().HookInfoCalls }

	res := b.workTrack(t, job)
	requireEvent(t, res, river.EventKindJobSnoozed)
	if got := calls(); got != 2 {
		t.Errorf("first wake-up: %d hookInfo calls, want 2 (neither the final message nor the other job's is polled)", got)
	}
	if ev := b.events(t, ns[3].ID); ev[len(ev)-1] != "sent/api" {
		t.Errorf("the other job's notification %d history %v: the batch polled it", ns[3].ID, ev)
	}
	for _, n := range ns[1:3] {
		if ev := b.events(t, n.ID); ev[len(ev)-1] != "sent/poll" {
			t.Errorf("notification %d history %v, want the poll's sent recorded", n.ID, ev)
		}
	}

	webhook(ns[1], "delivered")
	res = b.workTrack(t, res.Job)
	requireEvent(t, res, river.EventKindJobSnoozed)
	if got := calls(); got != 3 {
		t.Errorf("second wake-up: %d hookInfo calls in all, want 3 (only the open message polled)", got)
	}

	if _, err := b.pool.Exec(b.ctx, "UPDATE notification SET sent_at = now() - interval '2 hours' WHERE id = $1", ns[2].ID); err != nil {
		t.Fatal(err)
	}
	requireEvent(t, b.workTrack(t, res.Job), river.EventKindJobCompleted)
	if got := calls(); got != 3 {
		t.Errorf("last wake-up: %d hookInfo calls in all, want 3 (an expired message is not polled)", got)
	}
	for i, want := range []ledger.Status{ledger.StatusRead, ledger.StatusDelivered, ledger.StatusExpired} {
		requireStatus(t, b.get(t, ns[i].ID), want, "")
	}
}

// PollRate paces hookInfo calls across the job's messages: the sandbox sees
// them no closer together than the rate allows.
func TestTrackWorkerPollRate(t *testing.T) {
	t.Parallel()
	b := setupWorkers(t, setupOpts{
		sandbox: func(c *sandbox.Config) { c.DeliveredAfter, c.ReadAfter = time.Hour, time.Hour },
		config:  func(c *Config) { c.PollRate, c.TrackWorkers = 10, 1 },
	})
	var msgs []TrackedMessage
	for i := range 4 {
		n := b.notification(t, ledger.New{OutboxID: int64(i + 1), EventID: "order-" + strconv.Itoa(i) + "-cancelled",
			Phone: "7900123456" + strconv.Itoa(i)})
		requireEvent(t, b.work(t, n), river.EventKindJobCompleted)
		msgs = append(msgs, TrackedMessage{NotificationID: n.ID, Wamid: b.get(t, n.ID).Wamid})
	}
	start := time.Now()
	// The messages with their wamids: the form of jobs enqueued before IDs.
	res, err := b.track.Work(b.ctx, t, b.tx, TrackArgs{Messages: msgs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	requireEvent(t, res, river.EventKindJobSnoozed)
	if calls := b.sb.Stats().HookInfoCalls; calls != 4 {
		t.Fatalf("%d hookInfo calls, want 4", calls)
	}
	// A burst of TrackWorkers (1), then one per 100 ms: the four calls
	// cannot all have been made in less than 300 ms.
	if took < 300*time.Millisecond {
		t.Errorf("4 hookInfo calls at 10/s made within %s; want at least 300 ms", took)
	}
}

// Acceptances that arrive together share one transaction and so one track
// job: the transaction waits acceptLinger for more before it starts. Of five
// sends answered at once, at most two transactions (the Writer's in-flight
// limit) record the acceptances; without the wait the first would start
// with one message and the rest would follow in two or three more.
func TestAcceptancesShareTrackJobs(t *testing.T) {
	t.Parallel()
	b := setupWorkers(t, setupOpts{})
	const sends = 5
	var ns []*ledger.Notification
	for i := range sends {
		ns = append(ns, b.notification(t, ledger.New{OutboxID: int64(i + 1), EventID: "order-" + strconv.Itoa(i) + "-cancelled",
			Phone: "7900123456" + strconv.Itoa(i)}))
	}
	errs := make(chan error, sends)
	for _, n := range ns {
		go func() {
			res, err := b.send.Work(b.ctx, t, b.tx, SendArgsOf(n, 0), nil)
			if err == nil && res.EventKind != river.EventKindJobCompleted {
				err = fmt.Errorf("notification %d: send job %s", n.ID, res.EventKind)
			}
			errs <- err
		}()
	}
	for range sends {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var jobs, rows int
	if err := b.pool.QueryRow(b.ctx, `SELECT count(DISTINCT track_job_id), count(*) FROM notification
		WHERE status = 'sent' AND track_job_id IS NOT NULL`).Scan(&jobs, &rows); err != nil {
		t.Fatal(err)
	}
	if rows != sends || jobs < 1 || jobs > 2 {
		t.Errorf("%d sent rows in %d track jobs; want %d in one or two", rows, jobs, sends)
	}
}
