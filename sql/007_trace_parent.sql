-- cancelnotify schema, version 7: each notification's OpenTelemetry trace.
-- The relay starts one trace per notification; its jobs, 1MSG calls and
-- status changes (from any source, webhooks included) continue it.
ALTER TABLE notification ADD COLUMN trace_parent text;
COMMENT ON COLUMN notification.trace_parent IS
  'W3C traceparent of the notification''s trace (README, "Traces"), set by the relay when traces are on; NULL when they are off. Its second field is the trace id to look up in the tracing backend.';
