package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// Each validation rule ends its row rejected or skipped with the stated
// reason and no API call, while the rows around it are sent.
func TestValidationAtTheRelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.start(e.config())

	with := func(k string, v any) payload {
		p := seedPayload()
		p["phone"] = "+44 7911 123456"
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
		return p
	}
	bad := []struct {
		id, code string
		payload  any
		status   ledger.Status
		reason   string
	}{
		{"bad-phone", "invalid_phone", with("phone", "+12345"), ledger.StatusRejected, `payload.phone "+12345"`},
		{"domestic-phone", "ambiguous_phone", with("phone", "12345"), ledger.StatusRejected, "CANCELNOTIFY_PHONE_REGION"},
		{"no-name", "missing_field", with("customer_name", nil), ledger.StatusRejected, "payload.customer_name"},
		{"number-name", "not_a_string", with("customer_name", 42), ledger.StatusRejected, "payload.customer_name"},
		{"blank-step", "empty_text", with("next_step", " \n\t "), ledger.StatusRejected, "payload.next_step"},
		{"opted-out", "opted_out", with("whatsapp_opt_in", false), ledger.StatusSkipped, "whatsapp_opt_in"},
		{"json-null", "invalid_json", nil, ledger.StatusRejected, "null"},
		{"huge", "payload_too_large", with("product_name", strings.Repeat("x", 200_000)), ledger.StatusRejected, "send only phone, customer_name, order_number, product_name, next_step"},
		{"bad-lang", "invalid_language", with("language", "english"), ledger.StatusRejected, "payload.language"},
	}
	e.insert("good-before", with("phone", "+44 7911 000001"))
	for _, b := range bad {
		e.insert(b.id, b.payload)
	}
	if _, err := e.pool.Exec(context.Background(), "INSERT INTO outbox (event_id, event_type, payload) VALUES ('refund-1', 'order.refunded', '{}')"); err != nil {
		t.Fatal(err)
	}
	long := with("phone", "+44 7911 000003")
	long["product_name"] = strings.Repeat("Very long product name ", 60)
	long["next_step"] = "Tabs\tand\nnewlines     and spaces"
	e.insert("long", long)
	e.insert("good-after", with("phone", "+44 7911 000002"))

	ids := []string{"good-before", "good-after", "refund-1", "long"}
	for _, b := range bad {
		ids = append(ids, b.id)
	}
	e.waitFinal(30*time.Second, ids...)

	for _, b := range bad {
		n := e.notification(b.id)
		if n.Status != b.status || n.ErrorCode != b.code || !strings.Contains(n.Error, b.reason) {
			t.Errorf("%s: %s %s %q; want %s %s mentioning %q", b.id, n.Status, n.ErrorCode, n.Error, b.status, b.code, b.reason)
		}
	}
	if n := e.notification("refund-1"); n.Status != ledger.StatusRejected || n.ErrorCode != "unknown_event_type" {
		t.Errorf("refund-1: %s %s", n.Status, n.ErrorCode)
	}
	for _, id := range []string{"good-before", "good-after", "long"} {
		if n := e.notification(id); n.Status != ledger.StatusRead {
			t.Errorf("%s: %s, want read (the bad rows around it must not matter)", id, n.Status)
		}
	}
	n := e.notification("long")
	if len(n.Shortened) != 1 || n.Shortened[0] != "product_name" || !strings.HasSuffix(n.Params[2], "…") {
		t.Errorf("long: shortened %v, product %q", n.Shortened, n.Params[2])
	}
	if n.Params[3] != "Tabs and newlines and spaces" {
		t.Errorf("long: next_step sent as %q; want whitespace normalized", n.Params[3])
	}
	if got := e.sb.Stats().SendRequests; got != 3 {
		t.Errorf("sandbox saw %d sends, want 3 (only the valid rows)", got)
	}
}

// 1MSG refusals of one message end the row failed with 1MSG's own text,
// after one request. A wrong token or a template the channel lacks holds the
// channel instead (health_test.go).
func TestPermanentRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sandbox  func(*sandbox.Config)
		daemon   func(*daemonCfg)
		wantCode string
		wantText string
	}{
		{
			name: "422 wrong number of body variables",
			sandbox: func(c *sandbox.Config) {
				c.Templates[0].Body = "Hello, {{1}}! Order #{{2}} for {{3}} has been cancelled."
				c.Templates[0].BodyParams = 3
			},
			wantCode: "132000", wantText: "Number of parameters does not match",
		},
		{
			name:     "422 missing namespace",
			daemon:   func(c *daemonCfg) { c.Namespace = "" },
			wantCode: "http_422", wantText: "namespace",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sbcfg := fastSandbox()
			if tt.sandbox != nil {
				tt.sandbox(&sbcfg)
			}
			e := newEnv(t, sbcfg)
			cfg := e.config()
			if tt.daemon != nil {
				tt.daemon(&cfg)
			}
			e.start(cfg)
			e.insert("order-1-cancelled", seedPayload())
			e.waitFinal(20*time.Second, "order-1-cancelled")
			n := e.notification("order-1-cancelled")
			if n.Status != ledger.StatusFailed || n.ErrorCode != tt.wantCode || !strings.Contains(n.Error, tt.wantText) {
				t.Errorf("%s %s %q; want failed %s with 1MSG's text containing %q", n.Status, n.ErrorCode, n.Error, tt.wantCode, tt.wantText)
			}
			if got := e.sb.Stats().SendRequests; got != 1 {
				t.Errorf("%d requests; want 1 (no retry of a permanent refusal)", got)
			}
			// River records the job's end asynchronously, just after the row.
			e.waitFor(5*time.Second, "the send job to be cancelled", func() bool {
				var state string
				err := e.pool.QueryRow(context.Background(), "SELECT state FROM river_job WHERE kind = 'cancelnotify_send'").Scan(&state)
				return err == nil && state == "cancelled"
			})
		})
	}
}

