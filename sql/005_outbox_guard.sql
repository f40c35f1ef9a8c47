-- cancelnotify schema, version 5: the outbox trusts nothing the OMS writes
-- beyond event_id and payload, and takes more kinds of mistakes without
-- rolling back the OMS's transaction.

-- outbox_guard: relayed_at belongs to the relay. A row inserted with it set
-- would never be relayed while the backlog metric said 0, so an INSERT
-- always clears it, and an UPDATE may set it only once the row's
-- notification exists (the relay creates it in the same transaction).
-- A NULL event_type or payload is turned into something the relay rejects
-- with a reason, instead of a NOT NULL error that rolls back the
-- cancellation. Runs with this schema's search_path whoever inserts.
CREATE FUNCTION outbox_guard() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.relayed_at := NULL;
        NEW.event_type := coalesce(NEW.event_type, '');
        NEW.payload := coalesce(NEW.payload, 'null'::jsonb);
    ELSIF NEW.relayed_at IS NOT NULL AND OLD.relayed_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.outbox_id = NEW.id) THEN
        NEW.relayed_at := NULL;
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION outbox_guard() IS
    'Trigger: clears relayed_at on INSERT and refuses to set it before the row''s notification exists; turns a NULL event_type or payload into values the relay rejects with a reason.';

CREATE TRIGGER outbox_guard BEFORE INSERT OR UPDATE OF relayed_at ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_guard();

-- Rows an OMS inserted with relayed_at already set, before this version:
-- relay them now.
UPDATE outbox o SET relayed_at = NULL
WHERE o.relayed_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.outbox_id = o.id);

-- outbox_payload: JSON text as the OMS's JSON library wrote it, as jsonb,
-- never failing. Postgres's jsonb refuses \u0000 (NUL) and a lone UTF-16
-- surrogate such as \ud800, which JSON.stringify and others write for
-- such characters: NUL becomes a space (the relay turns control
-- characters into spaces anyway); anything still unreadable is stored as
-- {"cancelnotify_unreadable_payload": "<Postgres's error>"}, which the relay
-- rejects with that reason.
CREATE FUNCTION outbox_payload(json_text text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    BEGIN
        RETURN json_text::jsonb;
    EXCEPTION WHEN others THEN
        NULL;
    END;
    BEGIN
        -- \u0000 not preceded by an escaping backslash (an odd run of them).
        RETURN regexp_replace(json_text, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\u0020', 'g')::jsonb;
    EXCEPTION WHEN others THEN
        RETURN jsonb_build_object('cancelnotify_unreadable_payload', SQLERRM);
    END;
END;
$$;

COMMENT ON FUNCTION outbox_payload(text) IS
    'The OMS''s JSON text as jsonb, never failing: \u0000 becomes a space; text Postgres cannot store as jsonb (a lone UTF-16 surrogate, invalid JSON) becomes {"cancelnotify_unreadable_payload": error}, rejected by the relay with that reason.';
