package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// committed is a pgx.Tx whose statements commit one by one on the pool.
// rivertest.Worker inserts and finishes the job in the transaction it is
// given, but the send worker commits transactions of its own (the intent
// before the 1MSG call, the acceptance with JobCompleteTx), and those must
// see the job row. So the tests hand rivertest the pool itself.
type committed struct{ *pgxpool.Pool }

func (committed) Commit(context.Context) error   { return nil }
func (committed) Rollback(context.Context) error { return nil }
func (committed) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }
func (committed) Conn() *pgx.Conn                { return nil }
func (committed) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, errors.New("committed: Prepare is not supported")
}

// workerBundle is what a worker test needs: a fresh schema, the sandbox
// over HTTP, and rivertest workers for send and track built from one Config
// as NewClient builds them.
type workerBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string
	tx     committed
	sb     *sandbox.Server
	cfg    Config
	send   *rivertest.Worker[SendArgs, pgx.Tx]
	track  *rivertest.Worker[TrackArgs, pgx.Tx]
}

type setupOpts struct {
	sandbox func(*sandbox.Config) // adjust the sandbox
	config  func(*Config)         // adjust the workers
	apiURL  string                // call this URL instead of the sandbox's
}

func setupWorkers(t *testing.T, o setupOpts) *workerBundle {
	t.Helper()
	pool, schema := dbtest.New(t)
	sbcfg := sandbox.DefaultConfig()
	sbcfg.DeliveredAfter, sbcfg.ReadAfter = 0, 0
	sbcfg.Seed = 1
	if o.sandbox != nil {
		o.sandbox(&sbcfg)
	}
	sb := sandbox.New(sbcfg)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	t.Cleanup(sb.Close)
	url := srv.URL
	if o.apiURL != "" {
		url = o.apiURL
	}
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: url, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Pool: pool, Schema: schema, Channels: []Channel{{API: api, Namespace: sandbox.DefaultNamespace}}, TrackFirstPoll: 5 * time.Second}
	if o.config != nil {
		o.config(&cfg)
	}
	cfg.withDefaults()
	channels, err := newChannelSet(cfg.Channels)
	if err != nil {
		t.Fatal(err)
	}
	riverCfg := &river.Config{Schema: schema}
	driver := riverpgxv5.New(nil)
	return &workerBundle{
		ctx: context.Background(), pool: pool, schema: schema, tx: committed{pool}, sb: sb, cfg: cfg,
		send:  rivertest.NewWorker(t, driver, riverCfg, newSendWorker(cfg, channels)),
		track: rivertest.NewWorker(t, driver, riverCfg, newTrackWorker(cfg, channels)),
	}
}

// seedParams are the four body texts of the seed's filled-in example.
var seedParams = []string{"Alexey", "10482", "Wireless headphones", "Payment will be refunded within 3–5 business days to the card used for the order"}

