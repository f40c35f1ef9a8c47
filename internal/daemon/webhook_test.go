package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/jobs"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// checkAsPlanned asserts every event ended as the sandbox decided.
func (e *env) checkAsPlanned(ids []string) {
	e.t.Helper()
	byID := map[string]sandbox.Message{}
	for _, m := range e.sb.Messages() {
		byID[m.ID] = m
	}
	for _, id := range ids {
		n := e.notification(id)
		m, ok := byID[n.Wamid]
		if !ok || string(n.Status) != m.Planned {
			e.t.Errorf("%s: %s (wamid %s); sandbox planned %q", id, n.Status, n.Wamid, m.Planned)
		}
	}
}

// waitAsPlanned waits until every event has the status the sandbox planned
// (read can follow delivered, which is already final).
func (e *env) waitAsPlanned(timeout time.Duration, ids []string) {
	e.t.Helper()
	e.waitFinal(timeout, ids...)
	e.waitFor(timeout, "statuses as the sandbox planned", func() bool {
		planned := map[string]string{}
		for _, m := range e.sb.Messages() {
			planned[m.ID] = m.Planned
		}
		rows, err := e.pool.Query(context.Background(), "SELECT coalesce(wamid, ''), status FROM notification WHERE event_id = ANY($1)", ids)
		if err != nil {
			return false
		}
		defer rows.Close()
		for rows.Next() {
			var w, st string
			if rows.Scan(&w, &st) != nil || planned[w] != st {
				return false
			}
		}
		return true
	})
}

// With a healthy webhook every status arrives by push: no hookInfo calls.
// Duplicate and out-of-order acks change nothing.
func TestWebhookBringsStatusesWithoutPolling(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.FailSuffixes = []string{"07"}
	sbcfg.NoReadRate = 0.2
	sbcfg.Faults = sandbox.Faults{DuplicateAcks: 0.3, OutOfOrderAcks: 0.3}
	e := newEnv(t, sbcfg)
	d := e.start(withWebhook(e.config()))
	e.registerWebhook(d)

	var ids []string
	for i := range 60 {
		id := "order-" + itoa(i)
		ids = append(ids, id)
		e.insert(id, orderPayload(i))
	}
	e.waitAsPlanned(30*time.Second, ids)
	e.checkAsPlanned(ids)
	st := e.sb.Stats()
	if st.HookInfoCalls != 0 {
		t.Errorf("%d hookInfo calls; want 0 while the webhook is healthy", st.HookInfoCalls)
	}
	if st.WebhookPushes == 0 || st.WebhookPushFailures != 0 {
		t.Errorf("pushes %d, failures %d", st.WebhookPushes, st.WebhookPushFailures)
	}
	// Each acceptance batch has one track job, on every row of the batch.
	var tracked, trackJobs int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT track_job_id) FROM notification n
		WHERE EXISTS (SELECT 1 FROM river_job j WHERE j.id = n.track_job_id AND j.kind = 'cancelnotify_track')`).Scan(&tracked, &trackJobs)
	if tracked != 60 || trackJobs == 0 || trackJobs > 60 {
		t.Errorf("%d notifications know their track job, %d jobs; want 60 in at most 60", tracked, trackJobs)
	}
	// Woken now instead of in a minute, they find every message final and
	// complete without asking 1MSG.
	if _, err := e.pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE kind = 'cancelnotify_track' AND state = 'scheduled'`); err != nil {
		t.Fatal(err)
	}
	e.waitFor(10*time.Second, "track jobs completed", func() bool {
		var left int
		err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'cancelnotify_track' AND state <> 'completed'").Scan(&left)
		return err == nil && left == 0
	})
	if calls := e.sb.Stats().HookInfoCalls; calls != 0 {
		t.Errorf("%d hookInfo calls by track jobs of final messages, want 0", calls)
	}
	ws := d.Webhook().Stats()
	t.Logf("sandbox pushed %d acks in %d requests; receiver wrote %d statuses in %d transactions",
		st.AcksPushed, st.WebhookPushes, ws.Statuses, ws.Batches)
}

// Webhooks off at the sandbox: polling alone brings every message to a final
// status.
func TestPollingAloneWhenNoPushes(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.WebhooksDisabled = true
	sbcfg.FailSuffixes = []string{"03"}
	e := newEnv(t, sbcfg)
	cfg := withWebhook(e.config())
	cfg.TrackFirstPoll = 300 * time.Millisecond
	d := e.start(cfg)
	e.registerWebhook(d)
	var ids []string
	for i := range 20 {
		id := "order-" + itoa(i)
		ids = append(ids, id)
		e.insert(id, orderPayload(i))
	}
	e.waitFinal(30*time.Second, ids...)
	e.checkAsPlanned(ids) // failed ones fail; the rest stop at delivered (the track job's final)
	if st := e.sb.Stats(); st.WebhookPushes != 0 || st.HookInfoCalls == 0 {
		t.Errorf("pushes %d, hookInfo calls %d; want statuses from polling only", st.WebhookPushes, st.HookInfoCalls)
	}
}

