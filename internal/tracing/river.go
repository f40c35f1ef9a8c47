package tracing

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// RiverMiddleware returns the River middleware that traces jobs: otelriver's
// spans (river.insert_many, river.work/<kind>), each job's work span the
// child of the span whose trace context its metadata carries. otelriver
// itself only links a work span to the inserting one, which would start a
// new trace per job; a notification's jobs belong to its trace.
func RiverMiddleware(tp trace.TracerProvider) []rivertype.Middleware {
	return []rivertype.Middleware{
		&continueTrace{},
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
			TracerProvider:              tp,
			MeterProvider:               noop.NewMeterProvider(), // metrics are Prometheus's (internal/metrics)
			EnableWorkSpanJobKindSuffix: true,
		}),
	}
}

// continueTrace makes the trace context in a job's metadata the parent of
// everything the job does. It must run before otelriver's middleware.
type continueTrace struct {
	river.WorkerMiddlewareDefaults
}

func (*continueTrace) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	return doInner(WithParent(ctx, FromMetadata(job.Metadata)))
}

// StatusSpans returns a ledger.ChangeFunc that records each status change
// as a span "cancelnotify.status" in its notification's trace, whichever
// part of the daemon made it (API answer, webhook, poll, operator), linked
// to the span that made it when there is one.
func StatusSpans(tp trace.TracerProvider) ledger.ChangeFunc {
	tracer := Tracer(tp)
	return func(ctx context.Context, _ pgx.Tx, changes []ledger.Change) error {
		var links []trace.Link
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			links = []trace.Link{{SpanContext: sc}}
		}
		for _, c := range changes {
			n := c.Notification
			if n.TraceParent == "" {
				continue
			}
			attrs := []attribute.KeyValue{
				attribute.Int64("cancelnotify.notification_id", n.ID),
				attribute.String("cancelnotify.event_id", n.EventID),
				attribute.String("cancelnotify.status", string(c.To)),
				attribute.String("cancelnotify.status_from", string(c.From)),
				attribute.String("cancelnotify.source", string(c.Source)),
			}
			if n.Wamid != "" {
				attrs = append(attrs, attribute.String("cancelnotify.wamid", n.Wamid))
			}
			if n.ErrorCode != "" && (c.To == ledger.StatusFailed || c.To == ledger.StatusRejected || c.To == ledger.StatusInDoubt) {
				attrs = append(attrs, attribute.String("cancelnotify.error_code", n.ErrorCode))
			}
			_, span := tracer.Start(WithParent(context.Background(), n.TraceParent), "cancelnotify.status",
				trace.WithTimestamp(c.At), trace.WithLinks(links...), trace.WithAttributes(attrs...))
			span.End(trace.WithTimestamp(c.At))
		}
		return nil
	}
}
