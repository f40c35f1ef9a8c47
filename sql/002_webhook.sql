-- cancelnotify schema, version 2: statuses pushed for a wamid we do not know
-- (yet). 1MSG may push `sent` or even `delivered` before the send worker has
-- committed the wamid 1MSG just returned; such statuses wait here and are
-- applied the moment the wamid is recorded. Statuses of messages sent by
-- other systems sharing the channel also land here and are deleted by
-- retention.
CREATE TABLE webhook_orphan (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wamid        text NOT NULL,
    status       text NOT NULL,
    error_code   text,
    error        text,
    occurred_at  timestamptz,
    detail       jsonb NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_orphan_wamid_idx ON webhook_orphan (wamid);
CREATE INDEX webhook_orphan_received_idx ON webhook_orphan (received_at);
