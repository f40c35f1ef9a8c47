package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	// The webhook's final statuses deleted the track jobs, which never ran.
	e.waitFor(5*time.Second, "track jobs deleted", func() bool {
		var left int
		err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'cancelnotify_track'").Scan(&left)
		return err == nil && left == 0
	})
	var tracked int
	_ = e.pool.QueryRow(context.Background(), "SELECT count(*) FROM notification WHERE track_job_id IS NOT NULL").Scan(&tracked)
	if tracked != 60 {
		t.Errorf("%d notifications know their track job, want 60", tracked)
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
	time.Sleep(time.Second)
	proxy.Restore()
	e.waitAsPlanned(60*time.Second, []string{"order-1-cancelled"})
	if n := e.notification("order-1-cancelled"); n.Status != ledger.StatusRead {
		t.Errorf("status %s, want read", n.Status)
	}
	if st := e.sb.Stats(); st.HookInfoCalls != 0 {
		t.Logf("hookInfo calls: %d (the safety net)", st.HookInfoCalls)
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

	const callbackSecret = "crm-shared-secret"
	var mu sync.Mutex
	got := map[string][]string{} // event_id → statuses received
	var refused int
	down := true
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if down {
			refused++
			http.Error(w, "CRM down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get(jobs.SignatureHeader) != jobs.Sign([]byte(callbackSecret), body) {
			t.Errorf("bad signature %q", r.Header.Get(jobs.SignatureHeader))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var a ledger.Announcement
		if err := json.Unmarshal(body, &a); err != nil {
			t.Error(err)
		}
		got[a.EventID] = append(got[a.EventID], string(a.Status))
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

	time.Sleep(3 * time.Second) // the CRM stays down through a few retries
	mu.Lock()
	down = false
	mu.Unlock()
	want := map[string]string{"order-0": "[delivered read]", "order-1": "[delivered read]", "order-2": "[failed]", "order-bad": "[rejected]"}
	e.waitFor(60*time.Second, "every callback delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, st := range got {
			n += len(st)
		}
		return n >= 6
	})
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive now
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
}

func fmtList(s []string) string {
	b, _ := json.Marshal(s)
	out := string(b)
	return "[" + replaceAll(out[1:len(out)-1], `","`, " ", `"`, "") + "]"
}