// notification creates a notification row as the relay would.
func (b *workerBundle) notification(t *testing.T, n ledger.New) *ledger.Notification {
	t.Helper()
	if n.EventID == "" {
		n.EventID = "order-10482-cancelled"
	}
	if n.OutboxID == 0 {
		n.OutboxID = 1
	}
	if n.EventCreatedAt.IsZero() {
		n.EventCreatedAt = time.Now()
	}
	if n.Phone == "" {
		n.Phone = "79001234567"
	}
	if n.Params == nil {
		n.Params = seedParams
	}
	if n.Status == "" {
		n.Status = ledger.StatusQueued
	}
	n.Template, n.Language = sandbox.DefaultTemplate, "en"
	var out *ledger.Notification
	err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		ns, err := b.cfg.Ledger.Create(b.ctx, tx, []ledger.New{n})
		if err == nil {
			out = ns[0]
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (b *workerBundle) get(t *testing.T, id int64) *ledger.Notification {
	t.Helper()
	n, err := ledger.Get(b.ctx, b.pool, id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// events returns "status/source" of each history row, oldest first.
func (b *workerBundle) events(t *testing.T, id int64) []string {
	t.Helper()
	evs, err := ledger.Events(b.ctx, b.pool, id)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Status + "/" + string(e.Source)
	}
	return out
}

// work runs one send job for n, as River would run it.
func (b *workerBundle) work(t *testing.T, n *ledger.Notification) *rivertest.WorkResult {
	t.Helper()
	res, err := b.send.Work(b.ctx, t, b.tx, SendArgsOf(n, 0), nil)
	if err != nil {
		t.Fatalf("send job: %v", err)
	}
	return res
}

// again runs the same send job once more (a snoozed job coming due).
func (b *workerBundle) again(t *testing.T, job *rivertype.JobRow) *rivertest.WorkResult {
	t.Helper()
	res, err := b.send.WorkJob(b.ctx, t, b.tx, job)
	if err != nil {
		t.Fatalf("send job, again: %v", err)
	}
	return res
}

func requireEvent(t *testing.T, res *rivertest.WorkResult, want river.EventKind) {
	t.Helper()
	if res.EventKind != want {
		t.Fatalf("job ended %s (state %s, errors %v), want %s", res.EventKind, res.Job.State, res.Job.Errors, want)
	}
}

// requireSnoozedFor checks that the job is scheduled d (±25%) from now.
func requireSnoozedFor(t *testing.T, res *rivertest.WorkResult, d time.Duration) {
	t.Helper()
	requireEvent(t, res, river.EventKindJobSnoozed)
	got := time.Until(res.Job.ScheduledAt)
	if got < d*3/4-time.Second || got > d*5/4 {
		t.Errorf("snoozed for %s, want about %s", got.Round(100*time.Millisecond), d)
	}
}

func requireStatus(t *testing.T, n *ledger.Notification, status ledger.Status, code string) {
	t.Helper()
	if n.Status != status || n.ErrorCode != code {
		t.Fatalf("notification %s, error_code %q (%s); want %s, %q", n.Status, n.ErrorCode, n.Error, status, code)
	}
}

func requireTracked(t *testing.T, b *workerBundle, n *ledger.Notification) *river.Job[*TrackArgs] {
	t.Helper()
	job := rivertest.RequireInserted[*riverpgxv5.Driver](b.ctx, t, riverpgxv5.New(b.pool), &TrackArgs{},
		&rivertest.RequireInsertedOpts{Schema: b.schema, Queue: QueueTrack, State: rivertype.JobStateScheduled})
	if want := []int64{n.ID}; !slices.Equal(job.Args.IDs, want) || job.Args.Messages != nil || job.Args.Wamid != "" {
		t.Errorf("track job args %+v; want ids %v only (the row has the wamid)", job.Args, want)
	}
	if n.TrackJobID != job.ID {
		t.Errorf("notification.track_job_id = %d, want the track job %d", n.TrackJobID, job.ID)
	}
	if first := time.Until(job.ScheduledAt); first < 3*time.Second || first > 5*time.Second {
		t.Errorf("track job first runs in %s, want TrackFirstPoll (5s)", first)
	}
	return job
}

func requireNotTracked(t *testing.T, b *workerBundle) {
	t.Helper()
	rivertest.RequireNotInserted[*riverpgxv5.Driver](b.ctx, t, riverpgxv5.New(b.pool), &TrackArgs{},
		&rivertest.RequireInsertedOpts{Schema: b.schema})
}

// TestSendWorker walks the send worker's decision table (docs/failures.md):
// one subtest per answer 1MSG can give, against the sandbox over HTTP.
func TestSendWorker(t *testing.T) {
	t.Parallel()

	t.Run("Accepted", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{})
		n := b.notification(t, ledger.New{})

		requireEvent(t, b.work(t, n), river.EventKindJobCompleted)

		msgs := b.sb.Messages()
		if len(msgs) != 1 {
			t.Fatalf("sandbox accepted %d messages, want 1", len(msgs))
		}
		got := b.get(t, n.ID)
		requireStatus(t, got, ledger.StatusSent, "")
		if got.Wamid != msgs[0].ID || got.Attempts != 1 || got.SentAt == nil {
			t.Errorf("wamid %s attempts %d sent_at %v; want %s, 1, set", got.Wamid, got.Attempts, got.SentAt, msgs[0].ID)
		}
		if ev := b.events(t, n.ID); !reflect.DeepEqual(ev, []string{"queued/daemon", "sending/daemon", "sent/api"}) {
			t.Errorf("history %v", ev)
		}
		requireTracked(t, b, got)

		reqs := b.sb.Requests()
		if len(reqs) != 1 {
			t.Fatalf("%d sendTemplate requests, want 1", len(reqs))
		}
		var body onemsg.SendTemplateRequest
		if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
			t.Fatal(err)
		}
		want := onemsg.SendTemplateRequest{Phone: "79001234567", Template: sandbox.DefaultTemplate, Namespace: sandbox.DefaultNamespace,
			Language: onemsg.Language{Policy: "deterministic", Code: "en"}, Params: onemsg.BodyParams(seedParams...)}
		if !reflect.DeepEqual(body, want) {
			t.Errorf("request body %+v\nwant %+v", body, want)
		}
		if h := reqs[0].Header.Get("Authorization"); h != "Bearer "+sandbox.DefaultToken || reqs[0].RawQuery != "" {
			t.Errorf("Authorization %q, query %q: want the Bearer header only", h, reqs[0].RawQuery)
		}
	})

	t.Run("RefusedForGood", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{})
		// Meta refuses a parameter with a tab (132018, sent:false).
		n := b.notification(t, ledger.New{Params: []string{"Alexey", "10482", "Wireless\theadphones", "Refund soon"}})

		requireEvent(t, b.work(t, n), river.EventKindJobCancelled)

		got := b.get(t, n.ID)
		requireStatus(t, got, ledger.StatusFailed, "132018")
		if got.Wamid != "" || got.FailedAt == nil {
			t.Errorf("wamid %q failed_at %v; want none, set", got.Wamid, got.FailedAt)
		}
		if st := b.sb.Stats(); st.SendRequests != 1 || st.Rejected != 1 || st.Accepted != 0 {
			t.Errorf("sandbox: %d requests, %d rejected, %d accepted; want 1, 1, 0", st.SendRequests, st.Rejected, st.Accepted)
		}
		requireNotTracked(t, b)
	})

	t.Run("Throttled", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
			c.Faults = sandbox.Faults{Status429: 1, RetryAfter: 3 * time.Second}
		}})
		n := b.notification(t, ledger.New{})

		res := b.work(t, n)
		requireSnoozedFor(t, res, 3*time.Second) // Retry-After
		got := b.get(t, n.ID)
		requireStatus(t, got, ledger.StatusQueued, "http_429")
		if res.Job.Attempt != 0 || len(res.Job.Errors) != 0 {
			t.Errorf("job at attempt %d with %d errors; a snooze gives the attempt back", res.Job.Attempt, len(res.Job.Errors))
		}

		// Once 1MSG takes it, the same job sends it.
		b.sb.SetFaults(sandbox.Faults{})
		requireEvent(t, b.again(t, res.Job), river.EventKindJobCompleted)
		requireStatus(t, b.get(t, n.ID), ledger.StatusSent, "")
		if st := b.sb.Stats(); st.SendRequests != 2 || st.Accepted != 1 {
			t.Errorf("sandbox: %d requests, %d accepted; want 2, 1", st.SendRequests, st.Accepted)
		}
	})

	t.Run("PairRateLimit", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
			c.Faults = sandbox.Faults{PairInterval: time.Minute}
		}})
		first := b.notification(t, ledger.New{})
		second := b.notification(t, ledger.New{OutboxID: 2, EventID: "order-10483-cancelled"})
		requireEvent(t, b.work(t, first), river.EventKindJobCompleted)

		// Meta's 131056 (sent:false): wait a little over Meta's 6 s.
		requireSnoozedFor(t, b.work(t, second), pairWait)
		requireStatus(t, b.get(t, second.ID), ledger.StatusQueued, "131056")
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		closed := httptest.NewServer(nil)
		closed.Close() // connection refused: the request never left
		b := setupWorkers(t, setupOpts{apiURL: closed.URL})
		n := b.notification(t, ledger.New{})

		requireSnoozedFor(t, b.work(t, n), time.Second) // back-off starts at 1s
		got := b.get(t, n.ID)
		requireStatus(t, got, ledger.StatusQueued, "not_sent")
		if got.Attempts != 1 || got.Error == "" {
			t.Errorf("attempts %d, error %q; want 1 and the transport error", got.Attempts, got.Error)
		}
	})

	t.Run("QueuedBy1MSG", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
			c.Faults = sandbox.Faults{Queued: 1, QueuedFor: time.Hour}
		}})
		n := b.notification(t, ledger.New{})

		res := b.work(t, n)
		requireSnoozedFor(t, res, 10*time.Second)
		got := b.get(t, n.ID)
		requireStatus(t, got, ledger.StatusSending, "")
		if reqs := b.sb.Requests(); len(reqs) != 1 || got.OnemsgJobID == "" || got.OnemsgJobID != reqs[0].JobID {
			t.Errorf("onemsg_job_id %q; want 1MSG's jobId of the one request", got.OnemsgJobID)
		}

		// Not in the history yet: wait for it, never send again.
		requireSnoozedFor(t, b.again(t, res.Job), 30*time.Second)
		if st := b.sb.Stats(); st.SendRequests != 1 || st.MessagesCalls != 1 {
			t.Errorf("sandbox: %d sends, %d history reads; want 1, 1", st.SendRequests, st.MessagesCalls)
		}
	})

	// Unknown outcome, then the next run reconciles with GET /messages.
	t.Run("UnknownOutcome", func(t *testing.T) {
		t.Parallel()

		t.Run("FoundInHistory", func(t *testing.T) {
			t.Parallel()
			b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
				c.Faults = sandbox.Faults{AcceptThenDrop: 1}
			}})
			n := b.notification(t, ledger.New{})

			res := b.work(t, n)
			requireEvent(t, res, river.EventKindJobSnoozed)
			requireStatus(t, b.get(t, n.ID), ledger.StatusSending, "")

			b.sb.SetFaults(sandbox.Faults{})
			requireEvent(t, b.again(t, res.Job), river.EventKindJobCompleted)
			got := b.get(t, n.ID)
			requireStatus(t, got, ledger.StatusSent, "")
			msgs := b.sb.Messages()
			if len(msgs) != 1 || got.Wamid != msgs[0].ID {
				t.Fatalf("wamid %s; sandbox has %d messages: want the dropped one adopted", got.Wamid, len(msgs))
			}
			if st := b.sb.Stats(); st.SendRequests != 1 || st.MessagesCalls != 1 {
				t.Errorf("sandbox: %d sends, %d history reads; want 1 (no resend), 1", st.SendRequests, st.MessagesCalls)
			}
			requireTracked(t, b, got)
		})

		t.Run("AbsentFromHistory", func(t *testing.T) {
			t.Parallel()
			b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
				c.Faults = sandbox.Faults{Status5xx: 1}
			}})
			n := b.notification(t, ledger.New{})

			res := b.work(t, n)
			requireEvent(t, res, river.EventKindJobSnoozed)
			requireStatus(t, b.get(t, n.ID), ledger.StatusSending, "")

			b.sb.SetFaults(sandbox.Faults{})
			requireEvent(t, b.again(t, res.Job), river.EventKindJobCompleted)
			got := b.get(t, n.ID)
			requireStatus(t, got, ledger.StatusSent, "")
			if got.Attempts != 2 {
				t.Errorf("attempts %d, want 2", got.Attempts)
			}
			if st := b.sb.Stats(); st.SendRequests != 2 || st.Accepted != 1 || st.MessagesCalls != 1 {
				t.Errorf("sandbox: %d sends, %d accepted, %d history reads; want 2, 1, 1", st.SendRequests, st.Accepted, st.MessagesCalls)
			}
			want := []string{"queued/daemon", "sending/daemon", "queued/daemon", "sending/daemon", "sent/api"}
			if ev := b.events(t, n.ID); !reflect.DeepEqual(ev, want) {
				t.Errorf("history %v, want %v", ev, want)
			}
		})

		t.Run("UndecidableInDoubt", func(t *testing.T) {
			t.Parallel()
			b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
				c.HistoryDisabled = true
				c.Faults = sandbox.Faults{AcceptThenDrop: 1}
			}})
			n := b.notification(t, ledger.New{})

			res := b.work(t, n)
			requireEvent(t, res, river.EventKindJobSnoozed)
			b.sb.SetFaults(sandbox.Faults{})

			// The channel keeps no history: absence proves nothing.
			requireEvent(t, b.again(t, res.Job), river.EventKindJobCancelled)
			got := b.get(t, n.ID)
			requireStatus(t, got, ledger.StatusInDoubt, "outcome_unknown")
			if st := b.sb.Stats(); st.SendRequests != 1 || st.Accepted != 1 {
				t.Errorf("sandbox: %d sends, %d accepted; want 1, 1 (never resent)", st.SendRequests, st.Accepted)
			}
			requireNotTracked(t, b)
		})

		t.Run("SeveralCandidatesInDoubt", func(t *testing.T) {
			t.Parallel()
			b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
				c.Faults = sandbox.Faults{AcceptThenDrop: 1}
			}})
			n := b.notification(t, ledger.New{})
			res := b.work(t, n)
			requireEvent(t, res, river.EventKindJobSnoozed)

			// Meanwhile another sender on the channel messaged the same
			// customer about the same order: two unclaimed candidates.
			b.sb.SetFaults(sandbox.Faults{})
			if _, err := b.cfg.Channels[0].API.SendTemplate(b.ctx, onemsg.SendTemplateRequest{Phone: n.Phone, Template: sandbox.DefaultTemplate,
				Namespace: sandbox.DefaultNamespace, Language: onemsg.DeterministicLanguage("en"), Params: onemsg.BodyParams(seedParams...)}); err != nil {
				t.Fatal(err)
			}

			requireEvent(t, b.again(t, res.Job), river.EventKindJobCancelled)
			got := b.get(t, n.ID)
			requireStatus(t, got, ledger.StatusInDoubt, "outcome_unknown")
			for _, m := range b.sb.Messages() {
				if !strings.Contains(got.Error, m.ID) {
					t.Errorf("in_doubt reason %q does not name candidate %s", got.Error, m.ID)
				}
			}
			if st := b.sb.Stats(); st.SendRequests != 2 {
				t.Errorf("%d sendTemplate requests, want 2 (ours and the other sender's)", st.SendRequests)
			}
		})

		t.Run("HistoryUnreachable", func(t *testing.T) {
			t.Parallel()
			b := setupWorkers(t, setupOpts{sandbox: func(c *sandbox.Config) {
				c.Faults = sandbox.Faults{AcceptThenDrop: 1}
			}})
			n := b.notification(t, ledger.New{})
			res := b.work(t, n)
			requireEvent(t, res, river.EventKindJobSnoozed)

			// 1MSG is down: no reconcile, so nothing is sent; try later.
			b.sb.SetFaults(sandbox.Faults{Down: true})
			requireEvent(t, b.again(t, res.Job), river.EventKindJobSnoozed)
			requireStatus(t, b.get(t, n.ID), ledger.StatusSending, "")
			if st := b.sb.Stats(); st.SendRequests != 1 || st.Accepted != 1 {
				t.Errorf("sandbox: %d sends, %d accepted; want 1, 1", st.SendRequests, st.Accepted)
			}
		})
	})

	// Rows the relay did not queue reach a send job only through a re-run;
	// the job finishes without calling 1MSG.
	t.Run("NotQueued", func(t *testing.T) {
		t.Parallel()
		for _, st := range []ledger.Status{ledger.StatusRejected, ledger.StatusSkipped} {
			t.Run(string(st), func(t *testing.T) {
				t.Parallel()
				b := setupWorkers(t, setupOpts{})
				n := b.notification(t, ledger.New{Status: st, ErrorCode: "test", Error: "test row"})

				requireEvent(t, b.work(t, n), river.EventKindJobCompleted)
				requireStatus(t, b.get(t, n.ID), st, "test")
				if got := b.sb.Stats().SendRequests; got != 0 {
					t.Errorf("%d sendTemplate requests, want 0", got)
				}
			})
		}
	})

	t.Run("SendDeadline", func(t *testing.T) {
		t.Parallel()
		b := setupWorkers(t, setupOpts{config: func(c *Config) { c.SendFor = time.Hour }})
		n := b.notification(t, ledger.New{EventCreatedAt: time.Now().Add(-2 * time.Hour)})

		requireEvent(t, b.work(t, n), river.EventKindJobCompleted)
		requireStatus(t, b.get(t, n.ID), ledger.StatusFailed, "not_sent_in_time")
		if got := b.sb.Stats().SendRequests; got != 0 {
			t.Errorf("%d sendTemplate requests, want 0", got)
		}
	})
}
