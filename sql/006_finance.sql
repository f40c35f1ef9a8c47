-- cancelnotify schema, version 6: what each message cost, lookups by order
-- number and phone for the support page, and a description of every object
-- for the people who read these tables with psql (\d+).

-- What Meta says a message costs, from the `pricing` object of its status
-- entries (webhook or hookInfo): the first entry that carries one sets
-- these; entries without pricing never clear them.
ALTER TABLE notification
    ADD COLUMN pricing_category text,
    ADD COLUMN pricing_model    text,
    ADD COLUMN pricing_type     text,
    ADD COLUMN billable         boolean,
    -- The order number and customer name as the payload gave them, also for
    -- rejected and skipped rows (params holds them only for rows sent).
    ADD COLUMN order_number     text,
    ADD COLUMN customer_name    text,
    -- The channel the message goes through (README.md, "Configuration").
    ADD COLUMN channel          text NOT NULL DEFAULT 'default';

-- Rows written before this version: take both from what was sent, else from
-- the outbox payload (clipped: a rejected payload may hold anything).
UPDATE notification n
SET order_number  = left(coalesce(n.params ->> 1, o.payload ->> 'order_number'), 200),
    customer_name = left(coalesce(n.params ->> 0, o.payload ->> 'customer_name'), 200)
FROM outbox o
WHERE o.id = n.outbox_id;

-- Statuses held for an unknown wamid keep their pricing until adopted.
ALTER TABLE webhook_orphan ADD COLUMN pricing jsonb;

-- `cancelnotify status 10482` and the support page's search.
CREATE INDEX notification_order_number_idx ON notification (order_number);
-- "Last digits of the phone": a prefix search on the reversed number.
CREATE INDEX notification_phone_suffix_idx ON notification (reverse(phone) text_pattern_ops) WHERE phone <> '';
-- The support page lists newest first.
CREATE INDEX notification_event_created_idx ON notification (event_created_at DESC, id DESC);
-- The report's time filters (cancelled_at is the outbox row's created_at):
-- "the last 24 hours" or "this week" read a range, not 90 days of rows.
CREATE INDEX outbox_created_at_idx ON outbox (created_at);

-- Every event belongs to a notification. Costs nothing: events are always
-- written after their row, and retention deletes both in one statement; the
-- index on (notification_id, id) serves the check. The outbox gets no such
-- reference: it is the OMS's table, and an OMS-side DELETE or TRUNCATE must
-- not fail because of the daemon's rows.
ALTER TABLE notification_event
    ADD CONSTRAINT notification_event_notification_fk
    FOREIGN KEY (notification_id) REFERENCES notification (id);

DROP VIEW notification_report;
CREATE VIEW notification_report AS
SELECT
    o.event_id,
    coalesce(n.order_number, n.params ->> 1, o.payload ->> 'order_number') AS order_number,
    coalesce(n.customer_name, n.params ->> 0, o.payload ->> 'customer_name') AS customer_name,
    CASE WHEN coalesce(n.phone, '') = '' THEN NULL
         ELSE '+' || left(n.phone, greatest(length(n.phone) - 6, 1)) || '****' || right(n.phone, 2)
    END AS phone_masked,
    coalesce(n.channel, o.payload ->> 'channel', 'default') AS channel,
    coalesce(n.status, 'queued') AS status,
    coalesce(n.status IN ('delivered', 'read', 'failed', 'rejected', 'skipped', 'expired'), false) AS final,
    n.error_code,
    n.error,
    n.wamid,
    n.pricing_category,
    n.pricing_model,
    n.pricing_type,
    n.billable,
    o.created_at AS cancelled_at,
    n.sent_at,
    n.delivered_at,
    n.read_at,
    n.failed_at,
    n.delivered_at - o.created_at AS delivery_time,
    n.attempts,
    n.updated_at
FROM outbox o
LEFT JOIN notification n ON n.outbox_id = o.id;

-- Descriptions (\d+, \dv+ and any catalog browser show them).
COMMENT ON TABLE cancelnotify_migration IS 'cancelnotify''s own schema migrations applied to this schema (River records its own in river_migration).';
COMMENT ON COLUMN cancelnotify_migration.version IS 'Migration number, the NNN of sql/NNN_name.sql.';
COMMENT ON COLUMN cancelnotify_migration.name IS 'Migration name, the name of sql/NNN_name.sql.';
COMMENT ON COLUMN cancelnotify_migration.applied_at IS 'When `cancelnotify migrate` applied it.';

