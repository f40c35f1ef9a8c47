package sandbox_test

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func TestHookInfoProgression(t *testing.T) {
	e := newEnv(t, func(cfg *sandbox.Config) { cfg.FailSuffixes = []string{"000"} })
	tests := []struct {
		name  string
		phone string
		want  []string
	}{
		{"delivered then read", "79001234567", []string{"sent", "delivered", "read"}},
		{"failed", "79001234000", []string{"sent", "failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(sendBody(tt.phone, okParams...))
			id := r.json["id"].(string)

			// sent is recorded before the client hears sent:true.
			first := e.hookInfo(id)
			if !slices.Equal(statuses(first), []string{"sent"}) {
				t.Fatalf("right after the send: %v", statuses(first))
			}
			var hooks []map[string]any
			eventually(t, 2*time.Second, "all statuses", func() bool {
				hooks = e.hookInfo(id)
				return len(hooks) == len(tt.want)
			})
			if got := statuses(hooks); !slices.Equal(got, tt.want) {
				t.Fatalf("statuses %v, want %v", got, tt.want)
			}
			for _, h := range hooks {
				ts, ok := h["timestamp"].(string)
				if !ok {
					t.Fatalf("timestamp %#v is not a string", h["timestamp"])
				}
				if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)) > time.Minute {
					t.Fatalf("timestamp %q is not recent unix seconds", ts)
				}
				if h["id"] != id || h["type"] != "message" || h["recipient_id"] != tt.phone {
					t.Fatalf("entry %v", h)
				}
				switch h["status"] {
				case "sent", "delivered":
					conv := h["conversation"].(map[string]any)
					if conv["origin"].(map[string]any)["type"] != "utility" || conv["id"] == "" {
						t.Fatalf("conversation %v", conv)
					}
					if _, ok := conv["expiration_timestamp"].(float64); !ok {
						t.Fatalf("expiration_timestamp %#v is not a number", conv["expiration_timestamp"])
					}
					p := h["pricing"].(map[string]any)
					if p["billable"] != true || p["category"] != "utility" || p["pricing_model"] != "PMP" || p["type"] != "regular" {
						t.Fatalf("pricing %v", p)
					}
				case "failed":
					errs := h["errors"].([]any)
					e0 := errs[0].(map[string]any)
					if e0["code"] != 131026.0 || e0["title"] != "Message undeliverable" ||
						e0["error_data"].(map[string]any)["details"] == "" {
						t.Fatalf("errors %v", errs)
					}
				}
				if h["status"] != "failed" && h["errors"] != nil {
					t.Fatalf("errors on a %v entry", h["status"])
				}
			}
			m, _ := e.sb.Message(id)
			if m.Status != tt.want[len(tt.want)-1] || m.Planned != m.Status {
				t.Fatalf("Message: status %q planned %q", m.Status, m.Planned)
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		r := e.get("/sandbox/hookInfo?messageId=wamid.nope")
		if r.status != 200 || r.raw != `{"hooks":[]}` {
			t.Fatalf("HTTP %d %s", r.status, r.raw)
		}
	})
	t.Run("missing messageId", func(t *testing.T) {
		if r := e.get("/sandbox/hookInfo"); r.status != 400 {
			t.Fatalf("HTTP %d %s", r.status, r.raw)
		}
	})
}