// Postgres unreachable while 1MSG pushes: the receiver answers 5xx, 1MSG
// retries, and the statuses are applied once Postgres is back.
func TestWebhookRetriedAfterDatabaseOutage(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.DeliveredAfter, sbcfg.ReadAfter = 500*time.Millisecond, 700*time.Millisecond
	e := newEnv(t, sbcfg)
	proxy := dbtest.NewProxy(t)
	cfg := withWebhook(e.config())
	cfg.DatabaseURL = proxy.URL(t)
	d := e.start(cfg)
	e.registerWebhook(d)

	e.insert("order-1-cancelled", seedPayload())
	e.waitFor(10*time.Second, "the message to be sent", func() bool {
		n, err := ledger.GetByEventID(context.Background(), e.pool, "order-1-cancelled")
		return err == nil && n.Wamid != ""
	})
	proxy.Cut()
	e.waitFor(10*time.Second, "a push refused while Postgres is away", func() bool { return e.sb.Stats().WebhookPushFailures > 0 })
	e.waitFor(10*time.Second, "1MSG to retry the refused push", func() bool { return e.sb.Stats().WebhookPushFailures >= 3 })
	proxy.Restore()
	e.waitAsPlanned(60*time.Second, []string{"order-1-cancelled"})
	if n := e.notification("order-1-cancelled"); n.Status != ledger.StatusRead {
		t.Errorf("status %s, want read", n.Status)
	}
	// The first hookInfo poll is a minute away with webhooks on: the statuses
	// came by 1MSG's retried push, as the README promises.
	if st := e.sb.Stats(); st.HookInfoCalls != 0 {
		t.Errorf("%d hookInfo calls; want 0, the retried push brings the statuses", st.HookInfoCalls)
	}
	if h := strings.Join(e.history(e.notification("order-1-cancelled")), ","); !strings.Contains(h, "read") {
		t.Errorf("history %s has no read", h)
	}
}

