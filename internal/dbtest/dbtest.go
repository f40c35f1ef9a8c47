// Package dbtest gives tests a real Postgres: a fresh, migrated schema per
// test, dropped when the test ends. The database comes from
// TEST_DATABASE_URL, or the local server every development machine runs.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// DefaultURL is used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// URL returns the database URL tests use.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Pool opens a pool on URL with max connections, closed at cleanup.
func Pool(tb testing.TB, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(URL())
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("connect to test database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// NewSchemaName returns a unique schema name starting with prefix.
func NewSchemaName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// New creates and migrates a fresh schema, dropped at cleanup (unless the
// test failed and DBTEST_KEEP is set, to look at the rows), and returns a
// pool whose search_path is that schema, as the daemon's is.
func New(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	ctx := context.Background()
	schema := NewSchemaName("cntest")
	pool, err := cnsql.Open(ctx, URL(), schema, 20)
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(func() { Drop(tb, schema) })
	tb.Cleanup(pool.Close)
	if _, err := cnsql.Migrate(ctx, pool, schema, nil); err != nil {
		tb.Fatalf("migrate test schema: %v", err)
	}
	return pool, schema
}

// Drop removes schema on a connection of its own (the test's pool may be
// closed already).
func Drop(tb testing.TB, schema string) {
	if tb.Failed() && os.Getenv("DBTEST_KEEP") != "" {
		tb.Logf("keeping schema %s for inspection", schema)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, URL())
	if err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
	}
}
