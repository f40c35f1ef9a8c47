package sandbox_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func TestFaults(t *testing.T) {
	body := sendBody("79001234567", okParams...)
	tests := []struct {
		name   string
		faults sandbox.Faults
		check  func(t *testing.T, e *env)
	}{
		{"429 with Retry-After", sandbox.Faults{Status429: 1, RetryAfter: 1500 * time.Millisecond}, func(t *testing.T, e *env) {
			r := e.send(body)
			if r.status != 429 || r.raw != `{"error":"Rate limit exceeded"}` || r.header.Get("Retry-After") != "2" {
				t.Fatalf("HTTP %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.raw)
			}
			expectAccepted(t, e, 0)
		}},
		{"500", sandbox.Faults{Status5xx: 1}, func(t *testing.T, e *env) {
			r := e.send(body)
			if r.status != 500 || r.raw != `{"error":"Internal server error"}` {
				t.Fatalf("HTTP %d %s", r.status, r.raw)
			}
			expectAccepted(t, e, 0)
		}},
		{"accept then drop", sandbox.Faults{AcceptThenDrop: 1}, func(t *testing.T, e *env) {
			if r, err := e.do(http.MethodPost, "/sandbox/sendTemplate", bearer, body); err == nil {
				t.Fatalf("client got an answer: HTTP %d %s", r.status, r.raw)
			}
			expectAccepted(t, e, 1)
			m := e.sb.Messages()[0]
			if !m.Dropped {
				t.Fatalf("message not marked dropped: %+v", m)
			}
			hist := e.get("/sandbox/messages?chatId=79001234567")
			if !strings.Contains(hist.raw, m.ID) {
				t.Fatalf("/messages does not show the dropped message: %s", hist.raw)
			}
			eventually(t, 2*time.Second, "statuses of the dropped message", func() bool { return len(e.hookInfo(m.ID)) == 3 })
			req := e.sb.Requests()[0]
			if req.Outcome != sandbox.OutcomeDropped || req.Answered || req.MessageID != m.ID {
				t.Fatalf("request %+v", req)
			}
			if st := e.sb.Stats(); st.Dropped != 1 {
				t.Fatalf("Stats() = %+v", st)
			}
		}},
		{"queued", sandbox.Faults{Queued: 1, QueuedFor: 50 * time.Millisecond}, func(t *testing.T, e *env) {
			r := e.send(body)
			job, _ := r.json["jobId"].(string)
			if r.status != 200 || r.json["sent"] != false || r.json["message"] != "queued" || !strings.HasPrefix(job, "job_") || r.json["id"] != nil {
				t.Fatalf("HTTP %d %s", r.status, r.raw)
			}
			if n := len(e.sb.Messages()); n != 0 {
				t.Fatalf("%d messages before the job ran", n)
			}
			if h := e.hookInfo(job); len(h) != 0 {
				t.Fatalf("hookInfo by jobId: %v", h)
			}
			eventually(t, 2*time.Second, "the queued message accepted", func() bool { return len(e.sb.Messages()) == 1 })
			if m := e.sb.Messages()[0]; m.JobID != job || !strings.HasPrefix(m.ID, "wamid.") {
				t.Fatalf("message %+v", m)
			}
			if !strings.Contains(e.get("/sandbox/messages").raw, `"chatId":"79001234567@c.us"`) {
				t.Fatal("/messages does not show the queued message")
			}
			if st := e.sb.Stats(); st.Queued != 1 || st.Accepted != 1 {
				t.Fatalf("Stats() = %+v", st)
			}
		}},
		{"down", sandbox.Faults{Down: true}, func(t *testing.T, e *env) {
			if r, err := e.do(http.MethodPost, "/sandbox/sendTemplate", bearer, body); err == nil {
				t.Fatalf("sendTemplate answered while down: HTTP %d", r.status)
			}
			if r, err := e.do(http.MethodGet, "/sandbox/status?token=sandbox-token", nil, ""); err == nil {
				t.Fatalf("status answered while down: HTTP %d", r.status)
			}
			expectAccepted(t, e, 0) // the control endpoints still work
			if req := e.sb.Requests(); len(req) != 1 || req[0].Outcome != sandbox.OutcomeDown {
				t.Fatalf("requests %+v", req)
			}
		}},
		{"hang until the client gives up", sandbox.Faults{Hang: 1}, func(t *testing.T, e *env) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/sandbox/sendTemplate", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer sandbox-token")
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			if res, err := e.hc.Do(req); err == nil {
				res.Body.Close()
				t.Fatalf("answered HTTP %d", res.StatusCode)
			}
			if time.Since(start) < 90*time.Millisecond {
				t.Fatal("gave up before the client's deadline")
			}
			eventually(t, time.Second, "the hung request recorded", func() bool { return len(e.sb.Requests()) == 1 })
			if r := e.sb.Requests()[0]; r.Outcome != sandbox.OutcomeHang || r.Answered {
				t.Fatalf("request %+v", r)
			}
			expectAccepted(t, e, 0)
		}},
		{"slow answer after acceptance", sandbox.Faults{Slow: 1, SlowBy: 150 * time.Millisecond}, func(t *testing.T, e *env) {
			start := time.Now()
			if r := e.send(body); r.json["sent"] != true || time.Since(start) < 150*time.Millisecond {
				t.Fatalf("patient client: %s after %v", r.raw, time.Since(start))
			}
			// An impatient client learns nothing, yet its message went out.
			impatient := &http.Client{Timeout: 50 * time.Millisecond}
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/sandbox/sendTemplate", strings.NewReader(sendBody("79001234568", okParams...)))
			req.Header.Set("Authorization", "Bearer sandbox-token")
			req.Header.Set("Content-Type", "application/json")
			if res, err := impatient.Do(req); err == nil {
				res.Body.Close()
				t.Fatal("impatient client got an answer")
			}
			expectAccepted(t, e, 2)
			eventually(t, time.Second, "the slow request recorded", func() bool { return len(e.sb.Requests()) == 2 })
			if r := e.sb.Requests()[1]; r.Outcome != sandbox.OutcomeAccepted || r.Answered {
				t.Fatalf("request %+v", r)
			}
		}},
		{"latency", sandbox.Faults{Latency: 60 * time.Millisecond}, func(t *testing.T, e *env) {
			start := time.Now()
			if r := e.send(body); r.json["sent"] != true || time.Since(start) < 60*time.Millisecond {
				t.Fatalf("%s after %v", r.raw, time.Since(start))
			}
		}},
		{"Meta throughput 130429", sandbox.Faults{RatePerSecond: 1}, func(t *testing.T, e *env) {
			if r := e.send(body); r.json["sent"] != true {
				t.Fatalf("first: %s", r.raw)
			}
			r := e.send(sendBody("79001234568", okParams...))
			if r.status != 429 || r.json["sent"] != false || metaCode(r) != 130429 || !strings.Contains(r.raw, "(#130429) Rate limit hit") {
				t.Fatalf("second: HTTP %d %s", r.status, r.raw)
			}
			expectAccepted(t, e, 1)
			if st := e.sb.Stats(); st.Throttled != 1 {
				t.Fatalf("Stats() = %+v", st)
			}
		}},
		{"Meta pair rate 131056", sandbox.Faults{PairInterval: time.Hour}, func(t *testing.T, e *env) {
			if r := e.send(body); r.json["sent"] != true {
				t.Fatalf("first: %s", r.raw)
			}
			r := e.send(body)
			if r.status != 200 || r.json["sent"] != false || metaCode(r) != 131056 ||
				!strings.Contains(r.raw, "(#131056) (Business Account, Consumer Account) pair rate limit hit") {
				t.Fatalf("same recipient: HTTP %d %s", r.status, r.raw)
			}
			if r := e.send(sendBody("79001234568", okParams...)); r.json["sent"] != true {
				t.Fatalf("other recipient: %s", r.raw)
			}
			expectAccepted(t, e, 2)
		}},
		{"duplicate acks", sandbox.Faults{DuplicateAcks: 1}, func(t *testing.T, e *env) {
			id := e.send(body).json["id"].(string)
			var hooks []map[string]any
			eventually(t, 2*time.Second, "six reports", func() bool { hooks = e.hookInfo(id); return len(hooks) == 6 })
			got := statuses(hooks)
			slices.Sort(got)
			if !slices.Equal(got, []string{"delivered", "delivered", "read", "read", "sent", "sent"}) {
				t.Fatalf("statuses %v", statuses(hooks))
			}
		}},
		{"out of order acks", sandbox.Faults{OutOfOrderAcks: 1}, func(t *testing.T, e *env) {
			id := e.send(body).json["id"].(string)
			var hooks []map[string]any
			eventually(t, 2*time.Second, "three reports", func() bool { hooks = e.hookInfo(id); return len(hooks) == 3 })
			if got := statuses(hooks); slices.Equal(got, []string{"sent", "delivered", "read"}) {
				t.Fatalf("statuses arrived in order: %v", got)
			}
			if m, _ := e.sb.Message(id); m.Status != sandbox.StatusRead {
				t.Fatalf("status %q after out-of-order reports, want read", m.Status)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.sb.SetFaults(tt.faults)
			tt.check(t, e)
		})
	}
}

