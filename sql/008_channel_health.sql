-- cancelnotify schema, version 8: channel health. A refusal no single
-- message caused (bad token, template paused, channel not connected,
-- account locked) holds the channel's sends instead of failing them; the
-- daemons probe it and resume by themselves (README "Channel health").
CREATE TABLE channel_health (
    channel          text PRIMARY KEY,
    state            text NOT NULL DEFAULT 'healthy' CHECK (state IN ('healthy', 'held', 'trial')),
    since            timestamptz NOT NULL DEFAULT now(),
    error_code       text,
    error            text,
    probe_at         timestamptz,
    probes           integer NOT NULL DEFAULT 0,
    probe_owner      text,
    probe_until      timestamptz,
    last_probe_at    timestamptz,
    last_probe_error text,
    trial_job_id     bigint,
    trial_until      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE channel_health IS 'One row per 1MSG channel that has ever been held: whether its sends go out (healthy), wait for a probe (held) or wait for one real send to prove it answers again (trial). Shared by every daemon on the schema.';
COMMENT ON COLUMN channel_health.channel IS 'Channel name: default for the ONEMSG_* channel.';
COMMENT ON COLUMN channel_health.state IS 'healthy: sends go out; held: no sends until a probe (GET /status, GET /templates) succeeds; trial: the probe passed and one real send decides.';
COMMENT ON COLUMN channel_health.since IS 'When the channel entered its current state (held: when the refusal arrived).';
COMMENT ON COLUMN channel_health.error_code IS 'The refusal that held the channel: Meta code or http_<status>; kept after recovery as the last one.';
COMMENT ON COLUMN channel_health.error IS 'The refusal''s text as 1MSG or Meta gave it (no token).';
COMMENT ON COLUMN channel_health.probe_at IS 'When the next probe is due (back-off doubling up to a minute).';
COMMENT ON COLUMN channel_health.probes IS 'Probes made since the channel was held.';
COMMENT ON COLUMN channel_health.probe_owner IS 'The daemon (River client id) holding the probe lease; only it probes until probe_until.';
COMMENT ON COLUMN channel_health.probe_until IS 'End of the probe lease: after it another daemon may probe.';
COMMENT ON COLUMN channel_health.last_probe_at IS 'When the last probe finished.';
COMMENT ON COLUMN channel_health.last_probe_error IS 'What the last failed probe found, NULL after a passing one.';
COMMENT ON COLUMN channel_health.trial_job_id IS 'In trial: the River send job whose real send decides; NULL until one claims it.';
COMMENT ON COLUMN channel_health.trial_until IS 'In trial: when an unfinished claim lapses and another send may try.';
COMMENT ON COLUMN channel_health.updated_at IS 'Last change of the row.';

-- A payload language the approved template lacked: the message went in the
-- channel's default language (notification.language) instead.
ALTER TABLE notification ADD COLUMN language_fallback_from text;
COMMENT ON COLUMN notification.language_fallback_from IS 'The payload''s language when the template lacked it and the message was sent in the channel''s default language (language); NULL when no fallback happened.';

CREATE INDEX notification_queued_channel_idx ON notification (channel) WHERE status = 'queued';
