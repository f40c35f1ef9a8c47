-- cancelnotify schema, version 13: fewer WAL bytes per message, from where
-- pg_walinspect put them over a 20,000-row burst (README.md, "What
-- cancelnotify costs your database", has the figures).

-- Room on the page. An UPDATE whose new row version fits on the page of the
-- old one logs only the bytes that changed; one that does not logs the whole
-- row again on another page, plus a 54-byte lock record for the old version
-- (Postgres writes it while it looks for room). The relay's update of an
-- outbox row fitted on its page 23 % of the time (76 bytes against 370),
-- River's two updates of a send job (fetched, completed) 9 % of the time.
-- notification, at 50 since version 11, still moved a quarter of its sent
-- updates. Fillfactor only applies to pages filled from now on; nothing is
-- rewritten, and the ALTERs take no lock that stops reads or writes.
ALTER TABLE outbox SET (fillfactor = 50);
ALTER TABLE notification SET (fillfactor = 30);
ALTER TABLE river_job SET (fillfactor = 30);

-- River indexes every job's metadata ('{}' for a send job) in a GIN index,
-- at each of the job's three writes. In GIN's pending list (fastupdate)
-- each costs a 166-byte record; inserted directly, about 120. The args
-- index stays as River made it: its two entries per write cost less in the
-- pending list than directly. REINDEX, which River's reindexer runs, keeps
-- the setting.
ALTER INDEX river_job_metadata_index SET (fastupdate = off);

-- wamid is unique when set, and only then indexed: the insert, with no
-- wamid yet, no longer writes an entry for NULL.
CREATE UNIQUE INDEX notification_wamid_idx ON notification (wamid) WHERE wamid IS NOT NULL;
ALTER TABLE notification DROP CONSTRAINT notification_wamid_key;
COMMENT ON INDEX notification_wamid_idx IS
    'wamid is unique when set: webhooks and hookInfo results find their row here.';

-- One phone index instead of two: pacing looks a phone up by equality on
-- its reversed digits, and the support page's "last digits" is a prefix of
-- them. The sent update writes one index entry fewer.
CREATE INDEX notification_phone_reversed_idx ON notification (reverse(phone) text_pattern_ops, not_before DESC) WHERE phone <> '';
DROP INDEX notification_phone_idx;
DROP INDEX notification_phone_suffix_idx;
COMMENT ON INDEX notification_phone_reversed_idx IS
    'The phone reversed: pacing (reverse(phone) = reverse($1), latest not_before first) and the support page''s search by the last digits (a prefix of the reversed phone).';

-- The report reads cancelled_at from notification.event_created_at (the
-- outbox row's created_at, copied, and indexed there), so the outbox needs
-- no index on created_at and every OMS insert writes one index fewer. Rows
-- the relay has not reached yet come from the outbox, by its index of
-- unrelayed rows. Same columns as before; a notification whose outbox row
-- the OMS deleted now stays in the report.
CREATE OR REPLACE VIEW notification_report AS
SELECT
    n.event_id,
    coalesce(n.order_number, n.params ->> 1, o.payload ->> 'order_number') AS order_number,
    coalesce(n.customer_name, n.params ->> 0, o.payload ->> 'customer_name') AS customer_name,
    CASE WHEN n.phone = '' THEN NULL
         ELSE '+' || left(n.phone, greatest(length(n.phone) - 6, 1)) || '****' || right(n.phone, 2)
    END AS phone_masked,
    n.channel,
    n.status,
    n.status IN ('delivered', 'read', 'failed', 'rejected', 'skipped', 'expired') AS final,
    n.error_code,
    n.error,
    n.wamid,
    n.pricing_category,
    n.pricing_model,
    n.pricing_type,
    n.billable,
    n.event_created_at AS cancelled_at,
    n.sent_at,
    n.delivered_at,
    n.read_at,
    n.failed_at,
    n.delivered_at - n.event_created_at AS delivery_time,
    n.attempts,
    n.updated_at
FROM notification n
LEFT JOIN outbox o ON o.id = n.outbox_id
UNION ALL
SELECT
    o.event_id,
    o.payload ->> 'order_number',
    o.payload ->> 'customer_name',
    NULL::text,
    coalesce(o.payload ->> 'channel', 'default'),
    'queued'::text,
    false,
    NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean,
    o.created_at,
    NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
    NULL::interval,
    NULL::integer,
    NULL::timestamptz
FROM outbox o
WHERE o.relayed_at IS NULL AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.outbox_id = o.id);
DROP INDEX outbox_created_at_idx;
COMMENT ON COLUMN notification_report.cancelled_at IS 'When the OMS wrote the outbox row (notification.event_created_at, indexed; outbox.created_at while the relay has not reached the row).';
