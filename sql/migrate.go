// Package sql holds cancelnotify's schema migrations, embedded in the binary,
// and applies them together with River's into one Postgres schema.
//
// Migrations are files named NNN_name.sql, applied in order, each in its own
// transaction with search_path set to the target schema, and recorded in
// cancelnotify_migration. An advisory lock serializes concurrent migrators,
// so `cancelnotify migrate` is safe to run twice or from two hosts at once.
package sql

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// Migration is one embedded schema migration.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var fileName = regexp.MustCompile(`^(\d{3})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in version order.
func Migrations() []Migration {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		panic(err) // embedded FS: cannot fail
	}
	var out []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		b, err := files.ReadFile(e.Name())
		if err != nil {
			panic(err)
		}
		v, _ := strconv.Atoi(m[1])
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out
}

// Latest is the version the binary expects the schema to be at.
func Latest() int {
	ms := Migrations()
	return ms[len(ms)-1].Version
}

// validSchema keeps schema names usable in identifiers and NOTIFY channels
// (River requires the same character set).
var validSchema = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,49}$`)

// ValidateSchemaName reports whether name can be used as the schema.
func ValidateSchemaName(name string) error {
	if !validSchema.MatchString(name) {
		return fmt.Errorf("schema name %q is not usable: use 1-50 lowercase letters, digits or underscores, starting with a letter or underscore", name)
	}
	return nil
}

// Result says what Migrate did.
type Result struct {
	RiverApplied []int // River migration versions applied now
	Applied      []int // cancelnotify migration versions applied now
	Version      int   // cancelnotify version after the run
}

// Migrate creates schema if needed and brings River's tables and
// cancelnotify's objects in it up to date. It is idempotent.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (*Result, error) {
	if err := ValidateSchemaName(schema); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect to the database: %w", err)
	}
	defer conn.Release()

	// A session lock held on this connection while River's migrator and ours
	// run on others: a second migrator waits here until we are done.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey(schema)); err != nil {
		return nil, fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: ctx may be done, and a leaked session lock
		// would block the next migrator until this connection closes.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey(schema))
	}()

	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("migrate: create schema %s: %w", schema, err)
	}

	res := &Result{}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("migrate: River migrator: %w", err)
	}
	rr, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate: River's tables in schema %s: %w", schema, err)
	}
	for _, v := range rr.Versions {
		res.RiverApplied = append(res.RiverApplied, v.Version)
	}

	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.cancelnotify_migration (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`, pgx.Identifier{schema}.Sanitize())); err != nil {
		return nil, fmt.Errorf("migrate: create the version table: %w", err)
	}
	applied, err := appliedVersions(ctx, conn, schema)
	if err != nil {
		return nil, err
	}
	for _, m := range Migrations() {
		if slices.Contains(applied, m.Version) {
			res.Version = m.Version
			continue
		}
		if err := apply(ctx, conn, schema, m); err != nil {
			return nil, err
		}
		logger.Info("applied migration", "schema", schema, "version", m.Version, "name", m.Name)
		res.Applied = append(res.Applied, m.Version)
		res.Version = m.Version
	}
	return res, nil
}

func lockKey(schema string) string { return "cancelnotify.migrate:" + schema }

func apply(ctx context.Context, conn *pgxpool.Conn, schema string, m Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin version %d: %w", m.Version, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("migrate: set search_path: %w", err)
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("migrate: apply version %d (%s): %w", m.Version, m.Name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO cancelnotify_migration (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
		return fmt.Errorf("migrate: record version %d: %w", m.Version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit version %d: %w", m.Version, err)
	}
	return nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func appliedVersions(ctx context.Context, q querier, schema string) ([]int, error) {
	rows, err := q.Query(ctx, fmt.Sprintf("SELECT version FROM %s.cancelnotify_migration ORDER BY version", pgx.Identifier{schema}.Sanitize()))
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return vs, nil
}

// ErrNotMigrated is wrapped by Check's error when the schema is missing or
// behind this binary.
var ErrNotMigrated = errors.New("database schema is not migrated")

// Check verifies that schema holds River's tables and every cancelnotify
// migration this binary knows, and nothing newer. The error says what to do.
func Check(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return fmt.Errorf("check schema %s: %w", schema, err)
	}
	if !exists {
		return fmt.Errorf("%w: schema %q does not exist; run `cancelnotify migrate` first", ErrNotMigrated, schema)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("check River migrations: %w", err)
	}
	vr, err := migrator.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: River's tables in schema %q cannot be read (%v); run `cancelnotify migrate`", ErrNotMigrated, schema, err)
	}
	if !vr.OK {
		return fmt.Errorf("%w: River's tables in schema %q are not up to date (%s); run `cancelnotify migrate`", ErrNotMigrated, schema, strings.Join(vr.Messages, "; "))
	}
	var hasTable bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".cancelnotify_migration").Scan(&hasTable); err != nil {
		return fmt.Errorf("check schema %s: %w", schema, err)
	}
	if !hasTable {
		return fmt.Errorf("%w: schema %q has no cancelnotify tables; run `cancelnotify migrate`", ErrNotMigrated, schema)
	}
	applied, err := appliedVersions(ctx, pool, schema)
	if err != nil {
		return err
	}
	var missing []string
	for _, m := range Migrations() {
		if !slices.Contains(applied, m.Version) {
			missing = append(missing, strconv.Itoa(m.Version))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: schema %q lacks migration(s) %s; run `cancelnotify migrate`", ErrNotMigrated, schema, strings.Join(missing, ", "))
	}
	if n := len(applied); n > 0 && applied[n-1] > Latest() {
		return fmt.Errorf("schema %q is at version %d, newer than this binary (%d): upgrade cancelnotify before running it", schema, applied[n-1], Latest())
	}
	return nil
}

// Drop drops schema with everything in it, cancelnotify's and River's
// tables alike; a missing schema is not an error. For throwaway schemas
// (the demo's, the bench's) only.
func Drop(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if err := ValidateSchemaName(schema); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	return nil
}

// Open connects to databaseURL with search_path set to schema, so every
// cancelnotify query can name its tables unqualified.
func Open(ctx context.Context, databaseURL, schema string, maxConns int32) (*pgxpool.Pool, error) {
	if err := ValidateSchemaName(schema); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid Postgres URL (%s): write it like postgres://user:password@host:5432/dbname", redactErr(err, databaseURL))
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "cancelnotify"
	}
	// pgx prepares every statement, and Postgres may then keep one generic
	// plan per connection for good. Planned while a new schema's tables
	// were empty, that plan is a sequential scan of notification and
	// river_job for the daemon's whole life (one third of the database's
	// time at 20,000 rows, README "What cancelnotify costs your
	// database"). Custom plans follow the tables as they grow, for a few
	// microseconds of planning per statement. A URL that sets it wins.
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return pool, nil
}

// redactErr returns err's text with any password of databaseURL removed:
// pgx quotes the URL in some parse errors.
func redactErr(err error, databaseURL string) string {
	s := err.Error()
	if i := strings.Index(databaseURL, "://"); i >= 0 {
		rest := databaseURL[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				if pw := rest[c+1 : at]; pw != "" {
					s = strings.ReplaceAll(s, pw, "REDACTED")
				}
			}
		}
	}
	return s
}
