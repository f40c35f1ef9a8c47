package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// A backlog drains at the configured rate without a single 429 from a
// sandbox enforcing the same limit (Meta's 130429).
func TestBacklogDrainsAtTheLimit(t *testing.T) {
	t.Parallel()
	const rate = 40
	sbcfg := fastSandbox()
	sbcfg.Faults = sandbox.Faults{RatePerSecond: rate}
	e := newEnv(t, sbcfg)
	// The backlog is there before the daemon starts, as after an outage.
	var ids []string
	for i := range 160 {
		id := "order-" + itoa(i)
		ids = append(ids, id)
		e.insert(id, orderPayload(i))
	}
	cfg := e.config()
	cfg.Rate = rate
	e.start(cfg)
	e.waitAsPlanned(60*time.Second, ids)
	st := e.sb.Stats()
	if st.Throttled != 0 || st.Accepted != 160 || st.SendRequests != 160 {
		t.Errorf("sandbox: %d requests, %d accepted, %d throttled; want 160, 160, 0", st.SendRequests, st.Accepted, st.Throttled)
	}
}

// Two cancellations for one customer: the later send is scheduled, not
// slept on, at least the pair interval after the earlier one, and Meta's
// pair limit (131056) is never hit.
func TestSameRecipientIsPaced(t *testing.T) {
	t.Parallel()
	const gap = 1500 * time.Millisecond
	sbcfg := fastSandbox()
	sbcfg.Faults = sandbox.Faults{PairInterval: gap}
	e := newEnv(t, sbcfg)
	cfg := e.config()
	cfg.PairInterval = gap
	e.start(cfg)

	a, b := seedPayload(), seedPayload()
	b["order_number"] = "10483"
	other := orderPayload(1)
	e.insert("order-10482-cancelled", a)
	e.insert("order-10483-cancelled", b)
	e.insert("other-customer", other)
	ids := []string{"order-10482-cancelled", "order-10483-cancelled", "other-customer"}
	e.waitAsPlanned(30*time.Second, ids)

	var first, second time.Time
	if err := e.pool.QueryRow(context.Background(), `SELECT
		(SELECT not_before FROM notification WHERE event_id = 'order-10482-cancelled'),
		(SELECT not_before FROM notification WHERE event_id = 'order-10483-cancelled')`).Scan(&first, &second); err != nil {
		t.Fatal(err)
	}
	if second.Sub(first) < gap {
		t.Errorf("second message scheduled %s after the first; want at least %s", second.Sub(first), gap)
	}
	var scheduled time.Time
	if err := e.pool.QueryRow(context.Background(), `SELECT scheduled_at FROM river_job
		WHERE kind = 'cancelnotify_send' AND (args->>'notification_id')::bigint = (SELECT id FROM notification WHERE event_id = 'order-10483-cancelled')`).Scan(&scheduled); err != nil {
		t.Fatal(err)
	}
	if scheduled.Before(second.Add(-time.Millisecond)) {
		t.Errorf("send job scheduled at %s, before not_before %s", scheduled, second)
	}
	msgs := e.sb.Messages()
	at := map[string]time.Time{}
	for _, m := range msgs {
		at[m.Params[1]] = m.AcceptedAt
	}
	if d := at["10483"].Sub(at["10482"]); d < gap {
		t.Errorf("the sandbox got the two messages %s apart; want at least %s", d, gap)
	}
	if st := e.sb.Stats(); st.Throttled != 0 || st.Accepted != 3 {
		t.Errorf("sandbox: %d accepted, %d throttled; want 3 and 0", st.Accepted, st.Throttled)
	}
}
