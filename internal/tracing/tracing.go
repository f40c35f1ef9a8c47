// Package tracing sets up cancelnotify's OpenTelemetry traces from the
// standard OTEL_* variables and carries one notification's trace from the
// relay through its River jobs, its 1MSG calls and its status changes
// (README, "Traces").
//
// Traces are off unless OTEL_TRACES_EXPORTER names an exporter or an OTLP
// endpoint is set; then nothing is instrumented at all. Every span leaves
// the process through Redact, which removes what must never be exported:
// secrets, query values (a phone number in 1MSG's chatId) and the webhook
// secret in a path.
package tracing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ScopeName names cancelnotify's own tracer.
const ScopeName = "github.com/cancelnotify/cancelnotify"

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME says otherwise.
const DefaultServiceName = "cancelnotify"

// Enabled reports whether the environment asks for traces: an exporter
// other than "none" in OTEL_TRACES_EXPORTER, or an OTLP endpoint (whose
// exporter, by the OpenTelemetry specification, defaults to otlp).
// OTEL_SDK_DISABLED=true turns them off whatever else is set.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp != "" {
		return exp != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// FromEnv returns the tracer provider the OTEL_* variables describe, with
// every span passing through Redact(secrets), or nil (and a no-op
// shutdown) when traces are off. shutdown flushes the spans not exported
// yet; call it when the daemon stops.
func FromEnv(ctx context.Context, getenv func(string) string, secrets ...string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	shutdown = func(context.Context) error { return nil }
	if !Enabled(getenv) {
		return nil, shutdown, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, shutdown, fmt.Errorf("OpenTelemetry trace exporter (OTEL_TRACES_EXPORTER=%q): %w; use otlp, console or none",
			getenv("OTEL_TRACES_EXPORTER"), err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, shutdown, fmt.Errorf("OpenTelemetry resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(Redact(exp, secrets...)), sdktrace.WithResource(res))
	return sdk, sdk.Shutdown, nil
}

// Tracer returns cancelnotify's tracer from tp, a no-op one when tp is nil.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return tracenoop.NewTracerProvider().Tracer(ScopeName)
	}
	return tp.Tracer(ScopeName)
}

// traceContext is the one propagation format used everywhere: W3C
// traceparent, in River job metadata and in notification.trace_parent.
var traceContext = propagation.TraceContext{}

// TraceParent returns the W3C traceparent of ctx's span, "" when ctx has no
// recording span (always when traces are off).
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return c["traceparent"]
}

// WithParent returns ctx carrying the remote span context of traceparent, so
// spans started from it continue that trace. An empty or malformed
// traceparent returns ctx unchanged.
func WithParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	sc := trace.SpanContextFromContext(traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent}))
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// MetadataKey is the River job metadata key holding the trace context.
const MetadataKey = "traceparent"

// Metadata returns River job metadata carrying traceparent, nil when it is
// empty (traces off): the job is then inserted exactly as without tracing.
func Metadata(traceparent string) []byte {
	if traceparent == "" {
		return nil
	}
	b, _ := json.Marshal(map[string]string{MetadataKey: traceparent})
	return b
}

// FromMetadata reads the traceparent of River job metadata.
func FromMetadata(metadata []byte) string {
	if len(metadata) == 0 {
		return ""
	}
	var m struct {
		TraceParent string `json:"traceparent"`
	}
	_ = json.Unmarshal(metadata, &m)
	return m.TraceParent
}

// Transport returns base (http.DefaultTransport when nil) traced with
// otelhttp: one client span per request, named "<name> <last path
// segment>" (e.g. "1msg sendTemplate"). With tp nil it returns base
// untouched.
func Transport(tp trace.TracerProvider, base http.RoundTripper, name string) http.RoundTripper {
	if tp == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()), // nothing of ours goes to 1MSG or the CRM
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return name + " " + path.Base(r.URL.Path)
		}))
}

// Handler returns h traced with otelhttp: one server span per request,
// named name. With tp nil it returns h untouched.
func Handler(tp trace.TracerProvider, h http.Handler, name string) http.Handler {
	if tp == nil {
		return h
	}
	return otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()), // a caller's traceparent is not trusted
		otelhttp.WithSpanNameFormatter(func(string, *http.Request) string { return name }))
}