func metaCode(r response) float64 {
	m, _ := r.json["error"].(map[string]any)
	c, _ := m["code"].(float64)
	return c
}

// expectAccepted checks Stats and /_sandbox/stats (over HTTP, as another
// process would) agree on the number of accepted messages.
func expectAccepted(t *testing.T, e *env, n int64) {
	t.Helper()
	if got := e.sb.Stats().Accepted; got != n {
		t.Fatalf("Stats().Accepted = %d, want %d", got, n)
	}
	if got := len(e.sb.Messages()); int64(got) != n {
		t.Fatalf("Messages() has %d, want %d", got, n)
	}
	r := e.must(http.MethodGet, "/_sandbox/stats", nil, "")
	var st sandbox.Stats
	if err := json.Unmarshal([]byte(r.raw), &st); err != nil || st.Accepted != n {
		t.Fatalf("/_sandbox/stats: %s (%v)", r.raw, err)
	}
}

func TestControlEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"strings and milliseconds", `{"status5xx":0.5,"latency":"10ms","retryAfter":1500,"pairInterval":"6s"}`, 200,
			`"retryAfter":"1.5s","status5xx":0.5`},
		{"share out of range", `{"status429":2}`, 400, "status429 = 2 is not a share in [0,1]"},
		{"unknown field", `{"statuz5xx":1}`, 400, "unknown field"},
		{"bad duration", `{"latency":"soon"}`, 400, "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.must(http.MethodPut, "/_sandbox/faults", nil, tt.body)
			if r.status != tt.status || !strings.Contains(r.raw, tt.want) {
				t.Fatalf("HTTP %d %s, want %d containing %s", r.status, r.raw, tt.status, tt.want)
			}
		})
	}
	f := e.sb.Faults()
	if f.Status5xx != 0.5 || f.Latency != 10*time.Millisecond || f.RetryAfter != 1500*time.Millisecond || f.PairInterval != 6*time.Second {
		t.Fatalf("Faults() = %+v", f)
	}
	if r := e.must(http.MethodGet, "/_sandbox/faults", nil, ""); !strings.Contains(r.raw, `"latency":"10ms"`) {
		t.Fatalf("GET faults: %s", r.raw)
	}

	e.sb.SetFaults(sandbox.Faults{})
	body := sendBody("79001234567", okParams...)
	e.send(body)
	var reqs []sandbox.Request
	if err := json.Unmarshal([]byte(e.must(http.MethodGet, "/_sandbox/requests", nil, "").raw), &reqs); err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || string(reqs[0].Body) != body || reqs[0].Header.Get("Authorization") != "Bearer sandbox-token" {
		t.Fatalf("/_sandbox/requests = %+v", reqs)
	}
	var msgs []sandbox.Message
	if err := json.Unmarshal([]byte(e.must(http.MethodGet, "/_sandbox/messages?phone=79001234567", nil, "").raw), &msgs); err != nil || len(msgs) != 1 {
		t.Fatalf("/_sandbox/messages: %v %+v", err, msgs)
	}

	e.must(http.MethodPost, "/sandbox/webhook", bearer, `{"webhookUrl":"https://crm.example/hook"}`)
	if r := e.must(http.MethodPost, "/_sandbox/reset", nil, ""); r.raw != `{"reset":true}` {
		t.Fatalf("reset: %s", r.raw)
	}
	if st := e.sb.Stats(); st.SendRequests != 0 || len(e.sb.Messages()) != 0 || len(e.sb.Requests()) != 0 {
		t.Fatalf("after reset: %+v", st)
	}
	if urls := e.sb.Settings().WebhookURLs; len(urls) != 1 {
		t.Fatalf("reset dropped the webhook: %v", urls)
	}
	e.must(http.MethodPost, "/_sandbox/reset?settings=1", nil, "")
	if urls := e.sb.Settings().WebhookURLs; len(urls) != 0 {
		t.Fatalf("reset?settings=1 kept the webhook: %v", urls)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"ONEMSG_CHANNEL_ID": "ODI371267300",
		"ONEMSG_TOKEN":      "secret",
		"ONEMSG_TEMPLATE":   "order_cancel_v2",
		"ONEMSG_NAMESPACE":  "ns_1",
		"ONEMSG_LANGUAGE":   "ru",
	}
	cfg := sandbox.ConfigFromEnv(func(k string) string { return env[k] })
	tpl := cfg.Templates[0]
	if cfg.Channel != "ODI371267300" || cfg.Token != "secret" || tpl.Name != "order_cancel_v2" || tpl.Namespace != "ns_1" || tpl.Language != "ru" || tpl.Body != sandbox.DefaultBody {
		t.Fatalf("ConfigFromEnv = %+v", cfg)
	}
	def := sandbox.ConfigFromEnv(func(string) string { return "" })
	if def.Channel != "sandbox" || def.Token != "sandbox-token" || def.Templates[0].Name != "order_cancelled" || def.DeliveredAfter != time.Second || def.ReadAfter != 3*time.Second {
		t.Fatalf("defaults = %+v", def)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	sb := sandbox.New(sandbox.DefaultConfig())
	sb.Close()
	sb.Close()
}
