package sql_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
)

// readmeBlock returns the README's fenced block of lang that contains
// marker, so the test runs exactly what a reader pastes.
func readmeBlock(t *testing.T, lang, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(string(b), "```"+lang+"\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		if strings.Contains(block, marker) {
			return block
		}
	}
	t.Fatalf("README.md has no ```%s block containing %q", lang, marker)
	return ""
}

// The README's roles, applied to a fresh schema: the OMS role can insert
// (ON CONFLICT included) and nothing else; the analyst role can read the
// record and change nothing.
func TestREADMEGrants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	oms, analyst := "cnt_oms_"+hex.EncodeToString(suffix), "cnt_analyst_"+hex.EncodeToString(suffix)
	grants := strings.NewReplacer(
		"cancelnotify_oms", oms, "cancelnotify_analyst", analyst,
		"cancelnotify.", schema+".", "SCHEMA cancelnotify ", "SCHEMA "+schema+" ",
	).Replace(readmeBlock(t, "sql", "CREATE ROLE cancelnotify_oms"))
	if strings.Contains(grants, "cancelnotify") {
		t.Fatalf("the grants still name cancelnotify after substitution:\n%s", grants)
	}
	if _, err := pool.Exec(ctx, grants); err != nil {
		t.Fatalf("the README's grants: %v\n%s", err, grants)
	}
	// Roles are the cluster's, not the schema's: drop them (and their
	// privileges) before dbtest drops the schema.
	t.Cleanup(func() {
		for _, r := range []string{oms, analyst} {
			_, _ = pool.Exec(context.Background(), "DROP OWNED BY "+r+"; DROP ROLE "+r)
		}
	})

	insert := "INSERT INTO " + schema + ".outbox (event_id, payload) VALUES ('order-1-cancelled', '{}')"
	tests := []struct {
		role, sql string
		ok        bool
	}{
		{oms, insert + " ON CONFLICT (event_id) DO NOTHING", true},
		{oms, insert + " ON CONFLICT (event_id) DO NOTHING", true}, // the OMS's retry
		{oms, "SELECT payload FROM " + schema + ".outbox", false},
		{oms, "SELECT count(*) FROM " + schema + ".notification", false},
		{oms, "UPDATE " + schema + ".outbox SET relayed_at = now()", false},
		{analyst, "SELECT count(*) FROM " + schema + ".notification_report", true},
		{analyst, "SELECT count(*) FROM " + schema + ".notification", true},
		{analyst, "SELECT count(*) FROM " + schema + ".notification_event", true},
		{analyst, insert + " ON CONFLICT (event_id) DO NOTHING", false},
		{analyst, "SELECT count(*) FROM " + schema + ".river_job", false},
	}
	for _, tt := range tests {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+tt.role); err != nil {
				t.Fatal(err)
			}
			_, err := tx.Exec(ctx, tt.sql)
			return err
		})
		if (err == nil) != tt.ok {
			t.Errorf("as %s: %s: %v; want ok %v", tt.role, tt.sql, err, tt.ok)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".outbox").Scan(&n); err != nil || n != 1 {
		t.Errorf("outbox rows = %d, %v; want the OMS's one row", n, err)
	}
}
