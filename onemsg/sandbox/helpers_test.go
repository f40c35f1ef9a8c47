package sandbox_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// env is a sandbox served over real HTTP.
type env struct {
	t   *testing.T
	sb  *sandbox.Server
	srv *httptest.Server
	hc  *http.Client
}

// fastConfig is DefaultConfig with timings short enough for tests.
func fastConfig() sandbox.Config {
	cfg := sandbox.DefaultConfig()
	cfg.DeliveredAfter = 30 * time.Millisecond
	cfg.ReadAfter = 60 * time.Millisecond
	cfg.WebhookRetryMin = 20 * time.Millisecond
	cfg.AckBatchWindow = 5 * time.Millisecond
	cfg.Seed = 1
	return cfg
}

func newEnv(t *testing.T, mutate func(*sandbox.Config)) *env {
	t.Helper()
	cfg := fastConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	sb := sandbox.New(cfg)
	srv := httptest.NewServer(sb)
	// Cleanups run last-in first-out: the sandbox releases held requests
	// before the HTTP server waits for them.
	t.Cleanup(srv.Close)
	t.Cleanup(sb.Close)
	return &env{t: t, sb: sb, srv: srv, hc: &http.Client{Timeout: 5 * time.Second}}
}

// response is an answer with its body decoded when it is JSON.
type response struct {
	status int
	header http.Header
	raw    string
	json   map[string]any
}

func (e *env) do(method, path string, header map[string]string, body string) (response, error) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := e.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	out := response{status: res.StatusCode, header: res.Header, raw: string(b)}
	_ = json.Unmarshal(b, &out.json)
	return out, nil
}

// must is do for requests that must get an answer.
func (e *env) must(method, path string, header map[string]string, body string) response {
	e.t.Helper()
	r, err := e.do(method, path, header, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

var bearer = map[string]string{"Authorization": "Bearer sandbox-token", "Content-Type": "application/json"}

// send posts a sendTemplate body with the Bearer token.
func (e *env) send(body string) response {
	e.t.Helper()
	return e.must(http.MethodPost, "/sandbox/sendTemplate", bearer, body)
}

func (e *env) get(path string) response {
	e.t.Helper()
	return e.must(http.MethodGet, path, map[string]string{"Authorization": "Bearer sandbox-token"}, "")
}

func (e *env) hookInfo(id string) []map[string]any {
	e.t.Helper()
	r := e.get("/sandbox/hookInfo?messageId=" + url.QueryEscape(id))
	if r.status != http.StatusOK {
		e.t.Fatalf("hookInfo: HTTP %d %s", r.status, r.raw)
	}
	var out []map[string]any
	for _, h := range r.json["hooks"].([]any) {
		out = append(out, h.(map[string]any))
	}
	return out
}

// sendBody builds the seed's request body for phone and params.
func sendBody(phone string, params ...string) string {
	ps := make([]map[string]string, len(params))
	for i, p := range params {
		ps[i] = map[string]string{"type": "text", "text": p}
	}
	b, _ := json.Marshal(map[string]any{
		"phone":     phone,
		"template":  "order_cancelled",
		"namespace": "sandbox_ns",
		"language":  map[string]string{"policy": "deterministic", "code": "en"},
		"params":    []any{map[string]any{"type": "body", "parameters": ps}},
	})
	return string(b)
}

var okParams = []string{"Alexey", "10482", "Wireless headphones", "Refund within 3-5 days"}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statuses(hooks []map[string]any) []string {
	out := make([]string, len(hooks))
	for i, h := range hooks {
		out[i], _ = h["status"].(string)
	}
	return out
}

// receiver is a webhook endpoint that records what it is sent.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	bodies   [][]byte
	failNext int // answer 500 to this many more requests
	calls    int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.calls++
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
			return
		}
		if rc.failNext > 0 {
			rc.failNext--
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		rc.bodies = append(rc.bodies, b)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) payloads() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []map[string]any
	for _, b := range rc.bodies {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("receiver got invalid JSON %q: %v", b, err))
		}
		out = append(out, m)
	}
	return out
}

// acks flattens the normalized payloads' ack arrays.
func (rc *receiver) acks() []map[string]any {
	var out []map[string]any
	for _, p := range rc.payloads() {
		list, _ := p["ack"].([]any)
		for _, a := range list {
			out = append(out, a.(map[string]any))
		}
	}
	return out
}

// subscribe registers rc and switches ack notifications on.
func (e *env) subscribe(rc *receiver, raw bool) {
	e.t.Helper()
	r := e.must(http.MethodPost, "/sandbox/settings", bearer,
		fmt.Sprintf(`{"webhookUrl":%q,"ackNotificationsOn":true,"rawHooks":%t}`, rc.srv.URL+"/hook", raw))
	if r.status != http.StatusOK {
		e.t.Fatalf("settings: HTTP %d %s", r.status, r.raw)
	}
}

func jsonEqual(t *testing.T, got string, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got invalid JSON %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("body\n got: %s\nwant: %s", got, want)
	}
}

func urlEscape(s string) string { return url.QueryEscape(s) }
