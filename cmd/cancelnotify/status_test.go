package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/outbox"
)

func TestStatusCommand(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	if err := outbox.Insert(context.Background(), pool, "order-1-cancelled", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": dbtest.URL(), "CANCELNOTIFY_SCHEMA": schema}
	tests := []struct {
		name string
		args []string
		code int
		want []string // fragments of stdout (code 0) or stderr
	}{
		{"unknown event: the hint's SQL names the schema", []string{"status", "order-9-cancelled"}, 1,
			[]string{`no event has event_id or order number "order-9-cancelled"`, "FROM " + pgx.Identifier{schema, "outbox"}.Sanitize()}},
		{"an event not relayed yet", []string{"status", "order-1-cancelled"}, 0,
			[]string{"event      order-1-cancelled (order.cancelled, outbox row 1", "not relayed yet"}},
		{"counts", []string{"status"}, 0,
			[]string{"schema " + schema + ": 0 notifications", "waiting for the relay: 1 outbox rows"}},
		{"counts as JSON", []string{"status", "--json"}, 0, []string{`"unrelayed": 1`, `"in_doubt": 0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, vars, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			got := stdout
			if tt.code != 0 {
				got = stderr
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
