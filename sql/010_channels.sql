-- cancelnotify schema, version 10: several 1MSG channels, and one send rate
-- per channel shared by every daemon on the schema.

-- send_rate: one token bucket per channel. Every daemon on the schema takes
-- its sends from the same row, so a channel's rate holds for all of them
-- together. The bucket refills by the time elapsed on the database's clock.
CREATE TABLE send_rate (
    channel      text PRIMARY KEY,
    tokens       double precision NOT NULL,
    refilled_at  timestamptz NOT NULL
);
COMMENT ON TABLE send_rate IS
    'Token bucket per channel shared by every daemon on this schema: a daemon takes up to a few sends at a time with send_rate_take(); README "One rate per channel across instances".';
COMMENT ON COLUMN send_rate.channel IS 'Channel name, as notification.channel.';
COMMENT ON COLUMN send_rate.tokens IS 'Sends left in the bucket at refilled_at (fractional; never more than the burst allowance).';
COMMENT ON COLUMN send_rate.refilled_at IS 'When tokens was last brought up to date (database clock).';

-- send_rate_take refills the channel's bucket by the time elapsed since the
-- last take (at p_rate per second, up to p_burst), takes up to p_want whole
-- sends and returns how many it took and the fraction left. The row lock
-- orders concurrent takers; the clock is read after the lock, so time
-- spent waiting for it is never credited twice.
CREATE FUNCTION send_rate_take(p_channel text, p_want integer, p_rate double precision, p_burst double precision,
    OUT granted integer, OUT tokens_left double precision)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    b send_rate%ROWTYPE;
    t timestamptz;
    avail double precision;
BEGIN
    SELECT * INTO b FROM send_rate WHERE channel = p_channel FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO send_rate (channel, tokens, refilled_at) VALUES (p_channel, p_burst, clock_timestamp())
            ON CONFLICT (channel) DO NOTHING;
        SELECT * INTO b FROM send_rate WHERE channel = p_channel FOR UPDATE;
    END IF;
    t := clock_timestamp();
    avail := least(p_burst, b.tokens + p_rate * greatest(0, extract(epoch FROM t - b.refilled_at)));
    granted := greatest(0, least(p_want, floor(avail)))::integer;
    tokens_left := avail - granted;
    UPDATE send_rate SET tokens = tokens_left, refilled_at = greatest(b.refilled_at, t) WHERE channel = p_channel;
END
$$;
COMMENT ON FUNCTION send_rate_take(text, integer, double precision, double precision) IS
    'Takes up to p_want sends from the channel''s shared token bucket (refilled at p_rate/s up to p_burst); returns how many were granted and the fraction left.';
