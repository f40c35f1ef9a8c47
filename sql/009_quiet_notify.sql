-- cancelnotify schema, version 9: NOTIFY only when someone sleeps on it.
--
-- A transaction that NOTIFYs takes Postgres's database-wide notification
-- lock at COMMIT and holds it through its WAL flush, so every NOTIFYing
-- commit in the database waits for the one before it. The OMS's
-- cancellations and the daemon's own status announcements paid that price
-- on every row. README.md ("What cancelnotify costs your database")
-- describes the result.

-- The outbox trigger NOTIFYs only when a relay is asleep. A sleeping relay
-- holds the session advisory lock (1668182577, hashtext(schema)) exclusively
-- on its LISTEN connection; the trigger tries the same lock in shared mode
-- for the rest of the OMS's transaction, never waiting. If it cannot get it,
-- a relay sleeps (or is about to): NOTIFY. If it can, no relay sleeps: every
-- relay drains the outbox again after taking the lock, which waits for this
-- transaction to end, so the row is seen without a NOTIFY. With no daemon
-- running nobody holds the lock and nothing is NOTIFYed at all.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(1668182577, hashtext(TG_TABLE_SCHEMA)) THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.outbox', '');
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION outbox_notify() IS
    'Wakes a sleeping relay: NOTIFY <schema>.outbox only while a relay holds the advisory lock (1668182577, hashtext(schema)) that says it sleeps.';

-- status_announcement: status changes waiting to be announced on
-- cancelnotify_status. The transaction that changes a status writes the
-- change here instead of NOTIFYing; one announcer at a time (an advisory
-- lock) takes the oldest rows, NOTIFYs them several to a payload and
-- deletes them in one transaction. A row exists only until it is announced.
CREATE TABLE status_announcement (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload  text NOT NULL
);

COMMENT ON TABLE status_announcement IS
    'Status changes committed but not yet NOTIFYed on cancelnotify_status; the daemon announces and deletes them within milliseconds.';
COMMENT ON COLUMN status_announcement.id IS
    'Order of the changes: announced by ascending id, so the changes of one notification reach listeners in the order they were made.';
COMMENT ON COLUMN status_announcement.payload IS
    'The JSON object a listener receives for this change (README.md, "Without polling").';