// A LISTEN client gets every status change; the CRM callback gets each
// final status once, signed, even after being down for a while.
func TestListenAndCallbacks(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.FailSuffixes = []string{"02"}
	sbcfg.Faults = sandbox.Faults{DuplicateAcks: 0.5}
	e := newEnv(t, sbcfg)

	const callbackSecret = testCallbackSecret
	verifier, err := standardwebhooks.NewWebhook(callbackSecret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}       // event_id → statuses received
	refusedIDs := map[string]bool{}    // webhook-id of each delivery refused while down
	acceptedIDs := map[string]string{} // webhook-id → event_id/status accepted
	var refused int
	var sample *http.Request
	var sampleBody []byte
	down := true
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := verifier.Verify(body, r.Header); err != nil {
			t.Errorf("Standard Webhooks verifier refused a callback: %v (headers %v)", err, r.Header)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(jobs.HeaderID)
		if down {
			refused++
			refusedIDs[id] = true
			http.Error(w, "CRM down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var a ledger.Announcement
		if err := json.Unmarshal(body, &a); err != nil {
			t.Error(err)
		}
		if want := jobs.DeliveryID(e.schema, a.NotificationID, a.Status); id != want {
			t.Errorf("webhook-id %q, want %q", id, want)
		}
		if prev, dup := acceptedIDs[id]; dup {
			t.Errorf("webhook-id %q delivered twice (%s)", id, prev)
		}
		acceptedIDs[id] = a.EventID + "/" + string(a.Status)
		got[a.EventID] = append(got[a.EventID], string(a.Status))
		sample, sampleBody = r.Clone(context.Background()), body
	}))
	t.Cleanup(crm.Close)

	conn, err := pgx.ConnectConfig(context.Background(), e.pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(context.Background(), "LISTEN "+ledger.StatusChannel); err != nil {
		t.Fatal(err)
	}

	cfg := withWebhook(e.config())
	cfg.CallbackURL, cfg.CallbackSecret = crm.URL, callbackSecret
	d := e.start(cfg)
	e.registerWebhook(d)

	ids := []string{"order-0", "order-1", "order-2", "order-bad"}
	for i := range 3 {
		e.insert(ids[i], orderPayload(i))
	}
	e.insert("order-bad", payload{"phone": "123"})
	e.waitAsPlanned(30*time.Second, ids[:3])
	e.waitFinal(10*time.Second, "order-bad")

	// The LISTEN client saw each change of order-0, in order.
	var listened []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(listened) < 5 {
		nt, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("LISTEN got %v then %v", listened, err)
		}
		for _, line := range strings.Split(nt.Payload, "\n") { // one change per line
			var a ledger.Announcement
			_ = json.Unmarshal([]byte(line), &a)
			if a.Schema == e.schema && a.EventID == "order-0" {
				listened = append(listened, string(a.Status))
			}
		}
	}
	if want := "[queued sending sent delivered read]"; fmtList(listened) != want {
		t.Errorf("LISTEN saw %v, want %s", listened, want)
	}

	want := map[string]string{"order-0": "[delivered read]", "order-1": "[delivered read]", "order-2": "[failed]", "order-bad": "[rejected]"}
	// The CRM stays down until a retry was refused too: there are six facts
	// (delivered and read twice, failed, rejected), so a seventh refusal is a
	// retry.
	e.waitFor(30*time.Second, "a refused callback retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused > 6
	})
	mu.Lock()
	down = false
	mu.Unlock()
	e.waitFor(60*time.Second, "every callback delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, st := range got {
			n += len(st)
		}
		return n >= 6
	})
	// A duplicate could only come from a callback job still to run.
	e.waitFor(10*time.Second, "no callback job left to run", func() bool {
		var n int
		err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job
			WHERE kind = 'cancelnotify_callback' AND state NOT IN ('completed', 'cancelled', 'discarded')`).Scan(&n)
		return err == nil && n == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for id, w := range want {
		if g := fmtList(sorted(got[id])); g != w {
			t.Errorf("%s: CRM got %s, want %s once each", id, g, w)
		}
	}
	if refused == 0 {
		t.Error("the CRM outage was never exercised")
	}
	// A retry carries the id of the delivery it repeats.
	for id := range refusedIDs {
		if _, ok := acceptedIDs[id]; !ok {
			t.Errorf("webhook-id %q of a refused delivery never came back on a retry; accepted: %v", id, acceptedIDs)
		}
	}

	// A captured callback replayed later is refused by the verifier: an old
	// timestamp fails the tolerance, and a fresh one breaks the signature.
	stale := sample.Header.Clone()
	stale.Set(jobs.HeaderTimestamp, strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10))
	if err := verifier.Verify(sampleBody, stale); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Errorf("stale timestamp: Verify = %v, want ErrMessageTooOld", err)
	}
	refreshed := sample.Header.Clone()
	refreshed.Set(jobs.HeaderTimestamp, strconv.FormatInt(time.Now().Unix()+1, 10))
	if err := verifier.Verify(sampleBody, refreshed); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("replay with a new timestamp: Verify = %v, want ErrNoMatchingSignature", err)
	}
	if err := verifier.Verify(append(sampleBody, ' '), sample.Header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("altered body: Verify = %v, want ErrNoMatchingSignature", err)
	}
}

// testCallbackSecret is a Standard Webhooks secret (whsec_ + 32 bytes).
const testCallbackSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="

func fmtList(s []string) string {
	b, _ := json.Marshal(s)
	out := string(b)
	return "[" + replaceAll(out[1:len(out)-1], `","`, " ", `"`, "") + "]"
}

// A track job queued by an older daemon (its queue, its form of args: one
// message with its wamid) is worked by this one: during a rolling restart
// nothing an old daemon queued is left unfollowed.
func TestTrackJobOfAnOlderDaemon(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.WebhooksDisabled = true
	e := newEnv(t, sbcfg)
	cfg := e.config()
	cfg.TrackFirstPoll = time.Hour // this daemon's own track job stays asleep
	e.start(cfg)
	e.insert("order-old-track", orderPayload(1))
	var id int64
	var wamid string
	e.waitFor(10*time.Second, "the message accepted", func() bool {
		err := e.pool.QueryRow(context.Background(), "SELECT id, coalesce(wamid, '') FROM notification WHERE event_id = 'order-old-track'").Scan(&id, &wamid)
		return err == nil && wamid != ""
	})
	var jobID int64
	if err := e.pool.QueryRow(context.Background(), `INSERT INTO river_job (kind, args, queue, state, max_attempts, priority, scheduled_at)
		VALUES ('cancelnotify_track', jsonb_build_object('notification_id', $1::bigint, 'wamid', $2::text), $3, 'available', 100, 1, now())
		RETURNING id`, id, wamid, jobs.QueueTrackBefore).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	e.waitFinal(15*time.Second, "order-old-track")
	e.waitFor(10*time.Second, "the older daemon's track job completed", func() bool {
		var state string
		err := e.pool.QueryRow(context.Background(), "SELECT state::text FROM river_job WHERE id = $1", jobID).Scan(&state)
		return err == nil && state == "completed"
	})
	if calls := e.sb.Stats().HookInfoCalls; calls == 0 {
		t.Errorf("no hookInfo call: the final status did not come from the older daemon's job")
	}
}
