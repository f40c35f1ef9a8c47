-- cancelnotify schema, version 12: notification_event without its foreign key.
--
-- sql/006_finance.sql added the reference saying it cost nothing. It did not:
-- Postgres checks it by locking the referenced notification row (FOR KEY
-- SHARE) for every event inserted, and a row lock is a WAL record of its
-- own (54 bytes) whenever the transaction has not locked that row version
-- already, as when it has just updated it. Measured with pg_walinspect over
-- a 3,000-row burst: two such locks per message, and six checking queries
-- per message for the database to run. Events are written only by the
-- daemon, always for the row it holds locked or has just inserted, and
-- retention deletes a notification with its events in one statement
-- (internal/ledger), so the reference guarded nothing the code does not.
ALTER TABLE notification_event DROP CONSTRAINT notification_event_notification_fk;

COMMENT ON COLUMN notification_event.notification_id IS
    'The notification (notification.id). No foreign key: the daemon writes events only for rows it holds, and checking one cost a row lock and its WAL per event.';
