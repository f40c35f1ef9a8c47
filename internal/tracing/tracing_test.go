package tracing_test

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cancelnotify/cancelnotify/internal/tracing"
)

// Traces are off unless the environment asks for them.
func TestEnabled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_SERVICE_NAME": "cancelnotify-eu"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, false},
	} {
		if got := tracing.Enabled(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("Enabled(%v) = %v, want %v", c.env, got, c.want)
		}
	}
	tp, shutdown, err := tracing.FromEnv(context.Background(), func(string) string { return "" })
	if tp != nil || err != nil || shutdown(context.Background()) != nil {
		t.Errorf("FromEnv with nothing set = %v, %v; want nil (off)", tp, err)
	}
}

// Redact removes secrets, query values but a wamid, the webhook secret in
// a path and phone numbers in error texts, and keeps everything else.
func TestRedact(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracing.Redact(exp, "tok-SECRET", "")))
	_, span := tp.Tracer("t").Start(context.Background(), "call")
	span.SetAttributes(
		attribute.String("url.full", "https://user:pw@api.1msg.io/ch1/messages?chatId=79001234567%40c.us&limit=100"),
		attribute.String("url.path", "/webhooks/1msg/hook-secret-123"),
		attribute.String("url.query", "messageId=wamid.ABC&token=t"),
		attribute.String("http.url", "https://api.1msg.io/ch1/hookInfo?messageId=wamid.ABC"),
		attribute.String("note", "Bearer tok-SECRET"),
		attribute.StringSlice("tags", []string{"tok-SECRET", "ok"}),
		attribute.String("cancelnotify.event_id", "order-10482-cancelled"),
		attribute.Int64("cancelnotify.notification_id", 17),
	)
	span.RecordError(errStr("recipient +7 900 123-45-67 is not a WhatsApp user"))
	span.SetStatus(codes.Error, "1MSG: phone 79001234567 invalid; token tok-SECRET")
	span.End()

	got := exp.GetSpans()[0]
	want := map[string]string{
		"url.full":                     "https://api.1msg.io/ch1/messages?chatId=REDACTED&limit=REDACTED",
		"url.path":                     "/webhooks/1msg/{secret}",
		"url.query":                    "messageId=wamid.ABC&token=REDACTED",
		"http.url":                     "https://api.1msg.io/ch1/hookInfo?messageId=wamid.ABC",
		"note":                         "Bearer REDACTED",
		"tags":                         `["REDACTED","ok"]`,
		"cancelnotify.event_id":        "order-10482-cancelled",
		"cancelnotify.notification_id": "17",
	}
	for _, kv := range got.Attributes {
		if w, ok := want[string(kv.Key)]; ok && kv.Value.Emit() != w {
			t.Errorf("%s = %s, want %s", kv.Key, kv.Value.Emit(), w)
		}
	}
	if d := got.Status.Description; d != "1MSG: phone [number] invalid; token REDACTED" {
		t.Errorf("status %q", d)
	}
	if m := got.Events[0].Attributes; len(m) == 0 || attrValue(m, "exception.message") != "recipient [number] is not a WhatsApp user" {
		t.Errorf("exception event %v", m)
	}
}

type errStr string

func (e errStr) Error() string { return string(e) }

func attrValue(kvs []attribute.KeyValue, k string) string {
	for _, kv := range kvs {
		if string(kv.Key) == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

// A job's metadata carries its trace; empty when traces are off.
func ExampleMetadata() {
	md := tracing.Metadata("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	fmt.Println(tracing.FromMetadata(md), tracing.Metadata("") == nil)
	// Output: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 true
}