COMMENT ON TABLE outbox IS 'Written by the OMS: one row per event, inserted in the transaction that cancels the order. The daemon only sets relayed_at (and retention deletes old rows).';
COMMENT ON COLUMN outbox.id IS 'Row id; notification.outbox_id refers to it.';
COMMENT ON COLUMN outbox.event_id IS 'The OMS''s idempotency key, e.g. order-10482-cancelled; an OMS retry uses ON CONFLICT (event_id) DO NOTHING.';
COMMENT ON COLUMN outbox.event_type IS 'Kind of event; only order.cancelled is handled, any other is rejected.';
COMMENT ON COLUMN outbox.payload IS 'The event''s data: phone, customer_name, order_number, product_name, next_step, optional language and whatsapp_opt_in (README.md, "How the OMS inserts a row"). Never constrained: a bad payload becomes a rejected notification, not a failed OMS transaction.';
COMMENT ON COLUMN outbox.created_at IS 'When the OMS inserted the row, i.e. when the order was cancelled (notification_report.cancelled_at).';
COMMENT ON COLUMN outbox.relayed_at IS 'When the relay created the notification for this row; NULL while waiting for the relay.';
COMMENT ON FUNCTION outbox_notify() IS 'Trigger function: one NOTIFY on channel <schema>.outbox per INSERT statement wakes the relay.';

COMMENT ON TABLE notification IS 'One row per outbox event, owned by the daemon: what is sent to whom and where it stands. Read by anyone; changed only by cancelnotify.';
COMMENT ON COLUMN notification.id IS 'Row id; notification_event.notification_id and River job args (notification_id) refer to it.';
COMMENT ON COLUMN notification.outbox_id IS 'The outbox row this notification was made from (one each).';
COMMENT ON COLUMN notification.event_id IS 'outbox.event_id, copied.';
COMMENT ON COLUMN notification.event_created_at IS 'outbox.created_at, copied: when the order was cancelled.';
COMMENT ON COLUMN notification.phone IS 'Recipient as digits, E.164 without +; empty when the payload had no readable phone.';
COMMENT ON COLUMN notification.template IS 'Name of the WhatsApp template sent (ONEMSG_TEMPLATE).';
COMMENT ON COLUMN notification.language IS 'Template language code sent, e.g. en.';
COMMENT ON COLUMN notification.params IS 'JSON array of the four template body texts exactly as sent: customer name, order number, product, next step. Empty for rejected and skipped rows.';
COMMENT ON COLUMN notification.shortened IS 'Payload keys (product_name, next_step) shortened to keep the body within Meta''s 1024 characters.';
COMMENT ON COLUMN notification.status IS 'Current status: queued, sending, in_doubt, sent, delivered, read, failed, rejected, skipped or expired (README.md, "Statuses"). Never downgraded by a late or duplicate report.';
COMMENT ON COLUMN notification.wamid IS 'WhatsApp''s message id, from 1MSG''s answer; NULL until 1MSG accepted the message. Statuses pushed by 1MSG are matched on it.';
COMMENT ON COLUMN notification.onemsg_job_id IS '1MSG''s queue job id, when 1MSG queued the send instead of sending at once (sent:false with a jobId); the wamid follows later.';
COMMENT ON COLUMN notification.error_code IS 'Why it failed or was rejected: Meta''s error code (e.g. 131026), or a rule name for rejected rows (e.g. invalid_phone).';
COMMENT ON COLUMN notification.error IS 'The error in words: 1MSG''s or Meta''s text for failed, the broken rule and the fix for rejected.';
COMMENT ON COLUMN notification.attempts IS 'Send attempts started (each recorded before the call to 1MSG).';
COMMENT ON COLUMN notification.attempted_at IS 'When the last send attempt started: the recorded intent that reconciliation compares 1MSG''s message history with.';
COMMENT ON COLUMN notification.created_at IS 'When the relay created the row.';
COMMENT ON COLUMN notification.updated_at IS 'When the row last changed.';
COMMENT ON COLUMN notification.sent_at IS 'When WhatsApp reported sent (or 1MSG accepted the message).';
COMMENT ON COLUMN notification.delivered_at IS 'When WhatsApp reported delivered (a read implies it).';
COMMENT ON COLUMN notification.read_at IS 'When WhatsApp reported read.';
COMMENT ON COLUMN notification.failed_at IS 'When it failed.';
COMMENT ON COLUMN notification.not_before IS 'Earliest time the send may go out: messages to one phone are spaced by CANCELNOTIFY_PAIR_INTERVAL (Meta''s pair rate limit).';
COMMENT ON COLUMN notification.track_job_id IS 'The River job (river_job.id) that follows the accepted message with hookInfo polls; deleted once nothing is left to learn.';
COMMENT ON COLUMN notification.pricing_category IS 'Meta''s pricing category of the message: utility, marketing, authentication or service. NULL until a status entry with pricing arrives.';
COMMENT ON COLUMN notification.pricing_model IS 'Meta''s pricing model, e.g. PMP (per message) or CBP (per conversation).';
COMMENT ON COLUMN notification.pricing_type IS 'Meta''s pricing type: regular (charged), free_customer_service or free_entry_point.';
COMMENT ON COLUMN notification.billable IS 'Whether Meta charges for the message; NULL while unknown.';
COMMENT ON COLUMN notification.order_number IS 'Order number as the payload gave it ({{2}}), also for rejected and skipped rows.';
COMMENT ON COLUMN notification.customer_name IS 'Customer name as the payload gave it ({{1}}), also for rejected and skipped rows.';
COMMENT ON COLUMN notification.channel IS 'Name of the 1MSG channel the message goes through: the payload''s "channel" key, or "default" (the ONEMSG_* variables); the other names are those of CANCELNOTIFY_CHANNELS_FILE.';

