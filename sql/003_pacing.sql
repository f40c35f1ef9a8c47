-- cancelnotify schema, version 3: per-recipient pacing. Meta allows one
-- message every 6 seconds to the same WhatsApp user (error 131056); the relay
-- schedules each send no earlier than not_before, at least that far after
-- the previous one to the same phone.
ALTER TABLE notification ADD COLUMN not_before timestamptz;

CREATE INDEX notification_phone_idx ON notification (phone, not_before DESC) WHERE phone <> '';