func TestMessages(t *testing.T) {
	e := newEnv(t, nil)
	var ids []string
	for _, phone := range []string{"79001234567", "79001234568", "79001234567"} {
		ids = append(ids, e.send(sendBody(phone, okParams...)).json["id"].(string))
	}
	now := time.Now().Unix()
	list := func(query string) []map[string]any {
		t.Helper()
		r := e.get("/sandbox/messages" + query)
		if r.status != 200 {
			t.Fatalf("HTTP %d %s", r.status, r.raw)
		}
		var out []map[string]any
		for _, m := range r.json["messages"].([]any) {
			out = append(out, m.(map[string]any))
		}
		return out
	}
	idsOf := func(ms []map[string]any) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m["id"].(string))
		}
		return out
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", ids},
		{"?chatId=79001234567@c.us", []string{ids[0], ids[2]}},
		{"?chatId=79001234568", []string{ids[1]}},
		{"?msgId=" + urlEscape(ids[1]), []string{ids[1]}},
		{"?limit=2", ids[:2]},
		{"?limit=1&last=1", ids[2:]},
		{"?lastMessageNumber=1", ids[1:]},
		{fmt.Sprintf("?min_time=%d", now-60), ids},
		{fmt.Sprintf("?min_time=%d", now+60), nil},
		{fmt.Sprintf("?max_time=%d", now-60), nil},
		{fmt.Sprintf("?chatId=79001234567&min_time=%d&max_time=%d", now-60, now+60), []string{ids[0], ids[2]}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := idsOf(list(tt.query)); !slices.Equal(got, tt.want) {
				t.Fatalf("ids %v, want %v", got, tt.want)
			}
		})
	}
	m := list("?msgId=" + urlEscape(ids[0]))[0]
	want := map[string]any{
		"body":          `Hello, Alexey! Order #10482 for "Wireless headphones" has been cancelled. Refund within 3-5 days.`,
		"fromMe":        true,
		"self":          1.0,
		"type":          "template",
		"chatId":        "79001234567@c.us",
		"messageNumber": 1.0,
		"senderName":    "Sandbox Shop",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if tm, ok := m["time"].(float64); !ok || int64(tm) < now-60 {
		t.Errorf("time = %#v, want unix seconds as a number", m["time"])
	}
	if r := e.get("/sandbox/messages?limit=x"); r.status != 400 {
		t.Errorf("limit=x: HTTP %d", r.status)
	}
	if got := e.sb.Stats().MessagesCalls; got < int64(len(tests)) {
		t.Errorf("MessagesCalls = %d", got)
	}

	t.Run("history disabled", func(t *testing.T) {
		e := newEnv(t, func(cfg *sandbox.Config) { cfg.HistoryDisabled = true })
		e.send(sendBody("79001234567", okParams...))
		r := e.get("/sandbox/messages")
		jsonEqual(t, r.raw, `{"notice":"Message history is disabled for this channel","messages":[]}`)
	})
}

func TestTemplatesAndStatus(t *testing.T) {
	e := newEnv(t, func(cfg *sandbox.Config) { cfg.ChannelStatus = "disconnected" })
	r := e.get("/sandbox/templates")
	jsonEqual(t, r.raw, `{"total":1,"templates":[{"name":"order_cancelled","namespace":"sandbox_ns","language":"en",`+
		`"status":"approved","category":"UTILITY","rejected_reason":"NONE","components":[`+
		`{"type":"BODY","text":"Hello, {{1}}! Order #{{2}} for \"{{3}}\" has been cancelled. {{4}}."},`+
		`{"type":"BUTTONS","buttons":[{"type":"URL","text":"Order details","url":"https://shop.example/orders/"}]}]}]}`)
	if r := e.get("/sandbox/status"); r.raw != `{"status":"disconnected"}` {
		t.Fatalf("status: %s", r.raw)
	}
}

// TestScale accepts a thousand messages quickly and checks that their
// statuses progress without a goroutine per message.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	e := newEnv(t, func(cfg *sandbox.Config) {
		cfg.DeliveredAfter = 100 * time.Millisecond
		cfg.ReadAfter = 200 * time.Millisecond
	})
	const n, workers = 1000, 16
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var peak int
	var mu sync.Mutex
	errs := make(chan error, n)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r, err := e.do(http.MethodPost, "/sandbox/sendTemplate", bearer, sendBody(fmt.Sprintf("7900%07d", i), okParams...))
				if err != nil || r.json["sent"] != true {
					errs <- fmt.Errorf("send %d: %v %s", i, err, r.raw)
					return
				}
				if i%100 == 0 {
					mu.Lock()
					peak = max(peak, runtime.NumGoroutine())
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	peak = max(peak, runtime.NumGoroutine())
	// HTTP connections cost a few goroutines each; per-message timers would
	// cost thousands.
	if peak-before > 4*workers+50 {
		t.Fatalf("goroutines grew from %d to %d", before, peak)
	}
	eventually(t, 5*time.Second, "every message read", func() bool {
		for _, m := range e.sb.Messages() {
			if m.Status != sandbox.StatusRead {
				return false
			}
		}
		return true
	})
	if st := e.sb.Stats(); st.Accepted != n || st.StatusReports != 3*n {
		t.Fatalf("accepted %d, status reports %d", st.Accepted, st.StatusReports)
	}
}
