package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/webhook"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// floodBody is a 1 MiB body of empty acks, about 349,000 of them.
func floodBody() string {
	head := `{"instanceId":"` + channel + `","ack":[`
	n := (webhook.MaxBodyBytes - len(head) - 2) / 3
	return head + strings.Repeat("{},", n-1) + "{}]}"
}

// Ten concurrent 1 MiB bodies of empty acks are refused after reading
// onemsg.MaxWebhookEntries of them: each request allocates at most 4 MiB
// (1 MiB of it the body; measured 1.2 MiB), and a real status sent meanwhile is recorded.
// Not parallel: the allocation count is the whole process's.
func TestWebhookFloodIsBounded(t *testing.T) {
	pool, schema := dbtest.New(t)
	e := newEnv(t, pool, schema)
	id := e.sent(1, "wamid.F")
	path := webhook.PathPrefix + secret
	body := floodBody()
	if len(body) > webhook.MaxBodyBytes {
		t.Fatalf("flood body %d bytes", len(body))
	}
	const requests = 10
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	codes := make([]int, requests)
	for i := range requests {
		wg.Go(func() {
			resp, err := http.Post(e.url+path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	if code := e.post(path, ack("wamid.F", "delivered", "")); code != 200 {
		t.Errorf("real status during the flood: HTTP %d", code)
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	for i, c := range codes {
		if c != http.StatusRequestEntityTooLarge {
			t.Errorf("flood request %d: HTTP %d, want 413", i, c)
		}
	}
	perRequest := float64(after.TotalAlloc-before.TotalAlloc) / requests / (1 << 20)
	t.Logf("allocated %.1f MiB per flood request", perRequest)
	if perRequest > 4 {
		t.Errorf("each flood request allocated %.1f MiB; the bound is 4 MiB", perRequest)
	}
	if n := e.status(id); n.Status != ledger.StatusDelivered {
		t.Errorf("real status: %s, want delivered", n.Status)
	}
	if st := e.r.Stats(); st.Requests[webhook.ResultTooLarge] != requests {
		t.Errorf("too_large requests %d, want %d", st.Requests[webhook.ResultTooLarge], requests)
	}
}

// Entries no message can have (no id, an id over onemsg.MaxWamidBytes) are
// answered 200 and ignored; the good entry beside them is recorded, and a
// status time absurdly far away is recorded as of its receipt, with why.
func TestHostileEntriesAreIgnored(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	e := newEnv(t, pool, schema)
	id := e.sent(1, "wamid.G")
	far := e.sent(2, "wamid.T")
	path := webhook.PathPrefix + secret
	long := "wamid." + strings.Repeat("A", 3000)
	if len(long) <= onemsg.MaxWamidBytes {
		t.Fatal("the long wamid is not over the limit")
	}
	body := `{"instanceId":"` + channel + `","ack":[{},{"status":"read"},{"id":"` + long + `","status":"read"},{"id":"wamid.G","status":"read"}]}`
	for range 2 { // 1MSG's retry is answered the same
		if code := e.post(path, body); code != 200 {
			t.Fatalf("HTTP %d, want 200", code)
		}
	}
	if n := e.status(id); n.Status != ledger.StatusRead {
		t.Errorf("good entry: %s, want read", n.Status)
	}
	if st := e.r.Stats(); st.Ignored != 6 {
		t.Errorf("ignored %d entries, want 6 (3 per request)", st.Ignored)
	}
	var held int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM webhook_orphan").Scan(&held); err != nil || held != 0 {
		t.Errorf("%d statuses held (%v), want 0: ignored entries are not stored", held, err)
	}

	// Meta's hook shape carries a timestamp: year 248073, and one past
	// Postgres's range.
	for _, ts := range []string{"7766279631452", "9223372036"} {
		hooks := fmt.Sprintf(`{"instanceId":"%s","hooks":[{"id":"wamid.T","status":"delivered","timestamp":"%s"}]}`, channel, ts)
		if code := e.post(path, hooks); code != 200 {
			t.Fatalf("timestamp %s: HTTP %d, want 200", ts, code)
		}
	}
	n := e.status(far)
	if n.Status != ledger.StatusDelivered || n.DeliveredAt == nil || time.Since(*n.DeliveredAt) > time.Minute || n.DeliveredAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("far timestamp: %s at %v, want delivered about now", n.Status, n.DeliveredAt)
	}
	evs, err := ledger.Events(context.Background(), pool, far)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.OccurredAt != nil || !strings.Contains(string(last.Detail), "occurred_at_ignored") {
		t.Errorf("event occurred_at %v, detail %s; want none and the reason", last.OccurredAt, last.Detail)
	}
}
