package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// The request equals, field for field, what the seed's Node.js example
// sends for the same data.
func TestRequestMatchesSeed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.start(e.config())
	e.insert("order-10482-cancelled", seedPayload())
	e.waitFinal(20*time.Second, "order-10482-cancelled")

	reqs := e.sb.Requests()
	if len(reqs) != 1 {
		t.Fatalf("sandbox saw %d sendTemplate requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/sandbox/sendTemplate" || r.RawQuery != "" {
		t.Errorf("request line %s %s?%s; want POST /sandbox/sendTemplate with no query (no token in the URL)", r.Method, r.Path, r.RawQuery)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+sandbox.DefaultToken {
		t.Errorf("Authorization = %q, want the Bearer token", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	// What `JSON.stringify(requestBody)` produces in the seed, with
	// normalizePhone("+7 900 123-45-67") and String(10482), except for the
	// full stop ending next_step: the template's body ends the sentence
	// itself ("{{4}}."), so the daemon drops it rather than send "..".
	seed := `{
		"phone": "79001234567",
		"template": "order_cancelled",
		"namespace": "sandbox_ns",
		"language": {"policy": "deterministic", "code": "en"},
		"params": [{"type": "body", "parameters": [
			{"type": "text", "text": "Alexey"},
			{"type": "text", "text": "10482"},
			{"type": "text", "text": "Wireless headphones"},
			{"type": "text", "text": "Payment will be refunded within 3–5 business days to the card used for the order"}
		]}]
	}`
	var want, got any
	if err := json.Unmarshal([]byte(seed), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.Body)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body\n%s\nwant the seed's\n%s", r.Body, seed)
	}
	n := e.notification("order-10482-cancelled")
	if n.Status != ledger.StatusRead || n.Wamid != r.MessageID || !strings.HasPrefix(n.Wamid, "wamid.") {
		t.Errorf("notification %s wamid %s; want read with the sandbox's id %s", n.Status, n.Wamid, r.MessageID)
	}
}

// Concurrent OMS-like writers, some of whose transactions roll back: every
// committed row is sent exactly once and ends as the sandbox decided; no
// rolled-back row is ever sent.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.FailSuffixes = []string{"13", "77"}
	sbcfg.NoReadRate = 0.2
	e := newEnv(t, sbcfg)
	e.start(e.config())

	const writers, perWriter = 8, 30
	var mu sync.Mutex
	var committed, rolledBack []string
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWriter {
				k := w*perWriter + i
				id := fmt.Sprintf("order-%d-cancelled", 20000+k)
				b, _ := json.Marshal(orderPayload(k))
				rollback := rng.IntN(5) == 0
				err := pgx.BeginFunc(context.Background(), e.pool, func(tx pgx.Tx) error {
					// The OMS's own work would be here; the outbox row rides along.
					if _, err := tx.Exec(context.Background(), "INSERT INTO outbox (event_id, payload) VALUES ($1, $2)", id, b); err != nil {
						return err
					}
					if rollback {
						return errRollback
					}
					return nil
				})
				mu.Lock()
				switch {
				case err == errRollback:
					rolledBack = append(rolledBack, id)
				case err != nil:
					t.Error(err)
				default:
					committed = append(committed, id)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	e.waitFinal(60*time.Second, committed...)

	st := e.sb.Stats()
	if st.SendRequests != int64(len(committed)) || st.Accepted != int64(len(committed)) {
		t.Errorf("sandbox: %d requests, %d accepted; want exactly one per committed row (%d)", st.SendRequests, st.Accepted, len(committed))
	}
	for phone, n := range st.AcceptedByPhone {
		if n != 1 {
			t.Errorf("phone %s got %d messages", phone, n)
		}
	}
	byID := map[string]sandbox.Message{}
	for _, m := range e.sb.Messages() {
		byID[m.ID] = m
	}
	for _, id := range committed {
		n := e.notification(id)
		m, ok := byID[n.Wamid]
		if !ok {
			t.Errorf("%s: wamid %q unknown to the sandbox", id, n.Wamid)
			continue
		}
		if m.Params[1] != n.Params[1] {
			t.Errorf("%s: sandbox message is for order %s", id, m.Params[1])
		}
		if string(n.Status) != m.Planned {
			t.Errorf("%s: status %s, sandbox decided %s", id, n.Status, m.Planned)
		}
		h := strings.Join(e.history(n), ",")
		want := map[string]string{
			"read":      "queued,sending,sent,delivered,read",
			"delivered": "queued,sending,sent,delivered",
			"failed":    "queued,sending,sent,failed",
		}[m.Planned]
		if h != want {
			t.Errorf("%s: history %s, want %s", id, h, want)
		}
		if m.Planned == "failed" && (n.ErrorCode != "131026" || n.Error == "") {
			t.Errorf("%s: failed with code %q error %q; want Meta's 131026 and its text", id, n.ErrorCode, n.Error)
		}
	}
	for _, id := range rolledBack {
		var n int
		if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM notification WHERE event_id = $1", id).Scan(&n); err != nil || n != 0 {
			t.Errorf("rolled-back %s has %d notifications (%v)", id, n, err)
		}
	}
	rolled := map[string]bool{}
	for _, id := range rolledBack {
		rolled[strings.TrimSuffix(strings.TrimPrefix(id, "order-"), "-cancelled")] = true
	}
	for _, m := range e.sb.Messages() {
		if rolled[m.Params[1]] {
			t.Errorf("rolled-back order %s was sent", m.Params[1])
		}
	}
	t.Logf("%d committed, %d rolled back, sandbox: %+v", len(committed), len(rolledBack), st.Accepted)
}

var errRollback = fmt.Errorf("rollback")
