package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/pending"
	"github.com/cancelnotify/cancelnotify/internal/webhook"
)

const (
	secret  = "s3cr3t-webhook-path"
	channel = "ODI371267300"
)

type env struct {
	t    *testing.T
	pool *pgxpool.Pool
	l    *ledger.Ledger
	r    *webhook.Receiver
	url  string
}

func newEnv(t *testing.T, pool *pgxpool.Pool, schema string) *env {
	t.Helper()
	l := &ledger.Ledger{Schema: schema}
	r := webhook.New(webhook.Config{Pool: pool, Ledger: l, Secret: secret, Channels: []string{channel}, Timeout: 3 * time.Second})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{t: t, pool: pool, l: l, r: r, url: srv.URL}
}

// sent makes a notification 1MSG accepted as wamid.
func (e *env) sent(outboxID int64, wamid string) int64 {
	e.t.Helper()
	ctx := context.Background()
	var id int64
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		ns, err := e.l.Create(ctx, tx, []ledger.New{{OutboxID: outboxID, EventID: fmt.Sprintf("order-%d-cancelled", outboxID),
			EventCreatedAt: time.Now(), Phone: "79001234567", Template: "order_cancelled", Language: "en",
			Params: []string{"A", fmt.Sprint(outboxID), "P", "N"}, Status: ledger.StatusSending}})
		if err != nil {
			return err
		}
		id = ns[0].ID
		if wamid == "" {
			return nil
		}
		_, err = e.l.Apply(ctx, tx, []ledger.Report{{NotificationID: id, Wamid: wamid, Status: "sent", Source: ledger.SourceAPI}})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) post(path, body string) int {
	e.t.Helper()
	resp, err := http.Post(e.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) status(id int64) *ledger.Notification {
	e.t.Helper()
	n, err := ledger.Get(context.Background(), e.pool, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func ack(id, status, extra string) string {
	return fmt.Sprintf(`{"instanceId":%q,"ack":[{"id":%q,"chatId":"79001234567@c.us","phone":"79001234567","status":%q%s}]}`, channel, id, status, extra)
}

// Every accepted shape maps to the right statuses; duplicates and late or
// out-of-order statuses never downgrade; raw entries are kept.
func TestShapesAndOrdering(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	e := newEnv(t, pool, schema)
	path := webhook.PathPrefix + secret

	a := e.sent(1, "wamid.A")
	b := e.sent(2, "wamid.B")
	c := e.sent(3, "wamid.C")
	d := e.sent(4, "wamid.D")

	steps := []struct {
		body string
		want map[int64]ledger.Status
	}{
		// normalized acks, read before delivered (out of order), then a duplicate
		{ack("wamid.A", "read", ""), map[int64]ledger.Status{a: ledger.StatusRead}},
		{ack("wamid.A", "delivered", ""), map[int64]ledger.Status{a: ledger.StatusRead}},
		{ack("wamid.A", "read", ""), map[int64]ledger.Status{a: ledger.StatusRead}},
		// hookInfo-shaped entries with Meta errors
		{`{"hooks":[{"id":"wamid.B","status":"failed","timestamp":"1700000000","errors":[{"code":131026,"title":"Message undeliverable"}]}]}`,
			map[int64]ledger.Status{b: ledger.StatusFailed}},
		// multi-device: delivered after failed upgrades
		{`{"hooks":[{"id":"wamid.B","status":"delivered","timestamp":"1700000005"}]}`, map[int64]ledger.Status{b: ledger.StatusDelivered}},
		// raw Meta, several statuses in one request
		{`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"statuses":[
			{"id":"wamid.C","status":"delivered","timestamp":"1700000001","recipient_id":"79001234567"},
			{"id":"wamid.D","status":"failed","timestamp":"1700000002","errors":[{"code":130472,"title":"User's number is part of an experiment"}]}]}}]}]}`,
			map[int64]ledger.Status{c: ledger.StatusDelivered, d: ledger.StatusFailed}},
		// a late failed ack (text only, no code) never downgrades delivered
		{ack("wamid.C", "failed", `,"error":"Message undeliverable"`), map[int64]ledger.Status{c: ledger.StatusDelivered}},
		// an unmappable status is kept raw and changes nothing
		{ack("wamid.C", "deleted", ""), map[int64]ledger.Status{c: ledger.StatusDelivered}},
	}
	for i, s := range steps {
		if code := e.post(path, s.body); code != http.StatusOK {
			t.Fatalf("step %d: HTTP %d", i, code)
		}
		for id, want := range s.want {
			if got := e.status(id); got.Status != want {
				t.Errorf("step %d: notification %d is %s, want %s", i, id, got.Status, want)
			}
		}
	}
	if n := e.status(d); n.ErrorCode != "130472" || !strings.Contains(n.Error, "experiment") {
		t.Errorf("raw failed: code %q error %q", n.ErrorCode, n.Error)
	}
	evs, err := ledger.Events(context.Background(), pool, c)
	if err != nil {
		t.Fatal(err)
	}
	var last ledger.Event
	for _, ev := range evs {
		last = ev
	}
	if last.Status != "deleted" || last.Applied || last.Source != ledger.SourceWebhook || !strings.Contains(string(last.Detail), `"deleted"`) {
		t.Errorf("unmapped status stored as %+v; want the raw entry, not applied", last)
	}
	var webhookEvents int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM notification_event WHERE source = 'webhook'").Scan(&webhookEvents); err != nil {
		t.Fatal(err)
	}
	if webhookEvents != 9 {
		t.Errorf("%d webhook events recorded, want 9 (every status received, duplicates included)", webhookEvents)
	}
	if st := e.r.Stats(); st.Unmapped != 1 || st.Requests[webhook.ResultOK] != int64(len(steps)) {
		t.Errorf("stats %+v", st)
	}
}

// Statuses for a wamid not recorded yet are held and applied when it is.
func TestEarlyStatusesAreAdopted(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	e := newEnv(t, pool, schema)
	path := webhook.PathPrefix + secret
	id := e.sent(1, "")
	for _, st := range []string{"sent", "delivered"} {
		if code := e.post(path, ack("wamid.EARLY", st, "")); code != http.StatusOK {
			t.Fatalf("HTTP %d for an unknown wamid; want 200 (it may be another system's)", code)
		}
	}
	if st := e.r.Stats(); st.UnknownWamid != 2 {
		t.Errorf("unknown wamids counted %d, want 2", st.UnknownWamid)
	}
	// The send worker records the wamid 1MSG returned.
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := e.l.Apply(ctx, tx, []ledger.Report{{NotificationID: id, Wamid: "wamid.EARLY", Status: "sent", Source: ledger.SourceAPI}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.status(id); n.Status != ledger.StatusDelivered {
		t.Errorf("status %s after the wamid was recorded; want the held delivered applied", n.Status)
	}
	var left int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM webhook_orphan").Scan(&left); err != nil || left != 0 {
		t.Errorf("%d held statuses left (%v)", left, err)
	}
}

// Outsiders get nothing: wrong secret 404, other channel 403, malformed 400,
// oversized 413; the receiver keeps serving.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	e := newEnv(t, pool, schema)
	id := e.sent(1, "wamid.H")
	good := webhook.PathPrefix + secret
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		want   int
	}{
		{"wrong secret", "POST", webhook.PathPrefix + "guess", ack("wamid.H", "read", ""), 404},
		{"secret prefix", "POST", webhook.PathPrefix + secret[:5], ack("wamid.H", "read", ""), 404},
		{"no secret", "POST", webhook.PathPrefix, ack("wamid.H", "read", ""), 404},
		{"other path", "POST", "/metrics", "", 404},
		{"GET", "GET", good, "", 404},
		{"other channel", "POST", good, strings.Replace(ack("wamid.H", "read", ""), channel, "EVIL000", 1), 403},
		{"malformed", "POST", good, `{"ack":`, 400},
		{"not an object", "POST", good, `[1,2,3]`, 400},
		{"2 MiB", "POST", good, `{"ack":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`, 413},
		{"inbound message only", "POST", good, `{"instanceId":"` + channel + `","messages":[{"id":"m","body":"hi"}]}`, 200},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, e.url+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: HTTP %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
	if n := e.status(id); n.Status != ledger.StatusSent {
		t.Fatalf("a refused request changed the row to %s", n.Status)
	}
	if code := e.post(good, ack("wamid.H", "read", "")); code != 200 {
		t.Fatalf("after the hostile requests: HTTP %d", code)
	}
	if n := e.status(id); n.Status != ledger.StatusRead {
		t.Errorf("status %s, want read", n.Status)
	}
	st := e.r.Stats()
	if st.Requests[webhook.ResultNotFound] != 5 || st.Requests[webhook.ResultForbidden] != 1 ||
		st.Requests[webhook.ResultMalformed] != 2 || st.Requests[webhook.ResultTooLarge] != 1 || st.InboundIgnore != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Many concurrent requests are written in far fewer transactions.
func TestConcurrentStatusesAreBatched(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	e := newEnv(t, pool, schema)
	const n = 300
	for i := range n {
		e.sent(int64(i+1), fmt.Sprintf("wamid.%d", i))
	}
	path := webhook.PathPrefix + secret
	errs := make(chan error, n*3)
	for i := range n {
		for _, st := range []string{"sent", "delivered", "read"} {
			go func() {
				resp, err := http.Post(e.url+path, "application/json", strings.NewReader(ack(fmt.Sprintf("wamid.%d", i), st, "")))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				errs <- err
			}()
		}
	}
	for range n * 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var read int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM notification WHERE status = 'read'").Scan(&read); err != nil || read != n {
		t.Fatalf("%d read (%v), want %d", read, err, n)
	}
	st := e.r.Stats()
	t.Logf("%d statuses in %d transactions", st.Statuses, st.Batches)
	if st.Statuses != n*3 || st.Batches >= n*3 {
		t.Errorf("%d statuses in %d transactions; want %d statuses in fewer transactions than requests", st.Statuses, st.Batches, n*3)
	}
}

// A commit that fails answers 5xx, so 1MSG retries; the retry is applied.
func TestCommitFailureIs5xx(t *testing.T) {
	t.Parallel()
	_, schema := dbtest.New(t)
	proxy := dbtest.NewProxy(t)
	cfg, err := pgxpool.ParseConfig(proxy.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := newEnv(t, pool, schema)
	id := e.sent(1, "wamid.R")
	path := webhook.PathPrefix + secret

	proxy.Cut()
	if code := e.post(path, ack("wamid.R", "delivered", "")); code != http.StatusServiceUnavailable {
		t.Errorf("HTTP %d while Postgres is unreachable, want 503", code)
	}
	proxy.Restore()
	if code := e.post(path, ack("wamid.R", "delivered", "")); code != http.StatusOK {
		t.Fatalf("HTTP %d on 1MSG's retry", code)
	}
	if n := e.status(id); n.Status != ledger.StatusDelivered {
		t.Errorf("status %s after the retry, want delivered", n.Status)
	}
}

// Every configured channel's instanceId is accepted, and a status pushed
// by either channel is recorded; any other instanceId gets 403 and changes
// nothing.
func TestInstanceIDPerChannel(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	l := &ledger.Ledger{Schema: schema}
	const second = "ODIBRANDB"
	r := webhook.New(webhook.Config{Pool: pool, Ledger: l, Secret: secret, Channels: []string{channel, second}, Timeout: 3 * time.Second})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e := &env{t: t, pool: pool, l: l, r: r, url: srv.URL}
	a, b, c := e.sent(1, "wamid.A"), e.sent(2, "wamid.B"), e.sent(3, "wamid.C")
	good := webhook.PathPrefix + secret
	tests := []struct {
		name, instance, wamid string
		want                  int
		status                ledger.Status
		id                    int64
	}{
		{"default channel", channel, "wamid.A", 200, ledger.StatusRead, a},
		{"second channel", second, "wamid.B", 200, ledger.StatusRead, b},
		{"unknown channel", "ODIEVIL", "wamid.C", 403, ledger.StatusSent, c},
	}
	for _, tt := range tests {
		body := strings.Replace(ack(tt.wamid, "read", ""), channel, tt.instance, 1)
		if code := e.post(good, body); code != tt.want {
			t.Errorf("%s: HTTP %d, want %d", tt.name, code, tt.want)
		}
		if n := e.status(tt.id); n.Status != tt.status {
			t.Errorf("%s: status %s, want %s", tt.name, n.Status, tt.status)
		}
	}
}

// A status pushed before 1MSG's answer to the send is recorded waits for the
// sends in flight when it arrived, and is applied once they commit, instead
// of being held in webhook_orphan; past HoldWait, or with no send in flight,
// it is held as before. The request is answered only once its statuses are
// committed either way.
func TestStatusesWaitForSendsInFlight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		inFlight bool // a send is in flight when the webhook arrives
		commits  bool // and it records the wamid
		wantHeld int64
	}{
		{"applied once the send commits", true, true, 0},
		{"held after HoldWait", true, false, 2},
		{"held at once with no send in flight", false, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, schema := dbtest.New(t)
			ctx := context.Background()
			l := &ledger.Ledger{Schema: schema}
			sends := pending.New()
			r := webhook.New(webhook.Config{Pool: pool, Ledger: l, Secret: secret, Channels: []string{channel},
				Sends: sends, HoldWait: 300 * time.Millisecond, Timeout: 5 * time.Second})
			srv := httptest.NewServer(r)
			t.Cleanup(srv.Close)
			e := &env{t: t, pool: pool, l: l, r: r, url: srv.URL}
			id := e.sent(1, "")
			end := func() {}
			if tt.inFlight {
				end = sends.Begin()
			}
			defer end()

			answered := make(chan int, 1)
			go func() {
				body := fmt.Sprintf(`{"instanceId":%q,"ack":[{"id":"wamid.RACE","status":"sent"},{"id":"wamid.RACE","status":"delivered"}]}`, channel)
				resp, err := http.Post(srv.URL+webhook.PathPrefix+secret, "application/json", strings.NewReader(body))
				if err != nil {
					answered <- 0
					return
				}
				resp.Body.Close()
				answered <- resp.StatusCode
			}()
			if tt.commits {
				// The request waits for the send (the receiver's own gauge)...
				for r.Stats().Waiting == 0 {
					select {
					case code := <-answered:
						t.Fatalf("answered %d before the send in flight committed", code)
					case <-time.After(time.Millisecond):
					}
				}
				// ... which records 1MSG's answer and ends.
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := l.Apply(ctx, tx, []ledger.Report{{NotificationID: id, Wamid: "wamid.RACE", Status: "sent", Source: ledger.SourceAPI}})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				end()
			}
			if code := <-answered; code != http.StatusOK {
				t.Fatalf("HTTP %d, want 200", code)
			}
			var held, pushed int64
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_orphan),
				(SELECT count(*) FROM notification_event WHERE notification_id = $1 AND source = 'webhook')`, id).Scan(&held, &pushed); err != nil {
				t.Fatal(err)
			}
			if st := r.Stats(); st.UnknownWamid != tt.wantHeld || held != tt.wantHeld {
				t.Errorf("held %d (counted %d), want %d", held, st.UnknownWamid, tt.wantHeld)
			}
			if tt.commits && (pushed != 2 || e.status(id).Status != ledger.StatusDelivered) {
				t.Errorf("%d pushed statuses recorded, row %s; want 2 and delivered", pushed, e.status(id).Status)
			}
		})
	}
}