COMMENT ON TABLE notification_event IS 'Every status received or decided for a notification, from any source, applied or not: the full history.';
COMMENT ON COLUMN notification_event.id IS 'Row id; orders the history.';
COMMENT ON COLUMN notification_event.notification_id IS 'The notification (notification.id).';
COMMENT ON COLUMN notification_event.status IS 'The status reported or decided (raw when the source used a name cancelnotify does not know).';
COMMENT ON COLUMN notification_event.source IS 'Who said so: api (1MSG''s answer to the send), webhook (pushed by 1MSG), poll (hookInfo), operator (a person, CLI or support page) or daemon (its own decision).';
COMMENT ON COLUMN notification_event.applied IS 'Whether it changed notification.status; false for duplicates and for reports weaker than the current status.';
COMMENT ON COLUMN notification_event.detail IS 'The raw entry as received (webhook or hookInfo JSON, with its pricing), or the reason of a decision.';
COMMENT ON COLUMN notification_event.occurred_at IS 'When it happened, if the source says (Meta''s timestamp); NULL for 1MSG acks, which carry none.';
COMMENT ON COLUMN notification_event.recorded_at IS 'When cancelnotify wrote it down; later than occurred_at by the delivery delay.';

COMMENT ON TABLE webhook_orphan IS 'Statuses pushed for a wamid no notification has (yet): applied once the send records that wamid; statuses of other systems'' messages on the channel are deleted after a day.';
COMMENT ON COLUMN webhook_orphan.id IS 'Row id; keeps the order of arrival.';
COMMENT ON COLUMN webhook_orphan.wamid IS 'The message id the status is about.';
COMMENT ON COLUMN webhook_orphan.status IS 'The status as pushed.';
COMMENT ON COLUMN webhook_orphan.error_code IS 'Meta''s error code, for failed.';
COMMENT ON COLUMN webhook_orphan.error IS 'Error text, for failed.';
COMMENT ON COLUMN webhook_orphan.occurred_at IS 'When it happened, if the push says.';
COMMENT ON COLUMN webhook_orphan.detail IS 'The raw entry as pushed.';
COMMENT ON COLUMN webhook_orphan.received_at IS 'When the webhook received it.';
COMMENT ON COLUMN webhook_orphan.pricing IS 'The entry''s pricing ({category, pricing_model, type, billable}), NULL when it had none.';

COMMENT ON VIEW notification_report IS 'One row per cancellation for CRM and finance: the outbox row, its notification and what the message cost.';
COMMENT ON COLUMN notification_report.event_id IS 'The OMS''s event id.';
COMMENT ON COLUMN notification_report.order_number IS 'Order number ({{2}}).';
COMMENT ON COLUMN notification_report.customer_name IS 'Customer name ({{1}}).';
COMMENT ON COLUMN notification_report.phone_masked IS 'Recipient, masked: +79001****67.';
COMMENT ON COLUMN notification_report.channel IS 'The 1MSG channel the message goes through (notification.channel; before the relay, the payload''s "channel" key or "default").';
COMMENT ON COLUMN notification_report.status IS 'Latest status (queued while the relay has not picked the row up).';
COMMENT ON COLUMN notification_report.final IS 'Whether the status is final: delivered, read, failed, rejected, skipped or expired.';
COMMENT ON COLUMN notification_report.error_code IS 'Meta''s code for failed; the rule name for rejected.';
COMMENT ON COLUMN notification_report.error IS 'The error in words.';
COMMENT ON COLUMN notification_report.wamid IS 'WhatsApp''s message id.';
COMMENT ON COLUMN notification_report.pricing_category IS 'Meta''s pricing category: utility, marketing, authentication, service.';
COMMENT ON COLUMN notification_report.pricing_model IS 'Meta''s pricing model, e.g. PMP.';
COMMENT ON COLUMN notification_report.pricing_type IS 'Meta''s pricing type: regular, free_customer_service, free_entry_point.';
COMMENT ON COLUMN notification_report.billable IS 'Whether Meta charges for the message; NULL while unknown.';
COMMENT ON COLUMN notification_report.cancelled_at IS 'When the OMS wrote the outbox row.';
COMMENT ON COLUMN notification_report.sent_at IS 'When it was sent.';
COMMENT ON COLUMN notification_report.delivered_at IS 'When it was delivered.';
COMMENT ON COLUMN notification_report.read_at IS 'When it was read.';
COMMENT ON COLUMN notification_report.failed_at IS 'When it failed.';
COMMENT ON COLUMN notification_report.delivery_time IS 'delivered_at - cancelled_at.';
COMMENT ON COLUMN notification_report.attempts IS 'Send attempts.';
COMMENT ON COLUMN notification_report.updated_at IS 'When the notification last changed.';
