package main

import (
	"context"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/outbox"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"order-10482-cancelled", "order-10482-cancelled"},
		{"Алексей 👩\u200d💻", `Алексей 👩\u200d💻`},
		{"\x1b[2Jgone", `\x1b[2Jgone`},
		{"a\nb\tc\r", `a\x0ab\x09c\x0d`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"\u0085\u2028", `\u0085\u2028`},
		{"bad \xff byte", `bad \xff byte`},
	} {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// `status` shows an event_id with terminal escapes and an RTL override as
// escapes, in every human form; --json stays exact.
func TestStatusEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	const evil = "order-1\x1b[2J\x1b]0;pwned\x07\u202ecod.exe"
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (event_id, payload) VALUES ($1, '{"phone": "+1"}')`, evil); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.NewRelay(outbox.RelayConfig{Pool: pool, Schema: schema, Jobs: client, Template: "t"}).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": dbtest.URL(), "CANCELNOTIFY_SCHEMA": schema}
	for _, args := range [][]string{{"status", evil}, {"status", "--status", "rejected"}} {
		code, out, errOut := run(t, vars, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errOut)
		}
		if strings.ContainsAny(out, "\x1b\x07\u202e") || !strings.Contains(out, `order-1\x1b[2J\x1b]0;pwned\x07\u202ecod.exe`) {
			t.Errorf("%q printed raw control characters or not the escaped id:\n%q", args, out)
		}
	}
	if _, out, _ := run(t, vars, "status", evil, "--json"); !strings.Contains(out, `order-1\u001b[2J\u001b]0;pwned\u0007`) {
		t.Errorf("--json: %s", out)
	}
}
