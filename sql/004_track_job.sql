-- cancelnotify schema, version 4: the River track job of an accepted message.
-- When a webhook brings the final status, the job is deleted in the same
-- transaction instead of waking up only to find nothing left to do.
ALTER TABLE notification ADD COLUMN track_job_id bigint;
