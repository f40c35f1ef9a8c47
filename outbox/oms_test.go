package outbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
)

// What an OMS can get wrong in its INSERT, tried against real Postgres:
// either Postgres refuses the statement (the OMS's transaction fails, with
// the SQLSTATE README.md lists), or the row is stored and the relay settles
// it with a reason. Nothing in between: no row is stored and left behind.
func TestOMSMistakes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	r := newRelay(t, pool, schema, 500)
	const good = `'{"phone": "+49 151 23456789", "customer_name": "C", "order_number": 1, "product_name": "P", "next_step": "N"}'`
	tests := []struct {
		name, eventID, sql string // sql inserts the row with event id $1
		args               []any
		refused            string // SQLSTATE when Postgres refuses the INSERT
		status, code       string // else, how the relay settles it
		param0             string // with status queued: {{1}} as sent
	}{
		{name: "relayed_at preset", sql: `INSERT INTO outbox (event_id, payload, relayed_at) VALUES ($1, ` + good + `, now())`, status: "queued", param0: "C"},
		{name: "NULL payload", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, NULL)`, status: "rejected", code: "invalid_json"},
		{name: "NULL event_type", sql: `INSERT INTO outbox (event_id, event_type, payload) VALUES ($1, NULL, ` + good + `)`, status: "rejected", code: "unknown_event_type"},
		{name: "NULL event_id", sql: `INSERT INTO outbox (event_id, payload) VALUES (nullif($1, $1), ` + good + `)`, refused: "23502"},
		{name: "event_id of 2000 bytes", eventID: strings.Repeat("e", 2000), sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, ` + good + `)`, status: "rejected", code: "event_id_too_long"},
		{name: "event_id of 3000 random bytes", sql: `INSERT INTO outbox (event_id, payload) SELECT string_agg(md5(i::text), '') || $1, ` + good + ` FROM generate_series(1, 100) i`, refused: "54000"},
		{name: "\\u0000 cast to jsonb", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, '{"customer_name": "a\u0000b"}'::jsonb)`, refused: "22P05"},
		{name: "lone surrogate cast to jsonb", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, '{"customer_name": "a\ud800b"}'::jsonb)`, refused: "22P02"},
		{name: "NUL byte in a text parameter", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, jsonb_build_object('customer_name', $2::text))`, args: []any{"a\x00b"}, refused: "22021"},
		{name: "outbox_payload with \\u0000", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, outbox_payload($2))`,
			args: []any{`{"phone": "+49 151 23456789", "customer_name": "Al\u0000exey", "order_number": 1, "product_name": "P", "next_step": "N"}`}, status: "queued", param0: "Al exey"},
		{name: "outbox_payload with an escaped backslash before u0000", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, outbox_payload($2))`,
			args: []any{`{"phone": "+49 151 23456789", "customer_name": "a\\u0000", "order_number": 1, "product_name": "P", "next_step": "N"}`}, status: "queued", param0: `a\u0000`},
		{name: "outbox_payload with a lone surrogate", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, outbox_payload($2))`,
			args: []any{`{"phone": "+49 151 23456789", "customer_name": "a\ud800", "order_number": 1, "product_name": "P", "next_step": "N"}`}, status: "rejected", code: "invalid_json"},
		{name: "outbox_payload with invalid JSON", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, outbox_payload($2))`, args: []any{`{"phone": `}, status: "rejected", code: "invalid_json"},
		{name: "payload a JSON string", sql: `INSERT INTO outbox (event_id, payload) VALUES ($1, to_jsonb('text'::text))`, status: "rejected", code: "invalid_json"},
	}
	settled := map[string]int{}
	for i, tt := range tests {
		id := tt.eventID
		if id == "" {
			id = "oms-" + strings.ReplaceAll(tt.name, " ", "-")
		}
		_, err := pool.Exec(ctx, tt.sql, append([]any{id}, tt.args...)...)
		var pgErr *pgconn.PgError
		switch {
		case tt.refused != "" && (!errors.As(err, &pgErr) || pgErr.Code != tt.refused):
			t.Errorf("%s: INSERT error %v; want Postgres to refuse it with SQLSTATE %s", tt.name, err, tt.refused)
		case tt.refused == "" && err != nil:
			t.Errorf("%s: INSERT failed (%v); want it stored and settled by the relay", tt.name, err)
		case tt.refused == "":
			settled[id] = i
		}
	}
	// The OMS cannot mark a row relayed behind the relay's back either.
	if _, err := pool.Exec(ctx, "UPDATE outbox SET relayed_at = now() WHERE event_id = 'oms-relayed_at-preset'"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var unrelayed int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE relayed_at IS NULL").Scan(&unrelayed); err != nil || unrelayed != 0 {
		t.Errorf("%d rows left unrelayed (%v)", unrelayed, err)
	}
	for id, i := range settled {
		tt := tests[i]
		var status, code, reason, param0 string
		err := pool.QueryRow(ctx, `SELECT n.status, coalesce(n.error_code, ''), coalesce(n.error, ''), coalesce(n.params->>0, '')
			FROM notification n JOIN outbox o ON o.id = n.outbox_id WHERE o.event_id = $1`, id).Scan(&status, &code, &reason, &param0)
		if err != nil {
			t.Errorf("%s: no notification: %v", tt.name, err)
			continue
		}
		if status != tt.status || code != tt.code || param0 != tt.param0 {
			t.Errorf("%s: %s %s %q, {{1}} %q; want %s %s, {{1}} %q", tt.name, status, code, reason, param0, tt.status, tt.code, tt.param0)
		}
	}
}
