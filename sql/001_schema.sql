-- cancelnotify schema, version 1: the outbox the OMS writes, the
-- notification ledger the daemon keeps, and the report CRM and finance read.
-- Runs with search_path set to the configured schema; names stay unqualified.

-- outbox: written by the OMS inside the transaction that cancels the order.
-- Only event_id is constrained: a bad payload is the daemon's problem, never
-- a reason for the OMS's cancellation to roll back.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    event_type  text NOT NULL DEFAULT 'order.cancelled',
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    relayed_at  timestamptz
);

-- The relay's only query: the oldest unrelayed rows. Partial, so it stays as
-- small as the backlog.
CREATE INDEX outbox_unrelayed_idx ON outbox (id) WHERE relayed_at IS NULL;

-- One NOTIFY per INSERT statement wakes the relay. The channel carries the
-- schema so that several installations in one database stay apart.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- notification: one row per outbox event, owned by the daemon.
CREATE TABLE notification (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id         bigint NOT NULL UNIQUE,
    event_id          text NOT NULL,
    event_created_at  timestamptz NOT NULL,
    phone             text NOT NULL DEFAULT '',
    template          text NOT NULL,
    language          text NOT NULL,
    params            jsonb NOT NULL DEFAULT '[]',
    shortened         text[] NOT NULL DEFAULT '{}',
    status            text NOT NULL,
    wamid             text UNIQUE,
    onemsg_job_id     text,
    error_code        text,
    error             text,
    attempts          integer NOT NULL DEFAULT 0,
    attempted_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz,
    delivered_at      timestamptz,
    read_at           timestamptz,
    failed_at         timestamptz,
    CONSTRAINT notification_status_check CHECK (status IN (
        'queued', 'sending', 'in_doubt', 'sent', 'delivered', 'read',
        'failed', 'rejected', 'skipped', 'expired'))
);

-- Counts by status and "what failed since …" without a table scan.
CREATE INDEX notification_status_idx ON notification (status, updated_at);

-- notification_event: every status received or decided, from any source.
CREATE TABLE notification_event (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL,
    status           text NOT NULL,
    source           text NOT NULL,
    applied          boolean NOT NULL,
    detail           jsonb NOT NULL DEFAULT '{}',
    occurred_at      timestamptz,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_event_source_check CHECK (source IN (
        'api', 'webhook', 'poll', 'operator', 'daemon'))
);

CREATE INDEX notification_event_notification_idx ON notification_event (notification_id, id);

-- notification_report: one row per cancellation for CRM and finance.
CREATE VIEW notification_report AS
SELECT
    o.event_id,
    coalesce(n.params ->> 1, o.payload ->> 'order_number') AS order_number,
    coalesce(n.params ->> 0, o.payload ->> 'customer_name') AS customer_name,
    CASE WHEN coalesce(n.phone, '') = '' THEN NULL
         ELSE '+' || left(n.phone, greatest(length(n.phone) - 6, 1)) || '****' || right(n.phone, 2)
    END AS phone_masked,
    coalesce(n.status, 'queued') AS status,
    coalesce(n.status IN ('delivered', 'read', 'failed', 'rejected', 'skipped', 'expired'), false) AS final,
    n.error_code,
    n.error,
    n.wamid,
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