// 429: snoozed and sent later; the River attempt is not consumed.
func TestThrottledIsSnoozed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.sb.SetFaults(sandbox.Faults{Status429: 1, RetryAfter: time.Second})
	e.start(e.config())
	e.insert("order-1-cancelled", seedPayload())
	e.waitFor(10*time.Second, "three throttled requests", func() bool { return e.sb.Stats().Faulted >= 3 })
	e.sb.SetFaults(sandbox.Faults{})
	e.waitFinal(20*time.Second, "order-1-cancelled")

	n := e.notification("order-1-cancelled")
	if n.Status != ledger.StatusRead || e.sb.Stats().Accepted != 1 {
		t.Fatalf("status %s, accepted %d; want read after the 429s stop, once", n.Status, e.sb.Stats().Accepted)
	}
	var attempt int
	var errs int
	if err := e.pool.QueryRow(context.Background(), "SELECT attempt, coalesce(array_length(errors, 1), 0) FROM river_job WHERE kind = 'cancelnotify_send'").Scan(&attempt, &errs); err != nil {
		t.Fatal(err)
	}
	if attempt != 1 || errs != 0 {
		t.Errorf("send job attempt %d with %d errors; want 1 and 0 (throttling consumes no attempt)", attempt, errs)
	}
	if !strings.Contains(strings.Join(e.history(n), ","), "sending,queued,sending") {
		t.Errorf("history %v does not show the throttled attempt going back to queued", e.history(n))
	}
}

// The sandbox accepts the message and drops the connection: the next attempt
// finds it in /messages and adopts its id. One message in all.
func TestUnknownOutcomeIsReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.sb.SetFaults(sandbox.Faults{AcceptThenDrop: 1})
	e.start(e.config())
	e.insert("order-1-cancelled", seedPayload())
	e.waitFor(10*time.Second, "the dropped answer", func() bool { return e.sb.Stats().Dropped == 1 })
	e.sb.SetFaults(sandbox.Faults{})
	e.waitFinal(20*time.Second, "order-1-cancelled")

	st := e.sb.Stats()
	msgs := e.sb.Messages()
	n := e.notification("order-1-cancelled")
	if st.Accepted != 1 || st.SendRequests != 1 || len(msgs) != 1 {
		t.Fatalf("sandbox: %d requests, %d accepted; want exactly one message", st.SendRequests, st.Accepted)
	}
	if n.Wamid != msgs[0].ID || n.Status != ledger.StatusRead {
		t.Errorf("notification %s wamid %s; want read with the adopted id %s", n.Status, n.Wamid, msgs[0].ID)
	}
	if st.MessagesCalls == 0 {
		t.Error("the history was never consulted")
	}
}

// With the channel's history off, an unknown outcome cannot be settled: the
// row is held in_doubt, and nothing is sent twice.
func TestUnknownOutcomeWithoutHistoryIsInDoubt(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.HistoryDisabled = true
	e := newEnv(t, sbcfg)
	e.sb.SetFaults(sandbox.Faults{AcceptThenDrop: 1})
	e.start(e.config())
	e.insert("order-1-cancelled", seedPayload())
	e.waitFinal(20*time.Second, "order-1-cancelled")

	n := e.notification("order-1-cancelled")
	if n.Status != ledger.StatusInDoubt || n.ErrorCode != "outcome_unknown" || !strings.Contains(n.Error, "history") {
		t.Errorf("%s %s %q; want in_doubt explaining the history is off", n.Status, n.ErrorCode, n.Error)
	}
	// Once the send job has ended (cancelled), nothing is left that could
	// send the message again.
	e.waitFor(5*time.Second, "the send job to be cancelled", func() bool {
		var state string
		err := e.pool.QueryRow(context.Background(), "SELECT state FROM river_job WHERE kind = 'cancelnotify_send'").Scan(&state)
		return err == nil && state == "cancelled"
	})
	if st := e.sb.Stats(); st.SendRequests != 1 || st.Accepted != 1 {
		t.Errorf("sandbox: %d requests, %d accepted; want exactly 1", st.SendRequests, st.Accepted)
	}
}

// Two daemons (two relays, two River clients) on one schema send each row
// exactly once.
func TestTwoDaemonsSendOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	a, b := e.config(), e.config()
	a.RiverID, b.RiverID = "daemon-a", "daemon-b"
	e.start(a)
	e.start(b)
	var ids []string
	for i := range 150 {
		id := "order-" + itoa(i)
		ids = append(ids, id)
		e.insert(id, orderPayload(i))
	}
	e.waitFinal(60*time.Second, ids...)
	st := e.sb.Stats()
	if st.SendRequests != 150 || st.Accepted != 150 {
		t.Errorf("sandbox: %d requests, %d accepted; want 150 each", st.SendRequests, st.Accepted)
	}
	var jobs, workers int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT attempted_by[1]) FROM river_job WHERE kind = 'cancelnotify_send'`).Scan(&jobs, &workers); err != nil {
		t.Fatal(err)
	}
	if jobs != 150 || workers != 2 {
		t.Errorf("%d send jobs worked by %d River clients; want 150 shared by both daemons", jobs, workers)
	}
}
