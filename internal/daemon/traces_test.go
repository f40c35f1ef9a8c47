package daemon_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/tracing"
	"github.com/cancelnotify/cancelnotify/internal/webhook"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// One notification is one trace: the relay's span, its send job with the
// 1MSG calls (a dropped answer, then the reconcile), its track job's polls,
// every status change and the CRM callbacks, parented as in README
// "Traces"; no exported span holds the phone, the name or a secret.
func TestTracesOneNotification(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.Faults = sandbox.Faults{AcceptThenDrop: 1} // sendTemplate's answer is lost: reconcile with /messages
	e := newEnv(t, sbcfg)

	const crmSecret = "crm-query-secret-5150"
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(crm.Close)

	secrets := []string{sandbox.DefaultToken, testWebhookSecret, testCallbackSecret, crmSecret}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracing.Redact(exp, secrets...)))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	cfg := e.config() // statuses by polling (hookInfo); the receiver is on for one request below
	cfg.WebhookAddr, cfg.WebhookSecret = "127.0.0.1:0", testWebhookSecret
	cfg.CallbackURL, cfg.CallbackSecret = crm.URL+"/hook?token="+crmSecret, testCallbackSecret
	cfg.TracerProvider = tp
	d := e.start(cfg)

	const eventID = "order-10482-cancelled"
	e.insert(eventID, seedPayload())
	e.waitFinal(30*time.Second, eventID)
	n := e.notification(eventID)
	if n.Status != "read" || n.TraceParent == "" {
		t.Fatalf("notification %s, trace_parent %q; want read with a trace", n.Status, n.TraceParent)
	}
	resp, err := http.Post(d.WebhookURL(), "application/json", strings.NewReader(`{"instanceId":"`+sandbox.DefaultChannel+`","ack":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	byName := func(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
		var out []tracetest.SpanStub
		for _, s := range spans {
			if s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	var spans tracetest.SpanStubs
	e.waitFor(20*time.Second, "the callbacks' and the webhook request's spans", func() bool {
		spans = exp.GetSpans()
		return len(byName(spans, "callback hook")) == 2 && len(byName(spans, "1msg webhook")) == 1
	})

	if testing.Verbose() {
		for _, s := range spans {
			t.Logf("%s %s parent=%s %q %v", s.SpanContext.TraceID().String()[:6], s.Name, s.Parent.SpanID(), s.Status.Description, s.Attributes)
		}
	}
	var relay tracetest.SpanStub
	for _, s := range byName(spans, "cancelnotify.relay") {
		if attr(s.Attributes, "cancelnotify.event_id") == eventID {
			relay = s
		}
	}
	if !relay.SpanContext.IsValid() || relay.Parent.IsValid() {
		t.Fatalf("no root span cancelnotify.relay for %s", eventID)
	}
	if got := attr(relay.Attributes, "cancelnotify.notification_id"); got != itoa(int(n.ID)) {
		t.Errorf("relay span notification_id = %q, want %d", got, n.ID)
	}
	if !strings.Contains(n.TraceParent, relay.SpanContext.TraceID().String()) {
		t.Errorf("notification.trace_parent %s is not the relay span's trace %s", n.TraceParent, relay.SpanContext.TraceID())
	}
	batch := byName(spans, "cancelnotify.relay.batch")
	if len(relay.Links) != 1 || len(batch) == 0 || relay.Links[0].SpanContext.SpanID() != batch[0].SpanContext.SpanID() {
		t.Errorf("relay span links %v, want its batch's span", relay.Links)
	}

	trace1 := map[string][]tracetest.SpanStub{}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		if s.SpanContext.TraceID() == relay.SpanContext.TraceID() {
			trace1[s.Name] = append(trace1[s.Name], s)
			byID[s.SpanContext.SpanID()] = s
		}
	}
	parentName := func(s tracetest.SpanStub) string {
		if !s.Parent.IsValid() {
			return "(root)"
		}
		p, ok := byID[s.Parent.SpanID()]
		if !ok {
			return "(not in the trace)"
		}
		return p.Name
	}
	// name → its parent's name, for every span of the notification's trace.
	for _, c := range []struct {
		name, parent string
		min          int
	}{
		{"river.work/cancelnotify_send", "cancelnotify.relay", 2}, // the attempt whose answer was lost, the reconcile
		{"1msg sendTemplate", "river.work/cancelnotify_send", 1},
		{"1msg messages", "river.work/cancelnotify_send", 1},
		{"river.work/cancelnotify_track", "river.work/cancelnotify_send", 1},
		{"1msg hookInfo", "river.work/cancelnotify_track", 1},
		{"cancelnotify.status", "cancelnotify.relay", 5},
		{"river.work/cancelnotify_callback", "cancelnotify.relay", 2},
		{"callback hook", "river.work/cancelnotify_callback", 2},
	} {
		got := trace1[c.name]
		if len(got) < c.min {
			t.Errorf("%d spans %q in the notification's trace, want at least %d; trace has %v", len(got), c.name, c.min, keys(trace1))
		}
		for _, s := range got {
			if p := parentName(s); p != c.parent {
				t.Errorf("span %q has parent %q, want %q", c.name, p, c.parent)
			}
		}
	}
	if len(trace1["1msg sendTemplate"]) != 1 {
		t.Errorf("%d sendTemplate calls, want 1: the reconcile found the message", len(trace1["1msg sendTemplate"]))
	}
	var statuses []string
	for _, s := range trace1["cancelnotify.status"] {
		statuses = append(statuses, attr(s.Attributes, "cancelnotify.status")+"/"+attr(s.Attributes, "cancelnotify.source"))
	}
	if got, want := fmtList(sorted(statuses)), "[delivered/poll queued/daemon read/poll sending/daemon sent/api]"; got != want {
		t.Errorf("status spans %s, want %s", got, want)
	}
	for _, s := range trace1["river.work/cancelnotify_send"] {
		if attr(s.Attributes, "cancelnotify.notification_id") != itoa(int(n.ID)) || attr(s.Attributes, "cancelnotify.event_id") != eventID {
			t.Errorf("send span attributes %v lack the notification", s.Attributes)
		}
	}
	outcomes := map[string]bool{}
	for _, s := range trace1["river.work/cancelnotify_send"] {
		outcomes[attr(s.Attributes, "cancelnotify.outcome")] = true
	}
	if !outcomes["unknown_outcome"] {
		t.Errorf("send spans' outcomes %v, want the lost answer's unknown_outcome", outcomes)
	}
	if u := attr(trace1["1msg messages"][0].Attributes, "url.full"); !strings.Contains(u, "chatId=REDACTED") {
		t.Errorf("messages url.full = %q, want chatId redacted", u)
	}
	if u := attr(trace1["1msg hookInfo"][0].Attributes, "url.full"); !strings.Contains(u, "messageId="+n.Wamid) {
		t.Errorf("hookInfo url.full = %q, want the wamid kept", u)
	}
	if u := attr(trace1["callback hook"][0].Attributes, "url.full"); !strings.Contains(u, "token=REDACTED") {
		t.Errorf("callback url.full = %q, want the query value redacted", u)
	}
	hook := byName(spans, "1msg webhook")[0]
	if p := attr(hook.Attributes, "url.path"); p != webhook.PathPrefix+"{secret}" {
		t.Errorf("webhook url.path = %q, want the secret replaced", p)
	}

	// No exported span, of any trace, carries the customer or a secret.
	forbidden := append([]string{"79001234567", "900 123", "Alexey", "Wireless headphones"}, secrets...)
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, kv := range s.Attributes {
			texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, ev := range s.Events {
			for _, kv := range ev.Attributes {
				texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
			}
		}
		for _, txt := range texts {
			for _, f := range forbidden {
				if strings.Contains(txt, f) {
					t.Errorf("span %q exports %q", s.Name, txt)
				}
			}
		}
	}
}

func attr(kvs []attribute.KeyValue, key string) string {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}
