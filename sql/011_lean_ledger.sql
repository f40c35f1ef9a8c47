-- cancelnotify schema, version 11: less WAL and less index work per message.
--
-- A notification row is inserted once and updated four times (sending,
-- sent, delivered, read). Measured with pg_walinspect, each of those updates
-- wrote a new entry into all nine indexes, because two of them named the
-- status column; status_announcement's insert and delete were an eighth of
-- the WAL, and each of the six history rows wrote two indexes. README.md
-- ("What cancelnotify costs your database") has the figures.

-- Updates that leave every indexed column alone can be HOT (heap-only): the
-- new row version goes on the same page and no index is touched. status and
-- updated_at change on every update, so no index names them any more, not
-- even in a partial index's WHERE; only the sent update (it sets wamid)
-- still writes the indexes. Room on the page is what HOT needs: fillfactor
-- leaves half of each new page free for the versions of its rows (70 % of
-- the updates were HOT at 50, against 57 % at 70).
DROP INDEX notification_status_idx;
DROP INDEX notification_queued_channel_idx;
ALTER TABLE notification SET (fillfactor = 50);

-- The messages waiting for a held channel are among the rows without a
-- wamid, a predicate no HOT update changes: queued and sending rows, and the
-- few that ended without being sent (rejected, skipped, failed before
-- acceptance) until retention deletes them.
CREATE INDEX notification_unsent_channel_idx ON notification (channel) WHERE wamid IS NULL;
COMMENT ON INDEX notification_unsent_channel_idx IS
    'Rows not (yet) accepted by 1MSG, per channel: the messages waiting for a held channel (status queued) are found here without indexing status.';

-- A notification's history is read by notification_id, in id order: one
-- index, the primary key, serves that and uniqueness; a second index on id
-- alone was 400 bytes of WAL per message for nothing.
ALTER TABLE notification_event DROP CONSTRAINT notification_event_pkey;
DROP INDEX notification_event_notification_idx;
ALTER TABLE notification_event ADD CONSTRAINT notification_event_pkey PRIMARY KEY (notification_id, id);

-- Announcements are a hand-off of milliseconds to LISTENers, whose own
-- connections a Postgres crash drops anyway: the table needs no WAL. After
-- a crash Postgres empties an unlogged table, so changes committed in the
-- last moments before it are not announced (every change stays in
-- notification_event and notification, and CRM callbacks are River jobs);
-- a clean shutdown or restart keeps them.
ALTER TABLE status_announcement SET UNLOGGED;
COMMENT ON TABLE status_announcement IS
    'Status changes committed but not yet NOTIFYed on cancelnotify_status; the daemon announces and deletes them within milliseconds. Unlogged: a Postgres crash empties it (README "Without polling").';
